//! user: customers and managers (a supporting subdomain). Customers register; everyone signs in
//! through the OAuth2 token endpoint and gets an RS256 access token, checked by the fleet with
//! the keys at `/.well-known/jwks.json`; each account's active rentals follow `rental.events`.

pub mod adapters;
pub mod application;
pub mod domain;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use fleet_config::{ConfigError, Env};
use fleet_service::{KitConfig, Service, ServiceSpec};
use prometheus::{IntCounterVec, Opts};
use shared_events::Topic;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;

use adapters::consumer::RentalActivity;
use adapters::http::{self, Api};
use adapters::passwords::{Argon2Hasher, HashingLimits};
use adapters::postgres::PgAccountStore;
use adapters::signing::{JwtIssuer, SigningKey, TokenSettings};
use application::{
    AccountStore, Accounts, Bootstrap, PasswordHasher, RegistrationBudget, ServiceClients,
    TokenIssuer,
};
use domain::{ClientSecret, Email, GuessingPolicy, Name, Password, ServiceClient};
use fleet_auth::TokenVerifier;

/// The service name: event source and consumer group.
pub const SERVICE: &str = "user";

/// The topics the service consumes (and whose dead letters `user dlq` replays).
pub const CONSUMED_TOPICS: [Topic; 1] = [Topic::Rental];

pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Where the key that signs tokens comes from.
pub enum KeySource {
    /// `JWT_SIGNING_KEY` or `JWT_SIGNING_KEY_FILE`, already parsed.
    Configured(SigningKey),
    /// `JWT_EPHEMERAL_KEY=true`: generated at start, for local development only.
    Ephemeral,
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Configured(key) => write!(f, "Configured({})", key.kid()),
            KeySource::Ephemeral => f.write_str("Ephemeral"),
        }
    }
}

/// Keys (RFC 7638 thumbprints) once committed to the project for development: refused, since
/// anyone holding the project could sign tokens with them.
pub const PUBLISHED_KEY_IDS: &[&str] = &["Qe7mHUt2QlB-68p05yqTO7yoM7MEfCynpqkuGi0h4EM"];

/// Manager passwords once committed to the project for development: refused likewise.
const PUBLISHED_PASSWORDS: &[&str] = &["manage the fleet locally"];

/// The manager account set up from configuration.
#[derive(Debug, Clone)]
pub struct ManagerAccount {
    pub name: Name,
    pub email: Email,
    pub password: Password,
}

pub struct Config {
    pub kit: KitConfig,
    pub signing_key: KeySource,
    pub tokens: TokenSettings,
    pub manager: Option<ManagerAccount>,
    pub guessing: GuessingPolicy,
    pub registrations: RegistrationBudget,
    /// The proxies (the gateway) whose `X-Forwarded-For` names a sign-in's client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Sign-ins that may wait for a hashing worker; `None` keeps four a CPU.
    pub check_queue: Option<usize>,
    /// The services that may use the client credentials grant.
    pub clients: Vec<ServiceClient>,
}

impl Config {
    /// The kit's settings and user's own (signing key, tokens, manager, client secret, sign-in
    /// lock-out): the README's "Service configuration" lists each variable with its default and
    /// meaning, and `gateway/tests/deployment.rs` holds it to what this reads.
    pub fn from_env(mut env: Env) -> Result<Self, ConfigError> {
        let kit = KitConfig::read(&mut env, "users");
        let signing_key = signing_key(&mut env);
        let tokens = TokenSettings {
            issuer: env.or("JWT_ISSUER", "book-rental-fleet".to_owned()),
            audience: env.or("JWT_AUDIENCE", "book-rental-api".to_owned()),
            ttl: Duration::from_secs(env.or("TOKEN_TTL_SECS", 900)),
        };
        if tokens.issuer.is_empty() || tokens.audience.is_empty() {
            env.invalid("JWT_ISSUER and JWT_AUDIENCE must not be empty");
        }
        if tokens.ttl.is_zero() {
            env.invalid("TOKEN_TTL_SECS must be at least 1");
        }
        let manager = manager(&mut env);
        let guessing = GuessingPolicy {
            max_failures: env.or("SIGN_IN_MAX_FAILURES", 5),
            window: Duration::from_secs(env.or("SIGN_IN_LOCKOUT_SECS", 300)),
            slow_after: env.or("SIGN_IN_SLOW_AFTER", 10),
            first_delay: Duration::from_millis(100),
            max_delay: env.millis("SIGN_IN_MAX_DELAY_MS", 2_000),
        };
        if guessing.max_failures == 0 || guessing.window.is_zero() {
            env.invalid("SIGN_IN_MAX_FAILURES and SIGN_IN_LOCKOUT_SECS must be at least 1");
        }
        let registrations = RegistrationBudget {
            per_second: env.or("REGISTRATIONS_PER_SECOND", 20),
        };
        if registrations.per_second == 0 {
            env.invalid("REGISTRATIONS_PER_SECOND must be at least 1");
        }
        let check_queue: Option<usize> = env.optional("PASSWORD_CHECK_QUEUE");
        let trusted_proxies =
            fleet_http::client_address::trusted_proxies(&mut env, "TRUSTED_PROXIES");
        let clients = env
            .optional::<String>("RENTAL_CLIENT_SECRET")
            .filter(|s| !s.is_empty())
            .and_then(|secret| {
                ClientSecret::parse(&secret)
                    .map_err(|e| env.invalid(format!("RENTAL_CLIENT_SECRET {e}")))
                    .ok()
            })
            .map(ServiceClient::rental)
            .into_iter()
            .collect();
        env.finish()?;
        Ok(Self {
            kit,
            signing_key: signing_key.expect("no key only with a problem recorded"),
            tokens,
            manager,
            guessing,
            registrations,
            trusted_proxies,
            check_queue,
            clients,
        })
    }
}

