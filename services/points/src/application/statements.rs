use fleet_auth::Reader;
use uuid::Uuid;

use super::ports::{Page, PointsStore, Statement, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum StatementError {
    #[error("a customer reads only their own points")]
    OthersPoints,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Reading points: a customer's balance and history.
#[derive(Clone)]
pub struct Statements<S> {
    store: S,
}

impl<S: PointsStore> Statements<S> {
    pub fn new(store: S) -> Self {
        Self { store }
    }

    /// `customer_id`'s statement. Asking for someone else's is refused outright: unlike a
    /// rental, a customer's points exist for anyone, so the refusal reveals nothing.
    pub async fn statement(
        &self,
        reader: Reader,
        customer_id: Uuid,
        page: Page,
    ) -> Result<Statement, StatementError> {
        if !reader.may_read(customer_id) {
            return Err(StatementError::OthersPoints);
        }
        Ok(self.store.statement(customer_id, page).await?)
    }
}
