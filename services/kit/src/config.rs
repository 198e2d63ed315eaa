//! Configuration comes only from the environment. Every variable is read through [`Env`], which
//! collects every missing or invalid value so that one start-up error lists them all.

use std::collections::HashMap;
use std::fmt::Display;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Everything that is wrong with the configuration, one line per variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

/// A snapshot of environment variables and the problems found reading them. It also remembers
/// every name it was asked for, so that a binary can say which variables it reads
/// ([`print_env_if_asked`]).
pub struct Env {
    vars: HashMap<String, String>,
    problems: Vec<String>,
    read: Arc<Mutex<Vec<VariableRead>>>,
}

/// One variable a configuration asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariableRead {
    pub name: String,
    /// Asked for with [`Env::required`].
    pub required: bool,
}

impl Env {
    /// The process environment.
    pub fn from_process() -> Self {
        Self::from_pairs(std::env::vars())
    }

    /// Any set of variables, as tests and tools configure a service.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            problems: Vec::new(),
            read: Arc::default(),
        }
    }

    /// The names asked for so far, in order, each once. The list is shared: it stays readable
    /// after the `Env` is consumed by [`Env::finish`].
    pub fn names_read(&self) -> Arc<Mutex<Vec<VariableRead>>> {
        Arc::clone(&self.read)
    }

    fn remember(&mut self, name: &str, required: bool) {
        let mut read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        match read.iter_mut().find(|v| v.name == name) {
            Some(known) => known.required |= required,
            None => read.push(VariableRead {
                name: name.to_owned(),
                required,
            }),
        }
    }

    fn parse<T: FromStr>(&mut self, name: &str) -> Option<T>
    where
        T::Err: Display,
    {
        let raw = self.vars.get(name)?.trim();
        match raw.parse() {
            Ok(value) => Some(value),
            Err(e) => {
                self.problems
                    .push(format!("{name}={raw:?} is invalid: {e}"));
                None
            }
        }
    }

    /// A variable that must be set. A missing one is reported by [`Env::finish`].
    pub fn required<T: FromStr + Default>(&mut self, name: &str) -> T
    where
        T::Err: Display,
    {
        self.remember(name, true);
        if !self.vars.contains_key(name) {
            self.problems
                .push(format!("{name} is required but not set"));
            return T::default();
        }
        self.parse(name).unwrap_or_default()
    }

    pub fn or<T: FromStr>(&mut self, name: &str, default: T) -> T
    where
        T::Err: Display,
    {
        self.remember(name, false);
        self.parse(name).unwrap_or(default)
    }

    pub fn optional<T: FromStr>(&mut self, name: &str) -> Option<T>
    where
        T::Err: Display,
    {
        self.remember(name, false);
        self.parse(name)
    }

    /// A duration given in milliseconds, as `NAME_MS`.
    pub fn millis(&mut self, name: &str, default_ms: u64) -> Duration {
        Duration::from_millis(self.or(name, default_ms))
    }

    /// Records a rule broken by a value that parsed.
    pub fn invalid(&mut self, problem: impl Into<String>) {
        self.problems.push(problem.into());
    }

    pub fn finish(self) -> Result<(), ConfigError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(self.problems))
        }
    }
}

/// The most events a consumer applies in one transaction (`CONSUMER_BATCH_SIZE`).
const MAX_CONSUMER_BATCH: usize = 1000;

/// Variables read outside [`Env`], by [`crate::telemetry::init`]: the log filter, and the
/// OpenTelemetry SDK's own that a deployment sets.
const ALSO_READ: &[&str] = &[
    "RUST_LOG",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_BSP_SCHEDULE_DELAY",
];

