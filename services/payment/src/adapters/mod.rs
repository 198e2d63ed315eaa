pub mod http;
pub mod kafka;
pub mod postgres;
#[cfg(feature = "provider-states")]
pub mod provider_states;
