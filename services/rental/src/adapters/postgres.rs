//! Rentals and the catalogue replica on Postgres. Every state change and its outbox event share
//! one transaction.

use std::time::Duration;

use chrono::{DateTime, Utc};
use fleet_messaging::outbox;
use shared_events::BookRented;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::SERVICE;
use crate::application::{CatalogueStore, Opened, RentalChange, RentalStore, StoreError};
use crate::domain::{CatalogueEntry, IdempotencyKey, Rental, RentalError, RentalStatus};

#[derive(Clone)]
pub struct PgRentalStore {
    pool: PgPool,
}

impl PgRentalStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn unavailable(e: impl Into<anyhow::Error>) -> StoreError {
    StoreError::Unavailable(e.into())
}

#[derive(sqlx::FromRow)]
struct RentalRow {
    id: Uuid,
    book_id: Uuid,
    user_id: Uuid,
    rental_fee: i32,
    status: String,
    payment_id: Option<Uuid>,
    created_at: DateTime<Utc>,
    rented_at: Option<DateTime<Utc>>,
    due_at: Option<DateTime<Utc>>,
    cancelled_at: Option<DateTime<Utc>>,
    returned_at: Option<DateTime<Utc>>,
}

impl TryFrom<RentalRow> for Rental {
    type Error = anyhow::Error;
    fn try_from(row: RentalRow) -> anyhow::Result<Self> {
        Ok(Rental {
            id: row.id,
            book_id: row.book_id,
            user_id: row.user_id,
            rental_fee: u32::try_from(row.rental_fee)?,
            status: RentalStatus::parse(&row.status)
                .ok_or_else(|| anyhow::anyhow!("unknown status {}", row.status))?,
            payment_id: row.payment_id,
            created_at: row.created_at,
            rented_at: row.rented_at,
            due_at: row.due_at,
            cancelled_at: row.cancelled_at,
            returned_at: row.returned_at,
        })
    }
}

/// The first key of the advisory lock one customer's rents take turns on (the second is the
/// customer's hash), apart from every other lock of the schema.
const CUSTOMER_RENTS_LOCK: i32 = 1;

const COLUMNS: &str = "id, book_id, user_id, rental_fee, status, payment_id, created_at, rented_at, due_at, cancelled_at, returned_at";

/// The catalogue replica's writes, on the connection of the inbox transaction.
pub struct PgCatalogue<'c> {
    conn: &'c mut PgConnection,
}

impl<'c> PgCatalogue<'c> {
    pub fn new(conn: &'c mut PgConnection) -> Self {
        Self { conn }
    }
}

impl CatalogueStore for PgCatalogue<'_> {
    async fn list(
        &mut self,
        book_id: Uuid,
        title: &str,
        rental_fee: u32,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO catalogue (book_id, title, rental_fee, updated_at) VALUES ($1, $2, $3, now()) \
             ON CONFLICT (book_id) DO UPDATE SET title = $2, rental_fee = $3, updated_at = now()",
        )
        .bind(book_id)
        .bind(title)
        .bind(rental_fee as i32)
        .execute(&mut *self.conn)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn retire(&mut self, book_id: Uuid) -> Result<bool, StoreError> {
        let retired = sqlx::query(
            "UPDATE catalogue SET retired = true, updated_at = now() WHERE book_id = $1",
        )
        .bind(book_id)
        .execute(&mut *self.conn)
        .await
        .map_err(unavailable)?;
        Ok(retired.rows_affected() == 1)
    }
}

