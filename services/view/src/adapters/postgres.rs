//! The boards on Postgres: the projection's writes (inside the inbox transaction) and the
//! boards' reads, which join the facts when asked.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::application::{BoardStore, Page, ProjectionStore, RentalFilter, StoreError};
use crate::domain::{
    BookDetails, BookLine, BookRecord, PaymentStatus, RentalLine, RentalRecord, RentalStatus,
    Renter,
};

// --- the projection -------------------------------------------------------------------------

#[derive(sqlx::FromRow)]
struct BookRow {
    id: Uuid,
    title: Option<String>,
    author: Option<String>,
    rental_fee: Option<i32>,
    retired: bool,
}

impl TryFrom<BookRow> for BookRecord {
    type Error = anyhow::Error;

    fn try_from(row: BookRow) -> anyhow::Result<Self> {
        let details = match (row.title, row.author, row.rental_fee) {
            (Some(title), Some(author), Some(fee)) => Some(BookDetails {
                title,
                author,
                rental_fee: u32::try_from(fee)?,
            }),
            _ => None,
        };
        Ok(BookRecord {
            id: row.id,
            details,
            retired: row.retired,
        })
    }
}

#[derive(sqlx::FromRow)]
struct RentalRow {
    id: Uuid,
    customer_id: Uuid,
    book_id: Option<Uuid>,
    rental_fee: Option<i32>,
    payment_id: Option<Uuid>,
    status: Option<String>,
    payment_status: Option<String>,
    rented_at: Option<DateTime<Utc>>,
    due_at: Option<DateTime<Utc>>,
    returned_at: Option<DateTime<Utc>>,
    cancelled_at: Option<DateTime<Utc>>,
    refunded_at: Option<DateTime<Utc>>,
}

const RENTAL_COLUMNS: &str = "r.id, r.customer_id, r.book_id, r.rental_fee, r.payment_id, r.status, \
     r.payment_status, r.rented_at, r.due_at, r.returned_at, r.cancelled_at, r.refunded_at";

impl TryFrom<RentalRow> for RentalRecord {
    type Error = anyhow::Error;

    // The table's CHECK constraints hold the same rules; a row that breaks them is corrupt.
    fn try_from(row: RentalRow) -> anyhow::Result<Self> {
        let status = row
            .status
            .map(|s| RentalStatus::parse(&s).ok_or_else(|| anyhow::anyhow!("unknown status {s}")))
            .transpose()?;
        let payment_status = row
            .payment_status
            .map(|s| {
                PaymentStatus::parse(&s)
                    .ok_or_else(|| anyhow::anyhow!("unknown payment status {s}"))
            })
            .transpose()?;
        Ok(RentalRecord {
            id: row.id,
            customer_id: row.customer_id,
            book_id: row.book_id,
            rental_fee: row.rental_fee.map(u32::try_from).transpose()?,
            payment_id: row.payment_id,
            status,
            payment_status,
            rented_at: row.rented_at,
            due_at: row.due_at,
            returned_at: row.returned_at,
            cancelled_at: row.cancelled_at,
            refunded_at: row.refunded_at,
        })
    }
}

/// The projection's store, on the connection of the inbox transaction.
pub struct PgProjection<'c> {
    conn: &'c mut PgConnection,
}

impl<'c> PgProjection<'c> {
    pub fn new(conn: &'c mut PgConnection) -> Self {
        Self { conn }
    }
}

impl ProjectionStore for PgProjection<'_> {
    async fn note_book(&mut self, id: Uuid) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO books (id) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(id)
            .execute(&mut *self.conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn book(&mut self, id: Uuid) -> Result<BookRecord, StoreError> {
        self.note_book(id).await?;
        let row: BookRow = sqlx::query_as(
            "SELECT id, title, author, rental_fee, retired FROM books WHERE id = $1 FOR UPDATE",
        )
        .bind(id)
        .fetch_one(&mut *self.conn)
        .await
        .map_err(unavailable)?;
        row.try_into().map_err(unavailable)
    }

    async fn save_book(&mut self, book: &BookRecord) -> Result<(), StoreError> {
        let details = book.details.as_ref();
        sqlx::query(
            "UPDATE books SET title = $2, author = $3, rental_fee = $4, retired = $5 WHERE id = $1",
        )
        .bind(book.id)
        .bind(details.map(|d| d.title.as_str()))
        .bind(details.map(|d| d.author.as_str()))
        .bind(details.map(|d| d.rental_fee as i32))
        .bind(book.retired)
        .execute(&mut *self.conn)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn rental(&mut self, id: Uuid, customer_id: Uuid) -> Result<RentalRecord, StoreError> {
        // Inserting first gives concurrent replicas a row to wait on.
        sqlx::query("INSERT INTO rentals (id, customer_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(id)
            .bind(customer_id)
            .execute(&mut *self.conn)
            .await
            .map_err(unavailable)?;
        let row: RentalRow = sqlx::query_as(&format!(
            "SELECT {RENTAL_COLUMNS} FROM rentals r WHERE r.id = $1 FOR UPDATE"
        ))
        .bind(id)
        .fetch_one(&mut *self.conn)
        .await
        .map_err(unavailable)?;
        row.try_into().map_err(unavailable)
    }

    async fn save_rental(&mut self, rental: &RentalRecord) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE rentals SET book_id = $2, rental_fee = $3, payment_id = $4, status = $5, \
             payment_status = $6, rented_at = $7, due_at = $8, returned_at = $9, cancelled_at = $10, \
             refunded_at = $11 WHERE id = $1",
        )
        .bind(rental.id)
        .bind(rental.book_id)
        .bind(rental.rental_fee.map(|f| f as i32))
        .bind(rental.payment_id)
        .bind(rental.status.map(RentalStatus::as_str))
        .bind(rental.payment_status.map(PaymentStatus::as_str))
        .bind(rental.rented_at)
        .bind(rental.due_at)
        .bind(rental.returned_at)
        .bind(rental.cancelled_at)
        .bind(rental.refunded_at)
        .execute(&mut *self.conn)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn name_customer(&mut self, id: Uuid, name: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO customers (id, name) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name",
        )
        .bind(id)
        .bind(name)
        .execute(&mut *self.conn)
        .await
        .map_err(unavailable)?;
        Ok(())
    }
}

