//! Rental activity: each book's status and times-rented count follow its rentals, so managers
//! see in the catalogue which books are out and how often each was rented.

use chrono::Utc;
use uuid::Uuid;

use super::ports::{RentalActivityStore, StoreError};
use crate::domain::{Book, BookId};

/// What happened to a rental of a book (read from `rental.events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RentalFact {
    /// It started (`BookRented`).
    Started { rental_id: Uuid, book_id: BookId },
    /// It ended: cancelled or returned (`RentalCancelled`, `BookReturned`).
    Ended { rental_id: Uuid, book_id: BookId },
}

impl RentalFact {
    pub fn book_id(&self) -> BookId {
        match *self {
            RentalFact::Started { book_id, .. } | RentalFact::Ended { book_id, .. } => book_id,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RentalActivityError {
    /// Rental rents only books of its replica of this catalogue: a rental of a book the
    /// catalogue lacks breaks the contract, and no later try would find it.
    #[error("no book {0} in the catalogue")]
    UnknownBook(BookId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Applies a rental's start or end to its book; returns the book as it is now.
pub async fn record_rental<S: RentalActivityStore>(
    store: &mut S,
    fact: RentalFact,
) -> Result<Book, RentalActivityError> {
    let book_id = fact.book_id();
    let Some(mut book) = store.book(book_id).await? else {
        return Err(RentalActivityError::UnknownBook(book_id));
    };
    let now = Utc::now();
    match fact {
        RentalFact::Started { rental_id, .. } => book.rented(rental_id, now),
        RentalFact::Ended { rental_id, .. } => book.released(rental_id, now),
    }
    store.save(&book).await?;
    Ok(book)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::domain::{Author, BookStatus, RentalFee, Title};

    /// Books in memory, as the Postgres adapter keeps them.
    #[derive(Default)]
    struct Memory {
        books: HashMap<BookId, Book>,
    }

    impl RentalActivityStore for Memory {
        async fn book(&mut self, id: BookId) -> Result<Option<Book>, StoreError> {
            Ok(self.books.get(&id).cloned())
        }

        async fn save(&mut self, book: &Book) -> Result<(), StoreError> {
            self.books.insert(book.id, book.clone());
            Ok(())
        }
    }

    fn registered(store: &mut Memory) -> BookId {
        let (book, _) = Book::register(
            Title::parse("Dune").unwrap(),
            Author::parse("Frank Herbert").unwrap(),
            RentalFee::parse(300).unwrap(),
            Utc::now(),
        );
        let id = book.id;
        store.books.insert(id, book);
        id
    }

    #[tokio::test]
    async fn a_book_is_out_while_rented_and_counts_every_rental() {
        let mut store = Memory::default();
        let book_id = registered(&mut store);
        for _ in 0..2 {
            let rental_id = Uuid::now_v7();
            let started = RentalFact::Started { rental_id, book_id };
            let book = record_rental(&mut store, started).await.unwrap();
            assert_eq!(book.status, BookStatus::Rented);
            assert_eq!(book.current_rental, Some(rental_id));
            let ended = RentalFact::Ended { rental_id, book_id };
            record_rental(&mut store, ended).await.unwrap();
        }
        let book = &store.books[&book_id];
        assert_eq!(book.status, BookStatus::Available);
        assert_eq!(book.current_rental, None);
        assert_eq!(book.times_rented, 2);
    }

    #[tokio::test]
    async fn only_the_rental_holding_the_book_frees_it() {
        let mut store = Memory::default();
        let book_id = registered(&mut store);
        let rental_id = Uuid::now_v7();
        record_rental(&mut store, RentalFact::Started { rental_id, book_id })
            .await
            .unwrap();
        let other = RentalFact::Ended {
            rental_id: Uuid::now_v7(),
            book_id,
        };
        let book = record_rental(&mut store, other).await.unwrap();
        assert_eq!(book.status, BookStatus::Rented);
        assert_eq!(book.current_rental, Some(rental_id));
    }

    #[tokio::test]
    async fn a_rental_of_a_book_the_catalogue_lacks_is_refused_and_changes_nothing() {
        let mut store = Memory::default();
        let unknown = BookId::generate();
        let fact = RentalFact::Started {
            rental_id: Uuid::now_v7(),
            book_id: unknown,
        };
        let refused = record_rental(&mut store, fact).await;
        assert!(matches!(refused, Err(RentalActivityError::UnknownBook(id)) if id == unknown));
        assert!(store.books.is_empty());
    }
}