impl RentalStore for PgRentalStore {
    async fn book(&self, book_id: Uuid) -> Result<Option<CatalogueEntry>, StoreError> {
        let row: Option<(Uuid, String, i32, bool)> = sqlx::query_as(
            "SELECT book_id, title, rental_fee, retired FROM catalogue WHERE book_id = $1",
        )
        .bind(book_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        row.map(|(book_id, title, fee, retired)| {
            Ok(CatalogueEntry {
                book_id,
                title,
                rental_fee: u32::try_from(fee).map_err(unavailable)?,
                retired,
            })
        })
        .transpose()
    }

    async fn open(
        &self,
        rental: &Rental,
        max_active: u32,
        key: Option<&IdempotencyKey>,
    ) -> Result<Opened, StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        // One customer's rents take turns here (a lock for the transaction), so the count below
        // sees every rental a concurrent rent of theirs opened: the limit holds under any
        // concurrency. The lock is taken in a statement of its own because a statement's
        // snapshot is taken when it starts.
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2::text))")
            .bind(CUSTOMER_RENTS_LOCK)
            .bind(rental.user_id)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        let inserted = sqlx::query(
            // updated_at is the database's time: the reconciler compares it with the database's
            // now(), which a drifting service clock must not sway. A key already used is found
            // before anything else is checked (ON CONFLICT's arbiter), so its rent is answered
            // even when the book is now taken by it or the customer at their limit.
            "INSERT INTO rentals (id, book_id, user_id, rental_fee, status, created_at, updated_at, idempotency_key) \
             SELECT $1, $2, $3, $4, $5, $6, now(), $8 \
             WHERE (SELECT count(*) FROM rentals \
                    WHERE user_id = $3 AND status IN ('PAYMENT_PENDING', 'RENTED')) < $7 \
             ON CONFLICT (user_id, idempotency_key) \
                WHERE idempotency_key IS NOT NULL AND status <> 'PAYMENT_FAILED' DO NOTHING",
        )
        .bind(rental.id)
        .bind(rental.book_id)
        .bind(rental.user_id)
        .bind(rental.rental_fee as i32)
        .bind(rental.status.as_str())
        .bind(rental.created_at)
        .bind(i64::from(max_active))
        .bind(key.map(IdempotencyKey::as_str))
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(done) if done.rows_affected() == 0 => {
                let Some(key) = key else {
                    return Err(StoreError::LimitReached);
                };
                let earlier: Option<Uuid> = sqlx::query_scalar(
                    "SELECT id FROM rentals WHERE user_id = $1 AND idempotency_key = $2 \
                     AND status <> 'PAYMENT_FAILED'",
                )
                .bind(rental.user_id)
                .bind(key.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?;
                earlier.map(Opened::Earlier).ok_or(StoreError::LimitReached)
            }
            Ok(_) => tx.commit().await.map(|()| Opened::New).map_err(unavailable),
            Err(sqlx::Error::Database(e))
                if e.constraint() == Some("rentals_one_active_per_book") =>
            {
                Err(StoreError::BookTaken)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn mark_paid(&self, rental: &Rental, event: BookRented) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let updated = sqlx::query(
            "UPDATE rentals SET status = 'RENTED', payment_id = $2, rented_at = $3, due_at = $4, updated_at = now() \
             WHERE id = $1 AND status = 'PAYMENT_PENDING'",
        )
        .bind(rental.id)
        .bind(rental.payment_id)
        .bind(rental.rented_at)
        .bind(rental.due_at)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        if updated.rows_affected() == 0 {
            return Ok(false);
        }
        outbox::enqueue(&mut tx, SERVICE, event)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(true)
    }

    async fn mark_failed(&self, rental_id: Uuid, unsettled: bool) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE rentals SET status = 'PAYMENT_FAILED', payment_unsettled = $2, updated_at = now() \
             WHERE id = $1 AND status = 'PAYMENT_PENDING'",
        )
        .bind(rental_id)
        .bind(unsettled)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn get(&self, id: Uuid) -> Result<Option<Rental>, StoreError> {
        let row: Option<RentalRow> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM rentals WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?;
        row.map(Rental::try_from).transpose().map_err(unavailable)
    }

    async fn change<F>(
        &self,
        id: Uuid,
        change: F,
    ) -> Result<Option<Result<Rental, RentalError>>, StoreError>
    where
        F: FnOnce(&mut Rental) -> Result<RentalChange, RentalError> + Send + 'static,
    {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let row: Option<RentalRow> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM rentals WHERE id = $1 FOR UPDATE"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(unavailable)?;
        let Some(mut rental) = row.map(Rental::try_from).transpose().map_err(unavailable)? else {
            return Ok(None);
        };
        let event = match change(&mut rental) {
            Ok(event) => event,
            Err(rule) => return Ok(Some(Err(rule))),
        };
        sqlx::query("UPDATE rentals SET status = $2, cancelled_at = $3, returned_at = $4, updated_at = now() WHERE id = $1")
            .bind(rental.id)
            .bind(rental.status.as_str())
            .bind(rental.cancelled_at)
            .bind(rental.returned_at)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        match event {
            RentalChange::Cancelled(e) => outbox::enqueue(&mut tx, SERVICE, e).await,
            RentalChange::Returned(e) => outbox::enqueue(&mut tx, SERVICE, e).await,
        }
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(Some(Ok(rental)))
    }

    async fn fail_stale(&self, age: Duration) -> Result<u64, StoreError> {
        let failed = sqlx::query(
            "UPDATE rentals SET status = 'PAYMENT_FAILED', payment_unsettled = true \
             WHERE status = 'PAYMENT_PENDING' AND updated_at < now() - make_interval(secs => $1)",
        )
        .bind(age.as_secs_f64())
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(failed.rows_affected())
    }

    async fn lease_unsettled(&self, age: Duration, limit: i64) -> Result<Vec<Uuid>, StoreError> {
        sqlx::query_scalar(
            "UPDATE rentals SET updated_at = now() WHERE id IN ( \
                 SELECT id FROM rentals WHERE payment_unsettled AND updated_at < now() - make_interval(secs => $1) \
                 ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
             RETURNING id",
        )
        .bind(age.as_secs_f64())
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(unavailable)
    }

    async fn expire_due(&self, batch: i64) -> Result<Vec<Rental>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        // Due by the database's clock, one clock for every replica.
        let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable)?;
        let rows: Vec<RentalRow> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM rentals WHERE status = 'RENTED' AND due_at <= $1 \
             ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED"
        ))
        .bind(now)
        .bind(batch)
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        let mut expired = Vec::with_capacity(rows.len());
        for row in rows {
            let mut rental = Rental::try_from(row).map_err(unavailable)?;
            let Ok(event) = rental.expire(now) else {
                continue;
            };
            sqlx::query(
                "UPDATE rentals SET status = $2, returned_at = $3, updated_at = now() WHERE id = $1",
            )
            .bind(rental.id)
            .bind(rental.status.as_str())
            .bind(rental.returned_at)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
            outbox::enqueue(&mut tx, SERVICE, event)
                .await
                .map_err(unavailable)?;
            expired.push(rental);
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(expired)
    }

    async fn settle(&self, rental_id: Uuid) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE rentals SET payment_unsettled = false, updated_at = now() WHERE id = $1",
        )
        .bind(rental_id)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }
}
