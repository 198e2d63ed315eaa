//! The signing keys a service fetched, kept in its own schema's `signing_keys` table.

use std::time::Duration;

use fleet_auth::{JwkSet, KeptKeys, KeyStore};
use futures::future::BoxFuture;
use sqlx::PgPool;

pub struct KeyTable(pub PgPool);

impl KeyStore for KeyTable {
    fn load(&self) -> BoxFuture<'_, anyhow::Result<Option<KeptKeys>>> {
        Box::pin(async move {
            // The age by the database's clock, which wrote `fetched_at`.
            let kept: Option<(String, f64)> = sqlx::query_as(
                "SELECT jwks::text, extract(epoch FROM now() - fetched_at)::float8 \
                 FROM signing_keys",
            )
            .fetch_optional(&self.0)
            .await?;
            Ok(kept.and_then(|(json, age)| {
                Some(KeptKeys {
                    keys: serde_json::from_str(&json).ok()?,
                    age: Duration::try_from_secs_f64(age.max(0.0)).ok()?,
                })
            }))
        })
    }

    fn keep<'a>(&'a self, keys: &'a JwkSet) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let json = serde_json::to_string(keys)?;
            sqlx::query(
                "INSERT INTO signing_keys (jwks) VALUES ($1::jsonb) \
                 ON CONFLICT (singleton) DO UPDATE SET jwks = EXCLUDED.jwks, fetched_at = now()",
            )
            .bind(json)
            .execute(&self.0)
            .await?;
            Ok(())
        })
    }
}
