//! A service's own access token for calling another (the client-credentials grant).

use axum::http::header;
use fleet_config::Env;
use serde::Deserialize;

/// How a service proves who it is to another: its client id and secret, exchanged at the user
/// service's token endpoint for a short-lived access token (RFC 6749 §4.4).
#[derive(Clone)]
pub struct ClientCredentials {
    pub token_url: String,
    pub client_id: String,
    client_secret: String,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl ClientCredentials {
    pub fn new(token_url: String, client_id: &str, client_secret: String) -> Self {
        Self {
            token_url,
            client_id: client_id.to_owned(),
            client_secret,
        }
    }

    /// `TOKEN_URL` (the user service's token endpoint) and `<CLIENT>_CLIENT_SECRET`, both
    /// required: the secret the user service holds for `client_id` too.
    pub fn read(env: &mut Env, client_id: &str) -> Self {
        let secret = format!("{}_CLIENT_SECRET", client_id.to_uppercase());
        Self::new(env.required("TOKEN_URL"), client_id, env.required(&secret))
    }
}

/// A token older than this share of its lifetime is renewed, in the background: a renewal that
/// fails or hangs leaves half the token's life to try again before a call notices.
const RENEW_AFTER_SHARE: f64 = 0.5;

/// A held token is used until this close to its expiry (at most a tenth of its life), so that it
/// does not expire on its way to the called service.
const EXPIRY_MARGIN: std::time::Duration = std::time::Duration::from_secs(2);

/// How long the background renewal waits after a failed attempt.
const RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// The access token a service calls another with: fetched at start and renewed half-way through
/// its life by [`ServiceToken::keep_fresh`], in the background. A call never waits for the token
/// endpoint while the token held is valid (a hung user service fails no call until the token
/// expires); it fetches one itself only when none is held, sharing the fetch with other callers.
#[derive(Clone)]
pub struct ServiceToken(std::sync::Arc<TokenSource>);

struct TokenSource {
    credentials: ClientCredentials,
    http: reqwest::Client,
    /// Read by every call without waiting, even while a fetch is under way.
    held: std::sync::RwLock<Option<HeldToken>>,
    /// One fetch at a time; a caller without a token waits for the one under way.
    fetching: tokio::sync::Mutex<()>,
    metrics: Option<TokenMetrics>,
}

#[derive(Clone)]
struct HeldToken {
    token: String,
    renew_at: std::time::Instant,
    /// Until when calls use it: its expiry less a margin.
    usable_until: std::time::Instant,
}

/// What an operator watches to see renewals fail before the token runs out.
#[derive(Clone)]
struct TokenMetrics {
    expiry: prometheus::Gauge,
    failures: prometheus::IntCounter,
}

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
#[error("no access token from {url}: {reason}")]
pub struct NoToken {
    url: String,
    reason: String,
}

impl ServiceToken {
    pub fn new(credentials: ClientCredentials) -> Self {
        Self::build(credentials, None)
    }

