//! Signing access tokens: the RSA key (from configuration, or generated for local development),
//! its public half as a JWK, and the [`TokenIssuer`] that signs RS256 JWTs with it. The key work
//! itself (PEM, generation, the JWK) is the kit's [`fleet_auth::keys`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use crate::application::{AccessToken, TokenIssuer};
use crate::domain::{Account, ServiceClient};
use fleet_auth::keys::RsaPrivateKey;
use fleet_auth::{Claims, Jwk, JwkSet};

/// An RSA private key that signs access tokens, and its public half as published.
#[derive(Clone)]
pub struct SigningKey {
    encoding: EncodingKey,
    jwk: Jwk,
}

impl SigningKey {
    /// A PEM private key: PKCS#8 (`BEGIN PRIVATE KEY`), as a Kubernetes Secret holds it, or
    /// PKCS#1 (`BEGIN RSA PRIVATE KEY`), at least 2048 bits. Errors never quote the key.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        // A PEM pasted into a single-line variable often arrives with literal "\n"s.
        let pem = if pem.contains("\\n") && !pem.contains('\n') {
            pem.replace("\\n", "\n")
        } else {
            pem.to_owned()
        };
        let key = RsaPrivateKey::from_pem(&pem).map_err(|e| e.to_string())?;
        Ok(Self::from_key(&key))
    }

    /// A fresh key, for local development only: tokens signed with it die with the process.
    pub async fn generate() -> anyhow::Result<Self> {
        let key = tokio::task::spawn_blocking(RsaPrivateKey::generate).await??;
        Ok(Self::from_key(&key))
    }

    fn from_key(key: &RsaPrivateKey) -> Self {
        Self {
            encoding: key.encoding_key(),
            jwk: key.jwk().clone(),
        }
    }

    /// The key's id: its RFC 7638 thumbprint.
    pub fn kid(&self) -> &str {
        &self.jwk.kid
    }

    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(kid: {})", self.jwk.kid)
    }
}

/// Who tokens are from and for, and how long they last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSettings {
    pub issuer: String,
    pub audience: String,
    pub ttl: Duration,
}

/// Issues RS256 access tokens signed with one key.
#[derive(Clone)]
pub struct JwtIssuer {
    key: Arc<SigningKey>,
    settings: Arc<TokenSettings>,
}

impl JwtIssuer {
    pub fn new(key: SigningKey, settings: TokenSettings) -> Self {
        Self {
            key: Arc::new(key),
            settings: Arc::new(settings),
        }
    }

    /// The public keys that check this issuer's tokens.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![self.key.jwk().clone()],
        }
    }

    pub fn settings(&self) -> &TokenSettings {
        &self.settings
    }
}

impl JwtIssuer {
    /// Signs `claims` for `ttl` seconds from now (`iat`, `exp` set here).
    async fn sign(&self, mut claims: Claims) -> anyhow::Result<AccessToken> {
        let now = chrono::Utc::now().timestamp();
        let ttl = self.settings.ttl.as_secs();
        claims.iat = now;
        claims.exp = now.saturating_add_unsigned(ttl);
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.key.kid().to_owned());
        let key = self.key.clone();
        // An RSA signature takes milliseconds of CPU: keep it off the async threads.
        let token = tokio::task::spawn_blocking(move || {
            jsonwebtoken::encode(&header, &claims, &key.encoding)
        })
        .await?
        .context("cannot sign the access token")?;
        Ok(AccessToken {
            token,
            expires_in: ttl,
        })
    }
}

impl TokenIssuer for JwtIssuer {
    async fn issue(&self, account: &Account) -> anyhow::Result<AccessToken> {
        self.sign(Claims {
            sub: account.id.to_string(),
            roles: vec![account.role.claim().to_owned()],
            scope: None,
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone(),
            iat: 0,
            exp: 0,
        })
        .await
    }

    async fn issue_for_service(&self, client: &ServiceClient) -> anyhow::Result<AccessToken> {
        self.sign(Claims {
            sub: client.id.to_owned(),
            roles: Vec::new(),
            scope: Some(client.scope.to_owned()),
            iss: self.settings.issuer.clone(),
            aud: client.audience.to_owned(),
            iat: 0,
            exp: 0,
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Email, Name};
    use fleet_auth::{TokenError, TokenVerifier};

    // How PEM keys are read, and which are refused, is tested with the kit's `auth::keys`; here,
    // what this service adds: the escaped single-line form, and errors that never quote the key.
    #[test]
    fn a_pem_key_is_read_in_its_usual_forms_and_named_by_its_thumbprint() {
        let key = RsaPrivateKey::generate().unwrap();
        let pkcs8 = key.to_pkcs8_pem();
        let signing = SigningKey::from_pem(&pkcs8).unwrap();
        assert_eq!(signing.kid(), key.kid());
        assert_eq!(signing.jwk(), key.jwk());
        let pkcs1 = key.to_pkcs1_pem().replace('\n', "\r\n");
        let escaped = pkcs8.replace('\n', "\\n");
        for other in [pkcs1, escaped] {
            assert_eq!(SigningKey::from_pem(&other).unwrap().kid(), signing.kid());
        }
        assert!(!format!("{signing:?}").contains("PRIVATE"));
    }

    #[test]
    fn anything_but_an_rsa_private_key_is_refused_without_quoting_it() {
        for bad in [
            "",
            "not a key",
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----",
        ] {
            let err = SigningKey::from_pem(bad).unwrap_err();
            assert!(err.contains("is not a PEM RSA private key"), "{err}");
            assert!(!err.contains("c2VjcmV0"));
        }
    }

    #[tokio::test]
    async fn an_issued_token_verifies_with_the_published_key_for_its_audience() {
        let settings = TokenSettings {
            issuer: "iss".into(),
            audience: "aud".into(),
            ttl: Duration::from_secs(60),
        };
        let issuer = JwtIssuer::new(SigningKey::generate().await.unwrap(), settings);
        let manager = Account::manager(
            Name::parse("Mona").unwrap(),
            Email::parse("mona@example.org").unwrap(),
            chrono::Utc::now(),
        );
        let token = issuer.issue(&manager).await.unwrap();
        assert_eq!(token.expires_in, 60);
        assert!(!format!("{token:?}").contains(&token.token), "never logged");

        let verifier = TokenVerifier::new(&issuer.jwks(), "iss", "aud").unwrap();
        let caller = verifier.verify(&token.token).unwrap();
        assert_eq!(caller.user_id, manager.id.0);
        assert_eq!(caller.roles, ["manager"]);

        let elsewhere = TokenVerifier::new(&issuer.jwks(), "iss", "another").unwrap();
        assert_eq!(elsewhere.verify(&token.token), Err(TokenError::Audience));
    }
}
