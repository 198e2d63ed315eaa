//! points: customers earn points when a rental completes (a supporting subdomain, the one the
//! seed planned). A rental returned by its customer or expired at its due date earns a share of
//! its fee (`POINTS_PERCENT`, 10 % by default, rounded down); a cancelled one earns nothing.
//! A customer reads their own balance and history, a manager anyone's.
//!
//! It joined the fleet without changing any other service: it only consumes `rental.events` as
//! they are (remembering each rental's fee from its `BookRented`, since its `BookReturned` does
//! not carry it), keeps everything in its own schema, publishes nothing and calls no one. Started
//! on a fleet that has been running, it reads the topic from its beginning and computes the
//! balances the fleet's history (as much of it as the topic keeps) adds up to.

pub mod adapters;
pub mod application;
pub mod domain;

use fleet_auth::AuthConfig;
use fleet_config::{ConfigError, Env};
use fleet_service::{KitConfig, Service, ServiceSpec};
use shared_events::Topic;
use utoipa::OpenApi;

use adapters::{consumer::Earnings, http, postgres::PgPoints};
use application::{Earning, Statements};
use domain::EarningRate;

/// The service name: consumer group and metrics label.
pub const SERVICE: &str = "points";

/// The topics the service consumes (and whose dead letters `points dlq` replays).
pub const CONSUMED_TOPICS: [Topic; 1] = [Topic::Rental];

pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub struct Config {
    pub kit: KitConfig,
    pub auth: AuthConfig,
    pub rate: EarningRate,
}

impl Config {
    /// The kit's settings, the token checks' and `POINTS_PERCENT`: the README's "Service
    /// configuration" lists each variable with its default and meaning, and
    /// `gateway/tests/deployment.rs` holds it to what this reads.
    pub fn from_env(mut env: Env) -> Result<Self, ConfigError> {
        let kit = KitConfig::read(&mut env, "points");
        let auth = AuthConfig::read(&mut env);
        let percent: u32 = env.or("POINTS_PERCENT", 10);
        let rate = EarningRate::percent(percent).unwrap_or_else(|e| {
            env.invalid(format!("POINTS_PERCENT {e}"));
            EarningRate::DEFAULT
        });
        env.finish()?;
        Ok(Self { kit, auth, rate })
    }
}

/// Wires the hexagon: `rental.events` → earning → Postgres ledger and balances → statements →
/// HTTP.
pub async fn build(config: Config) -> anyhow::Result<Service> {
    let service = Service::build(
        ServiceSpec {
            name: SERVICE,
            migrations: &MIGRATIONS,
        },
        config.kit,
    )
    .await?;
    tracing::info!(percent = config.rate.as_percent(), "earning points");
    let statements = Statements::new(PgPoints::new(service.pool().clone()));
    service
        .with_routes(http::routes(statements))
        .with_api_doc(http::ApiDoc::openapi())
        .with_auth(config.auth)
        .consume(&CONSUMED_TOPICS, Earnings(Earning::new(config.rate)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(extra: &[(&str, &str)]) -> Env {
        let mut vars = vec![
            ("DATABASE_URL", "postgres://x"),
            ("KAFKA_BROKERS", "k:9092"),
            ("JWKS_URL", "http://user/.well-known/jwks.json"),
        ];
        vars.extend_from_slice(extra);
        Env::from_pairs(vars)
    }

    fn error(env: Env) -> String {
        Config::from_env(env).err().unwrap().to_string()
    }

    #[test]
    fn ten_percent_by_default_in_the_points_schema() {
        let config = Config::from_env(env(&[])).unwrap();
        assert_eq!(config.kit.database.schema, "points");
        assert_eq!(config.auth.jwks_url, "http://user/.well-known/jwks.json");
        assert_eq!(config.rate, EarningRate::DEFAULT);
        assert_eq!(config.rate.as_percent(), 10);
    }

    #[test]
    fn the_percent_is_a_whole_number_from_0_to_100() {
        for (value, percent) in [("0", 0), ("25", 25), ("100", 100)] {
            let config = Config::from_env(env(&[("POINTS_PERCENT", value)])).unwrap();
            assert_eq!(config.rate.as_percent(), percent);
        }
        let err = error(env(&[("POINTS_PERCENT", "101")]));
        assert!(
            err.contains("POINTS_PERCENT must be a whole percent from 0 to 100, not 101"),
            "{err}"
        );
        for value in ["-1", "12.5", "ten"] {
            let err = error(env(&[("POINTS_PERCENT", value)]));
            assert!(
                err.contains(&format!("POINTS_PERCENT=\"{value}\" is invalid")),
                "{err}"
            );
        }
    }

    #[test]
    fn every_invalid_setting_is_reported_at_once() {
        let err = error(Env::from_pairs([("POINTS_PERCENT", "500")]));
        for expected in [
            "DATABASE_URL is required",
            "KAFKA_BROKERS is required",
            "JWKS_URL is required",
            "POINTS_PERCENT must be a whole percent from 0 to 100, not 500",
        ] {
            assert!(err.contains(expected), "{expected} missing from: {err}");
        }
    }
}
