//! Earning from `rental.events`, inside the inbox transaction: once per event id, whatever is
//! redelivered, and once per rental, whatever is published again.

use fleet_messaging::inbox::{EventHandler, HandlerError};
use shared_events::{RawEvent, RentalEvent, ReturnReason};
use sqlx::PgConnection;

use super::postgres::PgEarnings;
use crate::application::{Applied, Earning, RentalFact, StoreError};
use crate::domain::Completion;

pub struct Earnings(pub Earning);

impl EventHandler for Earnings {
    async fn handle(&self, conn: &mut PgConnection, event: &RawEvent) -> Result<(), HandlerError> {
        let Some(rental) = event.decode::<RentalEvent>()? else {
            return Ok(()); // an event type this version does not know
        };
        let (fact, customer_id) = match rental {
            RentalEvent::BookRented(e) => (
                RentalFact::Rented {
                    rental_id: e.rental_id,
                    customer_id: e.user_id,
                    rental_fee: e.rental_fee,
                },
                e.user_id,
            ),
            RentalEvent::RentalCancelled(e) => (
                RentalFact::Cancelled {
                    rental_id: e.rental_id,
                },
                e.user_id,
            ),
            RentalEvent::BookReturned(e) => (
                RentalFact::Completed {
                    rental_id: e.rental_id,
                    book_id: e.book_id,
                    reason: match e.reason {
                        ReturnReason::Returned => Completion::Returned,
                        ReturnReason::Expired => Completion::Expired,
                    },
                    at: e.returned_at,
                },
                e.user_id,
            ),
        };
        let applied = self
            .0
            .apply(&mut PgEarnings::new(conn), fact)
            .await
            // The cause itself, so the kit tells a database outage from a failure.
            .map_err(|StoreError::Unavailable(e)| HandlerError::Failed(e))?;
        let event_id = event.id;
        match applied {
            Applied::Credited(credit) => {
                if credit.customer_id != customer_id {
                    tracing::warn!(%event_id, rental_id = %credit.rental_id, rented_by = %credit.customer_id, named = %customer_id, "the end of a rental names another customer; its renter is credited");
                }
                tracing::info!(rental_id = %credit.rental_id, customer_id = %credit.customer_id, points = credit.points.value(), reason = credit.reason.as_str(), "points credited");
            }
            Applied::NotCredited(why) => {
                tracing::info!(%event_id, %customer_id, "a rental ended without earning: {why}")
            }
            Applied::UnknownRental => {
                // Not the event's fault, and no later try would find the rental: nothing to do.
                tracing::warn!(%event_id, %customer_id, event_type = %event.event_type, "a rental points never saw start; nothing to credit")
            }
            Applied::Remembered | Applied::AlreadyKnown | Applied::Cancelled => {
                tracing::debug!(%event_id, ?applied, "rental noted")
            }
        }
        Ok(())
    }
}
