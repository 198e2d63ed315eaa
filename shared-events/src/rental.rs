use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{DomainEvent, Topic, topic_events};

/// A customer rented a book and paid for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BookRented {
    pub rental_id: Uuid,
    pub book_id: Uuid,
    pub user_id: Uuid,
    pub rental_fee: u32,
    pub payment_id: Uuid,
    pub rented_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
}

/// A customer cancelled a rental; payment refunds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RentalCancelled {
    pub rental_id: Uuid,
    pub book_id: Uuid,
    pub user_id: Uuid,
    pub payment_id: Uuid,
    pub cancelled_at: DateTime<Utc>,
}

/// A rental ended and its book is free again: the customer returned it, or its period ran out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BookReturned {
    pub rental_id: Uuid,
    pub book_id: Uuid,
    pub user_id: Uuid,
    pub returned_at: DateTime<Utc>,
    /// Why the rental ended. Added after the first release, so absent means `RETURNED`.
    #[serde(default)]
    pub reason: ReturnReason,
}

/// How a rental came to its end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReturnReason {
    /// The customer gave the book back.
    #[default]
    Returned,
    /// The rental period ended (at `dueAt`), and the book went back by itself.
    Expired,
}

// Keyed by book, so that one book's rentals are read in the order they happened.
macro_rules! rental_event {
    ($event:ident) => {
        impl DomainEvent for $event {
            const TYPE: &'static str = stringify!($event);
            const TOPIC: Topic = Topic::Rental;
            fn key(&self) -> String {
                self.book_id.to_string()
            }
            fn subject(&self) -> Uuid {
                self.rental_id
            }
            fn correlation_id(&self) -> Option<Uuid> {
                Some(self.rental_id)
            }
        }
    };
}
rental_event!(BookRented);
rental_event!(RentalCancelled);
rental_event!(BookReturned);

topic_events!(
    /// Everything published on `rental.events`.
    RentalEvent { BookRented, RentalCancelled, BookReturned }
);

impl RentalEvent {
    pub fn book_id(&self) -> Uuid {
        match self {
            RentalEvent::BookRented(e) => e.book_id,
            RentalEvent::RentalCancelled(e) => e.book_id,
            RentalEvent::BookReturned(e) => e.book_id,
        }
    }
}
