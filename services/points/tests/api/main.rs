//! points against a real Postgres and a real Kafka-protocol broker, over real HTTP: rentals earn
//! once each, whatever is redelivered and whenever points starts; customers read only their own.

mod access;
mod earning;
mod helpers;
mod operations;