/// With `--print-env` among the process's arguments: print the names of the environment
/// variables the configuration reads, one per line (`NAME`, or `NAME required` for one that must
/// be set), and exit 0. Otherwise return at once. Call it first in `main`:
///
/// ```no_run
/// # struct Config;
/// # impl Config { fn from_env(env: service_kit::Env) -> Result<Self, service_kit::ConfigError> { env.finish().map(|()| Config) } }
/// service_kit::config::print_env_if_asked(|env| Config::from_env(env).map(drop));
/// ```
///
/// The configuration is read from an empty environment and its complaints are ignored, except
/// that a variable it reports as `NAME is required` (a rule of its own, such as "one of two must
/// be set") counts as required.
pub fn print_env_if_asked(read: impl FnOnce(Env) -> Result<(), ConfigError>) {
    if std::env::args().skip(1).any(|arg| arg == "--print-env") {
        print!("{}", env_listing(read));
        std::process::exit(0);
    }
}

/// What `--print-env` prints.
pub fn env_listing(read: impl FnOnce(Env) -> Result<(), ConfigError>) -> String {
    let env = Env::from_pairs(std::iter::empty::<(String, String)>());
    let names = env.names_read();
    let problems = read(env).err().map(|e| e.0).unwrap_or_default();
    let names = names.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = String::new();
    for variable in names.iter() {
        let reported = format!("{} is required", variable.name);
        let required = variable.required || problems.iter().any(|p| p.starts_with(&reported));
        out.push_str(&variable.name);
        out.push_str(if required { " required\n" } else { "\n" });
    }
    for name in ALSO_READ {
        if !names.iter().any(|v| v.name == *name) {
            out.push_str(name);
            out.push('\n');
        }
    }
    out
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Json,
    Text,
}

impl FromStr for LogFormat {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "json" => Ok(Self::Json),
            "text" => Ok(Self::Text),
            _ => Err("expected json or text"),
        }
    }
}

/// How a process serves HTTP: every service, and the gateway.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub host: String,
    pub port: u16,
    /// The operations listener: `/livez`, `/readyz` and `/metrics`, the only one serving
    /// `/metrics`. Port 0 takes any free port, as `port` does.
    pub ops_host: String,
    pub ops_port: u16,
    pub request_timeout: Duration,
    pub body_limit_bytes: usize,
    /// Time between turning unready and closing the listener, so load balancers stop sending.
    pub shutdown_drain_delay: Duration,
    pub log_format: LogFormat,
    /// The longest a connection may take to send a request's headers, and the longest it may
    /// stay idle between requests: a slow or silent client is closed after it.
    pub header_read_timeout: Duration,
    /// Connections served at once; one more is answered 503 and closed at once.
    pub max_connections: usize,
    /// The largest request head (request line and headers); a larger one is answered 431.
    pub max_header_bytes: usize,
    /// A connection older than this, or that has served `connection_max_requests`, closes
    /// after its next answer (`Connection: close`); `None`, never. Clients keep connections
    /// alive and Kubernetes balances per connection, so without it a replica the autoscaler
    /// adds would get only clients that connect after it is up.
    pub connection_max_age: Option<Duration>,
    pub connection_max_requests: Option<u64>,
}

impl HttpConfig {
    /// `HTTP_HOST`, `HTTP_PORT` (default `default_port`), `OPS_HOST` (default `HTTP_HOST`),
    /// `OPS_PORT` (default [`DEFAULT_OPS_PORT`]), `REQUEST_TIMEOUT_MS`, `BODY_LIMIT_BYTES`,
    /// `SHUTDOWN_DRAIN_DELAY_MS`, `LOG_FORMAT`, `HTTP_HEADER_READ_TIMEOUT_MS`,
    /// `HTTP_MAX_CONNECTIONS`, `HTTP_MAX_HEADER_BYTES`, `HTTP_CONNECTION_MAX_AGE_MS`,
    /// `HTTP_CONNECTION_MAX_REQUESTS`.
    pub fn read(env: &mut Env, default_port: u16) -> Self {
        Self::read_with(env, default_port, Retire::After(5_000, 1_000))
    }

