//! Keeps the catalogue replica from `book.events`, so renting never needs book-management: each
//! event is decoded into a fact about a book and replicated inside the inbox transaction.

use fleet_messaging::inbox::{EventHandler, HandlerError};
use shared_events::{BookEvent, RawEvent};
use sqlx::PgConnection;

use super::postgres::PgCatalogue;
use crate::application::{BookFact, ReplicaError, replicate};

pub struct CatalogueReplica;

impl EventHandler for CatalogueReplica {
    async fn handle(&self, conn: &mut PgConnection, event: &RawEvent) -> Result<(), HandlerError> {
        let Some(book) = event.decode::<BookEvent>()? else {
            return Ok(()); // an event type this version does not know
        };
        let fact = match book {
            BookEvent::BookRegistered(e) => BookFact::Listed {
                book_id: e.book_id,
                title: e.title,
                rental_fee: e.rental_fee,
            },
            BookEvent::BookUpdated(e) => BookFact::Listed {
                book_id: e.book_id,
                title: e.title,
                rental_fee: e.rental_fee,
            },
            BookEvent::BookRetired(e) => BookFact::Retired { book_id: e.book_id },
        };
        replicate(&mut PgCatalogue::new(conn), fact)
            .await
            .map_err(|e| match e {
                ReplicaError::UnknownBook(_) => HandlerError::Rejected(e.to_string()),
                // The cause itself, so the kit tells a database outage from a failure.
                ReplicaError::Store(e) => HandlerError::Failed(e.into_cause()),
            })
    }
}
