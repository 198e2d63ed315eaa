//! The user service's token issuing as other services' tests need it.

use uuid::Uuid;

use fleet_auth::keys::RsaPrivateKey;

/// The user service's token issuing, as other services' tests need it: one RSA key per test
/// process, its JWKS served over HTTP on a random port, and tokens minted for anyone.
pub struct TestIdentity {
    pub jwks_url: String,
    key: &'static IdentityKey,
}

struct IdentityKey {
    encoding: jsonwebtoken::EncodingKey,
    /// PKCS#8, as the user service reads `JWT_SIGNING_KEY`.
    private_pem: String,
    public_pem: String,
    jwks: fleet_auth::JwkSet,
}

pub const TEST_ISSUER: &str = "book-rental-fleet";
pub const TEST_AUDIENCE: &str = "book-rental-api";
/// rental's client secret in tests, as the user service and rental are both given it.
pub const TEST_RENTAL_CLIENT_SECRET: &str = "test-only-rental-client-secret-0123456789abcdef";

fn identity_key() -> &'static IdentityKey {
    static KEY: std::sync::OnceLock<IdentityKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let private = RsaPrivateKey::generate().expect("generate a test RSA key");
        IdentityKey {
            encoding: private.encoding_key(),
            private_pem: private.to_pkcs8_pem(),
            public_pem: private.public_key_pem(),
            jwks: fleet_auth::JwkSet {
                keys: vec![private.jwk().clone()],
            },
        }
    })
}

fn service_token(key: &IdentityKey, client_id: &str, audience: &str, scope: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({
        "sub": client_id, "scope": scope, "iss": TEST_ISSUER, "aud": audience,
        "iat": now, "exp": now + 300,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(key.jwks.keys[0].kid.clone());
    jsonwebtoken::encode(&header, &claims, &key.encoding).expect("sign a test token")
}

/// The RSA key the project once committed for development (its thumbprint is in the user
/// service's list of published keys). Kept only so tests can show that tokens signed with it get
/// nowhere: no deployment accepts it.
pub const PUBLISHED_DEV_KEY: &str =
    include_str!("../../auth/fixtures/published-dev-signing-key.pem");

/// `claims` signed with [`PUBLISHED_DEV_KEY`], named by its key id, as an attacker who read the
/// project would sign them.
pub fn sign_with_published_key(claims: serde_json::Value) -> String {
    let key =
        RsaPrivateKey::from_pem(PUBLISHED_DEV_KEY).expect("the published key is a PEM RSA key");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(key.kid().to_owned());
    jsonwebtoken::encode(&header, &claims, &key.encoding_key())
        .expect("sign with the published key")
}

/// rental's token for payment's internal endpoints, signed with the test key that every
/// [`TestIdentity`] publishes.
pub fn rental_token() -> String {
    service_token(identity_key(), "rental", "payment", "payments")
}

/// The user service's client credentials grant as rental uses it: HTTP Basic, rental's secret.
async fn client_credentials(headers: axum::http::HeaderMap) -> axum::response::Response {
    use axum::response::IntoResponse;
    use base64::Engine;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("rental:{TEST_RENTAL_CLIENT_SECRET}"))
    );
    let authorization = headers.get(axum::http::header::AUTHORIZATION);
    if authorization.and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (
            axum::http::StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let token = rental_token();
    axum::Json(serde_json::json!({
        "access_token": token, "token_type": "Bearer", "expires_in": 300, "scope": "payments",
    }))
    .into_response()
}

impl TestIdentity {
    pub async fn start() -> Self {
        let key = identity_key();
        let app = axum::Router::new()
            .route(
                "/.well-known/jwks.json",
                axum::routing::get(move || async move { axum::Json(key.jwks.clone()) }),
            )
            .route("/token", axum::routing::post(client_credentials));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let jwks_url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { jwks_url, key }
    }

    /// What a service needs to check tokens from this issuer.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("JWKS_URL".into(), self.jwks_url.clone()),
            ("JWT_ISSUER".into(), TEST_ISSUER.into()),
            ("JWT_AUDIENCE".into(), TEST_AUDIENCE.into()),
        ]
    }

    /// What rental needs to get its token for payment here: `TOKEN_URL`, `RENTAL_CLIENT_SECRET`.
    pub fn client_env(&self) -> Vec<(String, String)> {
        vec![
            ("TOKEN_URL".into(), self.token_url()),
            (
                "RENTAL_CLIENT_SECRET".into(),
                TEST_RENTAL_CLIENT_SECRET.into(),
            ),
        ]
    }

    /// The client credentials grant, for rental with [`TEST_RENTAL_CLIENT_SECRET`] only.
    pub fn token_url(&self) -> String {
        self.jwks_url.replace("/.well-known/jwks.json", "/token")
    }

    /// A valid service token: `client_id` calling `audience` with `scope`.
    pub fn service_token(&self, client_id: &str, audience: &str, scope: &str) -> String {
        service_token(self.key, client_id, audience, scope)
    }

    /// A valid token for `user_id` with `roles` (`customer`, `manager`).
    pub fn token(&self, user_id: Uuid, roles: &[&str]) -> String {
        let now = chrono::Utc::now().timestamp();
        self.sign(serde_json::json!({
            "sub": user_id.to_string(), "roles": roles, "iss": TEST_ISSUER, "aud": TEST_AUDIENCE,
            "iat": now, "exp": now + 900,
        }))
    }

    /// The private key as PEM: a user service given it as `JWT_SIGNING_KEY` issues tokens this
    /// identity could have signed.
    pub fn private_key_pem(&self) -> &str {
        &self.key.private_pem
    }

    /// The public key as PEM, as an attacker who read the JWKS would hold it.
    pub fn public_key_pem(&self) -> &str {
        &self.key.public_pem
    }

    /// Any claims, signed with the test key (an expired token, another audience, …).
    pub fn sign(&self, claims: serde_json::Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(self.key.jwks.keys[0].kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.key.encoding).expect("sign a test token")
    }
}
