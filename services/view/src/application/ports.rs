use uuid::Uuid;

use crate::domain::{BookLine, RentalLine, RentalStatus};

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
