//! The test harness (feature `testing`): a fresh database per test with the service's role and
//! schema, a Kafka-protocol broker per test (or the real Kafka in `KAFKA_BROKERS`, behind a
//! unique topic prefix), readers and writers for topics, and service processes to kill.
