//! Access tokens checked: RS256 JWTs against a set of RSA public keys, the claims they carry,
//! and the bearer header with its 401 answers.

use std::collections::HashMap;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fleet_http::Problem;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

/// The one signing algorithm the fleet accepts.
pub const ALGORITHM: &str = "RS256";

/// Clock skew allowed between the issuer and a verifier.
const LEEWAY_SECS: u64 = 30;

/// An RSA public key as RFC 7517 writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Jwk {
    /// Always `RSA`.
    pub kty: String,
    /// Always `sig`: the key checks signatures.
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// Always `RS256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// The key's RFC 7638 thumbprint; a token names its key with it (header `kid`).
    pub kid: String,
    /// The modulus, base64url without padding.
    pub n: String,
    /// The public exponent, base64url without padding.
    pub e: String,
}

impl Jwk {
    /// A signing key for RS256 from its modulus and exponent (big-endian bytes), identified by
    /// its thumbprint.
    pub fn rsa(modulus: &[u8], exponent: &[u8]) -> Self {
        let n = URL_SAFE_NO_PAD.encode(modulus);
        let e = URL_SAFE_NO_PAD.encode(exponent);
        Self {
            kty: "RSA".to_owned(),
            use_: Some("sig".to_owned()),
            alg: Some(ALGORITHM.to_owned()),
            kid: thumbprint(&n, &e),
            n,
            e,
        }
    }

    /// Whether the key can check an RS256 signature; other keys in a set are skipped.
    fn verifies_rs256(&self) -> bool {
        self.kty == "RSA"
            && self.use_.as_deref().is_none_or(|u| u == "sig")
            && self.alg.as_deref().is_none_or(|a| a == ALGORITHM)
    }
}

/// RFC 7638: base64url(SHA-256) of the required members in lexical order, no whitespace. The
/// base64url alphabet needs no JSON escaping.
pub fn thumbprint(n: &str, e: &str) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// A JWK Set: what `/.well-known/jwks.json` serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

/// What an access token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The account's id; in a service's token, the client id (`rental`).
    pub sub: String,
    /// `customer` or `manager`; none in a service's token.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// What a service's token allows, space-separated (RFC 8693 §4.2); none in a user's token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub iss: String,
    pub aud: String,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
}

/// The caller a valid token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: Uuid,
    pub roles: Vec<String>,
}

impl Caller {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whose records the caller may read: a manager anyone's, anyone else only their own.
    pub fn reader(&self) -> Reader {
        if self.has_role("manager") {
            Reader::Manager
        } else {
            Reader::Customer(self.user_id)
        }
    }
}

/// A service of the fleet calling another, named by a token from the client credentials grant
/// (RFC 6749 §4.4) whose audience is the called service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceCaller {
    /// The calling service (`rental`).
    pub client_id: String,
    pub scopes: Vec<String>,
}

impl ServiceCaller {
    /// Whether this is `client_id` holding `scope`.
    pub fn is(&self, client_id: &str, scope: &str) -> bool {
        self.client_id == client_id && self.scopes.iter().any(|s| s == scope)
    }
}

/// Whoever a valid token names: a person, or a service of the fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    User(Caller),
    Service(ServiceCaller),
}

/// Who reads: a manager reads every customer's records, a customer only their own (OWASP API1:
/// checked on every read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    Customer(Uuid),
    Manager,
}

impl Reader {
    /// Whether the reader may see a record of `owner`'s.
    pub fn may_read(self, owner: Uuid) -> bool {
        match self {
            Reader::Manager => true,
            Reader::Customer(me) => me == owner,
        }
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("it is not a JWT")]
    Malformed,
    #[error("it is signed with {0}; only RS256 is accepted")]
    Algorithm(String),
    #[error("it names no key (kid)")]
    NoKeyId,
    #[error("it names a key this service does not know")]
    UnknownKey(String),
    #[error("its signature does not match")]
    Signature,
    #[error("it has expired")]
    Expired,
    #[error("it is from another issuer")]
    Issuer,
    #[error("it is meant for another audience")]
    Audience,
    #[error("it lacks the {0} claim")]
    MissingClaim(String),
    #[error("its subject is not a user id")]
    Subject,
}

