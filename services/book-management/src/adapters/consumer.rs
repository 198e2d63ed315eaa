//! Keeps each book's rental status and times-rented count from `rental.events`: each event is
//! decoded into a rental's start or end and recorded on its book inside the inbox transaction.

use fleet_messaging::inbox::{EventHandler, HandlerError};
use shared_events::{RawEvent, RentalEvent};
use sqlx::PgConnection;

use super::postgres::PgRentalActivity;
use crate::application::{RentalActivityError, RentalFact, StoreError, record_rental};
use crate::domain::BookId;

pub struct RentalActivity;

impl EventHandler for RentalActivity {
    async fn handle(&self, conn: &mut PgConnection, event: &RawEvent) -> Result<(), HandlerError> {
        let Some(rental) = event.decode::<RentalEvent>()? else {
            return Ok(()); // an event type this version does not know
        };
        let fact = match rental {
            RentalEvent::BookRented(e) => RentalFact::Started {
                rental_id: e.rental_id,
                book_id: BookId(e.book_id),
            },
            RentalEvent::RentalCancelled(e) => RentalFact::Ended {
                rental_id: e.rental_id,
                book_id: BookId(e.book_id),
            },
            RentalEvent::BookReturned(e) => RentalFact::Ended {
                rental_id: e.rental_id,
                book_id: BookId(e.book_id),
            },
        };
        record_rental(&mut PgRentalActivity::new(conn), fact)
            .await
            .map_err(|e| match e {
                RentalActivityError::UnknownBook(_) => HandlerError::Rejected(e.to_string()),
                // The cause itself, so the kit tells a database outage from a failure.
                RentalActivityError::Store(StoreError::Unavailable(e)) => HandlerError::Failed(e),
            })?;
        Ok(())
    }
}
