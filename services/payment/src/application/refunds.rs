//! Refunding a cancelled rental: rental publishes `RentalCancelled` when a customer changes
//! their mind within the window, and the money goes back to them.

use uuid::Uuid;

use super::now;
use super::ports::{RefundStore, StoreError};
use crate::domain::{Payment, PaymentError};

/// What refunding a cancelled rental did: every outcome is normal, none is an error to
/// dead-letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refund {
    /// The payment is refunded now, and its `PaymentRefunded` stored to be published.
    Made(Payment),
    /// The payment was refunded already (the same cancel under a new event id, say); nothing
    /// changed and nothing is published again.
    AlreadyMade(Payment),
    /// The payment was declined: no money was taken, so none goes back.
    NothingTaken(Payment),
    /// The rental has no payment: not the event's fault, and no later try would find one.
    NoPayment,
}

/// Refunds the payment of the cancelled rental `rental_id`. The rental id is the idempotency key,
/// so this is exactly that rental's payment, whichever payment the cancel names.
pub async fn refund_cancelled<S: RefundStore>(
    store: &mut S,
    rental_id: Uuid,
) -> Result<Refund, StoreError> {
    let Some(mut payment) = store.payment_of_rental(rental_id).await? else {
        return Ok(Refund::NoPayment);
    };
    Ok(match payment.refund(now()) {
        Ok(Some(refunded)) => {
            store.save_refund(&payment, refunded).await?;
            Refund::Made(payment)
        }
        Ok(None) => Refund::AlreadyMade(payment),
        Err(PaymentError::Declined) => Refund::NothingTaken(payment),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use chrono::Utc;
    use shared_events::PaymentRefunded;

    use super::*;
    use crate::domain::{Amount, DeclineRule, PaymentStatus};

    /// Payments by rental, and the events stored with them, as the Postgres adapter keeps them.
    #[derive(Default)]
    struct Memory {
        payments: HashMap<Uuid, Payment>,
        outbox: Vec<PaymentRefunded>,
    }

    impl RefundStore for Memory {
        async fn payment_of_rental(
            &mut self,
            rental_id: Uuid,
        ) -> Result<Option<Payment>, StoreError> {
            Ok(self.payments.get(&rental_id).cloned())
        }

        async fn save_refund(
            &mut self,
            payment: &Payment,
            event: PaymentRefunded,
        ) -> Result<(), StoreError> {
            self.payments.insert(payment.rental_id, payment.clone());
            self.outbox.push(event);
            Ok(())
        }
    }

    /// A payment of `amount` for a new rental, settled by `rule`.
    fn paid(store: &mut Memory, amount: i64, rule: DeclineRule) -> Uuid {
        let rental_id = Uuid::now_v7();
        let amount = Amount::parse(amount).unwrap();
        let (payment, _) = Payment::settle(rental_id, Uuid::now_v7(), amount, &rule, Utc::now());
        store.payments.insert(rental_id, payment);
        rental_id
    }

    #[tokio::test]
    async fn a_cancelled_rental_is_refunded_once_however_often_its_cancel_arrives() {
        let mut store = Memory::default();
        let rental_id = paid(&mut store, 300, DeclineRule::never());
        let refund = refund_cancelled(&mut store, rental_id).await.unwrap();
        let Refund::Made(payment) = refund else {
            panic!("{refund:?}")
        };
        assert_eq!(payment.status, PaymentStatus::Refunded);
        assert_eq!(store.payments[&rental_id], payment);
        let again = refund_cancelled(&mut store, rental_id).await.unwrap();
        assert_eq!(again, Refund::AlreadyMade(payment.clone()));
        assert_eq!(store.outbox.len(), 1);
        assert_eq!(store.outbox[0].payment_id, payment.id.0);
        assert_eq!(store.outbox[0].amount, 300);
    }

    #[tokio::test]
    async fn a_declined_payment_or_none_at_all_is_left_alone() {
        let mut store = Memory::default();
        let declined = paid(&mut store, 900, DeclineRule::amount_above(500));
        let before = store.payments[&declined].clone();
        assert_eq!(
            refund_cancelled(&mut store, declined).await.unwrap(),
            Refund::NothingTaken(before.clone())
        );
        assert_eq!(store.payments[&declined], before);
        assert_eq!(
            refund_cancelled(&mut store, Uuid::now_v7()).await.unwrap(),
            Refund::NoPayment
        );
        assert!(store.outbox.is_empty());
    }
}