impl From<jsonwebtoken::errors::Error> for TokenError {
    fn from(e: jsonwebtoken::errors::Error) -> Self {
        match e.into_kind() {
            ErrorKind::InvalidSignature => TokenError::Signature,
            ErrorKind::ExpiredSignature => TokenError::Expired,
            ErrorKind::InvalidIssuer => TokenError::Issuer,
            ErrorKind::InvalidAudience => TokenError::Audience,
            ErrorKind::MissingRequiredClaim(claim) => TokenError::MissingClaim(claim),
            ErrorKind::InvalidAlgorithm => TokenError::Algorithm("another algorithm".into()),
            _ => TokenError::Malformed,
        }
    }
}

/// The part of a JOSE header read before any key is chosen.
#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

/// How many verified tokens a verifier remembers.
const VERIFIED_CAPACITY: usize = 10_000;

/// Checks access tokens: RS256 only, signed by one of the given keys (chosen by `kid`), not
/// expired, from the expected issuer and for the expected audience.
///
/// An RSA signature check costs more than the rest of a typical request, and a client sends the
/// same token many times: a token that passed is remembered (by its SHA-256) until it expires, so
/// its next requests skip the signature check. A new set of keys makes a new verifier, which
/// remembers nothing.
pub struct TokenVerifier {
    pub(crate) keys: HashMap<String, DecodingKey>,
    validation: Validation,
    audience: String,
    /// The audience of services' tokens for this service, when it takes any.
    service_audience: Option<String>,
    verified: std::sync::Mutex<HashMap<[u8; 32], Verified>>,
}

#[derive(Clone)]
struct Verified {
    principal: Principal,
    expires_at: i64,
}

impl TokenVerifier {
    /// Keys in `jwks` that cannot check RS256 signatures are ignored.
    pub fn new(jwks: &JwkSet, issuer: &str, audience: &str) -> anyhow::Result<Self> {
        let mut keys = HashMap::new();
        for jwk in jwks.keys.iter().filter(|k| k.verifies_rs256()) {
            let key = DecodingKey::from_rsa_components(&jwk.n, &jwk.e)
                .map_err(|e| anyhow::anyhow!("JWK {} is not an RSA public key: {e}", jwk.kid))?;
            keys.insert(jwk.kid.clone(), key);
        }
        if keys.is_empty() {
            anyhow::bail!("the JWK set holds no RSA key for RS256");
        }
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = LEEWAY_SECS;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Ok(Self {
            keys,
            validation,
            audience: audience.to_owned(),
            service_audience: None,
            verified: std::sync::Mutex::default(),
        })
    }

    /// Takes services' tokens for `audience` as well as users' tokens.
    pub fn accepting_services(mut self, audience: Option<&str>) -> Self {
        if let Some(audience) = audience {
            self.validation
                .set_audience(&[self.audience.as_str(), audience]);
            self.service_audience = Some(audience.to_owned());
        }
        self
    }

    /// The person named by `token`, if every check passes; a service's token is not one.
    pub fn verify(&self, token: &str) -> Result<Caller, TokenError> {
        match self.verify_principal(token)? {
            Principal::User(caller) => Ok(caller),
            Principal::Service(_) => Err(TokenError::Audience),
        }
    }

