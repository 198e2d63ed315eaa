//! Use cases of points, written against ports; the adapters implement the ports.

mod earning;
mod ports;
mod statements;

pub use earning::{Applied, Earning, RentalFact};
pub use ports::{EarningStore, Page, PointsStore, Statement, StoreError};
pub use statements::{StatementError, Statements};