/// `None` when a problem was recorded.
fn signing_key(env: &mut Env) -> Option<KeySource> {
    // Empty counts as unset: a template may render an absent Secret as an empty variable.
    let mut set = |name: &str| env.optional::<String>(name).filter(|v| !v.is_empty());
    let inline = set("JWT_SIGNING_KEY");
    let file = set("JWT_SIGNING_KEY_FILE");
    let ephemeral: bool = env.or("JWT_EPHEMERAL_KEY", false);
    let (pem, origin) = match (inline, file) {
        (Some(_), Some(_)) => {
            env.invalid("set JWT_SIGNING_KEY or JWT_SIGNING_KEY_FILE, not both");
            return None;
        }
        (Some(pem), None) => (pem, "JWT_SIGNING_KEY".to_owned()),
        (None, Some(path)) => match std::fs::read_to_string(&path) {
            Ok(pem) => (pem, format!("JWT_SIGNING_KEY_FILE ({path})")),
            Err(e) => {
                env.invalid(format!("JWT_SIGNING_KEY_FILE={path:?} cannot be read: {e}"));
                return None;
            }
        },
        (None, None) if ephemeral => return Some(KeySource::Ephemeral),
        (None, None) => {
            env.invalid(
                "JWT_SIGNING_KEY is required but not set: the RSA private key (PKCS#8 PEM) that \
                 signs tokens, or JWT_SIGNING_KEY_FILE naming a file that holds it \
                 (JWT_EPHEMERAL_KEY=true generates one at start, for local development only)",
            );
            return None;
        }
    };
    match SigningKey::from_pem(&pem) {
        Ok(key) if PUBLISHED_KEY_IDS.contains(&key.kid()) => {
            env.invalid(format!(
                "{origin} is a key published with the project (kid {}): anyone could sign tokens \
                 with it. Make your own: openssl genpkey -algorithm RSA -pkeyopt \
                 rsa_keygen_bits:2048 (scripts/make-secrets.sh does)",
                key.kid()
            ));
            None
        }
        Ok(key) => Some(KeySource::Configured(key)),
        Err(reason) => {
            env.invalid(format!("{origin} {reason}"));
            None
        }
    }
}

fn manager(env: &mut Env) -> Option<ManagerAccount> {
    let email: Option<String> = env.optional("MANAGER_EMAIL");
    let password: Option<String> = env.optional("MANAGER_PASSWORD");
    let name: String = env.or("MANAGER_NAME", "Manager".to_owned());
    let (email, password) = match (email, password) {
        (Some(email), Some(password)) => (email, password),
        (None, None) => return None,
        _ => {
            env.invalid("set both MANAGER_EMAIL and MANAGER_PASSWORD, or neither");
            return None;
        }
    };
    // The values are not repeated in the messages: one of them is a password.
    let name = Name::parse(&name).map_err(|e| env.invalid(format!("MANAGER_NAME: {e}")));
    let password = if PUBLISHED_PASSWORDS.contains(&password.as_str()) {
        env.invalid(
            "MANAGER_PASSWORD is a password published with the project: choose your own \
             (scripts/make-secrets.sh makes one)",
        );
        Err(())
    } else {
        Password::parse(&password, &email)
            .map_err(|e| env.invalid(format!("MANAGER_PASSWORD: {e}")))
    };
    let email = Email::parse(&email).map_err(|e| env.invalid(format!("MANAGER_EMAIL: {e}")));
    Some(ManagerAccount {
        name: name.ok()?,
        email: email.ok()?,
        password: password.ok()?,
    })
}

