use shared_events::BookEvent;
use uuid::Uuid;

use super::Availability;

/// What the view knows of one book from `book.events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookRecord {
    pub id: Uuid,
    /// `None` for a book the view has only seen named by a rental so far.
    pub details: Option<BookDetails>,
    pub retired: bool,
}

/// A book's catalogue details; each `BookRegistered` or `BookUpdated` carries all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookDetails {
    pub title: String,
    pub author: String,
    pub rental_fee: u32,
}

impl BookRecord {
    /// A book named by a rental before its own events arrived.
    pub fn unknown(id: Uuid) -> Self {
        Self {
            id,
            details: None,
            retired: false,
        }
    }

    /// Merges an event of book-management about this book. One book's events are keyed by its
    /// id, so they arrive in the order they happened: the last details seen are the current ones.
    /// Retiring is for good, so a retired book stays retired whatever arrives after.
    pub fn record(&mut self, event: &BookEvent) {
        match event {
            BookEvent::BookRegistered(e) => {
                self.details = Some(BookDetails {
                    title: e.title.clone(),
                    author: e.author.clone(),
                    rental_fee: e.rental_fee,
                });
            }
            BookEvent::BookUpdated(e) => {
                self.details = Some(BookDetails {
                    title: e.title.clone(),
                    author: e.author.clone(),
                    rental_fee: e.rental_fee,
                });
            }
            BookEvent::BookRetired(_) => self.retired = true,
        }
    }

    /// Whether the book can be rented, given whether one of its rentals holds it. A retired book
    /// is never rented (book-management refuses to retire a rented one).
    pub fn availability(&self, held: bool) -> Availability {
        if self.retired {
            Availability::Retired
        } else if held {
            Availability::Rented
        } else {
            Availability::Available
        }
    }
}

#[cfg(test)]
mod tests {
    use shared_events::{BookRegistered, BookRetired, BookUpdated};

    use super::*;

    #[test]
    fn the_last_details_win_and_retiring_is_for_good() {
        let id = Uuid::now_v7();
        let mut book = BookRecord::unknown(id);
        assert_eq!(book.availability(false), Availability::Available);
        book.record(&BookEvent::BookRetired(BookRetired { book_id: id }));
        book.record(
            &BookRegistered {
                book_id: id,
                title: "Kindred".into(),
                author: "Octavia E. Butler".into(),
                rental_fee: 300,
            }
            .into(),
        );
        book.record(
            &BookUpdated {
                book_id: id,
                title: "Kindred".into(),
                author: "Octavia E. Butler".into(),
                rental_fee: 350,
            }
            .into(),
        );
        assert_eq!(book.details.as_ref().unwrap().rental_fee, 350);
        assert!(book.retired);
        assert_eq!(book.availability(true), Availability::Retired);
    }
}
