//! Who may do what on the event bus. Each service has a Kafka principal of its own (its name),
//! and the broker's authorizer lets it write only the topics it owns, the dead-letter topics of
//! what it consumes and its own replay topic ([`crate::topic::replay_of`]), read only the topics it consumes (and their dead-letter topics, for its
//! `dlq` command), and use only its own consumer groups. Everything else is refused: a principal
//! with no rule is denied (`allow.everyone.if.no.acl.found=false`).
//!
//! This table is the one source of the rules: the local broker, the test harness and the
//! Kubernetes job that writes the ACLs are all made from [`bindings`].

use crate::Topic;
use crate::topic::replay_of;

/// A service's rights on the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceAccess {
    /// Its principal (`User:<name>`), also its consumer group and its events' `source`.
    pub principal: &'static str,
    /// The topics whose events it publishes (from its outbox).
    pub owns: &'static [Topic],
    /// The topics it consumes.
    pub consumes: &'static [Topic],
}

impl ServiceAccess {
    /// Its consumer groups: the service's own, and the one its `dlq` command reads with (never
    /// joined, but librdkafka still looks its coordinator up).
    pub fn groups(&self) -> [String; 2] {
        [
            self.principal.to_owned(),
            format!("{}.dlq-reader", self.principal),
        ]
    }
}

/// Every service that uses Kafka. (The gateway does not.)
pub const SERVICES: [ServiceAccess; 6] = [
    ServiceAccess {
        principal: "book-management",
        owns: &[Topic::Book],
        consumes: &[Topic::Rental],
    },
    ServiceAccess {
        principal: "rental",
        owns: &[Topic::Rental],
        consumes: &[Topic::Book],
    },
    ServiceAccess {
        principal: "payment",
        owns: &[Topic::Payment],
        consumes: &[Topic::Rental],
    },
    ServiceAccess {
        principal: "user",
        owns: &[Topic::User],
        consumes: &[Topic::Rental],
    },
    ServiceAccess {
        principal: "view",
        owns: &[],
        consumes: &Topic::ALL,
    },
    ServiceAccess {
        principal: "points",
        owns: &[],
        consumes: &[Topic::Rental],
    },
];

/// The rights of the service called `principal`.
pub fn of(principal: &str) -> Option<&'static ServiceAccess> {
    SERVICES.iter().find(|s| s.principal == principal)
}

/// What an ACL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resource {
    Topic,
    Group,
}

/// What an ACL allows. READ and WRITE imply DESCRIBE on the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    Read,
    Write,
}

/// One ALLOW rule, on a resource named exactly (a LITERAL pattern: a prefix would also match
/// another environment's or test's names behind a longer prefix).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Binding {
    pub resource: Resource,
    pub name: String,
    /// Without the `User:` in front.
    pub principal: &'static str,
    pub operation: Operation,
}

impl std::fmt::Display for Binding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "User:{} {:?} {:?}:{}",
            self.principal, self.operation, self.resource, self.name
        )
    }
}

/// Every rule of the fleet, each name behind `prefix` (`KAFKA_TOPIC_PREFIX`: an environment's or
/// a test's; topics and groups both carry it).
pub fn bindings(prefix: &str) -> Vec<Binding> {
    let mut all = Vec::new();
    for service in &SERVICES {
        let rule = |resource, name: String, operation| Binding {
            resource,
            name: format!("{prefix}{name}"),
            principal: service.principal,
            operation,
        };
        for topic in service.owns {
            all.push(rule(
                Resource::Topic,
                topic.name().to_owned(),
                Operation::Write,
            ));
        }
        for topic in service.consumes {
            all.push(rule(
                Resource::Topic,
                topic.name().to_owned(),
                Operation::Read,
            ));
            // A consumer dead-letters what it cannot apply, and its `dlq` command lists them.
            all.push(rule(Resource::Topic, topic.dlq_name(), Operation::Write));
            all.push(rule(Resource::Topic, topic.dlq_name(), Operation::Read));
        }
        if !service.consumes.is_empty() {
            // Its `dlq replay` writes there, and its consumer reads it.
            for operation in [Operation::Write, Operation::Read] {
                all.push(rule(
                    Resource::Topic,
                    replay_of(service.principal),
                    operation,
                ));
            }
        }
        for group in service.groups() {
            all.push(rule(Resource::Group, group, Operation::Read));
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(principal: &str, operation: Operation, topic: &str) -> bool {
        bindings("").iter().any(|b| {
            b.principal == principal
                && b.resource == Resource::Topic
                && b.operation == operation
                && b.name == topic
        })
    }

    #[test]
    fn only_rental_may_write_rental_events() {
        let writers: Vec<&str> = SERVICES
            .iter()
            .map(|s| s.principal)
            .filter(|p| allowed(p, Operation::Write, "rental.events"))
            .collect();
        assert_eq!(writers, ["rental"]);
        assert!(allowed("points", Operation::Read, "rental.events"));
        assert!(allowed("points", Operation::Write, "rental.events.dlq"));
        assert!(!allowed("points", Operation::Read, "payment.events"));
    }

    #[test]
    fn each_topic_has_one_owner() {
        for topic in Topic::ALL {
            let owners = SERVICES.iter().filter(|s| s.owns.contains(&topic)).count();
            assert_eq!(owners, 1, "{topic}");
        }
    }

    #[test]
    fn names_carry_the_prefix() {
        assert!(
            bindings("t1.")
                .iter()
                .all(|b| b.name.starts_with("t1.") && !b.name.starts_with("t1.t1."))
        );
    }
}
