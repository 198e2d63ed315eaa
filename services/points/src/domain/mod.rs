//! What points are and how a rental earns them. No I/O: every rule here is a pure function.
//!
//! A rental earns points once, when it completes (returned by the customer or expired at its due
//! date), as a share of the fee its `BookRented` carried; a cancelled rental earns nothing.

mod points;
mod rental;

pub use points::{EarningRate, Points, RateError};
pub use rental::{Completion, Credit, Rental, RentalState, Uncredited};
