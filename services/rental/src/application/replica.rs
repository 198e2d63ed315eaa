//! The catalogue replica: what renting needs of each book (its title, its fee, whether it is
//! retired), kept from `book.events` so that a rent never has to ask book-management.

use uuid::Uuid;

use super::ports::{CatalogueStore, StoreError};

/// What happened to a book, as far as renting cares (read from `book.events`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BookFact {
    /// It is in the catalogue with this title and fee (`BookRegistered`, `BookUpdated`).
    Listed {
        book_id: Uuid,
        title: String,
        rental_fee: u32,
    },
    /// It can no longer be rented (`BookRetired`).
    Retired { book_id: Uuid },
}

#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// One book's events share a key and arrive in order, so its `BookRegistered` is always
    /// applied before its `BookRetired`: a retired book the replica never saw breaks that, and
    /// no later try would find it.
    #[error("BookRetired for unknown book {0}")]
    UnknownBook(Uuid),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Applies a fact about a book to the replica.
pub async fn replicate<S: CatalogueStore>(
    store: &mut S,
    fact: BookFact,
) -> Result<(), ReplicaError> {
    match fact {
        BookFact::Listed {
            book_id,
            title,
            rental_fee,
        } => store.list(book_id, &title, rental_fee).await?,
        BookFact::Retired { book_id } => {
            if !store.retire(book_id).await? {
                return Err(ReplicaError::UnknownBook(book_id));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::domain::CatalogueEntry;

    /// The replica in memory, as the Postgres adapter keeps it.
    #[derive(Default)]
    struct Memory {
        books: HashMap<Uuid, CatalogueEntry>,
    }

    impl CatalogueStore for Memory {
        async fn list(
            &mut self,
            book_id: Uuid,
            title: &str,
            rental_fee: u32,
        ) -> Result<(), StoreError> {
            let entry = self.books.entry(book_id).or_insert(CatalogueEntry {
                book_id,
                title: String::new(),
                rental_fee: 0,
                retired: false,
            });
            entry.title = title.to_owned();
            entry.rental_fee = rental_fee;
            Ok(())
        }

        async fn retire(&mut self, book_id: Uuid) -> Result<bool, StoreError> {
            Ok(self
                .books
                .get_mut(&book_id)
                .map(|entry| entry.retired = true)
                .is_some())
        }
    }

    fn listed(book_id: Uuid, title: &str, rental_fee: u32) -> BookFact {
        BookFact::Listed {
            book_id,
            title: title.into(),
            rental_fee,
        }
    }

    #[tokio::test]
    async fn a_listed_book_is_rentable_at_its_latest_title_and_fee() {
        let mut store = Memory::default();
        let book_id = Uuid::now_v7();
        replicate(&mut store, listed(book_id, "Dune", 300))
            .await
            .unwrap();
        replicate(&mut store, listed(book_id, "Dune Messiah", 350))
            .await
            .unwrap();
        assert_eq!(
            store.books[&book_id],
            CatalogueEntry {
                book_id,
                title: "Dune Messiah".into(),
                rental_fee: 350,
                retired: false,
            }
        );
    }

    #[tokio::test]
    async fn a_retired_book_stays_retired_and_copies_change_nothing() {
        let mut store = Memory::default();
        let book_id = Uuid::now_v7();
        replicate(&mut store, listed(book_id, "Dune", 300))
            .await
            .unwrap();
        let retired = BookFact::Retired { book_id };
        replicate(&mut store, retired.clone()).await.unwrap();
        replicate(&mut store, retired).await.unwrap();
        replicate(&mut store, listed(book_id, "Dune", 300))
            .await
            .unwrap();
        assert!(store.books[&book_id].retired);
        assert_eq!(store.books.len(), 1);
    }

    #[tokio::test]
    async fn retiring_a_book_the_replica_never_saw_is_refused_and_changes_nothing() {
        let mut store = Memory::default();
        let unknown = Uuid::now_v7();
        let refused = replicate(&mut store, BookFact::Retired { book_id: unknown }).await;
        assert!(matches!(refused, Err(ReplicaError::UnknownBook(id)) if id == unknown));
        assert!(store.books.is_empty());
    }
}