/// Wires the hexagon: Postgres store, Argon2 hasher and JWT issuer → account use cases → HTTP;
/// `rental.events` → active-rental counts; the manager bootstrap once migrations are done.
pub async fn build(config: Config) -> anyhow::Result<Service> {
    let service = Service::build(
        ServiceSpec {
            name: SERVICE,
            migrations: &MIGRATIONS,
        },
        config.kit,
    )
    .await?;
    let key = match config.signing_key {
        KeySource::Configured(key) => key,
        KeySource::Ephemeral => {
            let key = SigningKey::generate().await?;
            tracing::warn!(
                kid = key.kid(),
                "JWT_EPHEMERAL_KEY=true: tokens are signed with a key generated at start. They \
                 stop working when this process restarts, and other replicas reject them. For \
                 local development only; give JWT_SIGNING_KEY or JWT_SIGNING_KEY_FILE anywhere else."
            );
            key
        }
    };
    tracing::info!(kid = key.kid(), "signing tokens");
    let issuer = JwtIssuer::new(key, config.tokens);
    let jwks = issuer.jwks();
    let verifier = TokenVerifier::new(
        &jwks,
        &issuer.settings().issuer,
        &issuer.settings().audience,
    )?;
    if config.clients.is_empty() {
        tracing::warn!(
            "RENTAL_CLIENT_SECRET is not set: no service can get a token, so rental cannot pay"
        );
    }
    let clients = ServiceClients::new(config.clients, issuer.clone());
    let mut limits = HashingLimits::default();
    if let Some(queue) = config.check_queue {
        limits.queue = queue;
    }
    let hasher = Argon2Hasher::bounded(None, limits).await?;
    let store = PgAccountStore::new(service.pool().clone());
    let canonicalising = store.clone();
    let accounts = Accounts::new(store, hasher, issuer, config.guessing, config.registrations);
    let api = Api {
        accounts: accounts.clone(),
        clients,
        verifier: Arc::new(verifier),
        jwks: Arc::new(jwks),
        trusted_proxies: Arc::new(config.trusted_proxies),
    };
    let bootstraps = IntCounterVec::new(
        Opts::new(
            "manager_bootstraps_total",
            "Runs of the manager bootstrap, by outcome (created, existing, not_a_manager)",
        ),
        &["outcome"],
    )?;
    service
        .metrics()
        .registry
        .register(Box::new(bootstraps.clone()))?;
    let forgetting = accounts.clone();
    let mut service = service
        .with_routes(http::routes(api))
        .with_api_doc(http::ApiDoc::openapi())
        .with_worker(move |stop| forget_old_sign_in_failures(forgetting, stop))
        .with_worker(move |stop| canonicalise_addresses(canonicalising, stop));
    if let Some(manager) = config.manager {
        service =
            service.with_worker(move |stop| bootstrap_manager(accounts, manager, bootstraps, stop));
    }
    service.consume(&CONSUMED_TOPICS, RentalActivity)
}

/// Every minute, deletes the failure counts that no longer lock anything out, so the table holds
/// at most the addresses tried within one lock-out, whatever an attacker tries.
async fn forget_old_sign_in_failures<S: AccountStore, H: PasswordHasher, I: TokenIssuer>(
    accounts: Accounts<S, H, I>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
        loop {
            match accounts.forget_old_sign_in_failures().await {
                Ok(1000..) => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "cannot forget old sign-in failures yet");
                    break;
                }
            }
        }
    }
}

/// Once the migrations are done: gives accounts stored before the canonical form theirs.
async fn canonicalise_addresses(store: PgAccountStore, stop: CancellationToken) {
    match store.canonicalise_addresses().await {
        Ok(0) => {}
        Ok(rewritten) => {
            tracing::info!(
                rewritten,
                "addresses stored before their canonical form have it now"
            )
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "cannot give stored addresses their canonical form")
        }
    }
    stop.cancelled().await;
}

