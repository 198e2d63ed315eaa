pub mod http;
pub mod kafka;
pub mod passwords;
pub mod postgres;
pub mod signing;
