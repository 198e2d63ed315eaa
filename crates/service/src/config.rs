//! The settings every service has: how it serves HTTP, its database, and its messaging.

use fleet_config::Env;
use fleet_database::DatabaseConfig;
use fleet_http::HttpConfig;
use fleet_messaging::MessagingConfig;

/// The settings every service has.
#[derive(Debug, Clone)]
pub struct KitConfig {
    pub http: HttpConfig,
    pub database: DatabaseConfig,
    pub messaging: MessagingConfig,
}

impl KitConfig {
    /// Reads the shared settings; `default_schema` is the service's own schema.
    pub fn read(env: &mut Env, default_schema: &str) -> Self {
        Self {
            http: HttpConfig::read(env, 8080),
            database: DatabaseConfig::read(env, default_schema),
            messaging: MessagingConfig::read(env),
        }
    }
}

#[cfg(test)]
mod tests {
    use fleet_config::env_listing;
    use fleet_telemetry::LogFormat;

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
    fn print_env_lists_every_shared_setting_in_reading_order() {
        let listing = env_listing(|mut env| {
            KitConfig::read(&mut env, "book");
            env.finish()
        });
        let lines: Vec<&str> = listing.lines().collect();
        assert_eq!(lines[0], "HTTP_HOST", "{listing}");
        assert!(lines.contains(&"DATABASE_URL required"), "{listing}");
        assert!(lines.contains(&"KAFKA_BROKERS required"), "{listing}");
        assert!(lines.contains(&"SHUTDOWN_DRAIN_DELAY_MS"), "{listing}");
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
        assert_eq!(config.database.schema, "book");
        assert_eq!(config.http.log_format, LogFormat::Json);
    }
}
