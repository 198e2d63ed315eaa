//! The account store on Postgres. A new account and its outbox event share one transaction.

use chrono::{DateTime, Utc};
use fleet_messaging::outbox;
use sha2::{Digest, Sha256};
use shared_events::UserRegistered;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::SERVICE;
use crate::application::{AccountStore, ActiveRentalStore, Added, Guess, StoreError};
use crate::domain::{
    Account, ClientAddress, Email, EmailKey, GuessingPolicy, Name, PasswordHash, Role, UserId,
};

/// The unique index over the canonical address, `email_key`.
const EMAIL_UNIQUE: &str = "accounts_email_key_unique";

/// What guesses are counted under: a SHA-256 of the canonical address, so that a list of
/// addresses an attacker tried is not kept in clear.
fn address_key(address: &EmailKey) -> String {
    format!("{:x}", Sha256::digest(address.as_str().as_bytes()))
}

#[derive(Clone)]
pub struct PgAccountStore {
    pool: PgPool,
}

impl PgAccountStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Gives accounts stored before the canonical form its key: the migration set `lower()`,
    /// which is that form for ASCII addresses only. Run at start; a pair that the canonical form
    /// finds to be one address is left as it is, and reported, for an operator to settle.
    pub async fn canonicalise_addresses(&self) -> anyhow::Result<u64> {
        // More bytes than characters: not ASCII.
        let rows: Vec<(Uuid, String, String)> = sqlx::query_as(
            "SELECT id, email, email_key FROM accounts WHERE octet_length(email) <> length(email)",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut rewritten = 0;
        for (id, email, key) in rows {
            let canonical = EmailKey::of(&email);
            if canonical.as_str() == key {
                continue;
            }
            match sqlx::query("UPDATE accounts SET email_key = $2 WHERE id = $1")
                .bind(id)
                .bind(canonical.as_str())
                .execute(&self.pool)
                .await
            {
                Ok(_) => rewritten += 1,
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    tracing::error!(user_id = %id, "two accounts have one canonical address; this one keeps its old key until an operator settles which stays");
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(rewritten)
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
    async fn count_guess(
        &self,
        address: &EmailKey,
        client: ClientAddress,
        policy: GuessingPolicy,
    ) -> Result<Guess, StoreError> {
        // One statement, so concurrent attempts queue on the rows and each sees the others'
        // counts. A window that is over starts again. A refused attempt (past the client's
        // limit) is not counted against the address: it checks nothing.
        let (failures, left, earlier): (i32, f64, Option<i32>) = sqlx::query_as(
            "WITH guess AS ( \
               INSERT INTO sign_in_guesses AS g (address_key, client, failures, first_failed_at) \
               VALUES ($1, $2, 1, now()) \
               ON CONFLICT (address_key, client) DO UPDATE SET \
                 failures = CASE WHEN g.first_failed_at < now() - make_interval(secs => $3) \
                                 THEN 1 ELSE least(g.failures + 1, $4 + 1) END, \
                 first_failed_at = CASE WHEN g.first_failed_at < now() - make_interval(secs => $3) \
                                        THEN now() ELSE g.first_failed_at END \
               RETURNING failures, first_failed_at), \
             pressure AS ( \
               INSERT INTO sign_in_pressure AS p (address_key, failures, first_failed_at) \
               SELECT $1, 1, now() FROM guess WHERE guess.failures <= $4 \
               ON CONFLICT (address_key) DO UPDATE SET \
                 failures = CASE WHEN p.first_failed_at < now() - make_interval(secs => $3) \
                                 THEN 1 ELSE p.failures + 1 END, \
                 first_failed_at = CASE WHEN p.first_failed_at < now() - make_interval(secs => $3) \
                                        THEN now() ELSE p.first_failed_at END \
               RETURNING failures) \
             SELECT guess.failures, \
                    extract(epoch FROM guess.first_failed_at + make_interval(secs => $3) - now())::float8, \
                    (SELECT failures - 1 FROM pressure) \
             FROM guess",
        )
        .bind(address_key(address))
        .bind(client.to_string())
        .bind(policy.window.as_secs_f64())
        .bind(i32::try_from(policy.max_failures).unwrap_or(i32::MAX - 1))
        .fetch_one(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(match earlier {
            Some(earlier) if u32::try_from(failures).unwrap_or(u32::MAX) <= policy.max_failures => {
                Guess::Counted {
                    earlier_failures: u32::try_from(earlier).unwrap_or(0),
                }
            }
            _ => Guess::Refused(std::time::Duration::from_secs_f64(left.max(1.0).ceil())),
        })
    }

    async fn withdraw_guess(
        &self,
        address: &EmailKey,
        client: ClientAddress,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "WITH guess AS ( \
               UPDATE sign_in_guesses SET failures = greatest(failures - 1, 0) \
               WHERE address_key = $1 AND client = $2) \
             UPDATE sign_in_pressure SET failures = greatest(failures - 1, 0) \
             WHERE address_key = $1",
        )
        .bind(address_key(address))
        .bind(client.to_string())
        .execute(&self.pool)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn sign_in_succeeded(
        &self,
        address: &EmailKey,
        client: ClientAddress,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "WITH guess AS ( \
               DELETE FROM sign_in_guesses WHERE address_key = $1 AND client = $2) \
             UPDATE sign_in_pressure SET failures = greatest(failures - 1, 0) \
             WHERE address_key = $1",
        )
        .bind(address_key(address))
        .bind(client.to_string())
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
        let mut forgotten = 0;
        for table in ["sign_in_guesses", "sign_in_pressure"] {
            let done = sqlx::query(&format!(
                "DELETE FROM {table} WHERE ctid IN ( \
                     SELECT ctid FROM {table} \
                     WHERE first_failed_at < now() - make_interval(secs => $1) \
                     LIMIT $2)"
            ))
            .bind(window.as_secs_f64())
            .bind(batch)
            .execute(&self.pool)
            .await
            .map_err(unavailable)?;
            forgotten += done.rows_affected();
        }
        Ok(forgotten)
    }

    async fn email_taken(&self, email: &Email) -> Result<bool, StoreError> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM accounts WHERE email_key = $1)")
            .bind(email.key().as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(unavailable)
    }

    async fn add(
        &self,
        account: &Account,
        hash: &PasswordHash,
        event: Option<UserRegistered>,
    ) -> Result<Added, StoreError> {
        let mut tx = self.pool.begin().await.map_err(unavailable)?;
        let inserted = sqlx::query(
            "INSERT INTO accounts \
               (id, name, email, email_key, password_hash, role, active_rentals, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(account.id.0)
        .bind(account.name.as_str())
        .bind(account.email.as_str())
        .bind(account.email.key().as_str())
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
        // The canonical form the unique index holds: the service, not the server's locale,
        // decides which spellings are one address.
        let row: Option<CredentialsRow> = sqlx::query_as(&format!(
            "SELECT password_hash, {COLUMNS} FROM accounts WHERE email_key = $1"
        ))
        .bind(email.key().as_str())
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
