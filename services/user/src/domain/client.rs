//! Services of the fleet as OAuth2 clients (RFC 6749 §4.4): who may get a token to call whom.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The shortest client secret accepted: 256 bits of hex, as `openssl rand -hex 32` makes.
pub const MIN_SECRET_CHARS: usize = 32;

/// A client secret: long enough that guessing it is hopeless, and never printed.
#[derive(Clone)]
pub struct ClientSecret(String);

impl ClientSecret {
    pub fn parse(secret: &str) -> Result<Self, String> {
        if secret.chars().count() < MIN_SECRET_CHARS {
            return Err(format!(
                "is shorter than {MIN_SECRET_CHARS} characters; make one with `openssl rand -hex 32`"
            ));
        }
        if !secret.chars().all(|c| c.is_ascii_graphic()) {
            return Err("holds spaces or characters that are not printable ASCII".to_owned());
        }
        Ok(Self(secret.to_owned()))
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(..)")
    }
}

/// A service that may get tokens for one audience with one scope.
#[derive(Clone)]
pub struct ServiceClient {
    pub id: &'static str,
    /// The service its tokens are for.
    pub audience: &'static str,
    pub scope: &'static str,
    /// Only the digest is kept: comparing digests in constant time tells nothing of the secret.
    secret_digest: [u8; 32],
}

impl ServiceClient {
    /// rental, paying and refunding through payment's internal endpoints.
    pub fn rental(secret: ClientSecret) -> Self {
        Self {
            id: "rental",
            audience: "payment",
            scope: "payments",
            secret_digest: Sha256::digest(secret.0.as_bytes()).into(),
        }
    }

    /// Whether `secret` is this client's.
    pub fn has_secret(&self, secret: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        digest.ct_eq(&self.secret_digest).into()
    }
}

impl fmt::Debug for ServiceClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceClient")
            .field("id", &self.id)
            .field("audience", &self.audience)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_long_and_printable() {
        assert!(
            ClientSecret::parse("short")
                .unwrap_err()
                .contains("shorter than 32")
        );
        assert!(ClientSecret::parse(&format!("{} x", "a".repeat(32))).is_err());
        let secret = ClientSecret::parse(&"ab".repeat(16)).unwrap();
        assert_eq!(format!("{secret:?}"), "ClientSecret(..)");
    }

    #[test]
    fn only_the_right_secret_authenticates() {
        let rental = ServiceClient::rental(ClientSecret::parse(&"ab".repeat(16)).unwrap());
        assert!(rental.has_secret(&"ab".repeat(16)));
        assert!(!rental.has_secret(&"ab".repeat(15)));
        assert!(!rental.has_secret(""));
        assert!(!format!("{rental:?}").contains("abab"));
    }
}
