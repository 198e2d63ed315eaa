//! Keeps each account's active-rental count from `rental.events`: each event is decoded into a
//! rental's start or end and counted on its customer's account inside the inbox transaction.

use fleet_messaging::inbox::{EventHandler, HandlerError};
use shared_events::{RawEvent, RentalEvent};
use sqlx::PgConnection;

use super::postgres::PgActiveRentals;
use crate::application::{Counted, RentalFact, StoreError, count_rental};
use crate::domain::UserId;

pub struct RentalActivity;

impl EventHandler for RentalActivity {
    async fn handle(&self, conn: &mut PgConnection, event: &RawEvent) -> Result<(), HandlerError> {
        let Some(rental) = event.decode::<RentalEvent>()? else {
            return Ok(()); // an event type this version does not know
        };
        let fact = match rental {
            RentalEvent::BookRented(e) => RentalFact::Started {
                customer: UserId(e.user_id),
            },
            RentalEvent::RentalCancelled(e) => RentalFact::Ended {
                customer: UserId(e.user_id),
            },
            RentalEvent::BookReturned(e) => RentalFact::Ended {
                customer: UserId(e.user_id),
            },
        };
        let counted = count_rental(&mut PgActiveRentals::new(conn), fact)
            .await
            // The cause itself, so the kit tells a database outage from a failure.
            .map_err(|StoreError::Unavailable(e)| HandlerError::Failed(e))?;
        let (event_id, user_id) = (event.id, fact.customer());
        match counted {
            Counted::Active(active_rentals) => {
                tracing::debug!(%user_id, active_rentals, "active rentals counted")
            }
            Counted::UnknownAccount => {
                tracing::warn!(%event_id, %user_id, event_type = %event.event_type, "a rental event names no known account; ignored")
            }
            Counted::EndNeverStarted => {
                tracing::warn!(%event_id, %user_id, "a rental ended that was never counted; the count stays at 0")
            }
        }
        Ok(())
    }
}
