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

/// A token older than this share of its lifetime is replaced before it is used again, so a
/// call never carries one about to expire.
const RENEW_AFTER_SHARE: f64 = 0.5;

/// The access token a service calls another with: fetched when first needed, renewed half-way
/// through its life, and kept while the token endpoint is away for as long as it is valid.
#[derive(Clone)]
pub struct ServiceToken(std::sync::Arc<TokenSource>);

struct TokenSource {
    credentials: ClientCredentials,
    http: reqwest::Client,
    /// One fetch at a time; the others wait for it and share its token.
    held: tokio::sync::Mutex<Option<HeldToken>>,
}

struct HeldToken {
    token: String,
    renew_at: std::time::Instant,
    expires_at: std::time::Instant,
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
        Self(std::sync::Arc::new(TokenSource {
            credentials,
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(3))
                .pool_idle_timeout(fleet_http::server::CLIENT_POOL_IDLE_TIMEOUT)
                .build()
                .expect("an HTTP client without TLS always builds"),
            held: tokio::sync::Mutex::default(),
        }))
    }

    /// A token valid for a while yet.
    pub async fn get(&self) -> Result<String, NoToken> {
        let mut held = self.0.held.lock().await;
        let now = std::time::Instant::now();
        if let Some(token) = held.as_ref().filter(|t| now < t.renew_at) {
            return Ok(token.token.clone());
        }
        match self.fetch().await {
            Ok((token, lifetime)) => {
                let renew = lifetime.mul_f64(RENEW_AFTER_SHARE);
                *held = Some(HeldToken {
                    token: token.clone(),
                    renew_at: now + renew,
                    expires_at: now + lifetime,
                });
                Ok(token)
            }
            // The endpoint is away: the token held still works until it expires.
            Err(e) => match held.as_ref().filter(|t| now < t.expires_at) {
                Some(token) => {
                    tracing::warn!(error = %e, "cannot renew the access token; using the one held");
                    Ok(token.token.clone())
                }
                None => Err(e),
            },
        }
    }

    /// Fetches the token at start and renews it before calls need it, until `stop`: a call then
    /// rarely waits for the token endpoint, and one away for less than half a token's life goes
    /// unnoticed. A failed fetch is tried again every second.
    pub async fn keep_fresh(self, stop: tokio_util::sync::CancellationToken) {
        const RETRY: std::time::Duration = std::time::Duration::from_secs(1);
        loop {
            let wait = match self.get().await {
                Ok(_) => {
                    let held = self.0.held.lock().await;
                    held.as_ref()
                        .map(|t| {
                            t.renew_at
                                .saturating_duration_since(std::time::Instant::now())
                        })
                        .unwrap_or_default()
                        .max(RETRY)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot get an access token yet");
                    RETRY
                }
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Drops the token held (the called service refused it: new keys, say); the next call
    /// fetches a new one.
    pub async fn forget(&self) {
        *self.0.held.lock().await = None;
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
