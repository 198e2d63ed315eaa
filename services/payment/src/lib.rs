//! payment: the payments of rentals (a generic subdomain). Rental pays for a rental
//! synchronously, with the rental id as idempotency key; a cancelled rental (`rental.events`) is
//! refunded. Owners and managers read payments with an access token.

pub mod adapters;
pub mod application;
pub mod domain;

use fleet_auth::AuthConfig;
use fleet_config::{ConfigError, Env};
use fleet_service::{KitConfig, Service, ServiceSpec};
use shared_events::Topic;
use utoipa::OpenApi;

use adapters::{consumer::RentalCancellations, http, postgres::PgPaymentStore};
use application::{Latency, Payments, Settings};
use domain::DeclineRule;

/// The service name: event source and consumer group.
pub const SERVICE: &str = "payment";

/// The topics the service consumes (and whose dead letters `payment dlq` replays).
pub const CONSUMED_TOPICS: [Topic; 1] = [Topic::Rental];

pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub struct Config {
    pub kit: KitConfig,
    pub auth: AuthConfig,
    pub payments: Settings,
}

impl Config {
    /// The kit's settings, the token checks' and payment's own (`PAYMENT_*`): the README's "Service
    /// configuration" lists each variable with its default and meaning, and
    /// `gateway/tests/deployment.rs` holds it to what this reads.
    pub fn from_env(mut env: Env) -> Result<Self, ConfigError> {
        let kit = KitConfig::read(&mut env, "payment");
        // rental's token for the internal endpoints names payment as its audience.
        let auth = AuthConfig::read(&mut env).accepting_services("payment");
        let latency: Option<Latency> = env.optional("PAYMENT_LATENCY_MS");
        let decline_above: Option<u32> = env.optional("PAYMENT_DECLINE_AMOUNT_ABOVE");
        if let Some(latency) = latency
            && latency.max() >= kit.http.request_timeout
        {
            env.invalid(format!(
                "PAYMENT_LATENCY_MS ({latency}) must stay below REQUEST_TIMEOUT_MS ({} ms)",
                kit.http.request_timeout.as_millis()
            ));
        }
        env.finish()?;
        Ok(Self {
            kit,
            auth,
            payments: Settings {
                latency,
                decline: decline_above.map_or(DeclineRule::never(), DeclineRule::amount_above),
            },
        })
    }
}

/// Wires the hexagon: Postgres store → payment use cases → HTTP (public reads checking tokens,
/// rental's internal calls); `rental.events` → refunds.
pub async fn build(config: Config) -> anyhow::Result<Service> {
    let service = Service::build(
        ServiceSpec {
            name: SERVICE,
            migrations: &MIGRATIONS,
        },
        config.kit,
    )
    .await?;
    let payments = Payments::new(PgPaymentStore::new(service.pool().clone()), config.payments);
    // The contract tests' provider states: compiled only with the test-only feature.
    #[cfg(feature = "provider-states")]
    let service = service.with_routes(adapters::provider_states::routes(
        payments.clone(),
        config.payments,
    ));
    service
        .with_routes(http::routes(payments))
        .with_api_doc(http::ApiDoc::openapi())
        .with_auth(config.auth)
        .consume(&CONSUMED_TOPICS, RentalCancellations)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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

    #[test]
    fn no_latency_and_no_declines_by_default() {
        let config = Config::from_env(env(&[])).unwrap();
        assert_eq!(config.kit.database.schema, "payment");
        assert_eq!(config.auth.jwks_url, "http://user/.well-known/jwks.json");
        assert_eq!(config.payments.latency, None);
        assert_eq!(config.payments.decline, DeclineRule::never());
    }

    #[test]
    fn payment_settings_are_read() {
        let config = Config::from_env(env(&[
            ("PAYMENT_LATENCY_MS", "400..620"),
            ("PAYMENT_DECLINE_AMOUNT_ABOVE", "500"),
        ]))
        .unwrap();
        assert_eq!(
            config.payments.latency.unwrap().max(),
            Duration::from_millis(620)
        );
        assert_eq!(config.payments.decline, DeclineRule::amount_above(500));
    }

    #[test]
    fn every_invalid_setting_is_reported_at_once() {
        let err = Config::from_env(Env::from_pairs([
            ("PAYMENT_LATENCY_MS", "620..400"),
            ("PAYMENT_DECLINE_AMOUNT_ABOVE", "-1"),
        ]))
        .err()
        .unwrap()
        .to_string();
        for expected in [
            "DATABASE_URL is required",
            "JWKS_URL is required",
            "PAYMENT_LATENCY_MS=\"620..400\" is invalid",
            "PAYMENT_DECLINE_AMOUNT_ABOVE=\"-1\" is invalid",
        ] {
            assert!(err.contains(expected), "{expected} missing from: {err}");
        }
        let err = Config::from_env(env(&[
            ("PAYMENT_LATENCY_MS", "abc"),
            ("PAYMENT_DECLINE_AMOUNT_ABOVE", "abc"),
        ]))
        .err()
        .unwrap()
        .to_string();
        assert!(
            err.contains("PAYMENT_LATENCY_MS=\"abc\" is invalid"),
            "{err}"
        );
        assert!(err.contains("PAYMENT_DECLINE_AMOUNT_ABOVE"), "{err}");
    }

    #[test]
    fn the_latency_must_stay_below_the_request_timeout() {
        let err = Config::from_env(env(&[
            ("PAYMENT_LATENCY_MS", "100..2000"),
            ("REQUEST_TIMEOUT_MS", "2000"),
        ]))
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("must stay below REQUEST_TIMEOUT_MS"), "{err}");
    }
}
