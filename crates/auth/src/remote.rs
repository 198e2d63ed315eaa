//! The keys tokens are checked against: fetched from the user service's JWKS, fetched again for
//! an unknown key id, and kept in the service's own store for a start while the user service is
//! away.

use std::sync::Arc;

use axum::http::HeaderMap;
use fleet_config::Env;
use futures::future::BoxFuture;

use crate::{Caller, JwkSet, Principal, TokenError, TokenVerifier, Unauthorized, bearer};

/// Where a service keeps the last signing keys it fetched (a table of its own schema), so that a
/// replica started while the user service is away checks tokens all the same.
pub trait KeyStore: Send + Sync + 'static {
    /// The kept keys, if any; an error while the store is not ready yet (migrations to run).
    fn load(&self) -> BoxFuture<'_, anyhow::Result<Option<JwkSet>>>;
    fn keep<'a>(&'a self, keys: &'a JwkSet) -> BoxFuture<'a, anyhow::Result<()>>;
}
/// Where the signing keys are published and what a token must say about itself.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub jwks_url: String,
    pub issuer: String,
    pub audience: String,
    /// The audience of other services' tokens for this one (its name), if it takes any
    /// ([`ServiceCaller`]); users' tokens are for `audience`.
    pub service_audience: Option<String>,
}

impl AuthConfig {
    /// `JWKS_URL` (required), `JWT_ISSUER` (default `book-rental-fleet`), `JWT_AUDIENCE`
    /// (default `book-rental-api`).
    pub fn read(env: &mut Env) -> Self {
        Self {
            jwks_url: env.required("JWKS_URL"),
            issuer: env.or("JWT_ISSUER", "book-rental-fleet".to_owned()),
            audience: env.or("JWT_AUDIENCE", "book-rental-api".to_owned()),
            service_audience: None,
        }
    }

    /// Takes services' tokens whose audience is `service` (the called service's name).
    pub fn accepting_services(mut self, service: &str) -> Self {
        self.service_audience = Some(service.to_owned());
        self
    }

    fn verifier(&self, jwks: &JwkSet) -> anyhow::Result<TokenVerifier> {
        Ok(TokenVerifier::new(jwks, &self.issuer, &self.audience)?
            .accepting_services(self.service_audience.as_deref()))
    }
}

/// Fetch the keys again at most this often, however many unknown key ids arrive.
const REFETCH_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

/// How often start-up tries again for keys (from the user service, or kept in the schema).
const PREFETCH_RETRY: std::time::Duration = std::time::Duration::from_millis(500);

/// Tokens checked against the keys published at `JWKS_URL`: fetched at start, fetched again
/// when a token names an unknown key, and kept while the user service is away. A service keeps
/// the last keys it fetched in its own schema too, so a replica started while the user service is
/// away checks tokens all the same.
#[derive(Clone)]
pub struct RemoteKeys(std::sync::Arc<Remote>);

struct Remote {
    config: AuthConfig,
    http: reqwest::Client,
    verifier: std::sync::RwLock<Option<std::sync::Arc<TokenVerifier>>>,
    fetched_at: tokio::sync::Mutex<Option<std::time::Instant>>,
    /// Where the last fetched keys are kept (the service's own schema).
    kept_in: Option<Arc<dyn KeyStore>>,
    /// Keys fetched before the table existed (migrations not run yet), to keep once it does.
    unkept: std::sync::Mutex<Option<JwkSet>>,
}

impl RemoteKeys {
    pub fn new(config: AuthConfig) -> Self {
        Self::with_store(config, None)
    }

    /// Keys kept in `store` as well.
    pub fn kept_in(config: AuthConfig, store: Arc<dyn KeyStore>) -> Self {
        Self::with_store(config, Some(store))
    }

