//! The gateway in front of the real fleet: every service its own process.

mod chaos;
mod docs;
mod edge;
mod fuzz;
mod helpers;
mod hostile;
mod journey;
mod keys;
mod observability;
mod points;
mod replicas;
mod tokens;
mod upstreams;
