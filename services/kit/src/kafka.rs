//! Kafka clients configured the same way in every service.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::producer::FutureProducer;
use rdkafka::{ClientConfig, ClientContext};
use shared_events::Topic;

use crate::KitConfig;
use crate::metrics::Metrics;

/// Logs every rebalance and exports how many partitions this replica owns.
pub struct RebalanceLog {
    pub metrics: Metrics,
}

impl ClientContext for RebalanceLog {}

impl ConsumerContext for RebalanceLog {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(partitions) => {
                let owned: Vec<String> = partitions
                    .elements()
                    .iter()
                    .map(|p| format!("{}[{}]", p.topic(), p.partition()))
                    .collect();
                tracing::info!(partitions = ?owned, "partitions assigned");
                self.metrics.consumer_partitions.set(owned.len() as i64);
            }
            Rebalance::Revoke(partitions) => {
                tracing::info!(count = partitions.count(), "partitions revoked");
                self.metrics.consumer_partitions.set(0);
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance failed"),
        }
    }
}

pub type Consumer = StreamConsumer<RebalanceLog>;

#[derive(Debug, Clone)]
pub struct Kafka {
    brokers: String,
    prefix: String,
    message_timeout: Duration,
}

impl Kafka {
    pub fn new(config: &KitConfig) -> Self {
        Self {
            brokers: config.kafka_brokers.clone(),
            prefix: config.kafka_topic_prefix.clone(),
            message_timeout: config.kafka_message_timeout,
        }
    }

    /// The topic's name on the cluster (with this environment's prefix).
    pub fn topic(&self, topic: Topic) -> String {
        self.name(topic.name())
    }

    /// Any name on the cluster (topic or group) with this environment's prefix.
    pub fn name(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// An idempotent producer: acknowledged by all in-sync replicas, in order per partition even
    /// across retries.
    pub fn producer(&self) -> Result<FutureProducer, rdkafka::error::KafkaError> {
        ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set(
                "message.timeout.ms",
                self.message_timeout.as_millis().to_string(),
            )
            .create()
    }

    /// A consumer in `group` that stores an offset only when told to (after the effect is
    /// committed) and commits stored offsets in the background. A new group starts at the
    /// beginning of the topic, so a new or rebuilt service sees every event.
    pub fn consumer(
        &self,
        group: &str,
        metrics: Metrics,
    ) -> Result<Consumer, rdkafka::error::KafkaError> {
        ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", self.name(group))
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .create_with_context(RebalanceLog { metrics })
    }
}
