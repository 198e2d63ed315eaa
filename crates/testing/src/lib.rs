//! The fleet's test harness, by concern: PostgreSQL ([`postgres`]: a fresh database per test
//! holding the service's role and schema), Kafka ([`kafka`]: the real broker behind a topic
//! prefix unique to the test, or a mock; topic readers and writers), services as processes that
//! can be killed ([`processes`]) or inside the test ([`app`]), tokens ([`identity`]), exported
//! spans ([`otlp`]) and what every test checks ([`assertions`]). It knows no service's tables.

pub mod app;
pub mod assertions;
pub mod identity;
pub mod kafka;
pub mod otlp;
pub mod postgres;
pub mod processes;

pub use app::*;
pub use assertions::*;
pub use identity::*;
pub use kafka::*;
pub use otlp::*;
pub use postgres::*;
pub use processes::*;

pub use fleet::kafka::Credentials as KafkaCredentials;
pub use rdkafka::error::KafkaError;
pub use rdkafka::types::RDKafkaErrorCode;

use std::time::{Duration, Instant};

use fleet_config::Env;

/// Partitions per topic in tests: enough for two consumers to split them.
pub const PARTITIONS: i32 = 4;

/// Logs of the code under test, when `TEST_LOG` is set.
pub fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        // Kept for the test process's life.
        if let Ok(telemetry) = fleet_telemetry::init("test", fleet_telemetry::LogFormat::Text) {
            std::mem::forget(telemetry);
        }
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after `wait`.
pub async fn eventually<T, F, Fut>(what: &str, wait: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + wait;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if Instant::now() > deadline {
            panic!("timed out after {wait:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The Kafka principal of the service whose database role is `role` (`rental_svc` → `rental`,
/// `book_svc` → `book-management`).
pub fn principal_of_role(role: &str) -> &'static str {
    let name = role.strip_suffix("_svc").unwrap_or(role);
    let name = if name == "book" {
        "book-management"
    } else {
        name
    };
    shared_events::access::of(name)
        .unwrap_or_else(|| panic!("database role {role} belongs to no Kafka principal"))
        .principal
}

/// The settings service `principal` gets under test: its database, the test's broker with its
/// own Kafka credentials, a random port and a random operations port, and a quick outbox poll.
pub fn service_env(
    principal: &str,
    database_url: &str,
    kafka: &TestKafka,
) -> Vec<(String, String)> {
    let mut env = vec![
        ("DATABASE_URL".into(), database_url.to_owned()),
        ("HTTP_HOST".into(), "127.0.0.1".into()),
        ("HTTP_PORT".into(), "0".into()),
        ("OPS_PORT".into(), "0".into()),
        ("OUTBOX_POLL_INTERVAL_MS".into(), "20".into()),
        ("KAFKA_MESSAGE_TIMEOUT_MS".into(), "5000".into()),
        ("LOG_FORMAT".into(), "text".into()),
    ];
    env.extend(kafka.env_as(principal));
    env
}

/// A service's configuration for a benchmark or a test that builds it in-process: the test
/// settings for `database_url` and `kafka`, `identity`'s keys to check tokens with (and rental's
/// way to its token), and `extra`
/// (which replaces a default of the same name).
pub fn settings(
    principal: &str,
    database_url: &str,
    kafka: &TestKafka,
    identity: &TestIdentity,
    extra: &[(&str, &str)],
) -> Env {
    let mut env = service_env(principal, database_url, kafka);
    env.extend(identity.env());
    env.extend(identity.client_env());
    env.retain(|(k, _)| !extra.iter().any(|(name, _)| name == k));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env_of(&env)
}

/// An `Env` made of `pairs`, for building a service's configuration in a test.
pub fn env_of(pairs: &[(String, String)]) -> Env {
    Env::from_pairs(pairs.iter().cloned())
}

/// An HTTP client as the fleet's own: it drops idle pooled connections before a server of the
/// fleet would ([`fleet_http::server::CLIENT_POOL_IDLE_TIMEOUT`]).
pub fn http_client() -> reqwest::Client {
    http_client_with(reqwest::header::HeaderMap::new())
}

pub(crate) fn http_client_with(headers: reqwest::header::HeaderMap) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_idle_timeout(fleet_http::server::CLIENT_POOL_IDLE_TIMEOUT)
        .default_headers(headers)
        .build()
        .expect("a plain HTTP client builds")
}
