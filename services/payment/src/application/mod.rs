//! Use cases of payment, written against ports; the adapters implement the ports.

mod latency;
mod payments;
mod ports;
mod refunds;

use chrono::{DateTime, SubsecRound, Utc};

pub use latency::Latency;
pub use payments::{Payments, PaymentsError, Reader, Settings, Settlement};
pub use ports::{Added, PaymentStore, RefundStore, StoreError};
pub use refunds::{Refund, refund_cancelled};

/// Microseconds: what Postgres keeps, so an answer and a later read agree.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}
