use chrono::{DateTime, Duration, SubsecRound, Utc};
use uuid::Uuid;

use super::ports::{
    Opened, PaymentGateway, PaymentOutcome, PaymentUnavailable, RentalChange, RentalStore,
    StoreError,
};
use crate::domain::{IdempotencyKey, Rental, RentalError, RentalStatus, RentalTerms};

/// The service's clock, for the times a rental records (requested, rented, due, given back).
/// It is never compared with a time the database wrote: those comparisons use the database's
/// `now()`, so a replica whose clock drifts cannot misjudge a rent in flight.
#[derive(Debug, Clone, Copy, Default)]
pub struct Clock {
    skew: Duration,
}

impl Clock {
    /// A clock `skew` off the system's (tests use it to stand for a drifting node).
    pub fn skewed(skew: Duration) -> Self {
        Self { skew }
    }

    /// Microseconds: what Postgres keeps, so an answer and a later read agree.
    pub fn now(&self) -> DateTime<Utc> {
        (Utc::now() + self.skew).trunc_subsecs(6)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RentError {
    #[error("no book {0} in the catalogue")]
    UnknownBook(Uuid),
    #[error("the book is already rented")]
    BookTaken,
    #[error(
        "you already hold {0} active rentals, the most a customer may hold at once; return one to rent another"
    )]
    LimitReached(u32),
    #[error(transparent)]
    Rule(#[from] RentalError),
    #[error("payment declined")]
    Declined,
    #[error("this Idempotency-Key was used for a rent of another book")]
    KeyReused,
    #[error("the rent with this Idempotency-Key is still being paid for; ask again in a moment")]
    KeyInFlight,
    #[error("payment is unavailable: {0}")]
    PaymentUnavailable(PaymentUnavailable),
    #[error(transparent)]
    Store(anyhow::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum RentalsError {
    /// Also for someone else's rental: its existence is not revealed.
    #[error("no rental {0}")]
    NotFound(Uuid),
    #[error(transparent)]
    Rule(#[from] RentalError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The renting use cases.
#[derive(Clone)]
pub struct Rentals<S, P> {
    store: S,
    payments: P,
    terms: RentalTerms,
    /// The most rentals one customer may hold at once (being paid for or running).
    max_active: u32,
    clock: Clock,
}

impl<S: RentalStore, P: PaymentGateway> Rentals<S, P> {
    pub fn new(store: S, payments: P, terms: RentalTerms, max_active: u32) -> Self {
        Self {
            store,
            payments,
            terms,
            max_active,
            clock: Clock::default(),
        }
    }

    pub fn with_clock(self, clock: Clock) -> Self {
        Self { clock, ..self }
    }

    /// Rents a book: the rental is stored PAYMENT_PENDING first (the unique index makes double
    /// booking impossible, and the customer's limit is checked in the same step), then paid for,
    /// then marked RENTED with its event. A refused rent never reaches payment. With `key`, a
    /// rent this customer already made with it is answered with that rental, nothing new.
    pub async fn rent(
        &self,
        user_id: Uuid,
        book_id: Uuid,
        key: Option<&IdempotencyKey>,
    ) -> Result<Rental, RentError> {
        let store = |e: StoreError| match e {
            StoreError::BookTaken => RentError::BookTaken,
            StoreError::LimitReached => RentError::LimitReached(self.max_active),
            StoreError::Unavailable(e) => RentError::Store(e),
        };
        let book = self
            .store
            .book(book_id)
            .await
            .map_err(store)?
            .ok_or(RentError::UnknownBook(book_id))?;
        let mut rental = Rental::request(&book, user_id, self.clock.now())?;
        if let Opened::Earlier(id) = self
            .store
            .open(&rental, self.max_active, key)
            .await
            .map_err(store)?
        {
            let earlier = self
                .store
                .get(id)
                .await
                .map_err(store)?
                .ok_or_else(|| RentError::Store(anyhow::anyhow!("rental {id} vanished")))?;
            return match earlier.status {
                _ if earlier.book_id != book_id => Err(RentError::KeyReused),
                RentalStatus::PaymentPending => Err(RentError::KeyInFlight),
                _ => Ok(earlier),
            };
        }

        match self.payments.pay(&rental).await {
            Ok(PaymentOutcome::Approved { payment_id }) => {
                crate::fault::crash_point("crash-after-payment");
                let event = rental.paid(payment_id, self.terms.period, self.clock.now());
                if self.store.mark_paid(&rental, event).await.map_err(store)? {
                    Ok(rental)
                } else {
                    // The reconciler gave up on this rental and refunds the payment.
                    Err(RentError::PaymentUnavailable(PaymentUnavailable::TimedOut))
                }
            }
            Ok(PaymentOutcome::Declined) => {
                self.store
                    .mark_failed(rental.id, false)
                    .await
                    .map_err(store)?;
                Err(RentError::Declined)
            }
            Err(unavailable) => {
                self.store
                    .mark_failed(rental.id, unavailable.outcome_unknown())
                    .await
                    .map_err(store)?;
                Err(RentError::PaymentUnavailable(unavailable))
            }
        }
    }

    /// The caller's rental (or any, for a manager).
    pub async fn rental(
        &self,
        id: Uuid,
        user_id: Uuid,
        manager: bool,
    ) -> Result<Rental, RentalsError> {
        match self.store.get(id).await? {
            Some(rental) if manager || rental.user_id == user_id => Ok(rental),
            _ => Err(RentalsError::NotFound(id)),
        }
    }

    pub async fn cancel(&self, id: Uuid, user_id: Uuid) -> Result<Rental, RentalsError> {
        let (clock, window) = (self.clock, self.terms.cancel_window);
        self.change(id, user_id, move |rental| {
            rental
                .cancel(window, clock.now())
                .map(RentalChange::Cancelled)
        })
        .await
    }

    pub async fn return_book(&self, id: Uuid, user_id: Uuid) -> Result<Rental, RentalsError> {
        let clock = self.clock;
        self.change(id, user_id, move |rental| {
            rental.return_book(clock.now()).map(RentalChange::Returned)
        })
        .await
    }

    /// Only the customer who rented may cancel or return.
    async fn change<F>(&self, id: Uuid, user_id: Uuid, change: F) -> Result<Rental, RentalsError>
    where
        F: FnOnce(&mut Rental) -> Result<RentalChange, RentalError> + Send + 'static,
    {
        self.rental(id, user_id, false).await?;
        let outcome = self.store.change(id, change).await?;
        Ok(outcome.ok_or(RentalsError::NotFound(id))??)
    }
}
