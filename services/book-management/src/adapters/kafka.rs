//! Keeps each book's rental status and times-rented count from `rental.events`.

use chrono::Utc;
use fleet_messaging::inbox::{EventHandler, HandlerError};
use shared_events::{RawEvent, RentalEvent};
use sqlx::PgConnection;

use super::postgres;
use crate::domain::BookId;

pub struct RentalActivity;

impl EventHandler for RentalActivity {
    async fn handle(&self, conn: &mut PgConnection, event: &RawEvent) -> Result<(), HandlerError> {
        let Some(event) = event.decode::<RentalEvent>()? else {
            return Ok(()); // an event type this version does not know
        };
        let Some(mut book) = postgres::lock(conn, BookId(event.book_id())).await? else {
            return Err(HandlerError::Rejected(format!(
                "no book {} in the catalogue",
                event.book_id()
            )));
        };
        let now = Utc::now();
        match &event {
            RentalEvent::BookRented(e) => book.rented(e.rental_id, now),
            RentalEvent::RentalCancelled(e) => book.released(e.rental_id, now),
            RentalEvent::BookReturned(e) => book.released(e.rental_id, now),
        }
        postgres::save(conn, &book).await?;
        Ok(())
    }
}
