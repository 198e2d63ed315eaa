//! The boards' use cases, written against a port; the adapters implement it.

mod board;
mod ports;

pub use board::{Board, BoardError, Reader};
pub use ports::{BoardStore, Page, RentalFilter, StoreError};
