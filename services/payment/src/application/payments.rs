use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;

use super::Latency;
use super::ports::{Added, PaymentStore, StoreError};
use crate::domain::{Amount, DeclineRule, Payment, PaymentError, PaymentId};

/// Microseconds: what Postgres keeps, so an answer and a later read agree.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

#[derive(Debug, thiserror::Error)]
pub enum PaymentsError {
    #[error("no payment {0}")]
    NotFound(PaymentId),
    #[error(
        "rental {0} is already paid for with a different customer or amount; a rental id \
         identifies one payment request and cannot be reused for another"
    )]
    RentalIdReused(Uuid),
    #[error(transparent)]
    Rule(#[from] PaymentError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How payments are processed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Settings {
    /// Simulated processing time of a new payment; none by default.
    pub latency: Option<Latency>,
    pub decline: DeclineRule,
}

/// The answer to a request to pay for a rental.
#[derive(Debug, Clone)]
pub enum Settlement {
    /// The rental's payment was made now.
    New(Payment),
    /// The rental was already paid for by the same request: a retry, answered the same way.
    Repeated(Payment),
}

/// The payment use cases, for the rental service (pay, refund) and for anyone reading.
#[derive(Clone)]
pub struct Payments<S> {
    store: S,
    settings: Settings,
}

impl<S: PaymentStore> Payments<S> {
    pub fn new(store: S, settings: Settings) -> Self {
        Self { store, settings }
    }

    /// Pays for a rental, once: the rental id is the idempotency key.
    pub async fn settle(
        &self,
        rental_id: Uuid,
        user_id: Uuid,
        amount: Amount,
    ) -> Result<Settlement, PaymentsError> {
        // A retry is answered at once, without the processing time of a new payment.
        if let Some(stored) = self.store.for_rental(rental_id).await? {
            return repeated(stored, user_id, amount);
        }
        if let Some(latency) = self.settings.latency {
            tokio::time::sleep(latency.sample()).await;
        }
        let (payment, event) =
            Payment::settle(rental_id, user_id, amount, &self.settings.decline, now());
        match self.store.add(&payment, event).await? {
            Added::Stored => {
                tracing::info!(
                    payment_id = %payment.id,
                    %rental_id,
                    amount = amount.value(),
                    status = payment.status.as_str(),
                    "payment settled"
                );
                Ok(Settlement::New(payment))
            }
            // A concurrent attempt for the same rental committed first.
            Added::Existing(stored) => repeated(stored, user_id, amount),
        }
    }

    pub async fn payment(&self, id: PaymentId) -> Result<Payment, PaymentsError> {
        self.store.get(id).await?.ok_or(PaymentsError::NotFound(id))
    }

    pub async fn for_rental(&self, rental_id: Uuid) -> Result<Option<Payment>, PaymentsError> {
        Ok(self.store.for_rental(rental_id).await?)
    }

    /// Refunds a payment; refunding it again changes nothing.
    pub async fn refund(&self, id: PaymentId) -> Result<Payment, PaymentsError> {
        let outcome = self
            .store
            .change(id, |payment| payment.refund(now()))
            .await?;
        Ok(outcome.ok_or(PaymentsError::NotFound(id))??)
    }
}

fn repeated(stored: Payment, user_id: Uuid, amount: Amount) -> Result<Settlement, PaymentsError> {
    if stored.is_same_request(user_id, amount) {
        Ok(Settlement::Repeated(stored))
    } else {
        Err(PaymentsError::RentalIdReused(stored.rental_id))
    }
}
