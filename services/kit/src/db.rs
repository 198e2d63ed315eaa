//! The service's Postgres pool, confined to its own schema, and its migrations.

use std::str::FromStr;
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::KitConfig;

/// The kit's own tables (outbox, inbox), which every service has in its schema.
pub static KIT_MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// A pool that connects lazily, so the process starts (and reports itself unready) while the
/// database is still coming up. Every connection's `search_path` is the service's schema only.
pub fn pool(config: &KitConfig) -> Result<PgPool, sqlx::Error> {
    let options = PgConnectOptions::from_str(&config.database_url)?
        .options([("search_path", config.database_schema.as_str())])
        .application_name(&config.database_schema);
    Ok(PgPoolOptions::new()
        .max_connections(config.database_max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options))
}

#[derive(Debug)]
struct Combined(Vec<Migration>);

impl MigrationSource<'static> for Combined {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move { Ok(self.0) })
    }
}

/// The kit's migrations (versions 1, 2, …) followed by the service's (timestamped versions).
pub async fn migrator(service: &Migrator) -> Result<Migrator, sqlx::migrate::MigrateError> {
    let migrations = KIT_MIGRATIONS
        .iter()
        .chain(service.iter())
        .cloned()
        .collect();
    Migrator::new(Combined(migrations)).await
}
