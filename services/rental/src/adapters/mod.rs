pub mod http;
pub mod kafka;
pub mod payment;
pub mod postgres;
