pub mod consumer;
pub mod http;
pub mod passwords;
pub mod postgres;
pub mod signing;
