//! What every service of the fleet shares, written once: configuration, telemetry, health,
//! metrics, the database and its migrations, RFC 9457 problems, graceful shutdown, the
//! transactional outbox and its relay, the idempotent inbox consumer, and (with the `testing`
//! feature) the test harness.

pub mod auth;
pub mod config;
pub mod db;
pub mod dlq;
pub mod health;
pub mod http;
pub mod inbox;
pub mod kafka;
pub mod metrics;
pub mod outbox;
pub mod problem;
pub mod retention;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trace;

pub use config::{ConfigError, Env, HttpConfig, KitConfig};
pub use problem::Problem;
pub use service::{Service, ServiceSpec};
