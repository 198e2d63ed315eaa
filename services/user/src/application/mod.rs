//! Use cases of user, written against ports; the adapters implement the ports.

mod accounts;
mod active_rentals;
mod clients;
mod ports;

pub use accounts::{Accounts, AccountsError, Bootstrap, RegistrationBudget};
pub use active_rentals::{Counted, RentalFact, count_rental};
pub use clients::{ClientError, ServiceClients};
pub use ports::{
    AccessToken, AccountStore, ActiveRentalStore, Added, Guess, HashError, PasswordHasher,
    StoreError, TokenIssuer,
};
