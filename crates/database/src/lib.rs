//! The service's Postgres: its settings, a pool confined to its own schema, the migrations
//! (the tables every schema holds, then the service's own), which of its errors pass by
//! themselves (a restart, a fail-over) rather than say something about the work, and how
//! readiness, `/metrics` and problem answers see it.

use std::str::FromStr;
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use axum::http::StatusCode;
use fleet_config::Env;
use fleet_http::Problem;
use fleet_http::problem::DATABASE_RETRY_AFTER_SECS;
use fleet_telemetry::metrics::Metrics;

/// Where the service's database is and how it is used.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: String,
    /// Where the migrations run when the services' own URL goes through a transaction pooler
    /// (PgBouncer): sqlx's migrator holds a session-level lock, which needs the server itself.
    pub migration_url: Option<String>,
    pub schema: String,
    pub max_connections: u32,
    /// How long a request waits for a connection before it answers 503: while the database is
    /// away, this is how fast the answer comes.
    pub acquire_timeout: Duration,
}

impl DatabaseConfig {
    /// `DATABASE_URL` (required), `DATABASE_MIGRATION_URL`, `DATABASE_SCHEMA` (default
    /// `default_schema`, the service's own), `DATABASE_MAX_CONNECTIONS`,
    /// `DATABASE_ACQUIRE_TIMEOUT_MS`.
    pub fn read(env: &mut Env, default_schema: &str) -> Self {
        let config = Self {
            url: env.required("DATABASE_URL"),
            migration_url: env.optional("DATABASE_MIGRATION_URL"),
            schema: env.or("DATABASE_SCHEMA", default_schema.to_owned()),
            max_connections: env.or("DATABASE_MAX_CONNECTIONS", 10),
            acquire_timeout: env.millis("DATABASE_ACQUIRE_TIMEOUT_MS", 2_000),
        };
        if config.max_connections == 0 {
            env.invalid("DATABASE_MAX_CONNECTIONS must be at least 1");
        }
        if config.acquire_timeout.is_zero() {
            env.invalid("DATABASE_ACQUIRE_TIMEOUT_MS must be at least 1");
        }
        let valid_schema = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        if !valid_schema(&config.schema) {
            env.invalid(format!(
                "DATABASE_SCHEMA={:?} must be lowercase letters, digits and underscores",
                config.schema
            ));
        }
        config
    }
}

/// The tables every service has in its schema (outbox, inbox, retention, signing keys).
pub static KIT_MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// A pool that connects lazily, so the process starts (and reports itself unready) while the
/// database is still coming up. Every connection's `search_path` is the service's schema only.
pub fn pool(config: &DatabaseConfig) -> Result<PgPool, sqlx::Error> {
    lazy_pool(config, &config.url, config.max_connections)
}

/// The one connection the migrations run on when `DATABASE_MIGRATION_URL` names one (the server
/// itself, past a transaction pooler); `None`: they run on the services' own pool.
pub fn migration_pool(config: &DatabaseConfig) -> Result<Option<PgPool>, sqlx::Error> {
    config
        .migration_url
        .as_deref()
        .map(|url| lazy_pool(config, url, 1))
        .transpose()
}

fn lazy_pool(config: &DatabaseConfig, url: &str, size: u32) -> Result<PgPool, sqlx::Error> {
    let options = PgConnectOptions::from_str(url)?
        .options([("search_path", config.schema.as_str())])
        .application_name(&config.schema);
    Ok(PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(config.acquire_timeout)
        .connect_lazy_with(options))
}

#[derive(Debug)]
struct Combined(Vec<Migration>);

impl MigrationSource<'static> for Combined {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move { Ok(self.0) })
    }
}

/// The shared tables' migrations (versions 1, 2, …) followed by the service's (timestamped
/// versions).
pub async fn migrator(service: &Migrator) -> Result<Migrator, sqlx::migrate::MigrateError> {
    let migrations = KIT_MIGRATIONS
        .iter()
        .chain(service.iter())
        .cloned()
        .collect();
    Migrator::new(Combined(migrations)).await
}

/// Whether this transaction holds `task`'s turn in the service's schema (a transaction-scoped
/// advisory lock, released at commit or rollback): among replicas running the same task, one
/// works at a time and the others skip rather than queue.
pub async fn take_turn(conn: &mut sqlx::PgConnection, task: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || '.' || $1))")
        .bind(task)
        .fetch_one(conn)
        .await
}

/// Does `error` come from the database being away or busy for a moment (a restart, a fail-over,
/// a conflict with a concurrent transaction) rather than from what was asked of it? Such work
/// is tried again as it is, later: a consumer waits without spending the event's retries, a
/// request answers 503 with `Retry-After`.
pub fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        // The connection broke, could not be made or set up, or the pool has none to give.
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(e) => e.code().is_some_and(|code| is_transient_sqlstate(&code)),
        _ => false,
    }
}

