//! The Payment aggregate and its value objects. No I/O: every rule here is a pure function.

mod payment;
mod values;

pub use payment::{DeclineRule, Payment, PaymentError, PaymentStatus};
pub use values::{Amount, PaymentId, ValueError};
