use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use governor::{DefaultDirectRateLimiter, Quota};

use super::ports::{
    AccessToken, AccountStore, Added, Guess, HashError, PasswordHasher, StoreError, TokenIssuer,
};
use crate::domain::{
    Account, ClientAddress, Email, EmailKey, GuessingPolicy, Name, Password, UserId,
};

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
    /// Too many failed sign-ins with this address from this client: come back after the
    /// window. The same for an address with no account, so it tells nothing.
    #[error("too many failed sign-ins with this address from here; try again in {} s", .0.as_secs().max(1))]
    SignInLocked(Duration),
    /// The service's registrations budget is spent: come back in a moment.
    #[error("too many registrations at once; try again in {} s", .0.as_secs().max(1))]
    RegistrationsBusy(Duration),
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

/// How many new accounts this service opens a second, whoever asks: each costs a hash, and
/// the hashing capacity is shared with sign-ins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrationBudget {
    pub per_second: u32,
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
    guessing: GuessingPolicy,
    registrations: Arc<DefaultDirectRateLimiter>,
}

impl<S: AccountStore, H: PasswordHasher, I: TokenIssuer> Accounts<S, H, I> {
    pub fn new(
        store: S,
        hasher: H,
        issuer: I,
        guessing: GuessingPolicy,
        registrations: RegistrationBudget,
    ) -> Self {
        let per_second = std::num::NonZeroU32::new(registrations.per_second)
            .unwrap_or(std::num::NonZeroU32::MIN);
        Self {
            store,
            hasher,
            issuer,
            guessing,
            registrations: Arc::new(DefaultDirectRateLimiter::direct(Quota::per_second(
                per_second,
            ))),
        }
    }

    /// Opens a customer's account and announces it. A taken address is found before any hash
    /// (a storm of registrations for one costs a lookup each), and the hashes of new ones are
    /// within the service's budget.
    pub async fn register(
        &self,
        name: Name,
        email: Email,
        password: Password,
    ) -> Result<Account, AccountsError> {
        if self.store.email_taken(&email).await? {
            return Err(AccountsError::EmailTaken);
        }
        if let Err(not_until) = self.registrations.check() {
            let now = governor::clock::Clock::now(self.registrations.clock());
            let wait = not_until.wait_time_from(now);
            return Err(AccountsError::RegistrationsBusy(wait));
        }
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

    /// Signs in with an email and a password (OAuth2's resource owner password grant), from
    /// `client`. The attempt is counted as a failure before the password is checked and taken
    /// back if it was right; see [`GuessingPolicy`] for what the counts do.
    pub async fn issue_token(
        &self,
        username: &str,
        password: String,
        client: ClientAddress,
    ) -> Result<AccessToken, AccountsError> {
        // Counted per address tried, whether an account has it or not, so a refusal tells
        // nothing; a refused client costs no password check.
        let address = EmailKey::of(username.trim());
        let earlier_failures = match self
            .store
            .count_guess(&address, client, self.guessing)
            .await?
        {
            Guess::Counted { earlier_failures } => earlier_failures,
            Guess::Refused(wait) => {
                tracing::info!(%client, "sign-in refused: this client has guessed too often");
                return Err(AccountsError::SignInLocked(wait));
            }
        };
        let delay = self.guessing.delay(earlier_failures);
        if !delay.is_zero() {
            tracing::info!(%client, delay_ms = delay.as_millis() as u64, earlier_failures, "sign-in slowed: its address is being guessed");
            tokio::time::sleep(delay).await;
        }
        // An address that cannot exist is treated as an unknown one, down to the time taken.
        let found = match Email::parse(username) {
            Ok(email) => self.store.credentials(&email).await?,
            Err(_) => None,
        };
        let (account, hash) = found.unzip();
        let valid = match self.hasher.verify(password, hash).await {
            Ok(valid) => valid,
            Err(e) => {
                // Nothing was checked: the attempt does not count.
                self.store.withdraw_guess(&address, client).await?;
                return Err(e.into());
            }
        };
        match account {
            Some(account) if valid => {
                self.store.sign_in_succeeded(&address, client).await?;
                let token = self
                    .issuer
                    .issue(&account)
                    .await
                    .map_err(AccountsError::Internal)?;
                tracing::info!(user_id = %account.id, role = account.role.as_str(), "token issued");
                Ok(token)
            }
            _ => {
                tracing::info!(%client, "sign-in refused");
                Err(AccountsError::InvalidGrant)
            }
        }
    }

    /// Forgets failure counts whose window is over.
    pub async fn forget_old_sign_in_failures(&self) -> Result<u64, StoreError> {
        self.store
            .forget_old_sign_in_failures(self.guessing.window, 1000)
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