    /// As [`HttpConfig::read`], for a listener whose connections retire only when
    /// `HTTP_CONNECTION_MAX_AGE_MS` or `HTTP_CONNECTION_MAX_REQUESTS` say so: the public
    /// gateway's. An Ingress in front of it balances each request anyway, and some clients (siege
    /// among them) count a keep-alive connection the server closes as a failed request.
    pub fn read_edge(env: &mut Env, default_port: u16) -> Self {
        Self::read_with(env, default_port, Retire::Never)
    }

    fn read_with(env: &mut Env, default_port: u16, retire: Retire) -> Self {
        let (default_age_ms, default_requests) = match retire {
            Retire::After(age, requests) => (age, requests),
            Retire::Never => (0, 0),
        };
        let host: String = env.or("HTTP_HOST", "0.0.0.0".to_owned());
        let port = env.or("HTTP_PORT", default_port);
        let config = Self {
            ops_host: env.or("OPS_HOST", host.clone()),
            ops_port: env.or("OPS_PORT", DEFAULT_OPS_PORT),
            host,
            port,
            request_timeout: env.millis("REQUEST_TIMEOUT_MS", 10_000),
            body_limit_bytes: env.or("BODY_LIMIT_BYTES", 64 * 1024),
            shutdown_drain_delay: env.millis("SHUTDOWN_DRAIN_DELAY_MS", 0),
            log_format: env.or("LOG_FORMAT", LogFormat::Json),
            header_read_timeout: env.millis("HTTP_HEADER_READ_TIMEOUT_MS", 30_000),
            max_connections: env.or("HTTP_MAX_CONNECTIONS", 1024),
            max_header_bytes: env.or("HTTP_MAX_HEADER_BYTES", 16 * 1024),
            // 0: never.
            connection_max_age: Some(env.millis("HTTP_CONNECTION_MAX_AGE_MS", default_age_ms))
                .filter(|age| !age.is_zero()),
            connection_max_requests: Some(env.or("HTTP_CONNECTION_MAX_REQUESTS", default_requests))
                .filter(|&n| n > 0),
        };
        if config.request_timeout.is_zero() {
            env.invalid("REQUEST_TIMEOUT_MS must be at least 1");
        }
        if config.header_read_timeout.is_zero() || config.max_connections == 0 {
            env.invalid("HTTP_HEADER_READ_TIMEOUT_MS and HTTP_MAX_CONNECTIONS must be at least 1");
        }
        if config.max_header_bytes < 1024 {
            env.invalid("HTTP_MAX_HEADER_BYTES must be at least 1024");
        }
        if config.port != 0 && config.ops_port == config.port {
            env.invalid(format!(
                "OPS_PORT ({}) must differ from HTTP_PORT: /metrics is served only on the operations port",
                config.ops_port
            ));
        }
        config
    }
}

/// When a listener's connections retire by default: after an age (ms) or a number of answers.
enum Retire {
    After(u64, u64),
    Never,
}

/// Where a process serves `/livez`, `/readyz` and `/metrics` unless `OPS_PORT` says otherwise:
/// the port commonly used for Prometheus exporters.
pub const DEFAULT_OPS_PORT: u16 = 9464;

/// The settings every service has.
#[derive(Debug, Clone)]
pub struct KitConfig {
    pub http: HttpConfig,
    pub database_url: String,
    /// Where the migrations run when the services' own URL goes through a transaction pooler
    /// (PgBouncer): sqlx's migrator holds a session-level lock, which needs the server itself.
    pub database_migration_url: Option<String>,
    pub database_schema: String,
    pub database_max_connections: u32,
    /// How long a request waits for a database connection before it answers 503: while the
    /// database is away, this is how fast the answer comes.
    pub database_acquire_timeout: Duration,
    pub kafka_brokers: String,
    /// Put in front of every topic and consumer group, so that several environments (or tests)
    /// can share one Kafka cluster.
    pub kafka_topic_prefix: String,
    pub kafka_message_timeout: Duration,
    pub kafka_security: crate::kafka::KafkaSecurity,
    pub outbox_poll_interval: Duration,
    pub outbox_busy_poll_interval: Duration,
    pub outbox_batch_size: u32,
    pub consumer_max_retries: u32,
    /// Events already received that a consumer applies in one transaction, at most.
    pub consumer_batch_size: usize,
    pub retention: crate::retention::RetentionConfig,
}