    fn with_store(config: AuthConfig, kept_in: Option<Arc<dyn KeyStore>>) -> Self {
        Self(std::sync::Arc::new(Remote {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(3))
                .pool_idle_timeout(fleet_http::server::CLIENT_POOL_IDLE_TIMEOUT)
                .build()
                .expect("an HTTP client without TLS always builds"),
            config,
            verifier: std::sync::RwLock::default(),
            fetched_at: tokio::sync::Mutex::default(),
            kept_in,
            unkept: std::sync::Mutex::default(),
        }))
    }

    fn current(&self) -> Option<std::sync::Arc<TokenVerifier>> {
        self.0.verifier.read().expect("not poisoned").clone()
    }

    /// Whether tokens can be checked: some keys are held.
    pub fn holds_keys(&self) -> bool {
        self.current().is_some()
    }

    fn install(&self, verifier: TokenVerifier) -> std::sync::Arc<TokenVerifier> {
        let verifier = std::sync::Arc::new(verifier);
        *self.0.verifier.write().expect("not poisoned") = Some(verifier.clone());
        verifier
    }

    /// The person named by the request's bearer token; a service's token is not one.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, Unauthorized> {
        match self.principal(headers).await? {
            Principal::User(caller) => Ok(caller),
            Principal::Service(service) => {
                tracing::info!(client_id = %service.client_id, "a service's token where a person's is needed");
                Err(Unauthorized::Invalid(TokenError::Audience))
            }
        }
    }

    /// Whoever the request's bearer token names.
    pub async fn principal(&self, headers: &HeaderMap) -> Result<Principal, Unauthorized> {
        let token = bearer(headers)?;
        let outcome = match self.current() {
            Some(verifier) => verifier.verify_principal(token),
            None => Err(TokenError::UnknownKey(String::new())),
        };
        let outcome = match outcome {
            Err(TokenError::UnknownKey(_)) => match self.refresh().await {
                Some(verifier) => verifier.verify_principal(token),
                None => return Err(Unauthorized::KeysUnavailable),
            },
            outcome => outcome,
        };
        outcome.map_err(|e| {
            tracing::info!(reason = %e, "access token refused");
            Unauthorized::Invalid(e)
        })
    }

    /// Gets the keys at start-up: from the user service, else the ones kept in the service's
    /// schema, retrying until it has some. Returns whether it has (false only when stopped
    /// first); the caller turns ready then.
    pub async fn prefetch(self, stop: tokio_util::sync::CancellationToken) -> bool {
        loop {
            if self.refresh().await.is_some() {
                return true;
            }
            match self.load_kept().await {
                Ok(Some(set)) => match self.0.config.verifier(&set) {
                    Ok(verifier) => {
                        tracing::warn!(
                            keys = verifier.keys.len(),
                            "the user service is away: checking tokens with the signing keys kept from its last answer"
                        );
                        self.install(verifier);
                        return true;
                    }
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "the kept signing keys are unusable")
                    }
                },
                Ok(None) => {}
                // The table may not exist yet (migrations still to run): try again.
                Err(e) => tracing::debug!(error = %e, "cannot read the kept signing keys"),
            }
            tokio::select! {
                _ = stop.cancelled() => return false,
                _ = tokio::time::sleep(PREFETCH_RETRY) => {}
            }
        }
    }

    async fn load_kept(&self) -> anyhow::Result<Option<JwkSet>> {
        match &self.0.kept_in {
            Some(store) => store.load().await,
            None => Ok(None),
        }
    }

    async fn keep(&self, set: &JwkSet) {
        let Some(store) = &self.0.kept_in else { return };
        if let Err(e) = store.keep(set).await {
            tracing::debug!(error = %e, "cannot keep the signing keys yet");
            *self.0.unkept.lock().expect("not poisoned") = Some(set.clone());
        }
    }

    /// Keeps the keys fetched before the service's migrations had run: call it once they have.
    pub async fn keep_unkept(&self) {
        let unkept = self.0.unkept.lock().expect("not poisoned").take();
        if let Some(set) = unkept {
            self.keep(&set).await;
        }
    }

    /// Fetches the keys (once per `REFETCH_AFTER` at most); the verifier to use, if there is any.
    async fn refresh(&self) -> Option<std::sync::Arc<TokenVerifier>> {
        let mut fetched_at = self.0.fetched_at.lock().await;
        // Without any keys nothing can be checked: try again sooner.
        let gap = if self.holds_keys() {
            REFETCH_AFTER
        } else {
            PREFETCH_RETRY
        };
        if fetched_at.is_some_and(|at| at.elapsed() < gap) {
            return self.current();
        }
        *fetched_at = Some(std::time::Instant::now());
        let config = &self.0.config;
        let fetched = async {
            let set: JwkSet = self
                .0
                .http
                .get(&config.jwks_url)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let verifier = config.verifier(&set)?;
            anyhow::Ok((set, verifier))
        };
        match fetched.await {
            Ok((set, verifier)) => {
                tracing::info!(url = %config.jwks_url, keys = verifier.keys.len(), "signing keys fetched");
                let verifier = self.install(verifier);
                self.keep(&set).await;
                Some(verifier)
            }
            Err(e) => {
                // Keep what we had: tokens signed with known keys still verify.
                tracing::warn!(url = %config.jwks_url, error = %format!("{e:#}"), "cannot fetch the signing keys");
                self.current()
            }
        }
    }
}
