//! The payment store on Postgres. Every write and its outbox event share one transaction; a
//! cancelled rental's refund shares the inbox's.

use chrono::{DateTime, Utc};
use fleet_messaging::outbox;
use shared_events::{PaymentApproved, PaymentRefunded};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::SERVICE;
use crate::application::{Added, PaymentStore, RefundStore, StoreError};
use crate::domain::{Amount, Payment, PaymentError, PaymentId, PaymentStatus};

#[derive(Clone)]
pub struct PgPaymentStore {
    pool: PgPool,
}

impl PgPaymentStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[derive(sqlx::FromRow)]
struct PaymentRow {
    id: Uuid,
    rental_id: Uuid,
    user_id: Uuid,
    amount: i32,
    status: String,
    created_at: DateTime<Utc>,
    refunded_at: Option<DateTime<Utc>>,
}

impl TryFrom<PaymentRow> for Payment {
    type Error = anyhow::Error;

    // The table's CHECK constraints hold the same rules; a row that breaks them is corrupt.
    fn try_from(row: PaymentRow) -> anyhow::Result<Self> {
        Ok(Payment {
            id: PaymentId(row.id),
            rental_id: row.rental_id,
            user_id: row.user_id,
            amount: Amount::parse(row.amount.into())?,
            status: PaymentStatus::parse(&row.status)
                .ok_or_else(|| anyhow::anyhow!("unknown status {}", row.status))?,
            created_at: row.created_at,
            refunded_at: row.refunded_at,
        })
    }
}

const COLUMNS: &str = "id, rental_id, user_id, amount, status, created_at, refunded_at";

fn unavailable(e: impl Into<anyhow::Error>) -> StoreError {
    StoreError::Unavailable(e.into())
}

async fn fetch(
    conn: &mut PgConnection,
    filter: &str,
    value: Uuid,
) -> anyhow::Result<Option<Payment>> {
    let row: Option<PaymentRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM payments WHERE {filter}"))
            .bind(value)
            .fetch_optional(conn)
            .await?;
    row.map(Payment::try_from).transpose()
}

/// Loads a payment and locks it until the transaction ends.
async fn lock(conn: &mut PgConnection, id: PaymentId) -> anyhow::Result<Option<Payment>> {
    fetch(conn, "id = $1 FOR UPDATE", id.0).await
}

/// Stores a refunded payment and its `PaymentRefunded`, in the caller's transaction.
async fn refunded(
    conn: &mut PgConnection,
    payment: &Payment,
    event: PaymentRefunded,
) -> Result<(), sqlx::Error> {
    // Only the status and the refund time ever change.
    sqlx::query("UPDATE payments SET status = $2, refunded_at = $3 WHERE id = $1")
        .bind(payment.id.0)
        .bind(payment.status.as_str())
        .bind(payment.refunded_at)
        .execute(&mut *conn)
        .await?;
    outbox::enqueue(conn, SERVICE, event).await?;
    Ok(())
}

/// Refunds of cancelled rentals, on the connection of the inbox transaction.
pub struct PgRefunds<'c> {
    conn: &'c mut PgConnection,
}

impl<'c> PgRefunds<'c> {
    pub fn new(conn: &'c mut PgConnection) -> Self {
        Self { conn }
    }
}

impl RefundStore for PgRefunds<'_> {
    async fn payment_of_rental(&mut self, rental_id: Uuid) -> Result<Option<Payment>, StoreError> {
        fetch(self.conn, "rental_id = $1 FOR UPDATE", rental_id)
            .await
            .map_err(unavailable)
    }

    async fn save_refund(
        &mut self,
        payment: &Payment,
        event: PaymentRefunded,
    ) -> Result<(), StoreError> {
        refunded(self.conn, payment, event)
            .await
            .map_err(unavailable)
    }
}

impl PaymentStore for PgPaymentStore {
    async fn add(
        &self,
        payment: &Payment,
        event: Option<PaymentApproved>,
    ) -> Result<Added, StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        // A concurrent insert for the same rental makes this one wait for its outcome: once it
        // commits, nothing is inserted here and its row is read back below.
        let inserted = sqlx::query(
            "INSERT INTO payments (id, rental_id, user_id, amount, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (rental_id) DO NOTHING",
        )
        .bind(payment.id.0)
        .bind(payment.rental_id)
        .bind(payment.user_id)
        .bind(payment.amount.value() as i32)
        .bind(payment.status.as_str())
        .bind(payment.created_at)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?
        .rows_affected()
            == 1;
        if !inserted {
            // Read committed: this statement sees the row the other attempt committed.
            let stored = fetch(&mut tx, "rental_id = $1", payment.rental_id)
                .await
                .map_err(unavailable)?
                .ok_or_else(|| {
                    unavailable(anyhow::anyhow!(
                        "rental {} conflicted but has no payment",
                        payment.rental_id
                    ))
                })?;
            return Ok(Added::Existing(stored));
        }
        if let Some(event) = event {
            outbox::enqueue(&mut tx, SERVICE, event)
                .await
                .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(Added::Stored)
    }

    async fn get(&self, id: PaymentId) -> Result<Option<Payment>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(unavailable)?;
        fetch(&mut conn, "id = $1", id.0).await.map_err(unavailable)
    }

    async fn for_rental(&self, rental_id: Uuid) -> Result<Option<Payment>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(unavailable)?;
        fetch(&mut conn, "rental_id = $1", rental_id)
            .await
            .map_err(unavailable)
    }

    async fn change<F>(
        &self,
        id: PaymentId,
        change: F,
    ) -> Result<Option<Result<Payment, PaymentError>>, StoreError>
    where
        F: FnOnce(&mut Payment) -> Result<Option<PaymentRefunded>, PaymentError> + Send + 'static,
    {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let Some(mut payment) = lock(&mut tx, id).await.map_err(unavailable)? else {
            return Ok(None);
        };
        let event = match change(&mut payment) {
            Ok(Some(event)) => event,
            Ok(None) => return Ok(Some(Ok(payment))),
            Err(rule) => return Ok(Some(Err(rule))),
        };
        refunded(&mut tx, &payment, event)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        Ok(Some(Ok(payment)))
    }
}