    /// Whoever `token` names, if every check passes.
    pub fn verify_principal(&self, token: &str) -> Result<Principal, TokenError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = chrono::Utc::now().timestamp();
        if let Some(principal) = self.remembered(&digest, now) {
            return Ok(principal);
        }
        let verified = self.check(token)?;
        let principal = verified.principal.clone();
        self.remember(digest, verified, now);
        Ok(principal)
    }

    /// A token verified before that has not expired since (with the same leeway as a check).
    fn remembered(&self, digest: &[u8; 32], now: i64) -> Option<Principal> {
        let verified = self.verified.lock().expect("not poisoned");
        let entry = verified.get(digest)?;
        (now <= entry.expires_at + LEEWAY_SECS as i64).then(|| entry.principal.clone())
    }

    fn remember(&self, digest: [u8; 32], entry: Verified, now: i64) {
        let mut verified = self.verified.lock().expect("not poisoned");
        if verified.len() >= VERIFIED_CAPACITY {
            verified.retain(|_, e| now <= e.expires_at + LEEWAY_SECS as i64);
            if verified.len() >= VERIFIED_CAPACITY {
                verified.clear();
            }
        }
        verified.insert(digest, entry);
    }

    /// Every check, on the token itself.
    fn check(&self, token: &str) -> Result<Verified, TokenError> {
        let header = read_header(token)?;
        // Checked before any key is used: `none` and the HS256-with-the-public-key trick never
        // reach a signature check.
        if header.alg != ALGORITHM {
            return Err(TokenError::Algorithm(header.alg));
        }
        let kid = header.kid.ok_or(TokenError::NoKeyId)?;
        let key = self
            .keys
            .get(&kid)
            .ok_or_else(|| TokenError::UnknownKey(kid.clone()))?;
        let claims = jsonwebtoken::decode::<Claims>(token, key, &self.validation)?.claims;
        let principal = if self.service_audience.as_deref() == Some(claims.aud.as_str()) {
            Principal::Service(ServiceCaller {
                client_id: claims.sub,
                scopes: claims
                    .scope
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect(),
            })
        } else {
            let user_id = Uuid::try_parse(&claims.sub).map_err(|_| TokenError::Subject)?;
            Principal::User(Caller {
                user_id,
                roles: claims.roles,
            })
        };
        Ok(Verified {
            principal,
            expires_at: claims.exp,
        })
    }

    /// The person named by the request's bearer token.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, Unauthorized> {
        let token = bearer(headers)?;
        self.verify(token).map_err(|e| {
            tracing::info!(reason = %e, "access token refused");
            Unauthorized::Invalid(e)
        })
    }
}

fn read_header(token: &str) -> Result<Header, TokenError> {
    let encoded = token.split('.').next().unwrap_or_default();
    let json = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)
}

/// A request without a usable bearer token (RFC 6750 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unauthorized {
    /// No bearer token at all: the challenge carries no error code.
    Missing,
    Invalid(TokenError),
    /// The signing keys could not be fetched yet: nothing can be checked.
    KeysUnavailable,
}

