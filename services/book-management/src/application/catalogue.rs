use chrono::{DateTime, SubsecRound, Utc};

use super::ports::{BookChange, BookStore, StoreError};
use crate::domain::{Author, Book, BookChanges, BookError, BookId, RentalFee, Title};

/// Microseconds: what Postgres keeps, so an answer and a later read agree.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    #[error("no book {0}")]
    NotFound(BookId),
    #[error(transparent)]
    Rule(#[from] BookError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A page of the catalogue: keyset paging on the time-ordered book id.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub after: Option<BookId>,
    pub limit: u32,
}

/// The catalogue use cases, for managers and for anyone signed in.
#[derive(Clone)]
pub struct Catalogue<S> {
    store: S,
}

impl<S: BookStore> Catalogue<S> {
    pub fn new(store: S) -> Self {
        Self { store }
    }

    pub async fn register(
        &self,
        title: Title,
        author: Author,
        fee: RentalFee,
    ) -> Result<Book, CatalogueError> {
        let (book, event) = Book::register(title, author, fee, now());
        self.store.add(&book, event).await?;
        Ok(book)
    }

    pub async fn book(&self, id: BookId) -> Result<Book, CatalogueError> {
        self.store
            .get(id)
            .await?
            .ok_or(CatalogueError::NotFound(id))
    }

    pub async fn books(&self, page: Page) -> Result<Vec<Book>, CatalogueError> {
        Ok(self.store.list(page.after, page.limit).await?)
    }

    pub async fn update(&self, id: BookId, changes: BookChanges) -> Result<Book, CatalogueError> {
        let outcome = self
            .store
            .change(id, move |book| {
                book.update(changes, now()).map(BookChange::Updated)
            })
            .await?;
        Ok(outcome.ok_or(CatalogueError::NotFound(id))??)
    }

    pub async fn retire(&self, id: BookId) -> Result<Book, CatalogueError> {
        let outcome = self
            .store
            .change(id, |book| {
                Ok(book
                    .retire(now())?
                    .map_or(BookChange::Unchanged, BookChange::Retired))
            })
            .await?;
        Ok(outcome.ok_or(CatalogueError::NotFound(id))??)
    }
}
