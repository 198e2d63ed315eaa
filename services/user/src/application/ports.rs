use shared_events::UserRegistered;

use crate::domain::{
    Account, ClientAddress, Email, EmailKey, GuessingPolicy, Password, PasswordHash, ServiceClient,
    UserId,
};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Unavailable(#[from] anyhow::Error),
}

/// What adding an account did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// The account, its hash and its event were stored.
    Stored,
    /// An account already has that email, in some case; nothing was written.
    EmailTaken,
}

/// What counting a sign-in attempt before its check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guess {
    /// The attempt is counted; `earlier_failures` attempts against the address (any client)
    /// failed within the window before it.
    Counted { earlier_failures: u32 },
    /// This client has failed too often against this address: refused for this long.
    Refused(std::time::Duration),
}

/// Where accounts live. Adding one stores it with its event atomically: no event without its
/// account, no account without its event.
pub trait AccountStore: Clone + Send + Sync + 'static {
    /// Counts an attempt to sign in with `address` from `client` as a failure before its
    /// password is checked, in one atomic step, so concurrent guesses cannot pass together;
    /// unless the client has already failed `policy.max_failures` times within the window.
    fn count_guess(
        &self,
        address: &EmailKey,
        client: ClientAddress,
        policy: GuessingPolicy,
    ) -> impl Future<Output = Result<Guess, StoreError>> + Send;

    /// Takes a counted attempt back: its password was never checked.
    fn withdraw_guess(
        &self,
        address: &EmailKey,
        client: ClientAddress,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The password was right: the client's failures against the address are forgotten, and the
    /// attempt no longer counts against the address.
    fn sign_in_succeeded(
        &self,
        address: &EmailKey,
        client: ClientAddress,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes up to `batch` counts whose window is over; returns how many.
    fn forget_old_sign_in_failures(
        &self,
        window: std::time::Duration,
        batch: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Whether an account signs in with this address (in its canonical form).
    fn email_taken(&self, email: &Email) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Stores a new account, its password hash and (for a customer) its event, unless an
    /// account has the same canonical email: even when registrations race, one wins.
    fn add(
        &self,
        account: &Account,
        hash: &PasswordHash,
        event: Option<UserRegistered>,
    ) -> impl Future<Output = Result<Added, StoreError>> + Send;

    fn get(&self, id: UserId) -> impl Future<Output = Result<Option<Account>, StoreError>> + Send;

    /// The account that signs in with `email` (by its canonical form), and its password hash.
    fn credentials(
        &self,
        email: &Email,
    ) -> impl Future<Output = Result<Option<(Account, PasswordHash)>, StoreError>> + Send;
}

/// What counting active rentals reads and writes. An implementation works inside the transaction
/// that records the event as applied, so an event's effect and its record commit together, or
/// neither does.
pub trait ActiveRentalStore: Send {
    /// The account, locked until the transaction ends.
    fn account(
        &mut self,
        id: UserId,
    ) -> impl Future<Output = Result<Option<Account>, StoreError>> + Send;

    /// Writes the account's active-rental count back.
    fn save_active_rentals(
        &mut self,
        account: &Account,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Why a password could not be hashed or checked.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every hashing slot is taken and the queue is full: try again in a moment. Hashing is
    /// slow and memory-hungry on purpose, so it is bounded, not queued without end.
    #[error("too many passwords are being checked at once")]
    Busy,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// Turns passwords into hashes and checks attempts against them. Both are slow on purpose, so
/// implementations do the work off the async threads, a bounded number at a time, and keep
/// capacity for checks (sign-ins) that hashing (registrations) cannot take.
pub trait PasswordHasher: Clone + Send + Sync + 'static {
    fn hash(
        &self,
        password: Password,
    ) -> impl Future<Output = Result<PasswordHash, HashError>> + Send;

    /// Whether `attempt` is the password behind `hash`. Without a hash (no such account) it
    /// does the same work against a stand-in and answers false, so the time taken does not
    /// tell whether an account exists.
    fn verify(
        &self,
        attempt: String,
        hash: Option<PasswordHash>,
    ) -> impl Future<Output = Result<bool, HashError>> + Send;
}

/// An access token as the token endpoint hands it out.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A bearer token is a credential: whoever reads a log line could use it.
        write!(f, "AccessToken(.., expires_in: {})", self.expires_in)
    }
}

/// Issues signed access tokens naming an account and its role, or a service of the fleet.
pub trait TokenIssuer: Clone + Send + Sync + 'static {
    fn issue(&self, account: &Account) -> impl Future<Output = anyhow::Result<AccessToken>> + Send;

    /// A token naming `client`, for its audience and with its scope.
    fn issue_for_service(
        &self,
        client: &ServiceClient,
    ) -> impl Future<Output = anyhow::Result<AccessToken>> + Send;
}
