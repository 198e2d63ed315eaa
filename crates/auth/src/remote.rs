//! The keys tokens are checked against: fetched from the user service's JWKS (over TLS where the
//! deployment has it), fetched again for an unknown key id (once, shared, and rarely), and kept
//! in the service's own store for a start while the user service does not answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use fleet_config::Env;
use fleet_http::health::Readiness;
use futures::future::BoxFuture;

use crate::{Caller, JwkSet, Principal, TokenError, TokenVerifier, Unauthorized, bearer};

/// Keys a service kept, and how long ago the user service last served them (by the store's
/// clock).
#[derive(Debug, Clone)]
pub struct KeptKeys {
    pub keys: JwkSet,
    pub age: Duration,
}

/// Where a service keeps the last signing keys it fetched (a table of its own schema), so that a
/// replica started while the user service is away checks tokens all the same.
pub trait KeyStore: Send + Sync + 'static {
    /// The kept keys, if any; an error while the store is not ready yet (migrations to run).
    fn load(&self) -> BoxFuture<'_, anyhow::Result<Option<KeptKeys>>>;
    /// Keeps `keys` as served just now.
    fn keep<'a>(&'a self, keys: &'a JwkSet) -> BoxFuture<'a, anyhow::Result<()>>;
}

/// Where the signing keys are published and what a token must say about itself.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub jwks_url: String,
    /// The CA certificates (PEM) an `https` JWKS URL is checked against; `None`: the system's.
    pub jwks_ca: Option<Vec<u8>>,
    /// Keys the user service has not served for this long are no longer used, fetched or kept.
    pub max_key_age: Duration,
    pub issuer: String,
    pub audience: String,
    /// The audience of other services' tokens for this one (its name), if it takes any
    /// ([`ServiceCaller`]); users' tokens are for `audience`.
    pub service_audience: Option<String>,
}