/// Empties the boards and the inbox (the kit's record of applied events), so that every event
/// applies again: the start of a rebuild.
pub async fn forget_everything(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("TRUNCATE rentals, books, customers, inbox")
        .execute(conn)
        .await?;
    Ok(())
}

// --- the boards ------------------------------------------------------------------------------

#[derive(Clone)]
pub struct PgBoard {
    pool: PgPool,
}

impl PgBoard {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn unavailable(e: impl Into<anyhow::Error>) -> StoreError {
    StoreError::Unavailable(e.into())
}

#[derive(sqlx::FromRow)]
struct RentalLineRow {
    #[sqlx(flatten)]
    rental: RentalRow,
    customer_name: Option<String>,
    book_title: Option<String>,
    read_at: DateTime<Utc>,
}

impl TryFrom<RentalLineRow> for RentalLine {
    type Error = anyhow::Error;

    fn try_from(row: RentalLineRow) -> anyhow::Result<Self> {
        Ok(RentalLine {
            rental: row.rental.try_into()?,
            customer_name: row.customer_name,
            book_title: row.book_title,
            read_at: row.read_at,
        })
    }
}

fn rental_lines(rows: Vec<RentalLineRow>) -> Result<Vec<RentalLine>, StoreError> {
    rows.into_iter()
        .map(RentalLine::try_from)
        .collect::<Result<_, _>>()
        .map_err(unavailable)
}

fn rental_board_query(condition: &str) -> String {
    format!(
        "SELECT {RENTAL_COLUMNS}, c.name AS customer_name, b.title AS book_title, \
         now() AS read_at FROM rentals r \
         LEFT JOIN customers c ON c.id = r.customer_id LEFT JOIN books b ON b.id = r.book_id \
         WHERE {condition}"
    )
}

#[derive(sqlx::FromRow)]
struct BookLineRow {
    #[sqlx(flatten)]
    book: BookRow,
    renter_rental_id: Option<Uuid>,
    renter_id: Option<Uuid>,
    renter_name: Option<String>,
    times_rented: i64,
}

impl TryFrom<BookLineRow> for BookLine {
    type Error = anyhow::Error;

    fn try_from(row: BookLineRow) -> anyhow::Result<Self> {
        let renter = match (row.renter_rental_id, row.renter_id) {
            (Some(rental_id), Some(customer_id)) => Some(Renter {
                rental_id,
                customer_id,
                customer_name: row.renter_name,
            }),
            _ => None,
        };
        Ok(BookLine {
            book: row.book.try_into()?,
            renter,
            times_rented: u32::try_from(row.times_rented)?,
        })
    }
}

impl BoardStore for PgBoard {
    async fn rentals(
        &self,
        filter: RentalFilter,
        page: Page,
    ) -> Result<Vec<RentalLine>, StoreError> {
        let rows: Vec<RentalLineRow> = sqlx::query_as(&format!(
            "{} ORDER BY r.id LIMIT $5",
            rental_board_query(
                "($1::uuid IS NULL OR r.customer_id = $1) AND ($2::uuid IS NULL OR r.book_id = $2) \
                 AND ($3::text IS NULL OR r.status = $3) AND ($4::uuid IS NULL OR r.id > $4)"
            )
        ))
        .bind(filter.customer_id)
        .bind(filter.book_id)
        .bind(filter.status.map(RentalStatus::as_str))
        .bind(page.after)
        .bind(i64::from(page.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rental_lines(rows)
    }

    async fn rental(&self, id: Uuid) -> Result<Option<RentalLine>, StoreError> {
        let rows: Vec<RentalLineRow> = sqlx::query_as(&rental_board_query("r.id = $1"))
            .bind(id)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(rental_lines(rows)?.pop())
    }

    async fn books(&self, page: Page) -> Result<Vec<BookLine>, StoreError> {
        // The renter is the book's RENTED rental (only one can be: rental's unique index);
        // times rented counts the rentals whose BookRented has arrived.
        let rows: Vec<BookLineRow> = sqlx::query_as(
            "SELECT b.id, b.title, b.author, b.rental_fee, b.retired, \
             held.id AS renter_rental_id, held.customer_id AS renter_id, c.name AS renter_name, \
             (SELECT count(*) FROM rentals r WHERE r.book_id = b.id AND r.rented_at IS NOT NULL) AS times_rented \
             FROM books b \
             LEFT JOIN LATERAL (SELECT r.id, r.customer_id FROM rentals r \
                 WHERE r.book_id = b.id AND r.status = 'RENTED' ORDER BY r.id DESC LIMIT 1) held ON true \
             LEFT JOIN customers c ON c.id = held.customer_id \
             WHERE $1::uuid IS NULL OR b.id > $1 ORDER BY b.id LIMIT $2",
        )
        .bind(page.after)
        .bind(i64::from(page.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)?;
        rows.into_iter()
            .map(BookLine::try_from)
            .collect::<Result<_, _>>()
            .map_err(unavailable)
    }
}
