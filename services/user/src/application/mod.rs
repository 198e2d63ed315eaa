//! Use cases of user, written against ports; the adapters implement the ports.

mod accounts;
mod clients;
mod ports;

pub use accounts::{Accounts, AccountsError, Bootstrap};
pub use clients::{ClientError, ServiceClients};
pub use ports::{
    AccessToken, AccountStore, Added, HashError, PasswordHasher, SignInLimit, StoreError,
    TokenIssuer,
};