impl AuthConfig {
    /// `JWKS_URL` (required), `JWKS_CA_FILE` (optional), `JWKS_MAX_AGE_SECS` (default a day),
    /// `JWT_ISSUER` (default `book-rental-fleet`), `JWT_AUDIENCE` (default `book-rental-api`).
    pub fn read(env: &mut Env) -> Self {
        let jwks_url: String = env.required("JWKS_URL");
        let ca_file = env
            .optional::<String>("JWKS_CA_FILE")
            .filter(|path| !path.is_empty());
        let max_key_age = Duration::from_secs(env.or("JWKS_MAX_AGE_SECS", 86_400));
        let https = jwks_url.starts_with("https://");
        if !jwks_url.is_empty() && !https && !jwks_url.starts_with("http://") {
            env.invalid(format!(
                "JWKS_URL={jwks_url:?} must be an http:// or https:// address"
            ));
        }
        let jwks_ca = ca_file.and_then(|path| {
            if !https {
                env.invalid("JWKS_CA_FILE is set but JWKS_URL is not an https:// address");
                return None;
            }
            let pem = std::fs::read(&path)
                .map_err(|e| env.invalid(format!("JWKS_CA_FILE={path:?} cannot be read: {e}")))
                .ok()?;
            match reqwest::Certificate::from_pem_bundle(&pem) {
                Ok(certs) if !certs.is_empty() => Some(pem),
                _ => {
                    env.invalid(format!("JWKS_CA_FILE={path:?} holds no PEM certificate"));
                    None
                }
            }
        });
        if max_key_age.is_zero() {
            env.invalid("JWKS_MAX_AGE_SECS must be at least 1");
        }
        Self {
            jwks_url,
            jwks_ca,
            max_key_age,
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

    /// The client the keys are fetched with: only `JWKS_CA_FILE`'s CAs when it is set.
    fn client(&self) -> anyhow::Result<reqwest::Client> {
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .pool_idle_timeout(fleet_http::server::CLIENT_POOL_IDLE_TIMEOUT);
        if let Some(pem) = &self.jwks_ca {
            builder = builder.tls_certs_only(reqwest::Certificate::from_pem_bundle(pem)?);
        }
        Ok(builder.build()?)
    }
}

/// Once the user service has served keys, an unknown key id fetches them again at most this
/// often: a flood of made-up key ids costs the user service one request per replica per period,
/// and no new verifier (whose memory of checked tokens would go) nor write to the store.
const REFETCH_AFTER: Duration = Duration::from_secs(5);

/// The least time between two attempts while the user service does not answer: requests with
/// an unknown key id meanwhile wait for the next attempt and share it.
const RETRY_GAP: Duration = Duration::from_millis(500);

/// How often a service whose keys the user service served asks again: to learn a new key before
/// a token names it, and to keep the keys from ageing out.
const CONFIRM_EVERY: Duration = Duration::from_secs(300);

/// Unchanged keys are written to the store again at most this often, so that their age there
/// says when the user service last served them without a write per fetch.
const KEEP_EVERY: Duration = Duration::from_secs(3600);

/// The longest wait between attempts while the service runs on kept keys or none.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Tokens checked against the keys published at `JWKS_URL`.
///
/// At start a service asks the user service; only when it does not answer (refused, timed out)
/// are the keys kept in the service's schema used, if younger than `JWKS_MAX_AGE_SECS`, and the
/// service goes on asking until it answers. A token naming a key the service does not hold makes
/// one fetch, shared by every request waiting on it, before the answer: a 401 says the user
/// service does not publish that key, a 503 that it could not be asked.
#[derive(Clone)]
pub struct RemoteKeys(Arc<Remote>);

struct Remote {
    config: AuthConfig,
    http: reqwest::Client,
    held: std::sync::RwLock<Option<Held>>,
    /// One fetch at a time; requests with an unknown key id queue here.
    fetches: tokio::sync::Mutex<Fetches>,
    /// Fetches finished, to tell a request that one ran while it waited.
    attempts: AtomicU64,
    /// Where the last fetched keys are kept (the service's own schema).
    kept_in: Option<Arc<dyn KeyStore>>,
    /// Keys fetched before the table existed (migrations not run yet), to keep once it does.
    unkept: std::sync::Mutex<Option<JwkSet>>,
}

#[derive(Clone)]
struct Held {
    verifier: Arc<TokenVerifier>,
    set: JwkSet,
    /// Not used after this, unless the user service serves the keys again.
    good_until: Instant,
    /// The user service served them to this process (not only kept from an earlier run).
    served: bool,
}

#[derive(Default)]
struct Fetches {
    last_attempt: Option<Instant>,
    last_served: Option<Instant>,
    last_kept: Option<Instant>,
}

/// Why a fetch brought no keys.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    /// No answer: refused, timed out, or broken. Kept keys may stand in.
    #[error("the user service does not answer: {0:#}")]
    Unanswered(anyhow::Error),
    /// An answer, but no usable keys: the service waits for some.
    #[error("the user service answered without usable keys: {0:#}")]
    Unusable(anyhow::Error),
}

impl RemoteKeys {
    pub fn new(config: AuthConfig) -> anyhow::Result<Self> {
        Self::with_store(config, None)
    }

    /// Keys kept in `store` as well.
    pub fn kept_in(config: AuthConfig, store: Arc<dyn KeyStore>) -> anyhow::Result<Self> {
        Self::with_store(config, Some(store))
    }

    fn with_store(config: AuthConfig, kept_in: Option<Arc<dyn KeyStore>>) -> anyhow::Result<Self> {
        Ok(Self(Arc::new(Remote {
            http: config.client()?,
            config,
            held: std::sync::RwLock::default(),
            fetches: tokio::sync::Mutex::default(),
            attempts: AtomicU64::new(0),
            kept_in,
            unkept: std::sync::Mutex::default(),
        })))
    }

    fn held(&self) -> Option<Held> {
        self.0.held.read().expect("not poisoned").clone()
    }

    /// The verifier, unless its keys are past their age.
    fn current(&self) -> Option<Arc<TokenVerifier>> {
        self.held()
            .filter(|held| Instant::now() < held.good_until)
            .map(|held| held.verifier)
    }

    /// Whether tokens can be checked: keys are held, young enough.
    pub fn holds_keys(&self) -> bool {
        self.current().is_some()
    }

