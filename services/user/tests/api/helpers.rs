use std::ops::Deref;
use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fleet_auth::keys::RsaPrivateKey;
use fleet_testing::{TestWorld, TopicReader, env_of};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use reqwest::Response;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use shared_events::{BookRented, BookReturned, DomainEvent, RentalCancelled, Topic};
use user::{Config, build};
use uuid::Uuid;

pub use fleet_testing::{TestApp as App, WAIT, assert_problem, eventually, sample};

pub const ISSUER: &str = "book-rental-fleet";
pub const AUDIENCE: &str = "book-rental-api";
pub const PASSWORD: &str = "correct horse battery staple";

/// A fresh RSA key as PKCS#8 PEM. Generated, never committed: private keys stay out of the
/// repository even for tests.
pub fn new_key_pem() -> String {
    RsaPrivateKey::generate()
        .expect("generate an RSA key")
        .to_pkcs8_pem()
}

/// The signing key of the test binary's services: generated once per process.
pub fn signing_pem() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(new_key_pem)
}

/// RFC 7638, computed here independently of the service.
pub fn thumbprint(n: &str, e: &str) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The kid of a PEM private key, its thumbprint computed here from the key's modulus and exponent.
pub fn kid_of(pem: &str) -> String {
    let key = RsaPrivateKey::from_pem(pem).unwrap();
    thumbprint(&key.jwk().n, &key.jwk().e)
}

/// Signs `claims` with a PEM private key, as an attacker holding that key (or the issuer) would.
pub fn sign(pem: &str, kid: &str, claims: &Value) -> String {
    let key = RsaPrivateKey::from_pem(pem).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key.encoding_key()).unwrap()
}

/// Claims as the service issues them, for `user_id`, valid for a while.
pub fn claims_for(user_id: &str, role: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({"sub": user_id, "roles": [role], "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600})
}

/// user's world: its database and a broker; replicas of the service run in it.
pub struct World(TestWorld);

impl Deref for World {
    type Target = TestWorld;
    fn deref(&self) -> &TestWorld {
        &self.0
    }
}

impl World {
    pub async fn new() -> Self {
        Self(TestWorld::new("user_svc", "users").await)
    }

    pub fn on(world: TestWorld) -> Self {
        Self(world)
    }

    /// The test settings, the test key among them, with `extra` added.
    pub fn env_with(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut settings = vec![("JWT_SIGNING_KEY", signing_pem())];
        settings.retain(|(name, _)| !extra.iter().any(|(n, _)| n == name));
        settings.extend_from_slice(extra);
        self.0.env_with(&settings)
    }

    /// A replica of the service in this process, once it is ready.
    pub async fn spawn(&self, extra: &[(&str, &str)]) -> App {
        let config =
            Config::from_env(env_of(&self.env_with(extra))).expect("valid test configuration");
        App::spawn(build(config).await.expect("the service builds")).await
    }

    /// Everything published on `user.events`, from the beginning.
    pub async fn user_events(&self) -> TopicReader {
        self.kafka.reader(&self.kafka.topic(Topic::User)).await
    }

    /// Publishes a rental event as the rental service would, returning its event id.
    pub async fn publish<E: DomainEvent>(&self, event: E) -> Uuid {
        self.0.publish("rental", event).await
    }
}

/// user's API, as a test calls it.
pub trait UserApi {
    async fn register(&self, body: Value) -> Response;
    /// Registers a customer and returns the account, checking it was created (201).
    async fn register_customer(&self, name: &str, email: &str) -> Value;
    /// Posts `form` to the token endpoint, form-encoded.
    async fn token_request(&self, form: &[(&str, &str)]) -> Response;
    /// Signs in and returns the access token, checking it was issued (200).
    async fn sign_in(&self, email: &str, password: &str) -> String;
    async fn me(&self, token: &str) -> Response;
    async fn jwks(&self) -> Value;
}

impl UserApi for App {
    async fn register(&self, body: Value) -> Response {
        self.client
            .post(self.url("/api/v1/users"))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn register_customer(&self, name: &str, email: &str) -> Value {
        let response = self
            .register(json!({"name": name, "email": email, "password": PASSWORD}))
            .await;
        assert_eq!(response.status(), 201, "{:?}", response.text().await);
        response.json().await.unwrap()
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> Response {
        self.client
            .post(self.url("/api/v1/auth/token"))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    async fn sign_in(&self, email: &str, password: &str) -> String {
        let response = self
            .token_request(&[
                ("grant_type", "password"),
                ("username", email),
                ("password", password),
            ])
            .await;
        assert_eq!(response.status(), 200, "{:?}", response.text().await);
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    async fn me(&self, token: &str) -> Response {
        self.client
            .get(self.url("/api/v1/users/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    async fn jwks(&self) -> Value {
        let response = self
            .client
            .get(self.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }
}

/// Decodes `token` as a client of the fleet would: with the key the JWKS names by its `kid`,
/// RS256 only, checking issuer, audience and expiry.
pub fn decode_with_jwks(token: &str, jwks: &Value) -> (jsonwebtoken::Header, Value) {
    let header = jsonwebtoken::decode_header(token).unwrap();
    let kid = header.kid.clone().expect("a kid");
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap_or_else(|| panic!("kid {kid} is not in {jwks}"));
    let decoding =
        DecodingKey::from_rsa_components(key["n"].as_str().unwrap(), key["e"].as_str().unwrap())
            .unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let claims = jsonwebtoken::decode::<Value>(token, &decoding, &validation)
        .expect("the token verifies with the published key")
        .claims;
    (header, claims)
}

pub fn rented(user_id: Uuid, book_id: Uuid, rental_id: Uuid) -> BookRented {
    let now = chrono::Utc::now();
    BookRented {
        rental_id,
        book_id,
        user_id,
        rental_fee: 300,
        payment_id: Uuid::new_v4(),
        rented_at: now,
        due_at: now + chrono::Duration::days(14),
    }
}

pub fn returned(user_id: Uuid, book_id: Uuid, rental_id: Uuid) -> BookReturned {
    BookReturned {
        rental_id,
        book_id,
        user_id,
        returned_at: chrono::Utc::now(),
        reason: shared_events::ReturnReason::Returned,
    }
}

pub fn cancelled(user_id: Uuid, book_id: Uuid, rental_id: Uuid) -> RentalCancelled {
    RentalCancelled {
        rental_id,
        book_id,
        user_id,
        payment_id: Uuid::new_v4(),
        cancelled_at: chrono::Utc::now(),
    }
}

/// The id of an account as the API answered it.
pub fn id_of(account: &Value) -> &str {
    account["id"].as_str().expect("an account id")
}
