use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::ports::{PaymentGateway, RentalStore, StoreError};

/// Settles rentals whose payment ended without an answer: a rent that crashed mid-way, or a
/// payment call that timed out. It asks payment by rental id and refunds any payment it finds.
/// Safe in several replicas: a rental is leased to one reconciler at a time.
pub struct Reconciler<S, P> {
    pub store: S,
    pub payments: P,
    /// How long a rental may sit unsettled before the reconciler takes it.
    pub after: Duration,
    pub interval: Duration,
}

impl<S: RentalStore, P: PaymentGateway> Reconciler<S, P> {
    pub async fn run(self, stop: CancellationToken) {
        loop {
            if let Err(e) = self.pass().await {
                // A database away (restarting, failing over) leaves every rental as it was: the
                // next pass takes them up again.
                match fleet_database::transient_cause(&e) {
                    Some(cause) => {
                        tracing::warn!(error = %cause, "database unavailable; the reconciler tries again on its next pass")
                    }
                    None => {
                        tracing::warn!(error = %format!("{e:#}"), "reconciler pass failed; retrying")
                    }
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.interval) => {}
            }
        }
    }

    /// One pass; returns how many rentals it settled.
    pub async fn pass(&self) -> anyhow::Result<usize> {
        let failed = self
            .store
            .fail_stale(self.after)
            .await
            .map_err(StoreError::into_cause)?;
        if failed > 0 {
            tracing::warn!(
                count = failed,
                "rentals left waiting for payment marked PAYMENT_FAILED"
            );
        }
        let mut settled = 0;
        for rental_id in self
            .store
            .lease_unsettled(self.after, 20)
            .await
            .map_err(StoreError::into_cause)?
        {
            if let Some(payment) = self.payments.find(rental_id).await?
                && payment.approved
            {
                self.payments.refund(payment.id).await?;
                tracing::warn!(%rental_id, payment_id = %payment.id, "refunded the payment of a failed rental");
            }
            self.store
                .settle(rental_id)
                .await
                .map_err(StoreError::into_cause)?;
            settled += 1;
        }
        Ok(settled)
    }
}
