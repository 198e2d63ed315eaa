//! The Account aggregate and its value objects. No I/O: every rule here is a pure function.

mod account;
mod client;
mod sign_in;
mod values;

pub use account::Account;
pub use client::{ClientSecret, MIN_SECRET_CHARS, ServiceClient};
pub use sign_in::{ClientAddress, GuessingPolicy};
pub use values::{Email, EmailKey, Name, Password, PasswordHash, Role, UserId, ValueError};
