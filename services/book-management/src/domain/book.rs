use chrono::{DateTime, Utc};
use shared_events::{BookRegistered, BookRetired, BookUpdated};
use uuid::Uuid;

use super::{Author, BookId, RentalFee, Title};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookStatus {
    Available,
    Rented,
    Retired,
}

impl BookStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BookStatus::Available => "AVAILABLE",
            BookStatus::Rented => "RENTED",
            BookStatus::Retired => "RETIRED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "AVAILABLE" => Some(Self::Available),
            "RENTED" => Some(Self::Rented),
            "RETIRED" => Some(Self::Retired),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BookError {
    #[error("the book is rented; it can be retired once it is returned")]
    Rented,
    #[error("the book is retired and can no longer be changed")]
    Retired,
}

/// A book of the catalogue. Its rental status follows the rental service's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Book {
    pub id: BookId,
    pub title: Title,
    pub author: Author,
    pub rental_fee: RentalFee,
    pub status: BookStatus,
    /// The rental holding the book while it is rented.
    pub current_rental: Option<Uuid>,
    pub times_rented: u32,
    pub registered_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a manager may change; absent fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct BookChanges {
    pub title: Option<Title>,
    pub author: Option<Author>,
    pub rental_fee: Option<RentalFee>,
}

impl Book {
    pub fn register(
        title: Title,
        author: Author,
        rental_fee: RentalFee,
        now: DateTime<Utc>,
    ) -> (Self, BookRegistered) {
        let book = Self {
            id: BookId::generate(),
            title,
            author,
            rental_fee,
            status: BookStatus::Available,
            current_rental: None,
            times_rented: 0,
            registered_at: now,
            updated_at: now,
        };
        let event = BookRegistered {
            book_id: book.id.0,
            title: book.title.as_str().to_owned(),
            author: book.author.as_str().to_owned(),
            rental_fee: book.rental_fee.amount(),
        };
        (book, event)
    }

    pub fn update(
        &mut self,
        changes: BookChanges,
        now: DateTime<Utc>,
    ) -> Result<BookUpdated, BookError> {
        if self.status == BookStatus::Retired {
            return Err(BookError::Retired);
        }
        if let Some(title) = changes.title {
            self.title = title;
        }
        if let Some(author) = changes.author {
            self.author = author;
        }
        if let Some(fee) = changes.rental_fee {
            self.rental_fee = fee;
        }
        self.updated_at = now;
        Ok(BookUpdated {
            book_id: self.id.0,
            title: self.title.as_str().to_owned(),
            author: self.author.as_str().to_owned(),
            rental_fee: self.rental_fee.amount(),
        })
    }

    /// Retires the book. Retiring a retired book changes nothing and publishes nothing.
    pub fn retire(&mut self, now: DateTime<Utc>) -> Result<Option<BookRetired>, BookError> {
        match self.status {
            BookStatus::Rented => Err(BookError::Rented),
            BookStatus::Retired => Ok(None),
            BookStatus::Available => {
                self.status = BookStatus::Retired;
                self.updated_at = now;
                Ok(Some(BookRetired { book_id: self.id.0 }))
            }
        }
    }

    /// A rental started. A book retired meanwhile stays retired but the rental still counts.
    pub fn rented(&mut self, rental_id: Uuid, now: DateTime<Utc>) {
        self.times_rented += 1;
        self.current_rental = Some(rental_id);
        if self.status != BookStatus::Retired {
            self.status = BookStatus::Rented;
        }
        self.updated_at = now;
    }

    /// A rental ended (returned or cancelled). Only the rental holding the book frees it.
    pub fn released(&mut self, rental_id: Uuid, now: DateTime<Utc>) {
        if self.current_rental != Some(rental_id) {
            return;
        }
        self.current_rental = None;
        if self.status == BookStatus::Rented {
            self.status = BookStatus::Available;
        }
        self.updated_at = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book() -> Book {
        let (book, _) = Book::register(
            Title::parse("Dune").unwrap(),
            Author::parse("Frank Herbert").unwrap(),
            RentalFee::parse(300).unwrap(),
            Utc::now(),
        );
        book
    }

    #[test]
    fn a_registered_book_is_available_and_announced() {
        let (book, event) = Book::register(
            Title::parse("Dune").unwrap(),
            Author::parse("F").unwrap(),
            RentalFee::parse(5).unwrap(),
            Utc::now(),
        );
        assert_eq!(book.status, BookStatus::Available);
        assert_eq!(event.book_id, book.id.0);
        assert_eq!(event.rental_fee, 5);
    }

    #[test]
    fn a_rented_book_cannot_be_retired_until_released() {
        let mut book = book();
        let rental = Uuid::new_v4();
        book.rented(rental, Utc::now());
        assert_eq!(book.retire(Utc::now()), Err(BookError::Rented));
        book.released(Uuid::new_v4(), Utc::now());
        assert_eq!(
            book.status,
            BookStatus::Rented,
            "another rental cannot free it"
        );
        book.released(rental, Utc::now());
        assert_eq!(book.status, BookStatus::Available);
        assert!(book.retire(Utc::now()).unwrap().is_some());
        assert_eq!(
            book.retire(Utc::now()),
            Ok(None),
            "retiring twice is a no-op"
        );
        assert_eq!(book.times_rented, 1);
    }

    #[test]
    fn a_retired_book_cannot_be_updated() {
        let mut book = book();
        book.retire(Utc::now()).unwrap();
        assert_eq!(
            book.update(BookChanges::default(), Utc::now()),
            Err(BookError::Retired)
        );
    }

    #[test]
    fn an_update_changes_only_what_is_given() {
        let mut book = book();
        let event = book
            .update(
                BookChanges {
                    rental_fee: Some(RentalFee::parse(450).unwrap()),
                    ..Default::default()
                },
                Utc::now(),
            )
            .unwrap();
        assert_eq!(book.title.as_str(), "Dune");
        assert_eq!(event.rental_fee, 450);
        assert_eq!(event.title, "Dune");
    }
}
