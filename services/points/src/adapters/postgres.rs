//! Points on Postgres: earning's writes, inside the inbox transaction, and the statements'
//! reads.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::application::{EarningStore, Page, PointsStore, Statement, StoreError};
use crate::domain::{Completion, Credit, Points, Rental, RentalState};

fn unavailable(e: impl Into<anyhow::Error>) -> StoreError {
    StoreError::Unavailable(e.into())
}

#[derive(sqlx::FromRow)]
struct RentalRow {
    rental_id: Uuid,
    user_id: Uuid,
    rental_fee: i64,
    state: String,
}

impl TryFrom<RentalRow> for Rental {
    type Error = anyhow::Error;

    // The table's CHECK constraints hold the same rules; a row that breaks them is corrupt.
    fn try_from(row: RentalRow) -> anyhow::Result<Self> {
        Ok(Rental {
            id: row.rental_id,
            customer_id: row.user_id,
            rental_fee: u32::try_from(row.rental_fee)?,
            state: RentalState::parse(&row.state)
                .ok_or_else(|| anyhow::anyhow!("unknown rental state {}", row.state))?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct CreditRow {
    rental_id: Uuid,
    user_id: Uuid,
    book_id: Uuid,
    rental_fee: i64,
    points: i64,
    reason: String,
    earned_at: DateTime<Utc>,
}

impl TryFrom<CreditRow> for Credit {
    type Error = anyhow::Error;

    fn try_from(row: CreditRow) -> anyhow::Result<Self> {
        Ok(Credit {
            rental_id: row.rental_id,
            customer_id: row.user_id,
            book_id: row.book_id,
            rental_fee: u32::try_from(row.rental_fee)?,
            points: Points::new(u64::try_from(row.points)?),
            reason: Completion::parse(&row.reason)
                .ok_or_else(|| anyhow::anyhow!("unknown reason {}", row.reason))?,
            earned_at: row.earned_at,
        })
    }
}

// --- earning ---------------------------------------------------------------------------------

/// Earning's store on the connection of the inbox transaction.
pub struct PgEarnings<'c> {
    conn: &'c mut PgConnection,
}

impl<'c> PgEarnings<'c> {
    pub fn new(conn: &'c mut PgConnection) -> Self {
        Self { conn }
    }
}

impl EarningStore for PgEarnings<'_> {
    async fn rental(&mut self, id: Uuid) -> Result<Option<Rental>, StoreError> {
        let row: Option<RentalRow> = sqlx::query_as(
            "SELECT rental_id, user_id, rental_fee, state FROM rentals WHERE rental_id = $1 FOR UPDATE",
        )
        .bind(id)
        .fetch_optional(&mut *self.conn)
        .await
        .map_err(unavailable)?;
        row.map(Rental::try_from).transpose().map_err(unavailable)
    }

    async fn add_rental(&mut self, rental: &Rental) -> Result<bool, StoreError> {
        let added = sqlx::query(
            "INSERT INTO rentals (rental_id, user_id, rental_fee, state) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (rental_id) DO NOTHING",
        )
        .bind(rental.id)
        .bind(rental.customer_id)
        .bind(i64::from(rental.rental_fee))
        .bind(rental.state.as_str())
        .execute(&mut *self.conn)
        .await
        .map_err(unavailable)?;
        Ok(added.rows_affected() == 1)
    }

    async fn save_state(&mut self, rental: &Rental) -> Result<(), StoreError> {
        sqlx::query("UPDATE rentals SET state = $2 WHERE rental_id = $1")
            .bind(rental.id)
            .bind(rental.state.as_str())
            .execute(&mut *self.conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn credit(&mut self, credit: &Credit) -> Result<bool, StoreError> {
        let points = i64::try_from(credit.points.value()).map_err(unavailable)?;
        // One statement: the balance grows only by a ledger row that was inserted now.
        let credited = sqlx::query(
            "WITH credited AS ( \
                 INSERT INTO ledger (rental_id, user_id, book_id, rental_fee, points, reason, earned_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (rental_id) DO NOTHING \
                 RETURNING user_id, points) \
             INSERT INTO balances (user_id, points) SELECT user_id, points FROM credited \
             ON CONFLICT (user_id) DO UPDATE SET points = balances.points + EXCLUDED.points",
        )
        .bind(credit.rental_id)
        .bind(credit.customer_id)
        .bind(credit.book_id)
        .bind(i64::from(credit.rental_fee))
        .bind(points)
        .bind(credit.reason.as_str())
        .bind(credit.earned_at)
        .execute(&mut *self.conn)
        .await
        .map_err(unavailable)?;
        Ok(credited.rows_affected() == 1)
    }
}

// --- statements ------------------------------------------------------------------------------

#[derive(Clone)]
pub struct PgPoints {
    pool: PgPool,
}

impl PgPoints {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

impl PointsStore for PgPoints {
    async fn statement(&self, customer_id: Uuid, page: Page) -> Result<Statement, StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        // One snapshot for both reads, so the balance is always the sum of the whole history.
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        let balance: Option<i64> =
            sqlx::query_scalar("SELECT points FROM balances WHERE user_id = $1")
                .bind(customer_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(unavailable)?;
        let rows: Vec<CreditRow> = sqlx::query_as(
            "SELECT rental_id, user_id, book_id, rental_fee, points, reason, earned_at FROM ledger \
             WHERE user_id = $1 ORDER BY earned_at DESC, rental_id DESC LIMIT $2 OFFSET $3",
        )
        .bind(customer_id)
        .bind(i64::from(page.limit))
        .bind(i64::from(page.offset))
        .fetch_all(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        let balance = u64::try_from(balance.unwrap_or(0)).map_err(unavailable)?;
        Ok(Statement {
            customer_id,
            balance: Points::new(balance),
            history: rows
                .into_iter()
                .map(Credit::try_from)
                .collect::<Result<_, _>>()
                .map_err(unavailable)?,
        })
    }
}
