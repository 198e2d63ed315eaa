//! The projection's intake: every topic's events decoded and merged into the boards inside the
//! inbox transaction (once per event id, whatever is redelivered).

use fleet_messaging::inbox::{EventHandler, HandlerError};
use shared_events::{BookEvent, PaymentEvent, RawEvent, RentalEvent, UserEvent};
use sqlx::PgConnection;

use super::postgres::PgProjection;
use crate::application::{Fact, StoreError, project};

pub struct Projection;

impl EventHandler for Projection {
    async fn handle(&self, conn: &mut PgConnection, event: &RawEvent) -> Result<(), HandlerError> {
        // Event types are unique across topics, so the type alone says which topic's it is.
        let fact = if let Some(book) = event.decode::<BookEvent>()? {
            Fact::Book(book)
        } else if let Some(rental) = event.decode::<RentalEvent>()? {
            Fact::Rental(rental)
        } else if let Some(payment) = event.decode::<PaymentEvent>()? {
            Fact::Payment(payment)
        } else if let Some(UserEvent::UserRegistered(e)) = event.decode::<UserEvent>()? {
            Fact::Customer {
                customer_id: e.user_id,
                name: e.name,
            }
        } else {
            tracing::debug!(event_id = %event.id, event_type = %event.event_type, "an event type this version does not know; skipped");
            return Ok(());
        };
        project(&mut PgProjection::new(conn), fact)
            .await
            // The cause itself, so the kit tells a database outage from a failure.
            .map_err(|StoreError::Unavailable(e)| HandlerError::Failed(e))
    }
}
