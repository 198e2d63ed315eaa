//! Keeps the catalogue replica from `book.events`, so renting never needs book-management.

use fleet_messaging::inbox::{EventHandler, HandlerError};
use shared_events::{BookEvent, RawEvent};
use sqlx::PgConnection;

use super::postgres;

pub struct CatalogueReplica;

impl EventHandler for CatalogueReplica {
    async fn handle(&self, conn: &mut PgConnection, event: &RawEvent) -> Result<(), HandlerError> {
        match event.decode::<BookEvent>()? {
            Some(BookEvent::BookRegistered(e)) => {
                postgres::upsert_book(conn, e.book_id, &e.title, e.rental_fee).await?
            }
            Some(BookEvent::BookUpdated(e)) => {
                postgres::upsert_book(conn, e.book_id, &e.title, e.rental_fee).await?
            }
            Some(BookEvent::BookRetired(e)) if !postgres::retire_book(conn, e.book_id).await? => {
                return Err(HandlerError::Rejected(format!(
                    "BookRetired for unknown book {}",
                    e.book_id
                )));
            }
            Some(BookEvent::BookRetired(_)) | None => {}
        }
        Ok(())
    }
}
