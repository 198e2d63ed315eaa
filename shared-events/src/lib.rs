//! The fleet's published language (docs/design.md §4): the CloudEvents 1.0 envelope, every domain
//! event, the topics and their Kafka keys. Services depend on this crate, never on each other.

pub mod access;
mod book;
mod envelope;
mod payment;
mod rental;
pub mod schema;
pub mod topic;
mod user;

pub use book::{BookEvent, BookRegistered, BookRetired, BookUpdated};
pub use envelope::{CloudEvent, DecodeError, RawEvent, SPEC_VERSION, TopicEvents};
pub use payment::{PaymentApproved, PaymentEvent, PaymentRefunded};
pub use rental::{BookRented, BookReturned, RentalCancelled, RentalEvent, ReturnReason};
pub use topic::Topic;
pub use user::{UserEvent, UserRegistered};

use schemars::JsonSchema;
use serde::{Serialize, de::DeserializeOwned};
use uuid::Uuid;

/// A domain event: its CloudEvents `type`, the topic it is published on, and the Kafka key that
/// keeps one aggregate's history in order.
pub trait DomainEvent:
    Serialize + DeserializeOwned + JsonSchema + Clone + std::fmt::Debug + Send + Sync + 'static
{
    /// The CloudEvents `type`, e.g. `BookRented`.
    const TYPE: &'static str;
    const TOPIC: Topic;
    /// The Kafka key (docs/design.md §4.2).
    fn key(&self) -> String;
    /// The id of the aggregate the event is about (CloudEvents `subject`).
    fn subject(&self) -> Uuid;
    /// The rental the event belongs to, where there is one (`correlationid`).
    fn correlation_id(&self) -> Option<Uuid> {
        None
    }
}

/// Declares a topic's events: the enum a consumer decodes into, with one variant per event.
macro_rules! topic_events {
    ($(#[$meta:meta])* $name:ident { $($event:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub enum $name {
            $($event($event),)+
        }

        impl $crate::TopicEvents for $name {
            const TYPES: &'static [&'static str] = &[$(<$event as $crate::DomainEvent>::TYPE,)+];

            fn decode(event_type: &str, data: &serde_json::Value) -> Result<Option<Self>, serde_json::Error> {
                $(
                    if event_type == <$event as $crate::DomainEvent>::TYPE {
                        return <$event as serde::Deserialize>::deserialize(data).map(|e| Some(Self::$event(e)));
                    }
                )+
                Ok(None)
            }
        }

        $(
            impl From<$event> for $name {
                fn from(event: $event) -> Self {
                    Self::$event(event)
                }
            }
        )+
    };
}
pub(crate) use topic_events;
