//! Serving HTTP the same way in every process of the fleet: the listeners and their limits
//! ([`server`]), extractors and the middleware stack that answer with RFC 9457 problems
//! ([`api`], [`problem`]), `/livez` and `/readyz` ([`health`]), the stop signal ([`shutdown`])
//! and who a client is behind proxies ([`client_address`]). Nothing here knows a database or a
//! broker: a service hands its database to the server as a [`health::Database`].

pub mod api;
pub mod client_address;
mod config;
pub mod health;
pub mod problem;
pub mod server;
pub mod shutdown;

pub use config::{DEFAULT_OPS_PORT, HttpConfig};
pub use problem::Problem;