    fn install(&self, held: Held) {
        *self.0.held.write().expect("not poisoned") = Some(held);
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
            Err(TokenError::UnknownKey(kid)) => match self.refetch_for(&kid).await {
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

    /// The keys to check a token naming `kid` with, after one fetch shared with every request
    /// waiting meanwhile; `None` when the user service could not be asked and `kid` is unknown.
    async fn refetch_for(&self, kid: &str) -> Option<Arc<TokenVerifier>> {
        let knows = |verifier: &Arc<TokenVerifier>| verifier.keys.contains_key(kid);
        let arrived = self.0.attempts.load(Ordering::SeqCst);
        let mut fetches = self.0.fetches.lock().await;
        if let Some(verifier) = self.current().filter(knows) {
            return Some(verifier);
        }
        // Served just now, without that key: the token is not the user service's.
        if fetches
            .last_served
            .is_some_and(|at| at.elapsed() < REFETCH_AFTER)
        {
            return self.current();
        }
        // A fetch ran while this request waited, and failed: share its outcome.
        if self.0.attempts.load(Ordering::SeqCst) != arrived {
            return None;
        }
        if let Some(at) = fetches.last_attempt {
            tokio::time::sleep(RETRY_GAP.saturating_sub(at.elapsed())).await;
        }
        match self.fetch(&mut fetches).await {
            Ok(()) => self.current(),
            Err(_) => self.current().filter(knows),
        }
    }

    /// Asks the user service for its keys (with `fetches` held) and holds what it serves. A
    /// set like the one held only renews its age: the verifier, and its memory of checked
    /// tokens, stay; the store is written when the keys change, or once an hour.
    async fn fetch(&self, fetches: &mut Fetches) -> Result<(), FetchError> {
        fetches.last_attempt = Some(Instant::now());
        let outcome = self.ask().await;
        self.0.attempts.fetch_add(1, Ordering::SeqCst);
        let config = &self.0.config;
        let set = match outcome {
            Ok(set) => set,
            Err(e) => {
                tracing::warn!(url = %config.jwks_url, error = %e, "cannot fetch the signing keys");
                return Err(e);
            }
        };
        let now = Instant::now();
        let good_until = now + config.max_key_age;
        let same = self.held().filter(|held| held.set == set);
        let changed = same.is_none();
        let held = match same {
            Some(held) => Held {
                good_until,
                served: true,
                ..held
            },
            None => match config.verifier(&set) {
                Ok(verifier) => {
                    tracing::info!(url = %config.jwks_url, keys = verifier.keys.len(), "signing keys fetched");
                    Held {
                        verifier: Arc::new(verifier),
                        set: set.clone(),
                        good_until,
                        served: true,
                    }
                }
                Err(e) => {
                    let e = FetchError::Unusable(e);
                    tracing::warn!(url = %config.jwks_url, error = %e, "cannot use the signing keys");
                    return Err(e);
                }
            },
        };
        self.install(held);
        fetches.last_served = Some(now);
        if changed
            || fetches
                .last_kept
                .is_none_or(|at| at.elapsed() >= KEEP_EVERY)
        {
            fetches.last_kept = Some(now);
            self.keep(&set).await;
        }
        Ok(())
    }

    async fn ask(&self) -> Result<JwkSet, FetchError> {
        let response = self
            .0
            .http
            .get(&self.0.config.jwks_url)
            .send()
            .await
            .map_err(|e| FetchError::Unanswered(e.into()))?;
        let response = response
            .error_for_status()
            .map_err(|e| FetchError::Unusable(e.into()))?;
        response.json().await.map_err(|e| {
            if e.is_decode() {
                FetchError::Unusable(e.into())
            } else {
                FetchError::Unanswered(e.into())
            }
        })
    }

    /// Gets keys, then keeps them current until `stop`, with `readiness` saying whether tokens
    /// can be checked: ready once keys are held (from the user service, or kept while it does not
    /// answer), unready again if they age out. While on kept keys it asks until the user service
    /// answers; after, every five minutes.
    pub async fn run(self, readiness: Readiness, stop: tokio_util::sync::CancellationToken) {
        readiness.await_keys();
        let mut wait = RETRY_GAP;
        loop {
            let outcome = {
                let mut fetches = self.0.fetches.lock().await;
                self.fetch(&mut fetches).await
            };
            // Kept keys only while the user service does not answer; while it answers, only
            // the keys it serves.
            if let Err(FetchError::Unanswered(_)) = outcome
                && !self.holds_keys()
            {
                self.use_kept().await;
            }
            let served = self.held().is_some_and(|held| held.served) && self.holds_keys();
            if self.holds_keys() {
                readiness.set_keys_held();
            } else {
                readiness.await_keys();
            }
            let pause = if served {
                wait = RETRY_GAP;
                CONFIRM_EVERY
            } else {
                let pause = wait;
                wait = (wait * 2).min(RETRY_MAX);
                pause
            };
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Holds the keys kept in the store, unless they are past their age.
    async fn use_kept(&self) {
        let kept = match &self.0.kept_in {
            Some(store) => store.load().await,
            None => return,
        };
        let max_age = self.0.config.max_key_age;
        match kept {
            Ok(Some(kept)) if kept.age >= max_age => tracing::warn!(
                age_secs = kept.age.as_secs(),
                "the kept signing keys are older than JWKS_MAX_AGE_SECS: not used"
            ),
            Ok(Some(kept)) => match self.0.config.verifier(&kept.keys) {
                Ok(verifier) => {
                    tracing::warn!(
                        keys = verifier.keys.len(),
                        age_secs = kept.age.as_secs(),
                        "the user service does not answer: checking tokens with the signing keys kept from its last answer"
                    );
                    self.install(Held {
                        verifier: Arc::new(verifier),
                        set: kept.keys,
                        good_until: Instant::now() + (max_age - kept.age),
                        served: false,
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "the kept signing keys are unusable")
                }
            },
            Ok(None) => {}
            // The table may not exist yet (migrations still to run): tried again.
            Err(e) => tracing::debug!(error = %e, "cannot read the kept signing keys"),
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
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::{LazyLock, Mutex};

    use axum::http::HeaderValue;

    use super::*;
    use crate::keys::RsaPrivateKey;

    const ISSUER: &str = "issuer";
    const AUDIENCE: &str = "audience";

    /// Two keys, made once: generating RSA keys is slow.
    static KEYS: LazyLock<[RsaPrivateKey; 2]> = LazyLock::new(|| {
        [
            RsaPrivateKey::generate().unwrap(),
            RsaPrivateKey::generate().unwrap(),
        ]
    });

    fn set_of(key: &RsaPrivateKey) -> JwkSet {
        JwkSet {
            keys: vec![key.jwk().clone()],
        }
    }

    /// A customer's token signed with `key`, naming `kid`.
    fn signed(key: &RsaPrivateKey, kid: &str) -> HeaderMap {
        let now = chrono::Utc::now().timestamp();
        let claims = serde_json::json!({
            "sub": uuid::Uuid::new_v4().to_string(), "roles": ["customer"],
            "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300,
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        let token = jsonwebtoken::encode(&header, &claims, &key.encoding_key()).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        headers
    }

    fn token_of(key: &RsaPrivateKey) -> HeaderMap {
        signed(key, key.kid())
    }

    /// A user service's JWKS over real HTTP, counting the fetches.
    struct Jwks {
        url: String,
        fetches: Arc<AtomicUsize>,
    }

    async fn serve_on(listener: tokio::net::TcpListener, set: JwkSet) -> Jwks {
        let url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().unwrap()
        );
        let fetches = Arc::new(AtomicUsize::new(0));
        let counted = fetches.clone();
        let app = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                let set = set.clone();
                async move { axum::Json(set) }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Jwks { url, fetches }
    }

    async fn serve(set: JwkSet) -> Jwks {
        serve_on(
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            set,
        )
        .await
    }

    /// A store in memory, counting reads and writes.
    #[derive(Default)]
    struct Store {
        kept: Mutex<Option<KeptKeys>>,
        loads: AtomicUsize,
        keeps: AtomicUsize,
    }

    impl KeyStore for Arc<Store> {
        fn load(&self) -> BoxFuture<'_, anyhow::Result<Option<KeptKeys>>> {
            self.loads.fetch_add(1, Ordering::SeqCst);
            let kept = self.kept.lock().unwrap().clone();
            Box::pin(async move { Ok(kept) })
        }

        fn keep<'a>(&'a self, keys: &'a JwkSet) -> BoxFuture<'a, anyhow::Result<()>> {
            self.keeps.fetch_add(1, Ordering::SeqCst);
            *self.kept.lock().unwrap() = Some(KeptKeys {
                keys: keys.clone(),
                age: Duration::ZERO,
            });
            Box::pin(async { Ok(()) })
        }
    }

    fn config(url: &str, max_key_age: Duration) -> AuthConfig {
        AuthConfig {
            jwks_url: url.to_owned(),
            jwks_ca: None,
            max_key_age,
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            service_audience: None,
        }
    }

    const DAY: Duration = Duration::from_secs(86_400);

    /// Keys running against `url` with `store`, until the test ends.
    fn running(config: AuthConfig, store: &Arc<Store>) -> RemoteKeys {
        let keys = RemoteKeys::kept_in(config, Arc::new(store.clone())).unwrap();
        tokio::spawn(keys.clone().run(
            Readiness::default(),
            tokio_util::sync::CancellationToken::new(),
        ));
        keys
    }

    async fn until(what: &str, check: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// An address where nothing listens (yet).
    async fn free_address() -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    }

    #[tokio::test]
    async fn made_up_key_ids_cost_one_shared_fetch_per_period_and_no_write() {
        let [key, stranger] = &*KEYS;
        let jwks = serve(set_of(key)).await;
        let store = Arc::new(Store::default());
        let keys = running(config(&jwks.url, DAY), &store);
        until("the keys", || keys.holds_keys()).await;
        assert_eq!(jwks.fetches.load(Ordering::SeqCst), 1);

        let flood = |keys: RemoteKeys| async move {
            let refused = futures::future::join_all((0..50).map(|_| {
                let keys = keys.clone();
                let headers = signed(stranger, &uuid::Uuid::new_v4().to_string());
                async move { keys.principal(&headers).await }
            }))
            .await;
            for outcome in refused {
                assert!(
                    matches!(
                        outcome,
                        Err(Unauthorized::Invalid(TokenError::UnknownKey(_)))
                    ),
                    "{outcome:?}"
                );
            }
        };
        // Just served: the user service does not publish those keys, no fetch needed.
        flood(keys.clone()).await;
        assert_eq!(jwks.fetches.load(Ordering::SeqCst), 1);
        // Later: one fetch, shared by the whole flood; the same keys, so no write.
        tokio::time::sleep(REFETCH_AFTER).await;
        flood(keys.clone()).await;
        assert_eq!(jwks.fetches.load(Ordering::SeqCst), 2);
        assert_eq!(store.keeps.load(Ordering::SeqCst), 1);
        // The real key still works, without a fetch.
        assert!(keys.principal(&token_of(key)).await.is_ok());
        assert_eq!(jwks.fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn on_kept_keys_a_new_key_is_fetched_once_before_the_answer() {
        let [old, new] = &*KEYS;
        let address = free_address().await;
        let store = Arc::new(Store::default());
        *store.kept.lock().unwrap() = Some(KeptKeys {
            keys: set_of(old),
            age: Duration::from_secs(10),
        });
        let url = format!("http://{address}/.well-known/jwks.json");
        let keys = running(config(&url, DAY), &store);
        // The user service does not answer: ready on the kept keys.
        until("the kept keys", || keys.holds_keys()).await;
        assert!(keys.principal(&token_of(old)).await.is_ok());

        // It starts with a new key; the first tokens signed with it pass at once.
        let jwks = serve_on(
            tokio::net::TcpListener::bind(address).await.unwrap(),
            set_of(new),
        )
        .await;
        let outcomes = futures::future::join_all((0..20).map(|_| {
            let keys = keys.clone();
            async move { keys.principal(&token_of(new)).await }
        }))
        .await;
        for outcome in outcomes {
            assert!(outcome.is_ok(), "{outcome:?}");
        }
        // One fetch for all twenty (the background retry may have made one of its own).
        assert!(jwks.fetches.load(Ordering::SeqCst) <= 2);
        // The old key is gone with the set it was in, and the new one is kept.
        assert!(keys.principal(&token_of(old)).await.is_err());
        let kept = store.kept.lock().unwrap().clone().unwrap();
        assert_eq!(kept.keys, set_of(new));
    }

    #[tokio::test]
    async fn while_the_user_service_answers_only_its_keys_are_used() {
        let [old, new] = &*KEYS;
        let jwks = serve(set_of(new)).await;
        let store = Arc::new(Store::default());
        *store.kept.lock().unwrap() = Some(KeptKeys {
            keys: set_of(old),
            age: Duration::from_secs(10),
        });
        let keys = running(config(&jwks.url, DAY), &store);
        until("the keys", || keys.holds_keys()).await;
        assert_eq!(store.loads.load(Ordering::SeqCst), 0);
        assert!(keys.principal(&token_of(new)).await.is_ok());
        assert!(matches!(
            keys.principal(&token_of(old)).await,
            Err(Unauthorized::Invalid(TokenError::UnknownKey(_)))
        ));
    }

    #[tokio::test]
    async fn kept_keys_past_their_age_are_not_used() {
        let [old, _] = &*KEYS;
        let url = format!("http://{}/.well-known/jwks.json", free_address().await);
        let store = Arc::new(Store::default());
        *store.kept.lock().unwrap() = Some(KeptKeys {
            keys: set_of(old),
            age: Duration::from_secs(120),
        });
        let keys = running(config(&url, Duration::from_secs(60)), &store);
        until("a look at the kept keys", || {
            store.loads.load(Ordering::SeqCst) > 0
        })
        .await;
        assert!(!keys.holds_keys());
        assert_eq!(
            keys.principal(&token_of(old)).await,
            Err(Unauthorized::KeysUnavailable)
        );

        // Younger than the limit, they stand in while the user service does not answer, for
        // what is left of their age.
        let young = Arc::new(Store::default());
        *young.kept.lock().unwrap() = Some(KeptKeys {
            keys: set_of(old),
            age: Duration::from_secs(10),
        });
        let keys = running(config(&url, Duration::from_secs(60)), &young);
        until("the kept keys", || keys.holds_keys()).await;
        assert!(keys.principal(&token_of(old)).await.is_ok());
    }

    #[test]
    fn a_ca_file_needs_an_https_url_and_a_certificate() {
        let read = |pairs: Vec<(&str, &str)>| {
            let mut env = Env::from_pairs(pairs);
            AuthConfig::read(&mut env);
            env.finish()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let dir = std::env::temp_dir().join(format!("jwks-ca-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let not_pem = dir.join("not.pem");
        std::fs::write(&not_pem, "not a certificate").unwrap();
        let not_pem = not_pem.to_str().unwrap();

        let plain = read(vec![
            ("JWKS_URL", "http://user:8080/.well-known/jwks.json"),
            ("JWKS_CA_FILE", not_pem),
        ]);
        assert!(
            plain.contains("JWKS_URL is not an https:// address"),
            "{plain}"
        );
        let rubbish = read(vec![
            ("JWKS_URL", "https://user:8443/.well-known/jwks.json"),
            ("JWKS_CA_FILE", not_pem),
        ]);
        assert!(rubbish.contains("holds no PEM certificate"), "{rubbish}");
        let missing = read(vec![
            ("JWKS_URL", "https://user:8443/.well-known/jwks.json"),
            ("JWKS_CA_FILE", "/nonexistent/ca.pem"),
        ]);
        assert!(missing.contains("cannot be read"), "{missing}");
        let scheme = read(vec![("JWKS_URL", "user:8080/.well-known/jwks.json")]);
        assert!(
            scheme.contains("must be an http:// or https:// address"),
            "{scheme}"
        );
        assert_eq!(
            read(vec![(
                "JWKS_URL",
                "https://user:8443/.well-known/jwks.json"
            )]),
            ""
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
