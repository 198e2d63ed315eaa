//! Password hashes with Argon2id (RFC 9106), as PHC strings that carry their salt and cost.

use std::sync::Arc;

use anyhow::Context;
use argon2::password_hash::{
    PasswordHash as Phc, PasswordHasher as _, PasswordVerifier as _, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};
use rand_core::OsRng;

use crate::application::PasswordHasher;
use crate::domain::{Password, PasswordHash};

/// Argon2id with the crate's default cost (19 MiB, 2 passes, 1 lane: OWASP's recommendation).
/// Verifying uses the cost written in each hash.
#[derive(Clone)]
pub struct Argon2Hasher {
    params: Params,
    /// A hash of a password nobody knows, verified when no account matches so that an unknown
    /// email takes as long as a wrong password.
    stand_in: Arc<PasswordHash>,
}

impl Argon2Hasher {
    /// `memory_kib`: Argon2's memory cost; `None` keeps the default (unit tests go lower).
    pub async fn new(memory_kib: Option<u32>) -> anyhow::Result<Self> {
        let params = match memory_kib {
            Some(kib) => Params::new(kib, Params::DEFAULT_T_COST, Params::DEFAULT_P_COST, None)
                .map_err(|e| anyhow::anyhow!("invalid Argon2 memory cost {kib} KiB: {e}"))?,
            None => Params::default(),
        };
        let secret = uuid::Uuid::new_v4().to_string();
        let stand_in = {
            let params = params.clone();
            tokio::task::spawn_blocking(move || hash(&params, &secret)).await??
        };
        Ok(Self {
            params,
            stand_in: Arc::new(stand_in),
        })
    }
}

fn argon2(params: Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash(params: &Params, password: &str) -> anyhow::Result<PasswordHash> {
    let salt = SaltString::generate(&mut OsRng);
    let phc = argon2(params.clone())
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("cannot hash a password: {e}"))?;
    Ok(PasswordHash::new(phc.to_string()))
}

fn verify(attempt: &str, hash: &PasswordHash) -> bool {
    match Phc::new(hash.as_str()) {
        // The hash names its own algorithm and cost; the default instance only dispatches.
        Ok(phc) => Argon2::default()
            .verify_password(attempt.as_bytes(), &phc)
            .is_ok(),
        Err(e) => {
            tracing::error!(error = %e, "a stored password hash is not a PHC string");
            false
        }
    }
}

impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: Password) -> anyhow::Result<PasswordHash> {
        let params = self.params.clone();
        tokio::task::spawn_blocking(move || hash(&params, password.expose()))
            .await
            .context("the hashing task failed")?
    }

    async fn verify(&self, attempt: String, hash: Option<PasswordHash>) -> bool {
        let (hash, known) = match hash {
            Some(hash) => (hash, true),
            None => ((*self.stand_in).clone(), false),
        };
        let matches = tokio::task::spawn_blocking(move || verify(&attempt, &hash))
            .await
            .unwrap_or(false);
        known && matches
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn password(raw: &str) -> Password {
        Password::parse(raw, "u@example.org").unwrap()
    }

    #[tokio::test]
    async fn a_hash_is_argon2id_salted_and_verifies_only_its_password() {
        let hasher = Argon2Hasher::new(Some(64)).await.unwrap();
        let first = hasher
            .hash(password("correct horse battery"))
            .await
            .unwrap();
        let second = hasher
            .hash(password("correct horse battery"))
            .await
            .unwrap();
        assert!(
            first.as_str().starts_with("$argon2id$v=19$m=64,t=2,p=1$"),
            "{}",
            first.as_str()
        );
        assert_ne!(first, second, "each hash has its own salt");
        assert!(!first.as_str().contains("correct horse"));
        assert!(
            hasher
                .verify("correct horse battery".into(), Some(first.clone()))
                .await
        );
        assert!(
            !hasher
                .verify("correct horse batterY".into(), Some(first))
                .await
        );
        assert!(
            !hasher.verify("anything".into(), None).await,
            "no account, no match"
        );
        assert!(
            !hasher
                .verify("x".into(), Some(PasswordHash::new("garbage".into())))
                .await
        );
    }

    #[tokio::test]
    async fn the_default_cost_is_owasps() {
        let hasher = Argon2Hasher::new(None).await.unwrap();
        assert!(
            hasher
                .stand_in
                .as_str()
                .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{}",
            hasher.stand_in.as_str()
        );
        assert!(Argon2Hasher::new(Some(1)).await.is_err());
    }
}
