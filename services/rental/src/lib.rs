//! rental: the core domain. Customers rent a book (paying for it at once, through payment behind
//! a circuit breaker), cancel a rental (payment refunds it) or return the book.

pub mod adapters;
pub mod application;
pub mod domain;
mod fault;

use std::time::Duration;

use fleet_auth::{AuthConfig, ClientCredentials};
use fleet_config::{ConfigError, Env};
use fleet_service::{KitConfig, Service, ServiceSpec};
use shared_events::Topic;
use utoipa::OpenApi;

use adapters::consumer::CatalogueReplica;
use adapters::http::{self, Api};
use adapters::payment::{PaymentClient, PaymentSettings};
use adapters::postgres::PgRentalStore;
use application::{Clock, Expiry, Reconciler, Rentals};
use domain::RentalTerms;

/// The service name: event source and consumer group.
pub const SERVICE: &str = "rental";

/// The topics the service consumes (and whose dead letters `rental dlq` replays).
pub const CONSUMED_TOPICS: [Topic; 1] = [Topic::Book];

pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub struct Config {
    pub kit: KitConfig,
    pub auth: AuthConfig,
    pub payment: PaymentSettings,
    pub terms: RentalTerms,
    pub max_active_rentals: u32,
    pub expiry_interval: Duration,
    pub reconcile_after: Duration,
    pub reconcile_interval: Duration,
}

impl Config {
    /// The kit's settings, the token checks', rental's token for payment and rental's own: the
    /// README's "Service configuration" lists each variable with its default and meaning, and
    /// `gateway/tests/deployment.rs` holds it to what this reads.
    pub fn from_env(mut env: Env) -> Result<Self, ConfigError> {
        let kit = KitConfig::read(&mut env, "rental");
        let auth = AuthConfig::read(&mut env);
        let payment_url: String = env.required("PAYMENT_URL");
        let payment = PaymentSettings {
            base_urls: payment_url
                .split(',')
                .map(str::trim)
                .filter(|url| !url.is_empty())
                .map(str::to_owned)
                .collect(),
            timeout: env.millis("PAYMENT_TIMEOUT_MS", 610),
            max_concurrent_calls: env.or("PAYMENT_MAX_CONCURRENT_CALLS", 64),
            failure_rate: env.or("BREAKER_FAILURE_RATE", 0.5),
            window: env.millis("BREAKER_WINDOW_MS", 10_000),
            minimum_calls: env.or("BREAKER_MIN_CALLS", 5),
            open_for: env.millis("BREAKER_OPEN_MS", 5000),
            half_open_calls: env.or("BREAKER_HALF_OPEN_CALLS", 3),
            credentials: ClientCredentials::read(&mut env, "rental"),
        };
        let period_days: i64 = env.or("RENTAL_PERIOD_DAYS", 14);
        let period_secs: Option<i64> = env.optional("RENTAL_PERIOD_SECS");
        let cancel_window_minutes: i64 = env.or("CANCEL_WINDOW_MINUTES", 30);
        let config = Self {
            kit,
            auth,
            payment,
            terms: RentalTerms {
                period: period_secs
                    .map(chrono::Duration::seconds)
                    .unwrap_or_else(|| chrono::Duration::days(period_days)),
                cancel_window: chrono::Duration::minutes(cancel_window_minutes),
            },
            max_active_rentals: env.or("MAX_ACTIVE_RENTALS_PER_CUSTOMER", 5),
            expiry_interval: env.millis("EXPIRY_INTERVAL_MS", 1000),
            reconcile_after: env.millis("RECONCILE_AFTER_MS", 30_000),
            reconcile_interval: env.millis("RECONCILE_INTERVAL_MS", 5_000),
        };
        if !(config.payment.failure_rate > 0.0 && config.payment.failure_rate <= 1.0) {
            env.invalid("BREAKER_FAILURE_RATE must be above 0 and at most 1");
        }
        let addresses = &config.payment.base_urls;
        if !payment_url.is_empty()
            && (addresses.is_empty() || addresses.iter().any(|url| !url.starts_with("http")))
        {
            env.invalid("PAYMENT_URL must be one or more http(s) addresses, comma-separated");
        }
        if config.payment.max_concurrent_calls == 0
            || config.payment.window.is_zero()
            || config.payment.half_open_calls == 0
        {
            env.invalid("PAYMENT_MAX_CONCURRENT_CALLS, BREAKER_WINDOW_MS and BREAKER_HALF_OPEN_CALLS must be at least 1");
        }
        if period_days < 1 || period_secs.is_some_and(|secs| secs < 1) {
            env.invalid("RENTAL_PERIOD_DAYS and RENTAL_PERIOD_SECS must be at least 1");
        }
        if cancel_window_minutes < 0 {
            env.invalid("CANCEL_WINDOW_MINUTES must be 0 or more");
        }
        if config.max_active_rentals == 0 || config.expiry_interval.is_zero() {
            env.invalid(
                "MAX_ACTIVE_RENTALS_PER_CUSTOMER and EXPIRY_INTERVAL_MS must be at least 1",
            );
        }
        // A payment call that times out is sent once more: a rent waits two timeouts at most.
        if config.reconcile_after <= 2 * config.payment.timeout {
            env.invalid("RECONCILE_AFTER_MS must be longer than twice PAYMENT_TIMEOUT_MS (a timed-out payment call is sent once more), or the reconciler races live rents");
        }
        env.finish()?;
        Ok(config)
    }
}

