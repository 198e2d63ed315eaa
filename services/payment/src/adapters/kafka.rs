//! Refunds a cancelled rental's payment, from `rental.events`.

use chrono::{SubsecRound, Utc};
use fleet_messaging::inbox::{EventHandler, HandlerError};
use shared_events::{DomainEvent, RawEvent, RentalCancelled, RentalEvent};
use sqlx::PgConnection;

use super::postgres;
use crate::domain::PaymentError;

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
        // By rental id, the idempotency key: exactly that rental's payment, locked until the
        // inbox transaction ends, so a concurrent refund through the API waits and sees it.
        let Some(mut payment) = postgres::lock_for_rental(conn, rental_id).await? else {
            // Not the event's fault, and no later try would find a payment: nothing to undo.
            tracing::warn!(event_id = %event.id, %rental_id, "a cancelled rental has no payment; nothing to refund");
            return Ok(());
        };
        if payment.id.0 != cancelled.payment_id {
            tracing::warn!(
                event_id = %event.id,
                %rental_id,
                payment_id = %payment.id,
                event_payment_id = %cancelled.payment_id,
                "the cancel names another payment; refunding the rental's own"
            );
        }
        match payment.refund(Utc::now().trunc_subsecs(6)) {
            Ok(Some(refund)) => {
                postgres::refunded(conn, &payment, refund).await?;
                tracing::info!(%rental_id, payment_id = %payment.id, "cancelled rental refunded");
            }
            Ok(None) => {
                tracing::info!(%rental_id, payment_id = %payment.id, "payment already refunded")
            }
            Err(PaymentError::Declined) => {
                tracing::warn!(%rental_id, payment_id = %payment.id, "a cancelled rental's payment was declined; nothing to refund")
            }
        }
        Ok(())
    }
}