/// The token in `Authorization: Bearer <token>`.
pub fn bearer(headers: &HeaderMap) -> Result<&str, Unauthorized> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(Unauthorized::Missing);
    };
    let value = value
        .to_str()
        .map_err(|_| Unauthorized::Invalid(TokenError::Malformed))?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Unauthorized::Missing);
    }
    match token.trim() {
        "" => Err(Unauthorized::Invalid(TokenError::Malformed)),
        token => Ok(token),
    }
}

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        let (challenge, detail) = match self {
            Unauthorized::Missing => (
                "Bearer",
                "Sign in first: send an access token as Authorization: Bearer <token>.".to_owned(),
            ),
            Unauthorized::Invalid(reason) => (
                r#"Bearer error="invalid_token""#,
                format!("The access token is not valid: {reason}. Get a new one."),
            ),
            Unauthorized::KeysUnavailable => {
                return Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Access tokens cannot be checked right now; try again in a moment.",
                )
                .into_response();
            }
        };
        let mut response = Problem::new(StatusCode::UNAUTHORIZED, detail).into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7638 §3.1's example key and its thumbprint.
    const RFC_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

    fn rfc_key() -> Jwk {
        let n = URL_SAFE_NO_PAD.decode(RFC_N).unwrap();
        Jwk::rsa(&n, &[1, 0, 1])
    }

    fn verifier() -> TokenVerifier {
        TokenVerifier::new(
            &JwkSet {
                keys: vec![rfc_key()],
            },
            "iss",
            "aud",
        )
        .unwrap()
    }

    fn token(header: &str) -> String {
        format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(r#"{"sub":"x"}"#)
        )
    }

    #[test]
    fn the_key_id_is_the_rfc_7638_thumbprint() {
        let jwk = rfc_key();
        assert_eq!(jwk.kid, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
        assert_eq!(jwk.n, RFC_N);
        assert_eq!(jwk.e, "AQAB");
        let json = serde_json::to_value(&jwk).unwrap();
        assert_eq!(json["use"], "sig");
        assert_eq!(json["alg"], "RS256");
    }

    #[test]
    fn only_rs256_gets_near_a_key() {
        let verifier = verifier();
        let kid = rfc_key().kid;
        for alg in ["none", "HS256", "RS512", "ES256"] {
            let token = token(&format!(r#"{{"alg":"{alg}","kid":"{kid}"}}"#));
            assert_eq!(
                verifier.verify(&token),
                Err(TokenError::Algorithm(alg.into())),
                "{alg}"
            );
        }
        assert_eq!(
            verifier.verify(&token(r#"{"alg":"RS256"}"#)),
            Err(TokenError::NoKeyId)
        );
        assert_eq!(
            verifier.verify(&token(r#"{"alg":"RS256","kid":"other"}"#)),
            Err(TokenError::UnknownKey("other".into()))
        );
        assert_eq!(
            verifier.verify(&token(&format!(r#"{{"alg":"RS256","kid":"{kid}"}}"#))),
            Err(TokenError::Signature),
            "checked with the key it names"
        );
        for garbage in ["", "abc", "....", "e30.e30"] {
            assert!(verifier.verify(garbage).is_err(), "{garbage:?}");
        }
    }

    #[test]
    fn a_remembered_token_still_expires() {
        let verifier = verifier();
        let caller = Caller {
            user_id: Uuid::new_v4(),
            roles: vec!["customer".into()],
        };
        let digest = [7; 32];
        let entry = Verified {
            principal: Principal::User(caller.clone()),
            expires_at: 1_000,
        };
        verifier.remember(digest, entry, 900);
        assert_eq!(
            verifier.remembered(&digest, 1_000),
            Some(Principal::User(caller))
        );
        assert_eq!(
            verifier.remembered(&digest, 1_000 + LEEWAY_SECS as i64 + 1),
            None
        );
        assert_eq!(verifier.remembered(&[8; 32], 900), None, "never verified");
    }

    #[test]
    fn keys_that_cannot_check_rs256_are_skipped() {
        let mut encryption = rfc_key();
        encryption.use_ = Some("enc".into());
        let jwks = JwkSet {
            keys: vec![encryption],
        };
        assert!(TokenVerifier::new(&jwks, "iss", "aud").is_err());
    }

    #[test]
    fn the_bearer_scheme_is_read_from_the_authorization_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), Err(Unauthorized::Missing));
        headers.insert(header::AUTHORIZATION, "Basic dXNlcjpwdw==".parse().unwrap());
        assert_eq!(bearer(&headers), Err(Unauthorized::Missing));
        headers.insert(header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(
            bearer(&headers),
            Err(Unauthorized::Invalid(TokenError::Malformed))
        );
        headers.insert(header::AUTHORIZATION, "bearer a.b.c".parse().unwrap());
        assert_eq!(bearer(&headers), Ok("a.b.c"));
    }

    #[test]
    fn a_customer_reads_their_own_and_a_manager_anyones() {
        let (me, other) = (Uuid::now_v7(), Uuid::now_v7());
        let customer = Caller {
            user_id: me,
            roles: vec!["customer".into()],
        };
        let manager = Caller {
            user_id: other,
            roles: vec!["manager".into()],
        };
        assert_eq!(customer.reader(), Reader::Customer(me));
        assert!(customer.reader().may_read(me));
        assert!(!customer.reader().may_read(other));
        assert!(manager.reader().may_read(me));
    }
}
