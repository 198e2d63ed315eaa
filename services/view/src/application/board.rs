use uuid::Uuid;

use super::ports::{BoardStore, Page, RentalFilter, StoreError};
use crate::domain::{BookLine, RentalLine};

#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    #[error("a customer sees only their own rentals")]
    OthersRentals,
    #[error("no rental {0}")]
    NotFound(Uuid),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who reads the boards: a manager reads every rental, a customer only their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    Customer(Uuid),
    Manager,
}

impl Reader {
    /// Whether the reader may see `rental` (OWASP API1: ownership checked on every read).
    pub fn may_read(self, rental: &RentalLine) -> bool {
        match self {
            Reader::Manager => true,
            Reader::Customer(id) => rental.rental.customer_id == id,
        }
    }

    /// The filter narrowed to what the reader may see: a customer's list is their own, and
    /// asking for someone else's is refused outright rather than answered with an empty page.
    fn scope(self, filter: RentalFilter) -> Result<RentalFilter, BoardError> {
        match (self, filter.customer_id) {
            (Reader::Manager, _) => Ok(filter),
            (Reader::Customer(me), None) => Ok(RentalFilter {
                customer_id: Some(me),
                ..filter
            }),
            (Reader::Customer(me), Some(asked)) if asked == me => Ok(filter),
            (Reader::Customer(_), Some(_)) => Err(BoardError::OthersRentals),
        }
    }
}

/// The read side's use cases: the rental status board and the book board.
#[derive(Clone)]
pub struct Board<S> {
    store: S,
}

impl<S: BoardStore> Board<S> {
    pub fn new(store: S) -> Self {
        Self { store }
    }

    pub async fn rentals(
        &self,
        reader: Reader,
        filter: RentalFilter,
        page: Page,
    ) -> Result<Vec<RentalLine>, BoardError> {
        let filter = reader.scope(filter)?;
        Ok(self.store.rentals(filter, page).await?)
    }

    /// Someone else's rental is not found, as an unknown one: its existence is not revealed.
    pub async fn rental(&self, reader: Reader, id: Uuid) -> Result<RentalLine, BoardError> {
        match self.store.rental(id).await? {
            Some(rental) if reader.may_read(&rental) => Ok(rental),
            _ => Err(BoardError::NotFound(id)),
        }
    }

    /// The book board; managers only (the HTTP adapter checks the role).
    pub async fn books(&self, page: Page) -> Result<Vec<BookLine>, BoardError> {
        Ok(self.store.books(page).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_customer_lists_only_their_own_rentals() {
        let (me, other) = (Uuid::now_v7(), Uuid::now_v7());
        let customer = Reader::Customer(me);
        let own = customer.scope(RentalFilter::default()).unwrap();
        assert_eq!(own.customer_id, Some(me));
        let named = RentalFilter {
            customer_id: Some(me),
            ..Default::default()
        };
        assert_eq!(customer.scope(named).unwrap(), named);
        let others = RentalFilter {
            customer_id: Some(other),
            ..Default::default()
        };
        assert!(matches!(
            customer.scope(others),
            Err(BoardError::OthersRentals)
        ));
        assert_eq!(Reader::Manager.scope(others).unwrap(), others);
        assert_eq!(
            Reader::Manager.scope(RentalFilter::default()).unwrap(),
            RentalFilter::default()
        );
    }
}
