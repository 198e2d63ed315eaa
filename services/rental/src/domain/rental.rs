use chrono::{DateTime, Duration, Utc};
use shared_events::{BookRented, BookReturned, RentalCancelled, ReturnReason};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RentalStatus {
    PaymentPending,
    Rented,
    Returned,
    /// The rental period ran out: the book went back by itself at `due_at`.
    Expired,
    Cancelled,
    PaymentFailed,
}

impl RentalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PaymentPending => "PAYMENT_PENDING",
            Self::Rented => "RENTED",
            Self::Returned => "RETURNED",
            Self::Expired => "EXPIRED",
            Self::Cancelled => "CANCELLED",
            Self::PaymentFailed => "PAYMENT_FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::PaymentPending,
            Self::Rented,
            Self::Returned,
            Self::Expired,
            Self::Cancelled,
            Self::PaymentFailed,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
    }
}

/// A book as rental knows it, from `book.events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogueEntry {
    pub book_id: Uuid,
    pub title: String,
    pub rental_fee: u32,
    pub retired: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RentalError {
    #[error("the book is retired and can no longer be rented")]
    BookRetired,
    #[error("only a rented book can be {action}; this rental is {}", .status.as_str())]
    NotRented {
        action: &'static str,
        status: RentalStatus,
    },
    #[error(
        "the window for cancelling with a full refund closed {} minutes after the rental started; return the book to end the rental",
        .window.num_minutes()
    )]
    CancelWindowClosed { window: Duration },
    #[error("the rental ended at its due date ({due_at}); the book has gone back by itself")]
    PeriodOver { due_at: DateTime<Utc> },
}

/// The rules a rental keeps, from the service's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RentalTerms {
    /// How long a rented book is the customer's.
    pub period: Duration,
    /// How long after the rental started the customer may change their mind and cancel for a
    /// full refund.
    pub cancel_window: Duration,
}

/// One customer's rental of one book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rental {
    pub id: Uuid,
    pub book_id: Uuid,
    pub user_id: Uuid,
    pub rental_fee: u32,
    pub status: RentalStatus,
    pub payment_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub rented_at: Option<DateTime<Utc>>,
    pub due_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub returned_at: Option<DateTime<Utc>>,
}

