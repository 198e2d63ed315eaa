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

/// Where `<service> dlq replay` sends dead letters back, read by that service alone: it may
/// not write the topics it consumes (only their owners may), so a replay cannot go back to its
/// origin topic. Each entry carries its origin topic in [`REPLAY_ORIGIN`].
pub fn replay_of(service: &str) -> String {
    format!("{service}.replay")
}

/// The header of a replayed event naming the topic it first came from.
pub const REPLAY_ORIGIN: &str = "replay-origin-topic";

/// The dead-letter topic for any topic name (prefixed names included).
pub fn dlq_of(topic: &str) -> String {
    format!("{topic}.dlq")
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
