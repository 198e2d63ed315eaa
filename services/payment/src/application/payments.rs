use uuid::Uuid;

use super::ports::{Added, PaymentStore, StoreError};
use super::{Latency, now};
use crate::domain::{Amount, DeclineRule, Payment, PaymentError, PaymentId};

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

/// Who reads payments through the public API (docs/design.md §5.2: owner, manager). A customer sees
/// only their own payments; a manager sees every one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    Customer(Uuid),
    Manager,
}

impl Reader {
    /// Whether the reader may see `payment` (OWASP API1: ownership checked on every read).
    pub fn may_read(&self, payment: &Payment) -> bool {
        match self {
            Reader::Manager => true,
            Reader::Customer(user_id) => payment.user_id == *user_id,
        }
    }
}

/// The answer to a request to pay for a rental.
#[derive(Debug, Clone)]
pub enum Settlement {
    /// The rental's payment was made now.
    New(Payment),
    /// The rental was already paid for by the same request: a retry, answered the same way.
    Repeated(Payment),
}

/// The payment use cases: for the rental service (pay, look up, refund) and for owners and
/// managers reading.
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

    /// A payment the reader may see. Someone else's is "not found", like an unknown id, so its
    /// existence is not revealed.
    pub async fn payment(&self, reader: Reader, id: PaymentId) -> Result<Payment, PaymentsError> {
        match self.store.get(id).await? {
            Some(payment) if reader.may_read(&payment) => Ok(payment),
            _ => Err(PaymentsError::NotFound(id)),
        }
    }

    /// A rental's payment, if it has one the reader may see.
    pub async fn payment_of_rental(
        &self,
        reader: Reader,
        rental_id: Uuid,
    ) -> Result<Option<Payment>, PaymentsError> {
        let payment = self.store.for_rental(rental_id).await?;
        Ok(payment.filter(|payment| reader.may_read(payment)))
    }

    /// A rental's payment, whoever paid it: for the rental service (its reconciler), not for
    /// customers.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn payment_of(user_id: Uuid) -> Payment {
        let amount = Amount::parse(300).unwrap();
        Payment::settle(
            Uuid::new_v4(),
            user_id,
            amount,
            &DeclineRule::never(),
            now(),
        )
        .0
    }

    #[test]
    fn a_customer_reads_only_their_own_payments_and_a_manager_reads_all() {
        let (owner, other) = (Uuid::new_v4(), Uuid::new_v4());
        let payment = payment_of(owner);
        assert!(Reader::Customer(owner).may_read(&payment));
        assert!(!Reader::Customer(other).may_read(&payment));
        assert!(Reader::Manager.may_read(&payment));
    }
}