impl KitConfig {
    /// Reads the shared settings; `default_schema` is the service's own schema.
    pub fn read(env: &mut Env, default_schema: &str) -> Self {
        let config = Self {
            http: HttpConfig::read(env, 8080),
            database_url: env.required("DATABASE_URL"),
            database_migration_url: env.optional("DATABASE_MIGRATION_URL"),
            database_schema: env.or("DATABASE_SCHEMA", default_schema.to_owned()),
            database_max_connections: env.or("DATABASE_MAX_CONNECTIONS", 10),
            database_acquire_timeout: env.millis("DATABASE_ACQUIRE_TIMEOUT_MS", 2_000),
            kafka_brokers: env.required("KAFKA_BROKERS"),
            kafka_topic_prefix: env.or("KAFKA_TOPIC_PREFIX", String::new()),
            kafka_message_timeout: env.millis("KAFKA_MESSAGE_TIMEOUT_MS", 30_000),
            kafka_security: crate::kafka::KafkaSecurity::read(env),
            outbox_poll_interval: env.millis("OUTBOX_POLL_INTERVAL_MS", 100),
            outbox_busy_poll_interval: env.millis("OUTBOX_BUSY_POLL_INTERVAL_MS", 20),
            outbox_batch_size: env.or("OUTBOX_BATCH_SIZE", 500),
            consumer_max_retries: env.or("CONSUMER_MAX_RETRIES", 5),
            consumer_batch_size: env.or("CONSUMER_BATCH_SIZE", 32),
            retention: crate::retention::RetentionConfig::read(env),
        };
        if config.database_max_connections == 0 {
            env.invalid("DATABASE_MAX_CONNECTIONS must be at least 1");
        }
        if config.database_acquire_timeout.is_zero() {
            env.invalid("DATABASE_ACQUIRE_TIMEOUT_MS must be at least 1");
        }
        // A batch's messages are held in memory and its rows locked until it commits.
        if !(1..=MAX_CONSUMER_BATCH).contains(&config.consumer_batch_size) {
            env.invalid(format!(
                "CONSUMER_BATCH_SIZE must be from 1 to {MAX_CONSUMER_BATCH}"
            ));
        }
        if config.outbox_batch_size == 0 {
            env.invalid("OUTBOX_BATCH_SIZE must be at least 1");
        }
        let valid_schema = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        if !valid_schema(&config.database_schema) {
            env.invalid(format!(
                "DATABASE_SCHEMA={:?} must be lowercase letters, digits and underscores",
                config.database_schema
            ));
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut env = Env::from_pairs([("HTTP_PORT", "eighty"), ("OUTBOX_BATCH_SIZE", "0")]);
        KitConfig::read(&mut env, "book");
        let err = env.finish().unwrap_err().to_string();
        assert!(
            err.contains("DATABASE_URL is required but not set"),
            "{err}"
        );
        assert!(
            err.contains("KAFKA_BROKERS is required but not set"),
            "{err}"
        );
        assert!(err.contains("HTTP_PORT=\"eighty\" is invalid"), "{err}");
        assert!(
            err.contains("OUTBOX_BATCH_SIZE must be at least 1"),
            "{err}"
        );
    }

    #[test]
    fn a_consumer_batch_is_bounded() {
        for size in ["0", "1001"] {
            let mut env = Env::from_pairs([("CONSUMER_BATCH_SIZE", size)]);
            KitConfig::read(&mut env, "book");
            let err = env.finish().unwrap_err().to_string();
            assert!(
                err.contains("CONSUMER_BATCH_SIZE must be from 1 to 1000"),
                "{size}: {err}"
            );
        }
    }

    #[test]
    fn env_listing_names_every_variable_read_once_and_marks_the_required() {
        let listing = env_listing(|mut env| {
            KitConfig::read(&mut env, "book");
            let _: Option<String> = env.optional("KAFKA_BROKERS");
            let _: Option<String> = env.optional("SIGNING_KEY");
            env.invalid("SIGNING_KEY is required but not set: one of two");
            env.finish()
        });
        let lines: Vec<&str> = listing.lines().collect();
        assert_eq!(lines[0], "HTTP_HOST", "{listing}");
        assert!(lines.contains(&"DATABASE_URL required"), "{listing}");
        assert!(lines.contains(&"KAFKA_BROKERS required"), "{listing}");
        assert!(lines.contains(&"SHUTDOWN_DRAIN_DELAY_MS"), "{listing}");
        assert!(lines.contains(&"SIGNING_KEY required"), "{listing}");
        // What the kit reads outside the configuration (logs, traces) comes last.
        assert_eq!(
            lines[lines.len() - ALSO_READ.len()..],
            *ALSO_READ,
            "{listing}"
        );
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.starts_with("KAFKA_BROKERS"))
                .count(),
            1,
            "{listing}"
        );
    }

    #[test]
    fn defaults_fill_in_what_is_not_set() {
        let mut env = Env::from_pairs([
            ("DATABASE_URL", "postgres://x"),
            ("KAFKA_BROKERS", "k:9092"),
        ]);
        let config = KitConfig::read(&mut env, "book");
        env.finish().unwrap();
        assert_eq!(config.http.port, 8080);
        assert_eq!(config.http.ops_port, 9464);
        assert_eq!(config.http.ops_host, "0.0.0.0");
        assert_eq!(config.database_schema, "book");
        assert_eq!(config.http.log_format, LogFormat::Json);
    }

    #[test]
    fn services_retire_connections_the_public_edge_only_when_told() {
        let service = HttpConfig::read(&mut Env::from_pairs([("HTTP_PORT", "1")]), 8080);
        assert_eq!(service.connection_max_age, Some(Duration::from_secs(5)));
        assert_eq!(service.connection_max_requests, Some(1_000));
        let edge = HttpConfig::read_edge(&mut Env::from_pairs([("HTTP_PORT", "1")]), 8080);
        assert_eq!(
            (edge.connection_max_age, edge.connection_max_requests),
            (None, None)
        );
        let told = HttpConfig::read_edge(
            &mut Env::from_pairs([("HTTP_CONNECTION_MAX_AGE_MS", "2000")]),
            8080,
        );
        assert_eq!(told.connection_max_age, Some(Duration::from_secs(2)));
        let never = HttpConfig::read(
            &mut Env::from_pairs([
                ("HTTP_CONNECTION_MAX_AGE_MS", "0"),
                ("HTTP_CONNECTION_MAX_REQUESTS", "0"),
            ]),
            8080,
        );
        assert_eq!(
            (never.connection_max_age, never.connection_max_requests),
            (None, None)
        );
    }

    #[test]
    fn the_operations_port_follows_the_api_host_and_may_not_be_the_api_port() {
        let mut env = Env::from_pairs([("HTTP_HOST", "127.0.0.1"), ("OPS_PORT", "9100")]);
        let config = HttpConfig::read(&mut env, 8080);
        env.finish().unwrap();
        assert_eq!(
            (config.ops_host.as_str(), config.ops_port),
            ("127.0.0.1", 9100)
        );

        let mut env = Env::from_pairs([("OPS_HOST", "10.0.0.7")]);
        assert_eq!(HttpConfig::read(&mut env, 8080).ops_host, "10.0.0.7");

        let mut env = Env::from_pairs([("HTTP_PORT", "9464")]);
        HttpConfig::read(&mut env, 8080);
        let err = env.finish().unwrap_err().to_string();
        assert!(
            err.contains("OPS_PORT (9464) must differ from HTTP_PORT"),
            "{err}"
        );

        // Both on any free port, as tests run them.
        let mut env = Env::from_pairs([("HTTP_PORT", "0"), ("OPS_PORT", "0")]);
        HttpConfig::read(&mut env, 8080);
        env.finish().unwrap();
    }
}
