//! The Account aggregate and its value objects. No I/O: every rule here is a pure function.

mod account;
mod client;
mod values;

pub use account::Account;
pub use client::{ClientSecret, MIN_SECRET_CHARS, ServiceClient};
pub use values::{Email, Name, Password, PasswordHash, Role, UserId, ValueError};
