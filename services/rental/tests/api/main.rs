//! rental with payment and book-management, each its own service on its own schema, over real
//! HTTP and a real Kafka-protocol broker.

mod faults;
mod helpers;
mod renting;
mod terms;
