//! book-management against a real Postgres and a real Kafka-protocol broker, over real HTTP.

mod books;
mod consumer;
mod delivery;
mod dlq;
mod helpers;
mod operations;
mod retention;
