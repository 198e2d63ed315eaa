//! How a service reaches Kafka and paces its outbox relay and consumers, from the environment.

use std::time::Duration;

use fleet_config::Env;

use crate::kafka::KafkaSecurity;
use crate::retention::RetentionConfig;

/// The most events a consumer applies in one transaction (`CONSUMER_BATCH_SIZE`).
const MAX_CONSUMER_BATCH: usize = 1000;

#[derive(Debug, Clone)]
pub struct MessagingConfig {
    pub brokers: String,
    /// Put in front of every topic and consumer group, so that several environments (or tests)
    /// can share one Kafka cluster.
    pub topic_prefix: String,
    pub message_timeout: Duration,
    pub security: KafkaSecurity,
    pub outbox_poll_interval: Duration,
    pub outbox_busy_poll_interval: Duration,
    pub outbox_batch_size: u32,
    pub consumer_max_retries: u32,
    /// Events already received that a consumer applies in one transaction, at most.
    pub consumer_batch_size: usize,
    pub retention: RetentionConfig,
}

impl MessagingConfig {
    /// `KAFKA_BROKERS` (required), `KAFKA_TOPIC_PREFIX`, `KAFKA_MESSAGE_TIMEOUT_MS`, the
    /// security settings ([`KafkaSecurity::read`]), `OUTBOX_*`, `CONSUMER_*` and retention
    /// ([`RetentionConfig::read`]).
    pub fn read(env: &mut Env) -> Self {
        let config = Self {
            brokers: env.required("KAFKA_BROKERS"),
            topic_prefix: env.or("KAFKA_TOPIC_PREFIX", String::new()),
            message_timeout: env.millis("KAFKA_MESSAGE_TIMEOUT_MS", 30_000),
            security: KafkaSecurity::read(env),
            outbox_poll_interval: env.millis("OUTBOX_POLL_INTERVAL_MS", 100),
            outbox_busy_poll_interval: env.millis("OUTBOX_BUSY_POLL_INTERVAL_MS", 20),
            outbox_batch_size: env.or("OUTBOX_BATCH_SIZE", 500),
            consumer_max_retries: env.or("CONSUMER_MAX_RETRIES", 5),
            consumer_batch_size: env.or("CONSUMER_BATCH_SIZE", 32),
            retention: RetentionConfig::read(env),
        };
        // A batch's messages are held in memory and its rows locked until it commits.
        if !(1..=MAX_CONSUMER_BATCH).contains(&config.consumer_batch_size) {
            env.invalid(format!(
                "CONSUMER_BATCH_SIZE must be from 1 to {MAX_CONSUMER_BATCH}"
            ));
        }
        if config.outbox_batch_size == 0 {
            env.invalid("OUTBOX_BATCH_SIZE must be at least 1");
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consumer_batch_is_bounded() {
        for size in ["0", "1001"] {
            let mut env = Env::from_pairs([("CONSUMER_BATCH_SIZE", size)]);
            MessagingConfig::read(&mut env);
            let err = env.finish().unwrap_err().to_string();
            assert!(
                err.contains("CONSUMER_BATCH_SIZE must be from 1 to 1000"),
                "{size}: {err}"
            );
        }
    }
}
