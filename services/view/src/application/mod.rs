//! The projection and the boards' use cases, written against ports; the adapters implement them.

mod board;
mod ports;
mod projection;

pub use board::{Board, BoardError, Reader};
pub use ports::{BoardStore, Page, ProjectionStore, RentalFilter, StoreError};
pub use projection::{Fact, project};
