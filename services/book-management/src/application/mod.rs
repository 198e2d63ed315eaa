//! Use cases of the catalogue, written against ports; the adapters implement the ports.

mod catalogue;
mod ports;

pub use catalogue::{Catalogue, CatalogueError, Page};
pub use ports::{BookChange, BookStore, StoreError};
