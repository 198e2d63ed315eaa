//! The Account aggregate and its value objects. No I/O: every rule here is a pure function.

mod account;
mod values;

pub use account::Account;
pub use values::{Email, Name, Password, PasswordHash, Role, UserId, ValueError};
