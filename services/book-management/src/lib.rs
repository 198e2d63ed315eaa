//! book-management: the catalogue of books (a supporting subdomain). Managers register, update
//! and retire books; each book's rental status follows `rental.events`.

pub mod adapters;
pub mod application;
pub mod domain;

use fleet_auth::AuthConfig;
use fleet_config::{ConfigError, Env};
use fleet_service::{KitConfig, Service, ServiceSpec};
use shared_events::Topic;
use utoipa::OpenApi;

use adapters::{consumer::RentalActivity, http, postgres::PgBookStore};
use application::Catalogue;

/// The service name: event source and consumer group.
pub const SERVICE: &str = "book-management";

/// The topics the service consumes (and whose dead letters `book-management dlq` replays).
pub const CONSUMED_TOPICS: [Topic; 1] = [Topic::Rental];

pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub struct Config {
    pub kit: KitConfig,
    pub auth: AuthConfig,
}

impl Config {
    pub fn from_env(mut env: Env) -> Result<Self, ConfigError> {
        let kit = KitConfig::read(&mut env, "book");
        let auth = AuthConfig::read(&mut env);
        env.finish()?;
        Ok(Self { kit, auth })
    }
}

/// Wires the hexagon: Postgres store → catalogue use cases → HTTP; `rental.events` → book status.
pub async fn build(config: Config) -> anyhow::Result<Service> {
    let service = Service::build(
        ServiceSpec {
            name: SERVICE,
            migrations: &MIGRATIONS,
        },
        config.kit,
    )
    .await?;
    let catalogue = Catalogue::new(PgBookStore::new(service.pool().clone()));
    service
        .with_routes(http::routes(catalogue))
        .with_api_doc(http::ApiDoc::openapi())
        .with_auth(config.auth)
        .consume(&CONSUMED_TOPICS, RentalActivity)
}
