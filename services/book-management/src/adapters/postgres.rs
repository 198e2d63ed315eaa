//! The book store on Postgres. Every write and its outbox event share one transaction.

use chrono::{DateTime, Utc};
use fleet_messaging::outbox;
use shared_events::BookRegistered;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::SERVICE;
use crate::application::{BookChange, BookStore, RentalActivityStore, StoreError};
use crate::domain::{Author, Book, BookError, BookId, BookStatus, RentalFee, Title};

#[derive(Clone)]
pub struct PgBookStore {
    pool: PgPool,
}

impl PgBookStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[derive(sqlx::FromRow)]
struct BookRow {
    id: Uuid,
    title: String,
    author: String,
    rental_fee: i32,
    status: String,
    current_rental_id: Option<Uuid>,
    times_rented: i32,
    registered_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<BookRow> for Book {
    type Error = anyhow::Error;

    // The table's CHECK constraints hold the same rules; a row that breaks them is corrupt.
    fn try_from(row: BookRow) -> anyhow::Result<Self> {
        Ok(Book {
            id: BookId(row.id),
            title: Title::parse(&row.title)?,
            author: Author::parse(&row.author)?,
            rental_fee: RentalFee::parse(row.rental_fee.into())?,
            status: BookStatus::parse(&row.status)
                .ok_or_else(|| anyhow::anyhow!("unknown status {}", row.status))?,
            current_rental: row.current_rental_id,
            times_rented: u32::try_from(row.times_rented)?,
            registered_at: row.registered_at,
            updated_at: row.updated_at,
        })
    }
}

const COLUMNS: &str = "id, title, author, rental_fee, status, current_rental_id, times_rented, registered_at, updated_at";

fn unavailable(e: impl Into<anyhow::Error>) -> StoreError {
    StoreError::Unavailable(e.into())
}

/// Loads a book and locks it until the transaction ends.
async fn lock(conn: &mut PgConnection, id: BookId) -> anyhow::Result<Option<Book>> {
    let row: Option<BookRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM books WHERE id = $1 FOR UPDATE"
    ))
    .bind(id.0)
    .fetch_optional(conn)
    .await?;
    row.map(Book::try_from).transpose()
}

/// Writes a book's mutable state back.
async fn save(conn: &mut PgConnection, book: &Book) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE books SET title = $2, author = $3, rental_fee = $4, status = $5, current_rental_id = $6, \
         times_rented = $7, updated_at = $8 WHERE id = $1",
    )
    .bind(book.id.0)
    .bind(book.title.as_str())
    .bind(book.author.as_str())
    .bind(book.rental_fee.amount() as i32)
    .bind(book.status.as_str())
    .bind(book.current_rental)
    .bind(book.times_rented as i32)
    .bind(book.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Rental activity's store, on the connection of the inbox transaction.
pub struct PgRentalActivity<'c> {
    conn: &'c mut PgConnection,
}

impl<'c> PgRentalActivity<'c> {
    pub fn new(conn: &'c mut PgConnection) -> Self {
        Self { conn }
    }
}

impl RentalActivityStore for PgRentalActivity<'_> {
    async fn book(&mut self, id: BookId) -> Result<Option<Book>, StoreError> {
        lock(self.conn, id).await.map_err(unavailable)
    }

    async fn save(&mut self, book: &Book) -> Result<(), StoreError> {
        save(self.conn, book).await.map_err(unavailable)
    }
}

impl BookStore for PgBookStore {
    async fn add(&self, book: &Book, event: BookRegistered) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        sqlx::query(
            "INSERT INTO books (id, title, author, rental_fee, status, times_rented, registered_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 0, $6, $6)",
        )
        .bind(book.id.0)
        .bind(book.title.as_str())
        .bind(book.author.as_str())
        .bind(book.rental_fee.amount() as i32)
        .bind(book.status.as_str())
        .bind(book.registered_at)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        outbox::enqueue(&mut tx, SERVICE, event)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)
    }

    async fn get(&self, id: BookId) -> Result<Option<Book>, StoreError> {
        let row: Option<BookRow> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM books WHERE id = $1"))
                .bind(id.0)
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?;
        row.map(Book::try_from).transpose().map_err(unavailable)
    }

    async fn list(&self, after: Option<BookId>, limit: u32) -> Result<Vec<Book>, StoreError> {
        let rows: Vec<BookRow> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM books WHERE $1::uuid IS NULL OR id > $1 ORDER BY id LIMIT $2"
        ))
        .bind(after.map(|a| a.0))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.into_iter()
            .map(Book::try_from)
            .collect::<Result<_, _>>()
            .map_err(unavailable)
    }

    async fn change<F>(
        &self,
        id: BookId,
        change: F,
    ) -> Result<Option<Result<Book, BookError>>, StoreError>
    where
        F: FnOnce(&mut Book) -> Result<BookChange, BookError> + Send + 'static,
    {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let Some(mut book) = lock(&mut tx, id).await.map_err(unavailable)? else {
            return Ok(None);
        };
        let event = match change(&mut book) {
            Ok(event) => event,
            Err(rule) => return Ok(Some(Err(rule))),
        };
        match event {
            BookChange::Unchanged => return Ok(Some(Ok(book))),
            BookChange::Updated(e) => outbox::enqueue(&mut tx, SERVICE, e).await,
            BookChange::Retired(e) => outbox::enqueue(&mut tx, SERVICE, e).await,
        }
        .map_err(unavailable)?;
        save(&mut tx, &book).await.map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(Some(Ok(book)))
    }
}
