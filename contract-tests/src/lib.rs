//! Consumer-driven contracts between the fleet's services (see README.md): the committed pact
//! files, the helpers the consumer tests write them with, the helpers the provider tests verify
//! them with, and the compatibility rules of the event schemas.

pub mod events;
pub mod pacts;
pub mod schema_compat;
pub mod verify;
