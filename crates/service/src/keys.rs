//! The signing keys a service fetched, kept in its own schema's `signing_keys` table.

use fleet_auth::{JwkSet, KeyStore};
use futures::future::BoxFuture;
use sqlx::PgPool;

pub struct KeptKeys(pub PgPool);

impl KeyStore for KeptKeys {
    fn load(&self) -> BoxFuture<'_, anyhow::Result<Option<JwkSet>>> {
        Box::pin(async move {
            let kept: Option<String> = sqlx::query_scalar("SELECT jwks::text FROM signing_keys")
                .fetch_optional(&self.0)
                .await?;
            Ok(kept.and_then(|json| serde_json::from_str(&json).ok()))
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
