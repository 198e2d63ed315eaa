//! Domain events over Kafka, exactly once in effect: the transactional outbox and its relay
//! ([`outbox`]), the idempotent inbox consumer with retries and dead letters ([`inbox`]), the
//! pruning of both tables ([`retention`]), the Kafka clients ([`kafka`]) and the operator's
//! dead-letter command ([`dlq`]).

mod config;
pub mod dlq;
pub mod inbox;
pub mod kafka;
pub mod outbox;
pub mod retention;

pub use config::MessagingConfig;
