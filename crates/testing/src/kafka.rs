//! Kafka for tests: the shared real broker behind a topic prefix of the test's own, or
//! librdkafka's mock cluster, or a broker the test owns; topic readers and writers.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use dev_broker::{MockBroker, RealBroker, fleet_topics};
use fleet::kafka::{Credentials, local_password};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use shared_events::{RawEvent, Topic};
use uuid::Uuid;

use crate::PARTITIONS;

fn unique_prefix() -> String {
    format!("t{}.", &Uuid::new_v4().simple().to_string()[..12])
}

/// Which broker the tests run on: `FLEET_KAFKA=real` (the test command's default, with the
/// shared broker in `KAFKA_BROKERS`) or `mock` (librdkafka's mock cluster, for quick local
/// runs). Unset, `KAFKA_BROKERS` decides.
fn real_kafka() -> bool {
    match std::env::var("FLEET_KAFKA").as_deref() {
        Ok("real") => true,
        Ok("mock") => false,
        _ => std::env::var("KAFKA_BROKERS").is_ok_and(|b| !b.is_empty()),
    }
}

enum Broker {
    /// The real Kafka in `KAFKA_BROKERS`, shared by every test behind its topic prefix.
    Shared,
    /// A real broker of the test's own, which it may kill.
    // Lives until the test process exits (and dies with it): services a test leaves running
    // close their Kafka clients after the test returns, and a vanished broker would make each
    // close wait.
    Own(&'static RealBroker),
    Mock(&'static MockBroker),
}

/// Does the shared broker check who writes and reads (`fleet infra`'s own does, and says so in
/// `FLEET_KAFKA_ACCESS=scram`; a broker of `KAFKA_BROKERS` may not)?
fn shared_access() -> bool {
    std::env::var("FLEET_KAFKA_ACCESS").as_deref() == Ok("scram")
}

/// A Kafka broker for one test.
pub struct TestKafka {
    broker: Broker,
    pub brokers: String,
    pub prefix: String,
    /// Whether the broker has the fleet's principals and ACLs (`scripts/lib/kafka.sh`): each
    /// service then signs in as itself, and the harness as the admin. The mock has none.
    access: bool,
    /// One producer for everything the test publishes: a real broker makes a new one pay for a
    /// connection, metadata and an idempotent producer id.
    producer: std::sync::OnceLock<FutureProducer>,
}

impl TestKafka {
    /// The shared real Kafka in `KAFKA_BROKERS` with the fleet's topics behind a prefix unique
    /// to the test, or, in a mock run, a mock cluster of the test's own.
    pub async fn start() -> Self {
        match std::env::var("KAFKA_BROKERS") {
            Ok(brokers) if !brokers.is_empty() && real_kafka() => {
                let kafka = Self::new(Broker::Shared, brokers, unique_prefix());
                kafka.create_topics().await;
                kafka
            }
            _ => Self::mock(),
        }
    }

    fn new(broker: Broker, brokers: String, prefix: String) -> Self {
        let access = match broker {
            Broker::Shared => shared_access(),
            Broker::Own(_) => true,
            Broker::Mock(_) => false,
        };
        Self {
            broker,
            brokers,
            prefix,
            access,
            producer: std::sync::OnceLock::new(),
        }
    }

    /// The shared real Kafka with a prefix of the test's own and none of the fleet's topics yet
    /// ([`TestKafka::create_topics`] makes them). `None` in a mock run: the mock cannot create
    /// topics.
    pub fn without_topics() -> Option<Self> {
        let brokers = std::env::var("KAFKA_BROKERS").ok()?;
        (real_kafka() && !brokers.is_empty())
            .then(|| Self::new(Broker::Shared, brokers, unique_prefix()))
    }

    /// Creates the fleet's topics behind this test's prefix, as an operator would, and on a
    /// broker with ACLs each service's credential and the rules for the prefix.
    pub async fn create_topics(&self) {
        let admin = self.admin();
        dev_broker::ensure_topics(
            &self.brokers,
            admin.as_ref(),
            &fleet_topics(&self.prefix),
            PARTITIONS,
            1,
        )
        .await
        .expect("create the test's topics");
        if let Some(admin) = &admin {
            dev_broker::ensure_access(&self.brokers, admin, &self.prefix, local_password)
                .await
                .expect("store the services' credentials and ACLs for the test's prefix");
        }
    }

    /// Does this broker check principals and ACLs?
    pub fn has_access_control(&self) -> bool {
        self.access
    }

    /// The admin's credentials on a broker with ACLs: the harness reads and writes as an
    /// operator would.
    pub fn admin(&self) -> Option<Credentials> {
        self.access.then(Credentials::admin)
    }

    /// A client configuration for this broker signed in with `credentials` (none: anonymous).
    pub fn client_config_as(&self, credentials: Option<&Credentials>) -> ClientConfig {
        dev_broker::client_config(&self.brokers, credentials)
    }

    /// A broker of the test's own, for tests that take it down: a real Kafka (its own JVM,
    /// started by `scripts/kafka.sh`), or in a mock run a mock cluster.
    pub async fn own() -> Self {
        if !real_kafka() {
            return Self::mock();
        }
        let prefix = unique_prefix();
        let data = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/kafka/own")
            .join(&prefix[..prefix.len() - 1]);
        let broker = RealBroker::start(&data)
            .await
            .unwrap_or_else(|e| panic!("start a Kafka broker of the test's own: {e:#}"));
        let broker: &'static RealBroker = Box::leak(Box::new(broker));
        let brokers = broker.bootstrap_servers();
        let kafka = Self::new(Broker::Own(broker), brokers, prefix);
        kafka.create_topics().await;
        kafka
    }

    /// librdkafka's mock cluster, whatever the run: only for what a real broker cannot do.
    pub fn mock() -> Self {
        let prefix = unique_prefix();
        let mock = MockBroker::start(1, &fleet_topics(&prefix), PARTITIONS)
            .expect("start the mock broker");
        let mock: &'static MockBroker = Box::leak(Box::new(mock));
        Self::new(
            Broker::Mock(mock),
            mock.bootstrap_servers().to_owned(),
            prefix,
        )
    }

    /// Is this a real Kafka broker (not the mock)?
    pub fn is_real(&self) -> bool {
        !matches!(self.broker, Broker::Mock(_))
    }

    pub fn topic(&self, topic: Topic) -> String {
        format!("{}{}", self.prefix, topic.name())
    }

    /// The broker goes away: a real one is killed with SIGKILL, as a crash (nothing flushed,
    /// every connection cut); the mock drops every connection and refuses new ones. Returns
    /// once it is gone. Only a broker of the test's own ([`TestKafka::own`]) can.
    pub async fn go_down(&self) {
        match self.broker {
            Broker::Own(broker) => broker.kill(),
            // The mock closes its listening port and binds it again in `come_back`: bind no
            // new port in between.
            Broker::Mock(mock) => mock.go_down(),
            Broker::Shared => {
                panic!("only a broker of the test's own can be taken down: use TestKafka::own()")
            }
        }
    }

    /// The broker comes back with what it had stored; returns once it answers.
    pub async fn come_back(&self) {
        match self.broker {
            Broker::Own(broker) => broker
                .come_back()
                .await
                .unwrap_or_else(|e| panic!("start the test's Kafka again: {e:#}")),
            Broker::Mock(mock) => mock.come_back(),
            Broker::Shared => {
                panic!("only a broker of the test's own can be taken down: use TestKafka::own()")
            }
        }
    }

    /// The settings of service `principal` (`rental`, `book-management`, …): the broker, the
    /// test's prefix and, on a broker with ACLs, its own credentials.
    pub fn env_as(&self, principal: &str) -> Vec<(String, String)> {
        assert!(
            shared_events::access::of(principal).is_some(),
            "{principal} is not one of the fleet's Kafka principals (shared_events::access)"
        );
        let mut env = vec![
            ("KAFKA_BROKERS".into(), self.brokers.clone()),
            ("KAFKA_TOPIC_PREFIX".into(), self.prefix.clone()),
        ];
        if self.access {
            env.extend(Credentials::service(principal).env());
        }
        env
    }

    /// Reads `topic` from the beginning, on every partition, outside any consumer group.
    pub async fn reader(&self, topic: &str) -> TopicReader {
        let consumer: StreamConsumer = self
            .client_config_as(self.admin().as_ref())
            .set("group.id", format!("reader-{}", Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .create()
            .expect("reader consumer");
        let mut assignment = TopicPartitionList::new();
        for partition in 0..PARTITIONS {
            assignment
                .add_partition_offset(topic, partition, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&assignment).expect("assign partitions");
        TopicReader {
            consumer,
            topic: topic.to_owned(),
        }
    }

    pub fn producer(&self) -> FutureProducer {
        self.producer
            .get_or_init(|| {
                self.client_config_as(self.admin().as_ref())
                    .create()
                    .expect("test producer")
            })
            .clone()
    }

    /// Publishes raw bytes, as a producer outside the fleet would.
    pub async fn send(&self, topic: Topic, key: &str, payload: &[u8]) {
        self.producer()
            .send(
                FutureRecord::to(&self.topic(topic))
                    .key(key)
                    .payload(payload),
                Duration::from_secs(5),
            )
            .await
            .expect("test event delivered");
    }
}

impl TestKafka {
    /// Publishes raw bytes to `topic` as a client signed in with `credentials` (none:
    /// anonymous), with a producer of its own that gives up after `wait`; the broker's answer.
    pub async fn send_as(
        &self,
        credentials: Option<&Credentials>,
        topic: Topic,
        key: &str,
        payload: &[u8],
        wait: Duration,
    ) -> Result<(), rdkafka::error::KafkaError> {
        let producer: FutureProducer = self
            .client_config_as(credentials)
            .set("message.timeout.ms", wait.as_millis().to_string())
            .create()
            .expect("a producer");
        producer
            .send(
                FutureRecord::to(&self.topic(topic))
                    .key(key)
                    .payload(payload),
                wait,
            )
            .await
            .map(|_| ())
            .map_err(|(e, _)| e)
    }
}

/// One message as read back from a topic.
#[derive(Debug, Clone)]
pub struct Received {
    pub key: String,
    pub payload: Vec<u8>,
    pub headers: HashMap<String, String>,
    pub partition: i32,
}

impl Received {
    pub fn event(&self) -> RawEvent {
        RawEvent::from_slice(&self.payload).expect("a CloudEvent")
    }
}

pub struct TopicReader {
    consumer: StreamConsumer,
    topic: String,
}

impl TopicReader {
    pub async fn next(&self, wait: Duration) -> Option<Received> {
        let message = tokio::time::timeout(wait, self.consumer.recv())
            .await
            .ok()?;
        let message = message.expect("read from the topic");
        let headers = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(Received {
            key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
            payload: message.payload().unwrap_or_default().to_vec(),
            headers,
            partition: message.partition(),
        })
    }

    /// Exactly `count` messages arrive within `wait` (and no more within a short grace).
    pub async fn expect(&self, count: usize, wait: Duration) -> Vec<Received> {
        let deadline = Instant::now() + wait;
        let mut received = Vec::new();
        while received.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Some(message) => received.push(message),
                None => panic!(
                    "{}: expected {count} messages within {wait:?}, got {}: {received:#?}",
                    self.topic,
                    received.len()
                ),
            }
        }
        if let Some(extra) = self.next(Duration::from_millis(500)).await {
            panic!(
                "{}: expected {count} messages, got one more: {extra:#?}",
                self.topic
            );
        }
        received
    }
}
