//! Refunds a cancelled rental's payment, from `rental.events`: each `RentalCancelled` is decoded
//! and refunded inside the inbox transaction, so a redelivered cancel refunds nothing twice.

use fleet_messaging::inbox::{EventHandler, HandlerError};
use shared_events::{DomainEvent, RawEvent, RentalCancelled, RentalEvent};
use sqlx::PgConnection;

use super::postgres::PgRefunds;
use crate::application::{Refund, StoreError, refund_cancelled};

pub struct RentalCancellations;

impl EventHandler for RentalCancellations {
    async fn handle(&self, conn: &mut PgConnection, event: &RawEvent) -> Result<(), HandlerError> {
        // Rentals made and returned are rental's business; payment only acts on a cancel.
        if event.event_type != RentalCancelled::TYPE {
            return Ok(());
        }
        let Some(RentalEvent::RentalCancelled(cancelled)) = event.decode::<RentalEvent>()? else {
            return Ok(());
        };
        let rental_id = cancelled.rental_id;
        let refund = refund_cancelled(&mut PgRefunds::new(conn), rental_id)
            .await
            // The cause itself, so the kit tells a database outage from a failure.
            .map_err(|StoreError::Unavailable(e)| HandlerError::Failed(e))?;
        let event_id = event.id;
        let payment = match refund {
            Refund::Made(payment) => {
                tracing::info!(%rental_id, payment_id = %payment.id, "cancelled rental refunded");
                payment
            }
            Refund::AlreadyMade(payment) => {
                tracing::info!(%rental_id, payment_id = %payment.id, "payment already refunded");
                payment
            }
            Refund::NothingTaken(payment) => {
                tracing::warn!(%rental_id, payment_id = %payment.id, "a cancelled rental's payment was declined; nothing to refund");
                payment
            }
            Refund::NoPayment => {
                tracing::warn!(%event_id, %rental_id, "a cancelled rental has no payment; nothing to refund");
                return Ok(());
            }
        };
        if payment.id.0 != cancelled.payment_id {
            tracing::warn!(
                %event_id,
                %rental_id,
                payment_id = %payment.id,
                event_payment_id = %cancelled.payment_id,
                "the cancel names another payment; the rental's own was refunded"
            );
        }
        Ok(())
    }
}
