use chrono::{DateTime, Duration, Utc};
use shared_events::{BookRented, BookReturned, RentalCancelled};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RentalStatus {
    PaymentPending,
    Rented,
    Returned,
    Cancelled,
    PaymentFailed,
}

impl RentalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PaymentPending => "PAYMENT_PENDING",
            Self::Rented => "RENTED",
            Self::Returned => "RETURNED",
            Self::Cancelled => "CANCELLED",
            Self::PaymentFailed => "PAYMENT_FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::PaymentPending,
            Self::Rented,
            Self::Returned,
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

    pub fn cancel(&mut self, now: DateTime<Utc>) -> Result<RentalCancelled, RentalError> {
        let payment_id = self.running("cancelled")?;
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

    pub fn return_book(&mut self, now: DateTime<Utc>) -> Result<BookReturned, RentalError> {
        self.running("returned")?;
        self.status = RentalStatus::Returned;
        self.returned_at = Some(now);
        Ok(BookReturned {
            rental_id: self.id,
            book_id: self.book_id,
            user_id: self.user_id,
            returned_at: now,
        })
    }

    /// Cancel and return are only legal from RENTED.
    fn running(&self, action: &'static str) -> Result<Uuid, RentalError> {
        match (self.status, self.payment_id) {
            (RentalStatus::Rented, Some(payment_id)) => Ok(payment_id),
            (status, _) => Err(RentalError::NotRented { action, status }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(retired: bool) -> CatalogueEntry {
        CatalogueEntry {
            book_id: Uuid::new_v4(),
            title: "Dune".into(),
            rental_fee: 300,
            retired,
        }
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
            pending.cancel(now),
            Err(RentalError::NotRented { .. })
        ));
        let mut rental = pending.clone();
        let payment = Uuid::new_v4();
        rental.paid(payment, Duration::days(1), now);
        let cancelled = rental.cancel(now).unwrap();
        assert_eq!(cancelled.payment_id, payment);
        assert!(rental.cancel(now).is_err(), "cancel twice");
        assert!(rental.return_book(now).is_err(), "return after cancel");
        let mut returned = pending;
        returned.paid(payment, Duration::days(1), now);
        returned.return_book(now).unwrap();
        assert!(returned.cancel(now).is_err(), "cancel a returned rental");
    }
}
