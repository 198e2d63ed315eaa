//! Use cases of renting, written against ports; the adapters implement the ports.

mod ports;
mod reconciler;
mod rentals;

pub use ports::{
    PaymentGateway, PaymentOutcome, PaymentRecord, PaymentUnavailable, RentalChange, RentalStore,
    StoreError,
};
pub use reconciler::Reconciler;
pub use rentals::{Clock, RentError, Rentals, RentalsError};
