//! Use cases of payment, written against ports; the adapters implement the ports.

mod latency;
mod payments;
mod ports;

pub use latency::Latency;
pub use payments::{Payments, PaymentsError, Reader, Settings, Settlement};
pub use ports::{Added, PaymentStore, StoreError};
