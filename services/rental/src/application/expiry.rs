use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::ports::{RentalStore, StoreError};

/// Ends every rental whose period is over: at its due date the e-book goes back by itself
/// (`BookReturned` with reason `EXPIRED`), and the book is free for the next customer. Every
/// replica runs one; a rental is expired by exactly one of them (the store skips rows another
/// replica holds, and only a RENTED rental can expire).
pub struct Expiry<S> {
    pub store: S,
    pub interval: Duration,
    /// `rentals_expired_total`: how many rentals this replica expired.
    pub expired_total: prometheus::IntCounter,
}

/// Rentals expired per transaction: short transactions, and a backlog (after an outage)
/// drains batch after batch without waiting for the next interval.
const BATCH: i64 = 100;

impl<S: RentalStore> Expiry<S> {
    pub async fn run(self, stop: CancellationToken) {
        loop {
            if let Err(e) = self.pass().await {
                // Nothing is lost: a rental past its due date stays RENTED until a pass succeeds.
                match fleet_database::transient_cause(&e) {
                    Some(cause) => {
                        tracing::warn!(error = %cause, "database unavailable; rentals expire on the next pass")
                    }
                    None => {
                        tracing::warn!(error = %format!("{e:#}"), "expiry pass failed; retrying")
                    }
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.interval) => {}
            }
        }
    }

    /// One pass, until no rental is due; returns how many expired.
    pub async fn pass(&self) -> anyhow::Result<usize> {
        let mut expired = 0;
        loop {
            let batch = self
                .store
                .expire_due(BATCH)
                .await
                .map_err(StoreError::into_cause)?;
            for rental in &batch {
                tracing::info!(rental_id = %rental.id, book_id = %rental.book_id, due_at = ?rental.due_at, "rental expired");
            }
            expired += batch.len();
            self.expired_total.inc_by(batch.len() as u64);
            if batch.len() < BATCH as usize {
                return Ok(expired);
            }
        }
    }
}
