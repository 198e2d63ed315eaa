//! The Rental aggregate and its rules. No I/O.

mod idempotency;
mod rental;

pub use idempotency::{IdempotencyKey, InvalidIdempotencyKey};
pub use rental::{CatalogueEntry, Rental, RentalError, RentalStatus, RentalTerms};