/// Creates the configured manager once (retrying while the database is away), then waits for
/// shutdown like any worker.
async fn bootstrap_manager<S: AccountStore, H: PasswordHasher, I: TokenIssuer>(
    accounts: Accounts<S, H, I>,
    manager: ManagerAccount,
    outcomes: IntCounterVec,
    stop: CancellationToken,
) {
    let mut wait = Duration::from_millis(250);
    let done = loop {
        let attempt = accounts.bootstrap_manager(
            manager.name.clone(),
            manager.email.clone(),
            manager.password.clone(),
        );
        let outcome = tokio::select! {
            _ = stop.cancelled() => return,
            outcome = attempt => outcome,
        };
        match outcome {
            Ok(Bootstrap::Created(account)) => {
                tracing::info!(user_id = %account.id, "manager account created");
                break "created";
            }
            Ok(Bootstrap::Existing(account)) if account.role == domain::Role::Manager => {
                tracing::info!(user_id = %account.id, "manager account already there");
                break "existing";
            }
            Ok(Bootstrap::Existing(account)) => {
                tracing::warn!(user_id = %account.id, role = account.role.as_str(), "MANAGER_EMAIL belongs to an account that is not a manager; it is left as it is");
                break "not_a_manager";
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot bootstrap the manager yet; retrying")
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => wait = (wait * 2).min(Duration::from_secs(10)),
        }
    };
    // On /metrics, so an operator (or a test) sees what the bootstrap found.
    outcomes.with_label_values(&[done]).inc();
    stop.cancelled().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(extra: &[(&str, &str)]) -> Env {
        let mut vars = vec![
            ("DATABASE_URL", "postgres://x"),
            ("KAFKA_BROKERS", "k:9092"),
        ];
        vars.extend_from_slice(extra);
        Env::from_pairs(vars)
    }

    fn error(extra: &[(&str, &str)]) -> String {
        Config::from_env(env(extra)).err().unwrap().to_string()
    }

    #[test]
    fn defaults_with_an_ephemeral_key() {
        let config = Config::from_env(env(&[("JWT_EPHEMERAL_KEY", "true")])).unwrap();
        assert_eq!(config.kit.database.schema, "users");
        assert!(matches!(config.signing_key, KeySource::Ephemeral));
        assert_eq!(
            config.tokens,
            TokenSettings {
                issuer: "book-rental-fleet".into(),
                audience: "book-rental-api".into(),
                ttl: Duration::from_secs(900),
            }
        );
        assert!(config.manager.is_none());
    }

    #[test]
    fn a_signing_key_is_required() {
        let err = error(&[]);
        assert!(err.contains("JWT_SIGNING_KEY is required"), "{err}");
        let err = error(&[("JWT_EPHEMERAL_KEY", "false")]);
        assert!(err.contains("JWT_SIGNING_KEY is required"), "{err}");
    }

    #[test]
    fn an_unusable_signing_key_is_reported_without_its_value() {
        let err = error(&[("JWT_SIGNING_KEY", "s3cret-not-a-pem")]);
        assert!(
            err.contains("JWT_SIGNING_KEY is not a PEM RSA private key"),
            "{err}"
        );
        assert!(!err.contains("s3cret"), "{err}");
        let err = error(&[("JWT_SIGNING_KEY_FILE", "/nonexistent/key.pem")]);
        assert!(
            err.contains("JWT_SIGNING_KEY_FILE=\"/nonexistent/key.pem\" cannot be read"),
            "{err}"
        );
        let err = error(&[("JWT_SIGNING_KEY", "x"), ("JWT_SIGNING_KEY_FILE", "y")]);
        assert!(err.contains("not both"), "{err}");
    }

    #[test]
    fn the_manager_needs_an_email_and_a_password_that_pass_the_rules() {
        let config = Config::from_env(env(&[
            ("JWT_EPHEMERAL_KEY", "true"),
            ("MANAGER_EMAIL", "boss@example.org"),
            ("MANAGER_PASSWORD", "a long managerial secret"),
        ]))
        .unwrap();
        let manager = config.manager.unwrap();
        assert_eq!(manager.email.as_str(), "boss@example.org");
        assert_eq!(manager.name.as_str(), "Manager");

        let err = error(&[
            ("JWT_EPHEMERAL_KEY", "true"),
            ("MANAGER_EMAIL", "boss@example.org"),
        ]);
        assert!(
            err.contains("set both MANAGER_EMAIL and MANAGER_PASSWORD"),
            "{err}"
        );
        let err = error(&[
            ("JWT_EPHEMERAL_KEY", "true"),
            ("MANAGER_EMAIL", "boss"),
            ("MANAGER_PASSWORD", "password123"),
            ("MANAGER_NAME", " "),
        ]);
        for expected in [
            "MANAGER_EMAIL: email must contain an @",
            "MANAGER_PASSWORD: password is one of the most common",
            "MANAGER_NAME: name must not be empty",
        ] {
            assert!(err.contains(expected), "{expected} missing from: {err}");
        }
        assert!(!err.contains("password123"), "{err}");
    }

    #[test]
    fn every_invalid_setting_is_reported_at_once() {
        let err = Config::from_env(Env::from_pairs([
            ("TOKEN_TTL_SECS", "0"),
            ("JWT_ISSUER", ""),
        ]))
        .err()
        .unwrap()
        .to_string();
        for expected in [
            "DATABASE_URL is required",
            "JWT_SIGNING_KEY is required",
            "TOKEN_TTL_SECS must be at least 1",
            "JWT_ISSUER and JWT_AUDIENCE must not be empty",
        ] {
            assert!(err.contains(expected), "{expected} missing from: {err}");
        }
    }
}