/// The SQLSTATEs of [`is_transient`]
/// (<https://www.postgresql.org/docs/current/errcodes-appendix.html>).
pub fn is_transient_sqlstate(code: &str) -> bool {
    // Class 08: connection exceptions.
    code.starts_with("08")
        || matches!(
            code,
            // admin_shutdown (a fast or smart shutdown ended the session), crash_shutdown,
            // cannot_connect_now (starting up or shutting down)
            "57P01" | "57P02" | "57P03"
            // read_only_sql_transaction: a fail-over's old primary, or a standby not promoted yet
            | "25006"
            // serialization_failure, deadlock_detected: the transaction may simply be run again
            | "40001" | "40P01"
            // too_many_connections: sessions of a restart not yet cleaned up
            | "53300"
        )
}

/// The transient database error ([`is_transient`]) in `error`'s chain, if any. A store's
/// `#[error(transparent)]` wrapper hides its cause from `source()`: pass the `anyhow::Error` it
/// wraps, not the wrapper.
pub fn transient_cause(error: &anyhow::Error) -> Option<&sqlx::Error> {
    error
        .chain()
        .filter_map(|cause| cause.downcast_ref::<sqlx::Error>())
        .find(|cause| is_transient(cause))
}

/// How long to wait before the `n`th try (from 1) at work the database's absence stopped:
/// doubling from 100 ms to at most 2 s, so the work resumes within 2 s of the database's return
/// without hammering a server that is starting up.
pub fn outage_backoff(n: u32) -> Duration {
    let doubled = Duration::from_millis(100) * 2u32.pow(n.saturating_sub(1).min(5));
    doubled.min(Duration::from_secs(2))
}

/// A failure of the service's own database as a problem answer: `Problem::database(e)` with
/// this trait in scope.
pub trait DatabaseProblem {
    /// A failure of the service's own database. One that passes by itself (a restart, a
    /// fail-over: [`transient_cause`]) answers 503 with `Retry-After`, as the request
    /// may simply be sent again; anything else is a 500. Either way the cause is logged, not
    /// revealed.
    fn database(cause: impl Into<anyhow::Error>) -> Problem {
        let cause = cause.into();
        match transient_cause(&cause) {
            Some(transient) => {
                tracing::warn!(error = %transient, "database unavailable; answered 503");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The service's database is unavailable for a moment; please try again shortly.",
                )
                .with_retry_after(DATABASE_RETRY_AFTER_SECS)
            }
            None => Problem::internal(format!("{cause:#}")),
        }
    }
}

impl DatabaseProblem for Problem {}

/// The pool as readiness and `/metrics` see it.
pub struct Probe(pub PgPool);

impl fleet_http::health::Database for Probe {
    fn reachable(&self) -> BoxFuture<'_, bool> {
        Box::pin(async move { sqlx::query("SELECT 1").execute(&self.0).await.is_ok() })
    }

    fn record(&self, metrics: &Metrics) {
        let (size, idle) = (i64::from(self.0.size()), self.0.num_idle() as i64);
        let connections = &metrics.db_pool_connections;
        connections.with_label_values(&["in_use"]).set(size - idle);
        connections.with_label_values(&["idle"]).set(idle);
        metrics
            .db_pool_max_connections
            .set(i64::from(self.0.options().get_max_connections()));
    }
}

#[cfg(test)]
mod tests {
    use sqlx::{Connection, Executor, PgConnection};

    use super::*;

