use shared_events::{PaymentApproved, PaymentRefunded};
use uuid::Uuid;

use crate::domain::{Payment, PaymentError, PaymentId};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Unavailable(#[from] anyhow::Error),
}

/// What adding a rental's payment did.
#[derive(Debug, Clone)]
pub enum Added {
    /// The payment and its event were stored.
    Stored,
    /// The rental already had this payment (another attempt won the race); nothing was written.
    Existing(Payment),
}

/// Where payments live. Every write stores the payment together with the event it causes,
/// atomically: no event without its change, no change without its event.
pub trait PaymentStore: Clone + Send + Sync + 'static {
    /// Stores a new payment and its event, unless its rental already has a payment: a rental is
    /// paid for at most once, even when attempts race.
    fn add(
        &self,
        payment: &Payment,
        event: Option<PaymentApproved>,
    ) -> impl Future<Output = Result<Added, StoreError>> + Send;

    fn get(
        &self,
        id: PaymentId,
    ) -> impl Future<Output = Result<Option<Payment>, StoreError>> + Send;

    /// The payment of a rental, if it has one.
    fn for_rental(
        &self,
        rental_id: Uuid,
    ) -> impl Future<Output = Result<Option<Payment>, StoreError>> + Send;

    /// Loads the payment exclusively, applies `change`, and stores the result with its event.
    /// `Ok(None)` when there is no such payment.
    fn change<F>(
        &self,
        id: PaymentId,
        change: F,
    ) -> impl Future<Output = Result<Option<Result<Payment, PaymentError>>, StoreError>> + Send
    where
        F: FnOnce(&mut Payment) -> Result<Option<PaymentRefunded>, PaymentError> + Send + 'static;
}

/// What refunding a cancelled rental reads and writes. An implementation works inside the
/// transaction that records the cancel as applied, so a refund and that record commit together,
/// or neither does.
pub trait RefundStore: Send {
    /// The rental's payment, locked until the transaction ends, so a refund through the API at
    /// the same moment waits and then sees this one.
    fn payment_of_rental(
        &mut self,
        rental_id: Uuid,
    ) -> impl Future<Output = Result<Option<Payment>, StoreError>> + Send;

    /// Stores the refunded payment and its event, both or neither.
    fn save_refund(
        &mut self,
        payment: &Payment,
        event: PaymentRefunded,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
