use uuid::Uuid;

use super::ports::{Page, PointsStore, Statement, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum StatementError {
    #[error("a customer reads only their own points")]
    OthersPoints,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who reads points: a manager reads any customer's, a customer only their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    Customer(Uuid),
    Manager,
}

impl Reader {
    /// Whether the reader may see `customer_id`'s points (OWASP API1: checked on every read).
    pub fn may_read(self, customer_id: Uuid) -> bool {
        match self {
            Reader::Manager => true,
            Reader::Customer(me) => me == customer_id,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_customer_reads_their_own_and_a_manager_anyones() {
        let (me, other) = (Uuid::now_v7(), Uuid::now_v7());
        assert!(Reader::Customer(me).may_read(me));
        assert!(!Reader::Customer(me).may_read(other));
        assert!(Reader::Manager.may_read(other));
    }
}
