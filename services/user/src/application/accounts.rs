use chrono::{DateTime, SubsecRound, Utc};

use sha2::{Digest, Sha256};

use super::ports::{
    AccessToken, AccountStore, Added, HashError, PasswordHasher, SignInLimit, StoreError,
    TokenIssuer,
};
use crate::domain::{Account, Email, Name, Password, UserId};

/// Microseconds: what Postgres keeps, so an answer and a later read agree.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("no user {0}")]
    NotFound(UserId),
    /// One answer for an unknown email and a wrong password, so it tells nobody which.
    #[error("the email or the password is wrong")]
    InvalidGrant,
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Too many failed sign-ins with this address: come back after the lock-out. The same for
    /// an address with no account, so it tells nothing.
    #[error("too many failed sign-ins with this address; try again in {} s", .0.as_secs().max(1))]
    SignInLocked(std::time::Duration),
    /// Passwords are being checked as fast as the service can: come back in a moment.
    #[error("too many sign-ins and registrations at once; try again in a moment")]
    Busy,
    /// Hashing or signing failed: our fault, not the caller's.
    #[error(transparent)]
    Internal(anyhow::Error),
}

impl From<HashError> for AccountsError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy => AccountsError::Busy,
            HashError::Failed(e) => AccountsError::Internal(e),
        }
    }
}

/// What failed sign-ins are counted under: the address as typed, trimmed and lower-cased (as
/// the unique index compares emails), hashed so that the addresses tried are not kept.
fn attempt_key(username: &str) -> String {
    format!(
        "{:x}",
        Sha256::digest(username.trim().to_lowercase().as_bytes())
    )
}

/// What bootstrapping the configured manager found.
#[derive(Debug, Clone)]
pub enum Bootstrap {
    Created(Account),
    /// An account already has the email; it is left as it is, whatever its role.
    Existing(Account),
}

/// The account use cases: registering, signing in, reading one's profile, and the counts kept
/// from rentals (in the consumer, inside its inbox transaction).
#[derive(Clone)]
pub struct Accounts<S, H, I> {
    store: S,
    hasher: H,
    issuer: I,
    sign_in_limit: SignInLimit,
}

impl<S: AccountStore, H: PasswordHasher, I: TokenIssuer> Accounts<S, H, I> {
    pub fn new(store: S, hasher: H, issuer: I, sign_in_limit: SignInLimit) -> Self {
        Self {
            store,
            hasher,
            issuer,
            sign_in_limit,
        }
    }

    /// Opens a customer's account and announces it.
    pub async fn register(
        &self,
        name: Name,
        email: Email,
        password: Password,
    ) -> Result<Account, AccountsError> {
        let hash = self.hasher.hash(password).await?;
        let (account, event) = Account::register(name, email, now());
        match self.store.add(&account, &hash, Some(event)).await? {
            Added::Stored => {
                tracing::info!(user_id = %account.id, "customer registered");
                Ok(account)
            }
            Added::EmailTaken => Err(AccountsError::EmailTaken),
        }
    }

    /// Signs in with an email and a password (OAuth2's resource owner password grant).
    pub async fn issue_token(
        &self,
        username: &str,
        password: String,
    ) -> Result<AccessToken, AccountsError> {
        // Failures are counted per address, whether an account has it or not, so a lock-out
        // tells nothing; a locked address costs no password check.
        let attempt_key = attempt_key(username);
        if let Some(wait) = self.store.sign_in_locked(&attempt_key).await? {
            tracing::info!("sign-in refused: the address is locked out");
            return Err(AccountsError::SignInLocked(wait));
        }
        // An address that cannot exist is treated as an unknown one, down to the time taken.
        let found = match Email::parse(username) {
            Ok(email) => self.store.credentials(&email).await?,
            Err(_) => None,
        };
        let (account, hash) = found.unzip();
        let valid = self.hasher.verify(password, hash).await?;
        match account {
            Some(account) if valid => {
                self.store.sign_in_succeeded(&attempt_key).await?;
                let token = self
                    .issuer
                    .issue(&account)
                    .await
                    .map_err(AccountsError::Internal)?;
                tracing::info!(user_id = %account.id, role = account.role.as_str(), "token issued");
                Ok(token)
            }
            _ => {
                self.store
                    .sign_in_failed(&attempt_key, self.sign_in_limit)
                    .await?;
                tracing::info!("sign-in refused");
                Err(AccountsError::InvalidGrant)
            }
        }
    }

    /// Forgets failure counts that no longer lock anything out.
    pub async fn forget_old_sign_in_failures(&self) -> Result<u64, StoreError> {
        self.store
            .forget_old_sign_in_failures(self.sign_in_limit.window, 1000)
            .await
    }

    pub async fn account(&self, id: UserId) -> Result<Account, AccountsError> {
        self.store.get(id).await?.ok_or(AccountsError::NotFound(id))
    }

    /// Opens the manager's account named by configuration, unless an account has that email
    /// already: running it again, or on every replica, changes nothing, and a customer who
    /// registered the address first stays a customer.
    pub async fn bootstrap_manager(
        &self,
        name: Name,
        email: Email,
        password: Password,
    ) -> Result<Bootstrap, AccountsError> {
        if let Some((account, _)) = self.store.credentials(&email).await? {
            return Ok(Bootstrap::Existing(account));
        }
        let hash = self.hasher.hash(password).await?;
        let account = Account::manager(name, email, now());
        match self.store.add(&account, &hash, None).await? {
            Added::Stored => Ok(Bootstrap::Created(account)),
            // Another replica made it meanwhile.
            Added::EmailTaken => match self.store.credentials(&account.email).await? {
                Some((existing, _)) => Ok(Bootstrap::Existing(existing)),
                None => Err(AccountsError::Internal(anyhow::anyhow!(
                    "the manager's email is taken but no account has it"
                ))),
            },
        }
    }
}
