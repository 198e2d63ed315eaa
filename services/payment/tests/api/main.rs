//! payment against a real Postgres and a real Kafka-protocol broker, over real HTTP.

mod access;
mod bus;
mod consumer;
mod helpers;
mod operations;
mod payments;
mod refunds;
