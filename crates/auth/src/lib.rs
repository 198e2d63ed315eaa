//! Verifying access tokens: RS256 JWTs checked against a set of RSA public keys (RFC 7517
//! JWKs), with the HTTP side of it (the bearer header, RFC 6750, and its 401 answers).
//!
//! It knows nothing of how tokens are signed, only the published keys: the user service checks
//! tokens with its own keys, every other service (and the gateway) with the JWKS the user service
//! serves ([`RemoteKeys`], behind the [`Caller`] extractor), so all check them the same way.
//! The signing side's key work (PEM, generation, the JWK) is in [`keys`].

mod client;
mod extract;
pub mod keys;
mod remote;
mod tokens;

pub use client::*;
pub use extract::*;
pub use remote::*;
pub use tokens::*;
