use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{EarningRate, Points};

/// How a rental came to its end: the customer returned the book, or its period ran out. Both
/// complete the rental, and both earn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Completion {
    Returned,
    Expired,
}

impl Completion {
    pub fn as_str(self) -> &'static str {
        match self {
            Completion::Returned => "RETURNED",
            Completion::Expired => "EXPIRED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "RETURNED" => Some(Self::Returned),
            "EXPIRED" => Some(Self::Expired),
            _ => None,
        }
    }
}

/// Where a rental is, as far as points knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RentalState {
    /// Started and paid for; it earns when it completes.
    Rented,
    /// Cancelled (and refunded): it never earns.
    Cancelled,
    /// Completed and credited, once.
    Completed,
}

impl RentalState {
    pub fn as_str(self) -> &'static str {
        match self {
            RentalState::Rented => "RENTED",
            RentalState::Cancelled => "CANCELLED",
            RentalState::Completed => "COMPLETED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "RENTED" => Some(Self::Rented),
            "CANCELLED" => Some(Self::Cancelled),
            "COMPLETED" => Some(Self::Completed),
            _ => None,
        }
    }
}

/// A rental points has seen start. Its end (`BookReturned`) names neither the fee nor, for
/// certain, the customer who paid it: both are remembered from its `BookRented`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rental {
    pub id: Uuid,
    pub customer_id: Uuid,
    /// In the smallest currency unit.
    pub rental_fee: u32,
    pub state: RentalState,
}

/// The points one completed rental earned: a line of its customer's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credit {
    pub rental_id: Uuid,
    pub customer_id: Uuid,
    pub book_id: Uuid,
    pub rental_fee: u32,
    pub points: Points,
    pub reason: Completion,
    /// When the rental completed (not when points heard of it), so that reading the topics
    /// again gives the same history.
    pub earned_at: DateTime<Utc>,
}

/// Why a rental's end earned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Uncredited {
    #[error("the rental was cancelled; a cancelled rental earns nothing")]
    Cancelled,
    #[error("the rental has already earned its points")]
    AlreadyCredited,
}

impl Rental {
    /// A rental just started (its `BookRented`).
    pub fn rented(id: Uuid, customer_id: Uuid, rental_fee: u32) -> Self {
        Self {
            id,
            customer_id,
            rental_fee,
            state: RentalState::Rented,
        }
    }

    /// The rental was cancelled: it will never earn. Returns whether anything changed; a
    /// completed rental stays credited (rental cancels only RENTED rentals, so that cannot come).
    pub fn cancel(&mut self) -> bool {
        if self.state == RentalState::Rented {
            self.state = RentalState::Cancelled;
            true
        } else {
            false
        }
    }

    /// The rental completed: a rented one earns its share of the fee at `rate`, exactly once.
    pub fn complete(
        &mut self,
        book_id: Uuid,
        reason: Completion,
        at: DateTime<Utc>,
        rate: EarningRate,
    ) -> Result<Credit, Uncredited> {
        match self.state {
            RentalState::Cancelled => Err(Uncredited::Cancelled),
            RentalState::Completed => Err(Uncredited::AlreadyCredited),
            RentalState::Rented => {
                self.state = RentalState::Completed;
                Ok(Credit {
                    rental_id: self.id,
                    customer_id: self.customer_id,
                    book_id,
                    rental_fee: self.rental_fee,
                    points: rate.earn(self.rental_fee),
                    reason,
                    earned_at: at,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rental(fee: u32) -> Rental {
        Rental::rented(Uuid::now_v7(), Uuid::now_v7(), fee)
    }

    #[test]
    fn a_completed_rental_earns_once_returned_or_expired() {
        for reason in [Completion::Returned, Completion::Expired] {
            let mut rental = rental(450);
            let (book, at) = (Uuid::now_v7(), Utc::now());
            let credit = rental
                .complete(book, reason, at, EarningRate::DEFAULT)
                .unwrap();
            assert_eq!(
                credit,
                Credit {
                    rental_id: rental.id,
                    customer_id: rental.customer_id,
                    book_id: book,
                    rental_fee: 450,
                    points: Points::new(45),
                    reason,
                    earned_at: at,
                }
            );
            assert_eq!(rental.state, RentalState::Completed);
            assert_eq!(
                rental.complete(book, reason, at, EarningRate::DEFAULT),
                Err(Uncredited::AlreadyCredited)
            );
            assert!(!rental.cancel(), "a completed rental stays credited");
            assert_eq!(rental.state, RentalState::Completed);
        }
    }

    #[test]
    fn a_cancelled_rental_never_earns() {
        let mut rental = rental(450);
        assert!(rental.cancel());
        assert!(!rental.cancel(), "cancelled once");
        assert_eq!(
            rental.complete(
                Uuid::now_v7(),
                Completion::Returned,
                Utc::now(),
                EarningRate::DEFAULT
            ),
            Err(Uncredited::Cancelled)
        );
        assert_eq!(rental.state, RentalState::Cancelled);
    }

    #[test]
    fn states_and_reasons_read_back_as_written() {
        for state in [
            RentalState::Rented,
            RentalState::Cancelled,
            RentalState::Completed,
        ] {
            assert_eq!(RentalState::parse(state.as_str()), Some(state));
        }
        for reason in [Completion::Returned, Completion::Expired] {
            assert_eq!(Completion::parse(reason.as_str()), Some(reason));
        }
        assert_eq!(RentalState::parse("rented"), None);
        assert_eq!(Completion::parse("LOST"), None);
    }
}