    async fn answer(
        problem: Problem,
    ) -> (axum::http::StatusCode, Option<String>, serde_json::Value) {
        use axum::response::IntoResponse;
        let response = problem.into_response();
        let retry_after = response
            .headers()
            .get(axum::http::header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        (status, retry_after, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn a_database_away_answers_503_with_retry_after_and_any_other_failure_500() {
        let (status, retry_after, body) =
            answer(Problem::database(sqlx::Error::PoolTimedOut)).await;
        assert_eq!(status, axum::http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry_after.as_deref(), Some("1"));
        assert_eq!(body["status"], 503);
        assert!(body.get("retry_after").is_none(), "{body}");

        // Through a store's anyhow error and its context.
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let cause = anyhow::Error::from(sqlx::Error::Io(refused)).context("renting");
        let (status, retry_after, _) = answer(Problem::database(cause)).await;
        assert_eq!(status, axum::http::StatusCode::SERVICE_UNAVAILABLE);
        assert!(retry_after.is_some());

        let (status, retry_after, body) = answer(Problem::database(sqlx::Error::RowNotFound)).await;
        assert_eq!(status, axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(retry_after, None);
        assert_eq!(body["status"], 500);
        let (status, _, _) = answer(Problem::database(anyhow::anyhow!("a broken invariant"))).await;
        assert_eq!(status, axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    }

    /// The test cluster, as the harness finds it (`DATABASE_ADMIN_URL`).
    fn admin_url() -> String {
        std::env::var("DATABASE_ADMIN_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
    }

    async fn connect() -> PgConnection {
        PgConnection::connect(&admin_url())
            .await
            .expect("the test Postgres at DATABASE_ADMIN_URL")
    }

    /// The error Postgres answers `sql` with.
    async fn error_of(conn: &mut PgConnection, sql: &str) -> sqlx::Error {
        conn.execute(sql).await.expect_err(sql)
    }

    fn sqlstate(e: &sqlx::Error) -> String {
        e.as_database_error()
            .and_then(|e| e.code())
            .map(|code| code.into_owned())
            .unwrap_or_default()
    }

    #[test]
    fn sqlstates_of_restarts_fail_overs_and_conflicts_pass_and_others_do_not() {
        for code in [
            "08000", "08003", "08006", "08001", "08004", "57P01", "57P02", "57P03", "25006",
            "40001", "40P01", "53300",
        ] {
            assert!(is_transient_sqlstate(code), "{code}");
        }
        // Unique and check violations, bad input, missing table, no privilege, query canceled
        // (a statement timeout: the work itself is too slow), disk full.
        for code in [
            "23505", "23514", "22P02", "42P01", "42501", "57014", "53100", "XX000",
        ] {
            assert!(!is_transient_sqlstate(code), "{code}");
        }
    }

    #[tokio::test]
    async fn a_terminated_session_is_transient_and_so_is_its_dead_connection() {
        let mut conn = connect().await;
        let terminated = error_of(&mut conn, "SELECT pg_terminate_backend(pg_backend_pid())").await;
        assert_eq!(sqlstate(&terminated), "57P01", "{terminated:?}");
        assert!(is_transient(&terminated));
        // The server closed the connection: the next use fails on it.
        let after = conn
            .execute("SELECT 1")
            .await
            .expect_err("the session is gone");
        assert!(is_transient(&after), "{after:?}");
    }

    #[tokio::test]
    async fn errors_a_database_raises_are_told_apart_by_their_sqlstate() {
        let mut conn = connect().await;
        let read_only = error_of(
            &mut conn,
            "BEGIN READ ONLY; CREATE TABLE never_made (id int)",
        )
        .await;
        conn.execute("ROLLBACK").await.unwrap();
        assert_eq!(sqlstate(&read_only), "25006", "{read_only:?}");
        assert!(is_transient(&read_only));

        let raise = |code: &str| {
            format!("DO $$ BEGIN RAISE EXCEPTION 'raised' USING ERRCODE = '{code}'; END $$")
        };
        for code in ["40001", "40P01", "57P03", "08006"] {
            let e = error_of(&mut conn, &raise(code)).await;
            assert_eq!(sqlstate(&e), code);
            assert!(is_transient(&e), "{e:?}");
        }

        let division = error_of(&mut conn, "SELECT 1 / 0").await;
        assert_eq!(sqlstate(&division), "22012");
        assert!(!is_transient(&division));
        let duplicate = error_of(&mut conn, &raise("23505")).await;
        assert!(!is_transient(&duplicate));
        let missing = error_of(&mut conn, "SELECT * FROM no_such_table").await;
        assert_eq!(sqlstate(&missing), "42P01");
        assert!(!is_transient(&missing));
        let none = sqlx::query("SELECT 1 WHERE false")
            .fetch_one(&mut conn)
            .await
            .unwrap_err();
        assert!(!is_transient(&none), "{none:?}");
    }

    #[tokio::test]
    async fn a_server_that_is_not_there_is_transient() {
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        let refused = PgConnection::connect(&url).await.unwrap_err();
        assert!(matches!(refused, sqlx::Error::Io(_)), "{refused:?}");
        assert!(is_transient(&refused));
        let pool = PgPoolOptions::new()
            .acquire_timeout(Duration::from_millis(200))
            .connect_lazy(&url)
            .unwrap();
        let timed_out = pool.acquire().await.unwrap_err();
        assert!(
            matches!(timed_out, sqlx::Error::PoolTimedOut),
            "{timed_out:?}"
        );
        assert!(is_transient(&timed_out));
        pool.close().await;
        assert!(is_transient(&pool.acquire().await.unwrap_err()));
    }

    #[tokio::test]
    async fn the_cause_is_found_through_anyhow_and_its_context() {
        let mut conn = connect().await;
        let terminated = error_of(&mut conn, "SELECT pg_terminate_backend(pg_backend_pid())").await;
        let wrapped = anyhow::Error::from(terminated).context("applying an event");
        let found = transient_cause(&wrapped).expect("found under the context");
        assert_eq!(sqlstate(found), "57P01");

        let mut conn = connect().await;
        let division = error_of(&mut conn, "SELECT 1 / 0").await;
        assert!(transient_cause(&anyhow::Error::from(division).context("x")).is_none());
        assert!(transient_cause(&anyhow::anyhow!("not a database error")).is_none());
    }

    #[test]
    fn an_outage_is_retried_ever_less_often_up_to_every_two_seconds() {
        let waits: Vec<u64> = (1..=8)
            .map(|n| outage_backoff(n).as_millis() as u64)
            .collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 2000, 2000, 2000]);
        assert_eq!(outage_backoff(u32::MAX), Duration::from_secs(2));
    }
}
