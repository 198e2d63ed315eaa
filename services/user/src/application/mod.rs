//! Use cases of user, written against ports; the adapters implement the ports.

mod accounts;
mod ports;

pub use accounts::{Accounts, AccountsError, Bootstrap};
pub use ports::{
    AccessToken, AccountStore, Added, HashError, PasswordHasher, SignInLimit, StoreError,
    TokenIssuer,
};
