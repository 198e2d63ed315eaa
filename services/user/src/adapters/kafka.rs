//! Keeps each account's active-rental count from `rental.events`.

use fleet_messaging::inbox::{EventHandler, HandlerError};
use shared_events::{RawEvent, RentalEvent};
use sqlx::PgConnection;

use super::postgres;
use crate::domain::UserId;

pub struct RentalActivity;

impl EventHandler for RentalActivity {
    async fn handle(&self, conn: &mut PgConnection, event: &RawEvent) -> Result<(), HandlerError> {
        let Some(rental) = event.decode::<RentalEvent>()? else {
            return Ok(()); // an event type this version does not know
        };
        let (user_id, started) = match &rental {
            RentalEvent::BookRented(e) => (e.user_id, true),
            RentalEvent::RentalCancelled(e) => (e.user_id, false),
            RentalEvent::BookReturned(e) => (e.user_id, false),
        };
        let Some(mut account) = postgres::lock(conn, UserId(user_id)).await? else {
            // Not the event's fault (a customer of another environment, say), and no later try
            // would find the account: nothing to count.
            tracing::warn!(event_id = %event.id, %user_id, event_type = %event.event_type, "a rental event names no known account; ignored");
            return Ok(());
        };
        if started {
            account.rental_started();
        } else if !account.rental_ended() {
            tracing::warn!(event_id = %event.id, %user_id, "a rental ended that was never counted; the count stays at 0");
            return Ok(());
        }
        postgres::save_active_rentals(conn, &account).await?;
        tracing::debug!(%user_id, active_rentals = account.active_rentals, "active rentals counted");
        Ok(())
    }
}
