//! Configuration comes only from the environment. Every variable is read through [`Env`], which
//! collects every missing or invalid value so that one start-up error lists them all.

use std::collections::HashMap;
use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

/// Everything that is wrong with the configuration, one line per variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

/// A snapshot of environment variables and the problems found reading them.
pub struct Env {
    vars: HashMap<String, String>,
    problems: Vec<String>,
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
        self.parse(name).unwrap_or(default)
    }

    pub fn optional<T: FromStr>(&mut self, name: &str) -> Option<T>
    where
        T::Err: Display,
    {
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

/// The settings every service has.
#[derive(Debug, Clone)]
pub struct KitConfig {
    pub http_host: String,
    pub http_port: u16,
    pub database_url: String,
    pub database_schema: String,
    pub database_max_connections: u32,
    pub kafka_brokers: String,
    /// Put in front of every topic and consumer group, so that several environments (or tests)
    /// can share one Kafka cluster.
    pub kafka_topic_prefix: String,
    pub kafka_message_timeout: Duration,
    pub outbox_poll_interval: Duration,
    pub outbox_batch_size: u32,
    pub consumer_max_retries: u32,
    pub request_timeout: Duration,
    pub body_limit_bytes: usize,
    /// Time between turning unready and closing the listener, so load balancers stop sending.
    pub shutdown_drain_delay: Duration,
    pub log_format: LogFormat,
}

impl KitConfig {
    /// Reads the shared settings; `default_schema` is the service's own schema.
    pub fn read(env: &mut Env, default_schema: &str) -> Self {
        let config = Self {
            http_host: env.or("HTTP_HOST", "0.0.0.0".to_owned()),
            http_port: env.or("HTTP_PORT", 8080),
            database_url: env.required("DATABASE_URL"),
            database_schema: env.or("DATABASE_SCHEMA", default_schema.to_owned()),
            database_max_connections: env.or("DATABASE_MAX_CONNECTIONS", 10),
            kafka_brokers: env.required("KAFKA_BROKERS"),
            kafka_topic_prefix: env.or("KAFKA_TOPIC_PREFIX", String::new()),
            kafka_message_timeout: env.millis("KAFKA_MESSAGE_TIMEOUT_MS", 30_000),
            outbox_poll_interval: env.millis("OUTBOX_POLL_INTERVAL_MS", 100),
            outbox_batch_size: env.or("OUTBOX_BATCH_SIZE", 500),
            consumer_max_retries: env.or("CONSUMER_MAX_RETRIES", 5),
            request_timeout: env.millis("REQUEST_TIMEOUT_MS", 10_000),
            body_limit_bytes: env.or("BODY_LIMIT_BYTES", 64 * 1024),
            shutdown_drain_delay: env.millis("SHUTDOWN_DRAIN_DELAY_MS", 0),
            log_format: env.or("LOG_FORMAT", LogFormat::Json),
        };
        if config.database_max_connections == 0 {
            env.invalid("DATABASE_MAX_CONNECTIONS must be at least 1");
        }
        if config.request_timeout.is_zero() {
            env.invalid("REQUEST_TIMEOUT_MS must be at least 1");
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
    fn defaults_fill_in_what_is_not_set() {
        let mut env = Env::from_pairs([
            ("DATABASE_URL", "postgres://x"),
            ("KAFKA_BROKERS", "k:9092"),
        ]);
        let config = KitConfig::read(&mut env, "book");
        env.finish().unwrap();
        assert_eq!(config.http_port, 8080);
        assert_eq!(config.database_schema, "book");
        assert_eq!(config.log_format, LogFormat::Json);
    }
}
