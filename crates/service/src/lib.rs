//! A service of the fleet, started and stopped the same way: [`Service`] binds the listeners,
//! runs the migrations, starts the outbox relay, retention, the consumers and the service's
//! workers, and on SIGTERM drains them in order. [`KitConfig`] is what every service reads from
//! the environment.

mod config;
mod keys;
mod service;

pub use config::KitConfig;
pub use service::{Service, ServiceSpec};
