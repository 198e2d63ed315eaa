//! The Rental aggregate and its rules. No I/O.

mod rental;

pub use rental::{CatalogueEntry, Rental, RentalError, RentalStatus, RentalTerms};
