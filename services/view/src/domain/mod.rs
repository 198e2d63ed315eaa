//! The boards' records and the rules that merge events into them. No I/O: every rule here is a
//! pure function.
//!
//! Events reach the view from four topics, and nothing orders one topic against another (a
//! refund may come before its cancel, a customer's name after their first rental). So a record
//! never depends on arrival order: each field is set by the one event that owns it, and a status
//! only moves forward by rank. The same events, in any order, give the same record.

mod book;
mod rental;
mod status;
#[cfg(test)]
pub(crate) mod story;

pub use book::{BookDetails, BookRecord};
pub use rental::RentalRecord;
pub use status::{Availability, PaymentStatus, Ranked, RentalStatus};

use uuid::Uuid;

/// One line of the rental status board: a rental with the names it refers to, where known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RentalLine {
    pub rental: RentalRecord,
    pub customer_name: Option<String>,
    pub book_title: Option<String>,
    /// When it was read, by the database's clock: what "overdue" is judged against, so that a
    /// replica whose clock drifts does not misjudge it.
    pub read_at: chrono::DateTime<chrono::Utc>,
}

/// One line of the book board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookLine {
    pub book: BookRecord,
    /// Who holds the book, when one of its rentals is RENTED.
    pub renter: Option<Renter>,
    /// How many of its rentals the view has seen start (`BookRented`).
    pub times_rented: u32,
}

impl BookLine {
    pub fn availability(&self) -> Availability {
        self.book.availability(self.renter.is_some())
    }
}

/// The customer holding a book, and the rental by which they hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renter {
    pub rental_id: Uuid,
    pub customer_id: Uuid,
    pub customer_name: Option<String>,
}