/// Wires the hexagon: Postgres store and payment client → renting use cases → HTTP;
/// `book.events` → catalogue replica; the reconciler and the expiry of rentals in the background.
pub async fn build(config: Config) -> anyhow::Result<Service> {
    build_with_clock(config, Clock::default()).await
}

/// [`build`], with the clock the use cases record times by.
pub async fn build_with_clock(config: Config, clock: Clock) -> anyhow::Result<Service> {
    let service = Service::build(
        ServiceSpec {
            name: SERVICE,
            migrations: &MIGRATIONS,
        },
        config.kit,
    )
    .await?;
    let store = PgRentalStore::new(service.pool().clone());
    let retry_after_secs = config.payment.open_for.as_secs().max(1);
    let payments = PaymentClient::new(config.payment, &service.metrics().registry)?;
    let token_keeper = payments.clone();
    let reconciler = Reconciler {
        store: store.clone(),
        payments: payments.clone(),
        after: config.reconcile_after,
        interval: config.reconcile_interval,
    };
    let expired_total = prometheus::IntCounter::new(
        "rentals_expired_total",
        "Rentals this replica ended at their due date.",
    )?;
    service
        .metrics()
        .registry
        .register(Box::new(expired_total.clone()))?;
    let expiry = Expiry {
        store: store.clone(),
        interval: config.expiry_interval,
        expired_total,
    };
    let api = Api {
        rentals: Rentals::new(store, payments, config.terms, config.max_active_rentals)
            .with_clock(clock),
        retry_after_secs,
    };
    service
        .with_routes(http::routes(api))
        .with_api_doc(http::ApiDoc::openapi())
        .with_auth(config.auth)
        .with_worker(|stop| reconciler.run(stop))
        .with_worker(|stop| expiry.run(stop))
        .with_worker(move |stop| token_keeper.keep_token_fresh(stop))
        .consume(&CONSUMED_TOPICS, CatalogueReplica)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(extra: &[(&str, &str)]) -> Env {
        let mut vars = vec![
            ("DATABASE_URL", "postgres://x"),
            ("KAFKA_BROKERS", "k:9092"),
            ("JWKS_URL", "http://user/.well-known/jwks.json"),
            ("PAYMENT_URL", "http://payment:8080"),
            ("TOKEN_URL", "http://user:8080/api/v1/auth/token"),
            ("RENTAL_CLIENT_SECRET", "0123456789abcdef0123456789abcdef"),
        ];
        vars.extend_from_slice(extra);
        Env::from_pairs(vars)
    }

    #[test]
    fn the_rental_terms_default_to_fourteen_days_thirty_minutes_and_five_rentals() {
        let config = Config::from_env(env(&[])).unwrap();
        assert_eq!(config.terms.period, chrono::Duration::days(14));
        assert_eq!(config.terms.cancel_window, chrono::Duration::minutes(30));
        assert_eq!(config.max_active_rentals, 5);
        assert_eq!(config.expiry_interval, Duration::from_secs(1));
        let short = Config::from_env(env(&[("RENTAL_PERIOD_SECS", "90")])).unwrap();
        assert_eq!(short.terms.period, chrono::Duration::seconds(90));
        let refused = Config::from_env(env(&[
            ("MAX_ACTIVE_RENTALS_PER_CUSTOMER", "0"),
            ("CANCEL_WINDOW_MINUTES", "-1"),
        ]))
        .err()
        .unwrap()
        .to_string();
        assert!(
            refused.contains("MAX_ACTIVE_RENTALS_PER_CUSTOMER"),
            "{refused}"
        );
        assert!(refused.contains("CANCEL_WINDOW_MINUTES"), "{refused}");
    }

    #[test]
    fn rental_needs_its_way_to_a_token_for_payment() {
        let missing = Config::from_env(Env::from_pairs([
            ("DATABASE_URL", "postgres://x"),
            ("KAFKA_BROKERS", "k:9092"),
            ("JWKS_URL", "http://user/.well-known/jwks.json"),
            ("PAYMENT_URL", "http://payment:8080"),
        ]))
        .err()
        .unwrap()
        .to_string();
        assert!(missing.contains("TOKEN_URL is required"), "{missing}");
        assert!(
            missing.contains("RENTAL_CLIENT_SECRET is required"),
            "{missing}"
        );
        let config = Config::from_env(env(&[])).unwrap();
        assert!(!format!("{:?}", config.payment).contains("0123456789abcdef"));
    }
}
