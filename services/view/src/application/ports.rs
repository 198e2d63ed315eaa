use uuid::Uuid;

use crate::domain::{BookLine, BookRecord, RentalLine, RentalRecord, RentalStatus};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Unavailable(#[from] anyhow::Error),
}

/// A page of a board: keyset paging on the time-ordered (UUIDv7) id, so pages stay stable while
/// the board changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// The last id of the previous page.
    pub after: Option<Uuid>,
    pub limit: u32,
}

/// Which rentals to list; absent criteria select everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RentalFilter {
    pub customer_id: Option<Uuid>,
    pub book_id: Option<Uuid>,
    pub status: Option<RentalStatus>,
}

/// Where the boards are read from.
pub trait BoardStore: Clone + Send + Sync + 'static {
    /// Rentals matching `filter`, in rental id order, after `page.after`, at most `page.limit`.
    fn rentals(
        &self,
        filter: RentalFilter,
        page: Page,
    ) -> impl Future<Output = Result<Vec<RentalLine>, StoreError>> + Send;

    fn rental(
        &self,
        id: Uuid,
    ) -> impl Future<Output = Result<Option<RentalLine>, StoreError>> + Send;

    /// Books in book id order, after `page.after`, at most `page.limit`.
    fn books(&self, page: Page) -> impl Future<Output = Result<Vec<BookLine>, StoreError>> + Send;
}

/// Where the projection keeps its records. An implementation works inside the transaction that
/// records the event as applied, so an event's effect and its record commit together, or
/// neither does.
pub trait ProjectionStore: Send {
    /// Makes sure the book has a record, so the book board lists it as soon as anything names it.
    fn note_book(&mut self, id: Uuid) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The book's record, locked until the transaction ends (a new one if the view has not heard
    /// of the book).
    fn book(&mut self, id: Uuid) -> impl Future<Output = Result<BookRecord, StoreError>> + Send;

    fn save_book(
        &mut self,
        book: &BookRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The rental's record, locked until the transaction ends (a new one, for `customer_id`, if
    /// the view has not heard of the rental).
    fn rental(
        &mut self,
        id: Uuid,
        customer_id: Uuid,
    ) -> impl Future<Output = Result<RentalRecord, StoreError>> + Send;

    fn save_rental(
        &mut self,
        rental: &RentalRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Gives the customer this name, in place of any before it.
    fn name_customer(
        &mut self,
        id: Uuid,
        name: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