    /// [`ServiceToken::new`], with `service_token_expiry_timestamp_seconds` (when the token held
    /// expires, Unix time) and `service_token_fetch_failures_total` in `registry`.
    pub fn with_metrics(
        credentials: ClientCredentials,
        registry: &prometheus::Registry,
    ) -> anyhow::Result<Self> {
        let expiry = prometheus::Gauge::new(
            "service_token_expiry_timestamp_seconds",
            "When the access token this service calls others with expires (Unix time; 0: none held)",
        )?;
        let failures = prometheus::IntCounter::new(
            "service_token_fetch_failures_total",
            "Attempts to get an access token from the token endpoint that failed",
        )?;
        registry.register(Box::new(expiry.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        Ok(Self::build(
            credentials,
            Some(TokenMetrics { expiry, failures }),
        ))
    }

    fn build(credentials: ClientCredentials, metrics: Option<TokenMetrics>) -> Self {
        Self(std::sync::Arc::new(TokenSource {
            credentials,
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(3))
                .pool_idle_timeout(fleet_http::server::CLIENT_POOL_IDLE_TIMEOUT)
                .build()
                .expect("an HTTP client without TLS always builds"),
            held: std::sync::RwLock::default(),
            fetching: tokio::sync::Mutex::default(),
            metrics,
        }))
    }

    fn held(&self) -> Option<HeldToken> {
        self.0.held.read().expect("not poisoned").clone()
    }

    /// The token held, if it is still usable.
    fn usable(&self) -> Option<String> {
        self.held()
            .filter(|t| std::time::Instant::now() < t.usable_until)
            .map(|t| t.token)
    }

    /// A valid token: the one held while it is valid, whatever its age; else a new one, from
    /// the fetch under way or one of its own.
    pub async fn get(&self) -> Result<String, NoToken> {
        if let Some(token) = self.usable() {
            return Ok(token);
        }
        let _fetching = self.0.fetching.lock().await;
        // The fetch this call waited for may have brought one.
        if let Some(token) = self.usable() {
            return Ok(token);
        }
        self.fetch_and_hold().await
    }

    /// Renews the token if it is due (past half its life, or none held), unless another fetch
    /// did meanwhile. Never makes a call wait: calls read the token held.
    async fn renew_if_due(&self) -> Result<(), NoToken> {
        let _fetching = self.0.fetching.lock().await;
        let due = self
            .held()
            .is_none_or(|t| std::time::Instant::now() >= t.renew_at);
        if due {
            self.fetch_and_hold().await?;
        }
        Ok(())
    }

    /// With `fetching` held.
    async fn fetch_and_hold(&self) -> Result<String, NoToken> {
        let now = std::time::Instant::now();
        let (token, lifetime) = match self.fetch().await {
            Ok(granted) => granted,
            Err(e) => {
                if let Some(metrics) = &self.0.metrics {
                    metrics.failures.inc();
                }
                return Err(e);
            }
        };
        let margin = EXPIRY_MARGIN.min(lifetime / 10);
        *self.0.held.write().expect("not poisoned") = Some(HeldToken {
            token: token.clone(),
            renew_at: now + lifetime.mul_f64(RENEW_AFTER_SHARE),
            usable_until: now + lifetime - margin,
        });
        if let Some(metrics) = &self.0.metrics {
            let expires = std::time::SystemTime::now() + lifetime;
            let unix = expires
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            metrics.expiry.set(unix.as_secs_f64());
        }
        Ok(token)
    }

    /// Fetches the token at start and renews it half-way through its life, until `stop`. A
    /// failed (or timed-out) renewal is tried again every second while the token held lasts and
    /// after; calls go on with the token held meanwhile.
    pub async fn keep_fresh(self, stop: tokio_util::sync::CancellationToken) {
        loop {
            let wait = match self.renew_if_due().await {
                Ok(()) => self
                    .held()
                    .map(|t| {
                        t.renew_at
                            .saturating_duration_since(std::time::Instant::now())
                    })
                    .unwrap_or_default()
                    .max(RETRY),
                Err(e) => {
                    match self.usable() {
                        Some(_) => {
                            tracing::warn!(error = %e, "cannot renew the access token; calls use the one held until it expires")
                        }
                        None => tracing::warn!(error = %e, "cannot get an access token"),
                    }
                    RETRY
                }
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Drops `refused`, the token a called service refused (new keys, say), if it is still the
    /// one held: the next call fetches a new one.
    pub fn forget(&self, refused: &str) {
        let mut held = self.0.held.write().expect("not poisoned");
        if held.as_ref().is_some_and(|t| t.token == refused) {
            *held = None;
            if let Some(metrics) = &self.0.metrics {
                metrics.expiry.set(0.0);
            }
        }
    }

    async fn fetch(&self) -> Result<(String, std::time::Duration), NoToken> {
        #[derive(Deserialize)]
        struct Granted {
            access_token: String,
            expires_in: u64,
        }
        let credentials = &self.0.credentials;
        let no_token = |reason: String| NoToken {
            url: credentials.token_url.clone(),
            reason,
        };
        let response = self
            .0
            .http
            .post(&credentials.token_url)
            .basic_auth(
                form_urlencoded::byte_serialize(credentials.client_id.as_bytes())
                    .collect::<String>(),
                Some(
                    form_urlencoded::byte_serialize(credentials.client_secret.as_bytes())
                        .collect::<String>(),
                ),
            )
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await
            .map_err(|e| no_token(e.to_string()))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(no_token(format!(
                "{status}: {}",
                body.chars().take(200).collect::<String>()
            )));
        }
        let granted: Granted = response.json().await.map_err(|e| no_token(e.to_string()))?;
        tracing::debug!(client_id = %credentials.client_id, expires_in = granted.expires_in, "access token fetched");
        Ok((
            granted.access_token,
            std::time::Duration::from_secs(granted.expires_in),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    use super::*;

    /// A token endpoint that grants one token for `lifetime_secs`, then hangs: it accepts each
    /// later request and never answers, as a stopped user service does.
    async fn grants_once_then_hangs(lifetime_secs: u64) -> (String, Arc<AtomicUsize>) {
        let asked = Arc::new(AtomicUsize::new(0));
        let counted = asked.clone();
        let app = axum::Router::new().route(
            "/token",
            axum::routing::post(move || {
                let n = counted.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n > 0 {
                        std::future::pending::<()>().await;
                    }
                    axum::Json(serde_json::json!({
                        "access_token": "first", "token_type": "Bearer", "expires_in": lifetime_secs,
                    }))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, asked)
    }

    #[tokio::test]
    async fn a_hung_token_endpoint_delays_no_call_while_the_token_held_is_valid() {
        let (url, asked) = grants_once_then_hangs(10).await;
        let registry = prometheus::Registry::new();
        let token = ServiceToken::with_metrics(
            ClientCredentials::new(url, "rental", "secret".into()),
            &registry,
        )
        .unwrap();
        let fetched_at = Instant::now();
        assert_eq!(token.get().await.unwrap(), "first");
        let expiry = registry.gather()[0].get_metric()[0].get_gauge().get_value();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            expiry > now + 5.0 && expiry <= now + 10.0,
            "{expiry} vs {now}"
        );
        let stop = tokio_util::sync::CancellationToken::new();
        tokio::spawn(token.clone().keep_fresh(stop.clone()));

        // Past half its life the background renewal hangs; calls get the token held at once.
        tokio::time::sleep_until((fetched_at + Duration::from_millis(5_500)).into()).await;
        for _ in 0..3 {
            let got = tokio::time::timeout(Duration::from_secs(2), token.get())
                .await
                .expect("the token held, without waiting for the hung endpoint");
            assert_eq!(got.unwrap(), "first");
        }
        assert!(asked.load(Ordering::SeqCst) >= 2, "a renewal was tried");

        // Expired, it is not used: a call asks for a new one and fails with the endpoint.
        tokio::time::sleep_until((fetched_at + Duration::from_secs(10)).into()).await;
        assert!(token.get().await.is_err());
        stop.cancel();
    }

    #[tokio::test]
    async fn a_refused_token_is_forgotten_only_if_it_is_still_held() {
        let (url, asked) = grants_once_then_hangs(300).await;
        let token = ServiceToken::new(ClientCredentials::new(url, "rental", "secret".into()));
        assert_eq!(token.get().await.unwrap(), "first");
        token.forget("another");
        assert_eq!(token.get().await.unwrap(), "first");
        assert_eq!(asked.load(Ordering::SeqCst), 1);
        token.forget("first");
        assert!(token.usable().is_none());
    }
}
