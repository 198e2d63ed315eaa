//! Use cases of the catalogue, written against ports; the adapters implement the ports.

mod catalogue;
mod ports;
mod rental_activity;

pub use catalogue::{Catalogue, CatalogueError, Page};
pub use ports::{BookChange, BookStore, RentalActivityStore, StoreError};
pub use rental_activity::{RentalActivityError, RentalFact, record_rental};