impl Rental {
    /// A customer asks for a book: the rental waits for its payment.
    pub fn request(
        book: &CatalogueEntry,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Self, RentalError> {
        if book.retired {
            return Err(RentalError::BookRetired);
        }
        Ok(Self {
            id: Uuid::now_v7(),
            book_id: book.book_id,
            user_id,
            rental_fee: book.rental_fee,
            status: RentalStatus::PaymentPending,
            payment_id: None,
            created_at: now,
            rented_at: None,
            due_at: None,
            cancelled_at: None,
            returned_at: None,
        })
    }

    /// Payment approved: the book is the customer's for `period`.
    pub fn paid(&mut self, payment_id: Uuid, period: Duration, now: DateTime<Utc>) -> BookRented {
        self.status = RentalStatus::Rented;
        self.payment_id = Some(payment_id);
        self.rented_at = Some(now);
        self.due_at = Some(now + period);
        BookRented {
            rental_id: self.id,
            book_id: self.book_id,
            user_id: self.user_id,
            rental_fee: self.rental_fee,
            payment_id,
            rented_at: now,
            due_at: now + period,
        }
    }

    /// A change of mind: allowed within `window` of the rental's start (the refund is full), and
    /// never once the period is over.
    pub fn cancel(
        &mut self,
        window: Duration,
        now: DateTime<Utc>,
    ) -> Result<RentalCancelled, RentalError> {
        let payment_id = self.running("cancelled", now)?;
        if self
            .rented_at
            .is_some_and(|rented_at| now > rented_at + window)
        {
            return Err(RentalError::CancelWindowClosed { window });
        }
        self.status = RentalStatus::Cancelled;
        self.cancelled_at = Some(now);
        Ok(RentalCancelled {
            rental_id: self.id,
            book_id: self.book_id,
            user_id: self.user_id,
            payment_id,
            cancelled_at: now,
        })
    }

    /// The customer gives the book back before it is due.
    pub fn return_book(&mut self, now: DateTime<Utc>) -> Result<BookReturned, RentalError> {
        self.running("returned", now)?;
        Ok(self.end(RentalStatus::Returned, now))
    }

    /// The period ran out: the rental ends as of its due date. Only a RENTED rental whose due
    /// date has passed expires, so expiring twice is impossible.
    pub fn expire(&mut self, now: DateTime<Utc>) -> Result<BookReturned, RentalError> {
        match (self.status, self.due_at) {
            (RentalStatus::Rented, Some(due_at)) if due_at <= now => {
                Ok(self.end(RentalStatus::Expired, due_at))
            }
            (status, _) => Err(RentalError::NotRented {
                action: "expired",
                status,
            }),
        }
    }

    fn end(&mut self, status: RentalStatus, at: DateTime<Utc>) -> BookReturned {
        self.status = status;
        self.returned_at = Some(at);
        BookReturned {
            rental_id: self.id,
            book_id: self.book_id,
            user_id: self.user_id,
            returned_at: at,
            reason: match status {
                RentalStatus::Expired => ReturnReason::Expired,
                _ => ReturnReason::Returned,
            },
        }
    }

    /// Cancel and return are only legal from RENTED, before the due date: past it the rental is
    /// over, even in the moment before the expiry task has recorded so.
    fn running(&self, action: &'static str, now: DateTime<Utc>) -> Result<Uuid, RentalError> {
        match (self.status, self.payment_id, self.due_at) {
            (RentalStatus::Rented, Some(_), Some(due_at)) if due_at <= now => {
                Err(RentalError::PeriodOver { due_at })
            }
            (RentalStatus::Rented, Some(payment_id), _) => Ok(payment_id),
            (status, _, _) => Err(RentalError::NotRented { action, status }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::hours(1);

    fn book(retired: bool) -> CatalogueEntry {
        CatalogueEntry {
            book_id: Uuid::new_v4(),
            title: "Dune".into(),
            rental_fee: 300,
            retired,
        }
    }

    fn rented(now: DateTime<Utc>, period: Duration) -> Rental {
        let mut rental = Rental::request(&book(false), Uuid::new_v4(), now).unwrap();
        rental.paid(Uuid::new_v4(), period, now);
        rental
    }

    #[test]
    fn a_retired_book_cannot_be_rented() {
        assert_eq!(
            Rental::request(&book(true), Uuid::new_v4(), Utc::now()),
            Err(RentalError::BookRetired)
        );
    }

    #[test]
    fn a_paid_rental_is_due_after_the_period() {
        let now = Utc::now();
        let mut rental = Rental::request(&book(false), Uuid::new_v4(), now).unwrap();
        assert_eq!(rental.status, RentalStatus::PaymentPending);
        let event = rental.paid(Uuid::new_v4(), Duration::days(14), now);
        assert_eq!(rental.status, RentalStatus::Rented);
        assert_eq!(event.due_at, now + Duration::days(14));
        assert_eq!(event.rental_fee, 300);
    }

    #[test]
    fn cancel_and_return_are_only_legal_from_rented() {
        let now = Utc::now();
        let mut pending = Rental::request(&book(false), Uuid::new_v4(), now).unwrap();
        assert!(matches!(
            pending.cancel(WINDOW, now),
            Err(RentalError::NotRented { .. })
        ));
        let mut rental = pending.clone();
        let payment = Uuid::new_v4();
        rental.paid(payment, Duration::days(1), now);
        let cancelled = rental.cancel(WINDOW, now).unwrap();
        assert_eq!(cancelled.payment_id, payment);
        assert!(rental.cancel(WINDOW, now).is_err(), "cancel twice");
        assert!(rental.return_book(now).is_err(), "return after cancel");
        let mut returned = pending;
        returned.paid(payment, Duration::days(1), now);
        let event = returned.return_book(now).unwrap();
        assert_eq!(event.reason, ReturnReason::Returned);
        assert!(
            returned.cancel(WINDOW, now).is_err(),
            "cancel a returned rental"
        );
    }

    #[test]
    fn a_change_of_mind_is_refunded_only_within_the_window() {
        let start = Utc::now();
        assert!(
            rented(start, Duration::days(14))
                .cancel(WINDOW, start + WINDOW)
                .is_ok()
        );
        let mut late = rented(start, Duration::days(14));
        assert_eq!(
            late.cancel(WINDOW, start + WINDOW + Duration::seconds(1)),
            Err(RentalError::CancelWindowClosed { window: WINDOW })
        );
        assert_eq!(late.status, RentalStatus::Rented, "nothing changed");
        assert!(late.return_book(start + Duration::days(2)).is_ok());
    }

    #[test]
    fn a_rental_expires_once_at_its_due_date_and_then_cannot_be_returned() {
        let start = Utc::now();
        let due = start + Duration::days(14);
        let mut rental = rented(start, Duration::days(14));
        assert!(
            rental.expire(due - Duration::seconds(1)).is_err(),
            "not due yet"
        );
        assert_eq!(
            rental.return_book(due),
            Err(RentalError::PeriodOver { due_at: due }),
            "due, though not yet expired"
        );
        let event = rental.expire(due + Duration::minutes(5)).unwrap();
        assert_eq!(
            (event.reason, event.returned_at),
            (ReturnReason::Expired, due)
        );
        assert_eq!(rental.status, RentalStatus::Expired);
        assert!(
            rental.expire(due + Duration::minutes(6)).is_err(),
            "expired twice"
        );
        assert!(matches!(
            rental.return_book(due + Duration::minutes(6)),
            Err(RentalError::NotRented {
                status: RentalStatus::Expired,
                ..
            })
        ));
    }
}
