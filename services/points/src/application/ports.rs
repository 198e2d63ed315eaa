use uuid::Uuid;

use crate::domain::{Credit, Points, Rental};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Unavailable(#[from] anyhow::Error),
}

/// A page of a customer's history, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// At most this many entries.
    pub limit: u32,
    /// After skipping this many of the newest.
    pub offset: u32,
}

/// A customer's points: the balance and a page of the history that makes it up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub customer_id: Uuid,
    pub balance: Points,
    /// Newest first.
    pub history: Vec<Credit>,
}

/// Where customers' points are read from.
pub trait PointsStore: Clone + Send + Sync + 'static {
    /// The customer's balance and the `page` of their history, as of one moment (a customer
    /// points has never credited has a zero balance and no history).
    fn statement(
        &self,
        customer_id: Uuid,
        page: Page,
    ) -> impl Future<Output = Result<Statement, StoreError>> + Send;
}

/// What earning reads and writes. An implementation works inside the transaction that records
/// the event as applied, so an event's effect and its record commit together, or neither does.
pub trait EarningStore: Send {
    /// The rental, locked until the transaction ends; `None` when points never saw it start.
    fn rental(
        &mut self,
        id: Uuid,
    ) -> impl Future<Output = Result<Option<Rental>, StoreError>> + Send;

    /// Remembers a rental that just started; `false`, changing nothing, when it is known
    /// already (its `BookRented` again, under a new event id).
    fn add_rental(
        &mut self,
        rental: &Rental,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Stores the rental's new state.
    fn save_state(
        &mut self,
        rental: &Rental,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Writes the credit to the customer's ledger and adds its points to their balance, both or
    /// neither, and only once per rental: `false`, changing nothing, when the rental was
    /// credited already.
    fn credit(&mut self, credit: &Credit) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
