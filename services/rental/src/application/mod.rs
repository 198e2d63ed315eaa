//! Use cases of renting, written against ports; the adapters implement the ports.

mod expiry;
mod ports;
mod reconciler;
mod rentals;
mod replica;

pub use expiry::Expiry;
pub use ports::{
    CatalogueStore, Opened, PaymentGateway, PaymentOutcome, PaymentRecord, PaymentUnavailable,
    RentalChange, RentalStore, StoreError,
};
pub use reconciler::Reconciler;
pub use rentals::{Clock, RentError, Rentals, RentalsError};
pub use replica::{BookFact, ReplicaError, replicate};
