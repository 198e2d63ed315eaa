//! The account store on Postgres. A new account and its outbox event share one transaction.

use chrono::{DateTime, Utc};
use fleet_messaging::outbox;
use shared_events::UserRegistered;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::SERVICE;
use crate::application::{AccountStore, ActiveRentalStore, Added, SignInLimit, StoreError};
use crate::domain::{Account, Email, Name, PasswordHash, Role, UserId};

/// The unique index over `lower(email)`.
const EMAIL_UNIQUE: &str = "accounts_email_unique";

#[derive(Clone)]
pub struct PgAccountStore {
    pool: PgPool,
}

impl PgAccountStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

#[derive(sqlx::FromRow)]
struct AccountRow {
    id: Uuid,
    name: String,
    email: String,
    role: String,
    active_rentals: i32,
    created_at: DateTime<Utc>,
}

impl TryFrom<AccountRow> for Account {
    type Error = anyhow::Error;

    // The table's CHECK constraints hold the same rules; a row that breaks them is corrupt.
    fn try_from(row: AccountRow) -> anyhow::Result<Self> {
        Ok(Account {
            id: UserId(row.id),
            name: Name::parse(&row.name)?,
            email: Email::parse(&row.email)?,
            role: Role::parse(&row.role)
                .ok_or_else(|| anyhow::anyhow!("unknown role {}", row.role))?,
            active_rentals: u32::try_from(row.active_rentals)?,
            created_at: row.created_at,
        })
    }
}

const COLUMNS: &str = "id, name, email, role, active_rentals, created_at";

fn unavailable(e: impl Into<anyhow::Error>) -> StoreError {
    StoreError::Unavailable(e.into())
}

/// Active-rental counts, on the connection of the inbox transaction.
pub struct PgActiveRentals<'c> {
    conn: &'c mut PgConnection,
}

impl<'c> PgActiveRentals<'c> {
    pub fn new(conn: &'c mut PgConnection) -> Self {
        Self { conn }
    }
}

impl ActiveRentalStore for PgActiveRentals<'_> {
    async fn account(&mut self, id: UserId) -> Result<Option<Account>, StoreError> {
        let row: Option<AccountRow> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM accounts WHERE id = $1 FOR UPDATE"
        ))
        .bind(id.0)
        .fetch_optional(&mut *self.conn)
        .await
        .map_err(unavailable)?;
        row.map(Account::try_from).transpose().map_err(unavailable)
    }

    async fn save_active_rentals(&mut self, account: &Account) -> Result<(), StoreError> {
        sqlx::query("UPDATE accounts SET active_rentals = $2 WHERE id = $1")
            .bind(account.id.0)
            .bind(i32::try_from(account.active_rentals).unwrap_or(i32::MAX))
            .execute(&mut *self.conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

impl AccountStore for PgAccountStore {
    async fn sign_in_locked(
        &self,
        attempt_key: &str,
    ) -> Result<Option<std::time::Duration>, StoreError> {
        let left: Option<f64> = sqlx::query_scalar(
            "SELECT extract(epoch FROM locked_until - now())::float8 FROM sign_in_failures \
             WHERE attempt_key = $1 AND locked_until > now()",
        )
        .bind(attempt_key)
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(left.map(|secs| std::time::Duration::from_secs_f64(secs.max(0.0).ceil())))
    }

    async fn sign_in_failed(
        &self,
        attempt_key: &str,
        limit: SignInLimit,
    ) -> Result<(), StoreError> {
        // One statement: concurrent failures each count. A window that is over starts again.
        sqlx::query(
            "INSERT INTO sign_in_failures AS f (attempt_key, failures, first_failed_at) \
             VALUES ($1, 1, now()) \
             ON CONFLICT (attempt_key) DO UPDATE SET \
               failures = CASE WHEN f.first_failed_at < now() - make_interval(secs => $2) \
                               THEN 1 ELSE f.failures + 1 END, \
               first_failed_at = CASE WHEN f.first_failed_at < now() - make_interval(secs => $2) \
                                      THEN now() ELSE f.first_failed_at END, \
               locked_until = CASE WHEN f.first_failed_at >= now() - make_interval(secs => $2) \
                                        AND f.failures + 1 >= $3 \
                                   THEN now() + make_interval(secs => $2) ELSE f.locked_until END",
        )
        .bind(attempt_key)
        .bind(limit.window.as_secs_f64())
        .bind(i32::try_from(limit.max_failures).unwrap_or(i32::MAX))
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn sign_in_succeeded(&self, attempt_key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sign_in_failures WHERE attempt_key = $1")
            .bind(attempt_key)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn forget_old_sign_in_failures(
        &self,
        window: std::time::Duration,
        batch: i64,
    ) -> Result<u64, StoreError> {
        let forgotten = sqlx::query(
            "DELETE FROM sign_in_failures WHERE attempt_key IN ( \
                 SELECT attempt_key FROM sign_in_failures \
                 WHERE first_failed_at < now() - make_interval(secs => $1) \
                   AND (locked_until IS NULL OR locked_until < now()) \
                 LIMIT $2)",
        )
        .bind(window.as_secs_f64())
        .bind(batch)
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(forgotten.rows_affected())
    }

    async fn add(
        &self,
        account: &Account,
        hash: &PasswordHash,
        event: Option<UserRegistered>,
    ) -> Result<Added, StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let inserted = sqlx::query(
            "INSERT INTO accounts (id, name, email, password_hash, role, active_rentals, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(account.id.0)
        .bind(account.name.as_str())
        .bind(account.email.as_str())
        .bind(hash.as_str())
        .bind(account.role.as_str())
        .bind(account.active_rentals as i32)
        .bind(account.created_at)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            // A concurrent registration of the address waits on the index and then fails here:
            // the transaction rolls back with nothing written.
            Err(sqlx::Error::Database(e))
                if e.is_unique_violation() && e.constraint() == Some(EMAIL_UNIQUE) =>
            {
                return Ok(Added::EmailTaken);
            }
            Err(e) => return Err(unavailable(e)),
        }
        if let Some(event) = event {
            outbox::enqueue(&mut tx, SERVICE, event)
                .await
                .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(Added::Stored)
    }

    async fn get(&self, id: UserId) -> Result<Option<Account>, StoreError> {
        let row: Option<AccountRow> =
            sqlx::query_as(&format!("SELECT {COLUMNS} FROM accounts WHERE id = $1"))
                .bind(id.0)
                .fetch_optional(&self.pool)
                .await
                .map_err(unavailable)?;
        row.map(Account::try_from).transpose().map_err(unavailable)
    }

    async fn credentials(
        &self,
        email: &Email,
    ) -> Result<Option<(Account, PasswordHash)>, StoreError> {
        // lower() on both sides, as the unique index has it: Postgres alone decides which
        // addresses are the same.
        let row: Option<CredentialsRow> = sqlx::query_as(&format!(
            "SELECT password_hash, {COLUMNS} FROM accounts WHERE lower(email) = lower($1)"
        ))
        .bind(email.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(unavailable)?;
        row.map(|row| -> anyhow::Result<_> {
            Ok((
                Account::try_from(row.account)?,
                PasswordHash::new(row.password_hash),
            ))
        })
        .transpose()
        .map_err(unavailable)
    }
}

#[derive(sqlx::FromRow)]
struct CredentialsRow {
    password_hash: String,
    #[sqlx(flatten)]
    account: AccountRow,
}
