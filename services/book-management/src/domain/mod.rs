//! The Book aggregate and its value objects. No I/O: every rule here is a pure function.

mod book;
mod values;

pub use book::{Book, BookChanges, BookError, BookStatus};
pub use values::{Author, BookId, RentalFee, Title, ValueError};
