use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{DomainEvent, Topic, topic_events};

/// A manager registered a book; it can be rented from now on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BookRegistered {
    pub book_id: Uuid,
    pub title: String,
    pub author: String,
    /// In the smallest currency unit.
    pub rental_fee: u32,
}

/// A manager changed a book's title, author or fee; the event carries the whole new state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BookUpdated {
    pub book_id: Uuid,
    pub title: String,
    pub author: String,
    pub rental_fee: u32,
}

/// A manager retired a book; it can no longer be rented.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BookRetired {
    pub book_id: Uuid,
}

macro_rules! book_event {
    ($event:ident) => {
        impl DomainEvent for $event {
            const TYPE: &'static str = stringify!($event);
            const TOPIC: Topic = Topic::Book;
            fn key(&self) -> String {
                self.book_id.to_string()
            }
            fn subject(&self) -> Uuid {
                self.book_id
            }
        }
    };
}
book_event!(BookRegistered);
book_event!(BookUpdated);
book_event!(BookRetired);

topic_events!(
    /// Everything published on `book.events`.
    BookEvent { BookRegistered, BookUpdated, BookRetired }
);
