pub mod consumer;
pub mod http;
pub mod payment;
pub mod postgres;
