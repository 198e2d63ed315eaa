//! view: the fleet's read side (CQRS). It consumes every topic into two boards, the rental status
//! board and the book board, and serves them; it writes no events and calls no service. The
//! boards are disposable: [`rebuild`] empties them and has the next start read every topic again.

pub mod adapters;
pub mod application;
pub mod domain;

use std::time::Duration;

use anyhow::Context;
use fleet_auth::AuthConfig;
use fleet_config::{ConfigError, Env};
use fleet_messaging::kafka::Kafka;
use fleet_service::{KitConfig, Service, ServiceSpec};
use shared_events::Topic;
use utoipa::OpenApi;

use adapters::{consumer::Projection, http, postgres, postgres::PgBoard};
use application::Board;

/// The service name: consumer group and metrics label.
pub const SERVICE: &str = "view";

/// The topics the boards are built from: all of them.
pub const TOPICS: [Topic; 4] = Topic::ALL;

pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub struct Config {
    pub kit: KitConfig,
    pub auth: AuthConfig,
}

impl Config {
    /// The kit's settings and the token checks': the README's "Service configuration" lists each
    /// variable with its default and meaning, and `gateway/tests/deployment.rs` holds it to what
    /// this reads.
    pub fn from_env(mut env: Env) -> Result<Self, ConfigError> {
        let kit = KitConfig::read(&mut env, "view");
        let auth = AuthConfig::read(&mut env);
        env.finish()?;
        Ok(Self { kit, auth })
    }
}

/// What `view rebuild` needs: the service's database and broker settings (no token settings),
/// and `REBUILD_WAIT_MS` (30000): how long to wait for the consumer group to be free of running
/// replicas (one stopped by SIGKILL stays a member for the group's 10 s session timeout).
pub struct RebuildConfig {
    pub kit: KitConfig,
    pub wait: Duration,
}

impl RebuildConfig {
    pub fn from_env(mut env: Env) -> Result<Self, ConfigError> {
        let kit = KitConfig::read(&mut env, "view");
        let wait = env.millis("REBUILD_WAIT_MS", 30_000);
        env.finish()?;
        Ok(Self { kit, wait })
    }
}

/// Wires the hexagon: every topic → projection → Postgres boards → board use cases → HTTP.
pub async fn build(config: Config) -> anyhow::Result<Service> {
    let service = Service::build(
        ServiceSpec {
            name: SERVICE,
            migrations: &MIGRATIONS,
        },
        config.kit,
    )
    .await?;
    let board = Board::new(PgBoard::new(service.pool().clone()));
    service
        .with_routes(http::routes(board))
        .with_api_doc(http::ApiDoc::openapi())
        .with_auth(config.auth)
        .consume(&TOPICS, Projection)
}

/// Forgets the boards so that the next start of the service builds them again from every
/// event still on the topics; run it with every replica stopped. Returns how many partitions
/// were rewound.
///
/// First the consumer group is rewound to the oldest offsets (which fails, changing nothing,
/// while a replica is running), then the boards and the inbox are emptied in one transaction.
/// Should that transaction fail, the next start reads everything again but finds every event in
/// the inbox: the boards stay as they were, never half-emptied.
pub async fn rebuild(config: &RebuildConfig) -> anyhow::Result<usize> {
    let kit = &config.kit;
    let pool = fleet_database::pool(&kit.database).context("invalid DATABASE_URL")?;
    // Creates the tables on a database the service has never run on, and checks it is there
    // before the group is touched.
    fleet_database::migrator(&MIGRATIONS)
        .await?
        .run(&pool)
        .await
        .context("cannot migrate the view's schema")?;
    let partitions = Kafka::new(&kit.messaging)
        .reset_consumer_group(SERVICE, &TOPICS, config.wait)
        .await?;
    let mut tx = pool.begin().await?;
    postgres::forget_everything(&mut tx).await?;
    tx.commit().await?;
    pool.close().await;
    tracing::info!(
        partitions,
        "the boards are empty; the next start rebuilds them from the topics"
    );
    Ok(partitions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_needs_the_token_keys_and_the_rebuild_does_not() {
        let env = || {
            Env::from_pairs([
                ("DATABASE_URL", "postgres://x"),
                ("KAFKA_BROKERS", "k:9092"),
            ])
        };
        let err = Config::from_env(env()).err().unwrap().to_string();
        assert!(err.contains("JWKS_URL is required"), "{err}");
        let rebuild = RebuildConfig::from_env(env()).unwrap();
        assert_eq!(rebuild.kit.database.schema, "view");
        assert_eq!(rebuild.wait, Duration::from_secs(30));
    }
}
