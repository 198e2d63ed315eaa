//! How a process serves HTTP, from the environment.

use std::time::Duration;

use fleet_config::Env;
use fleet_telemetry::LogFormat;

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

#[cfg(test)]
mod tests {
    use super::*;

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
