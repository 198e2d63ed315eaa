//! user against a real Postgres and a real Kafka-protocol broker, over real HTTP.

mod clients;
mod consumer;
mod guessing;
mod helpers;
mod manager;
mod operations;
mod profile;
mod registration;
mod tokens;
