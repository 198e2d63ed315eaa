use shared_events::{BookRented, BookReturned, RentalCancelled};
use uuid::Uuid;

use crate::domain::{CatalogueEntry, IdempotencyKey, Rental, RentalError};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the book already has an active rental")]
    BookTaken,
    #[error("the customer holds as many active rentals as they may")]
    LimitReached,
    #[error(transparent)]
    Unavailable(#[from] anyhow::Error),
}

impl StoreError {
    /// The store's own error, not its wrapper: the transparent `source()` would hide the
    /// database error from [`fleet_database::transient_cause`].
    pub fn into_cause(self) -> anyhow::Error {
        match self {
            StoreError::Unavailable(e) => e,
            other => other.into(),
        }
    }
}

/// What opening a rental did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// The rental is stored, PAYMENT_PENDING.
    New,
    /// Nothing stored: this customer's earlier rent with the same idempotency key made this
    /// rental (and did not fail).
    Earlier(Uuid),
}

/// What a change to a running rental publishes.
#[derive(Debug, Clone)]
pub enum RentalChange {
    Cancelled(RentalCancelled),
    Returned(BookReturned),
}

/// Where rentals and the catalogue replica live. Every state change is stored together with the
/// event it causes.
pub trait RentalStore: Clone + Send + Sync + 'static {
    fn book(
        &self,
        book_id: Uuid,
    ) -> impl Future<Output = Result<Option<CatalogueEntry>, StoreError>> + Send;

    /// Stores a new PAYMENT_PENDING rental; `BookTaken` when the book has an active one,
    /// `LimitReached` when its customer already holds `max_active` active rentals, `Earlier` when
    /// the customer's rent with the same `key` made one. The checks hold under concurrent rents.
    fn open(
        &self,
        rental: &Rental,
        max_active: u32,
        key: Option<&IdempotencyKey>,
    ) -> impl Future<Output = Result<Opened, StoreError>> + Send;

    /// PAYMENT_PENDING → RENTED with its `BookRented`. False when the rental is no longer pending
    /// (the reconciler settled it meanwhile), and then nothing changes.
    fn mark_paid(
        &self,
        rental: &Rental,
        event: BookRented,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// PAYMENT_PENDING → PAYMENT_FAILED. `unsettled`: the call's outcome is unknown, so payment
    /// may hold a payment that the reconciler must refund.
    fn mark_failed(
        &self,
        rental_id: Uuid,
        unsettled: bool,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn get(&self, id: Uuid) -> impl Future<Output = Result<Option<Rental>, StoreError>> + Send;

    /// Loads the rental exclusively, applies `change`, stores the result with its event.
    fn change<F>(
        &self,
        id: Uuid,
        change: F,
    ) -> impl Future<Output = Result<Option<Result<Rental, RentalError>>, StoreError>> + Send
    where
        F: FnOnce(&mut Rental) -> Result<RentalChange, RentalError> + Send + 'static;

    /// Turns rentals left PAYMENT_PENDING for longer than `age` (a crash mid-rent) into
    /// unsettled PAYMENT_FAILED ones; returns how many.
    fn fail_stale(
        &self,
        age: std::time::Duration,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Leases up to `limit` unsettled rentals untouched for `age` to this caller (for `age`).
    fn lease_unsettled(
        &self,
        age: std::time::Duration,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<Uuid>, StoreError>> + Send;

    /// Expires up to `batch` RENTED rentals whose due date has passed by the database's clock,
    /// each with its `BookReturned`; returns them. A rental another replica is expiring at the
    /// same moment is skipped, so each expires once.
    fn expire_due(
        &self,
        batch: i64,
    ) -> impl Future<Output = Result<Vec<Rental>, StoreError>> + Send;

    /// Payment holds nothing (more) for this rental.
    fn settle(&self, rental_id: Uuid) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Where the catalogue replica is kept from `book.events`. An implementation works inside the
/// transaction that records the event as applied, so an event's effect and its record commit
/// together, or neither does.
pub trait CatalogueStore: Send {
    /// Gives the book this title and fee, adding it to the replica if it is new; whether it is
    /// retired stays as it was.
    fn list(
        &mut self,
        book_id: Uuid,
        title: &str,
        rental_fee: u32,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Marks the book retired; `false`, changing nothing, when the replica does not have it.
    fn retire(&mut self, book_id: Uuid) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentOutcome {
    Approved { payment_id: Uuid },
    Declined,
}

/// Why there is no answer from payment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentUnavailable {
    #[error("the payment circuit is open")]
    CircuitOpen,
    #[error("too many payment calls in flight")]
    Overloaded,
    #[error("payment did not answer in time")]
    TimedOut,
    #[error("payment failed: {0}")]
    Failed(String),
}

impl PaymentUnavailable {
    /// Whether payment may have taken the money although we got no answer: only a call that was
    /// never made is known to have paid nothing.
    pub fn outcome_unknown(&self) -> bool {
        !matches!(self, Self::CircuitOpen | Self::Overloaded)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRecord {
    pub id: Uuid,
    /// Still approved, so refunding it gives money back.
    pub approved: bool,
}

/// The payment service, as rental uses it.
pub trait PaymentGateway: Clone + Send + Sync + 'static {
    /// Pays for the rental (the rental id is the idempotency key), through the circuit breaker.
    fn pay(
        &self,
        rental: &Rental,
    ) -> impl Future<Output = Result<PaymentOutcome, PaymentUnavailable>> + Send;

    /// The payment made for a rental, if any.
    fn find(
        &self,
        rental_id: Uuid,
    ) -> impl Future<Output = anyhow::Result<Option<PaymentRecord>>> + Send;

    fn refund(&self, payment_id: Uuid) -> impl Future<Output = anyhow::Result<()>> + Send;
}
