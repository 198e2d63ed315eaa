pub mod consumer;
pub mod http;
pub mod postgres;
#[cfg(feature = "provider-states")]
pub mod provider_states;
