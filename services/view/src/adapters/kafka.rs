//! The projection: every topic's events merged into the boards, inside the inbox transaction
//! (once per event id, whatever is redelivered).

use fleet_messaging::inbox::{EventHandler, HandlerError};
use shared_events::{BookEvent, PaymentEvent, RawEvent, RentalEvent, UserEvent};
use sqlx::PgConnection;

use super::postgres;

pub struct Projection;

impl EventHandler for Projection {
    async fn handle(&self, conn: &mut PgConnection, event: &RawEvent) -> Result<(), HandlerError> {
        // Event types are unique across topics, so the type alone says which topic's it is.
        if let Some(book) = event.decode::<BookEvent>()? {
            let id = match &book {
                BookEvent::BookRegistered(e) => e.book_id,
                BookEvent::BookUpdated(e) => e.book_id,
                BookEvent::BookRetired(e) => e.book_id,
            };
            let mut record = postgres::lock_book(conn, id).await?;
            record.record(&book);
            postgres::save_book(conn, &record).await?;
        } else if let Some(rental) = event.decode::<RentalEvent>()? {
            let (id, customer_id) = match &rental {
                RentalEvent::BookRented(e) => (e.rental_id, e.user_id),
                RentalEvent::RentalCancelled(e) => (e.rental_id, e.user_id),
                RentalEvent::BookReturned(e) => (e.rental_id, e.user_id),
            };
            postgres::note_book(conn, rental.book_id()).await?;
            let mut record = postgres::lock_rental(conn, id, customer_id).await?;
            record.record(&rental);
            postgres::save_rental(conn, &record).await?;
        } else if let Some(payment) = event.decode::<PaymentEvent>()? {
            let (id, customer_id) = match &payment {
                PaymentEvent::PaymentApproved(e) => (e.rental_id, e.user_id),
                PaymentEvent::PaymentRefunded(e) => (e.rental_id, e.user_id),
            };
            let mut record = postgres::lock_rental(conn, id, customer_id).await?;
            record.record_payment(&payment);
            postgres::save_rental(conn, &record).await?;
        } else if let Some(UserEvent::UserRegistered(e)) = event.decode::<UserEvent>()? {
            postgres::record_customer(conn, e.user_id, &e.name).await?;
        } else {
            tracing::debug!(event_id = %event.id, event_type = %event.event_type, "an event type this version does not know; skipped");
        }
        Ok(())
    }
}
