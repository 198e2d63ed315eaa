//! view against a real Postgres and a real Kafka-protocol broker, over real HTTP: the boards
//! follow the fleet's events in any order, once each, across restarts and rebuilds.

mod access;
mod board;
mod helpers;
mod operations;
mod orders;
