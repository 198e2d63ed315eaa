use shared_events::{BookRegistered, BookRetired, BookUpdated};

use crate::domain::{Book, BookError, BookId};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Unavailable(#[from] anyhow::Error),
}

/// What a change to a book publishes.
#[derive(Debug, Clone)]
pub enum BookChange {
    Updated(BookUpdated),
    Retired(BookRetired),
    Unchanged,
}

/// Where books live. Every write stores the book together with the event it causes, atomically:
/// no event without its change, no change without its event.
pub trait BookStore: Clone + Send + Sync + 'static {
    fn add(
        &self,
        book: &Book,
        event: BookRegistered,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn get(&self, id: BookId) -> impl Future<Output = Result<Option<Book>, StoreError>> + Send;

    /// Books in registration order, after `after`, at most `limit`.
    fn list(
        &self,
        after: Option<BookId>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Book>, StoreError>> + Send;

    /// Loads the book exclusively, applies `change`, and stores the result with its event.
    /// `Ok(None)` when there is no such book.
    fn change<F>(
        &self,
        id: BookId,
        change: F,
    ) -> impl Future<Output = Result<Option<Result<Book, BookError>>, StoreError>> + Send
    where
        F: FnOnce(&mut Book) -> Result<BookChange, BookError> + Send + 'static;
}

/// What rental activity reads and writes. An implementation works inside the transaction that
/// records the event as applied, so an event's effect and its record commit together, or
/// neither does.
pub trait RentalActivityStore: Send {
    /// The book, locked until the transaction ends.
    fn book(&mut self, id: BookId)
    -> impl Future<Output = Result<Option<Book>, StoreError>> + Send;

    /// Writes the book's state back.
    fn save(&mut self, book: &Book) -> impl Future<Output = Result<(), StoreError>> + Send;
}
