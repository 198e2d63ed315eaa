use std::fmt;

/// The four topics of the fleet; each has a dead-letter twin, `<topic>.dlq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    Book,
    Rental,
    Payment,
    User,
}

impl Topic {
    pub const ALL: [Topic; 4] = [Topic::Book, Topic::Rental, Topic::Payment, Topic::User];

    pub const fn name(self) -> &'static str {
        match self {
            Topic::Book => "book.events",
            Topic::Rental => "rental.events",
            Topic::Payment => "payment.events",
            Topic::User => "user.events",
        }
    }

    pub fn dlq_name(self) -> String {
        dlq_of(self.name())
    }
}

/// The dead-letter topic for any topic name (prefixed names included).
pub fn dlq_of(topic: &str) -> String {
    format!("{topic}.dlq")
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
