//! Kafka clients configured the same way in every service.

use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::producer::FutureProducer;
use rdkafka::{ClientConfig, ClientContext, Offset, Statistics, TopicPartitionList};
use shared_events::Topic;

use fleet_config::Env;
use fleet_telemetry::metrics::Metrics;

use crate::MessagingConfig;

/// How the clients reach the brokers: `KAFKA_SECURITY_PROTOCOL` (`PLAINTEXT`, `SSL`,
/// `SASL_PLAINTEXT` or `SASL_SSL`), with SASL `KAFKA_SASL_MECHANISM` (`PLAIN`, `SCRAM-SHA-256` or
/// `SCRAM-SHA-512`), `KAFKA_SASL_USERNAME` and `KAFKA_SASL_PASSWORD`, and with TLS
/// `KAFKA_SSL_CA_LOCATION` (a PEM file; unset, the system's trusted roots). A managed Kafka such
/// as Event Hubs is `SASL_SSL` with `PLAIN`.
#[derive(Clone, Default)]
pub struct KafkaSecurity {
    protocol: SecurityProtocol,
    sasl: Option<Sasl>,
    ca_location: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SecurityProtocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }

    fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }

    fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }
}

impl std::str::FromStr for SecurityProtocol {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Self::Plaintext,
            Self::Ssl,
            Self::SaslPlaintext,
            Self::SaslSsl,
        ]
        .into_iter()
        .find(|p| p.name().eq_ignore_ascii_case(s))
        .ok_or("expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SaslMechanism {
    #[default]
    Plain,
    ScramSha256,
    ScramSha512,
}

impl SaslMechanism {
    fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

impl std::str::FromStr for SaslMechanism {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Plain, Self::ScramSha256, Self::ScramSha512]
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(s))
            .ok_or("expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
    }
}

#[derive(Clone)]
struct Sasl {
    mechanism: SaslMechanism,
    username: String,
    password: String,
}

impl std::fmt::Debug for KafkaSecurity {
    // The password never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSecurity")
            .field("protocol", &self.protocol)
            .field("sasl_mechanism", &self.sasl.as_ref().map(|s| s.mechanism))
            .field("sasl_username", &self.sasl.as_ref().map(|s| &s.username))
            .field("ca_location", &self.ca_location)
            .finish()
    }
}

impl KafkaSecurity {
    pub fn read(env: &mut Env) -> Self {
        let protocol: SecurityProtocol =
            env.or("KAFKA_SECURITY_PROTOCOL", SecurityProtocol::Plaintext);
        let mechanism: SaslMechanism = env.or("KAFKA_SASL_MECHANISM", SaslMechanism::Plain);
        let username: Option<String> = env.optional("KAFKA_SASL_USERNAME");
        let password: Option<String> = env.optional("KAFKA_SASL_PASSWORD");
        let ca_location: Option<String> = env.optional("KAFKA_SSL_CA_LOCATION");
        let sasl = match (protocol.uses_sasl(), username, password) {
            (true, Some(username), Some(password)) if !username.is_empty() => Some(Sasl {
                mechanism,
                username,
                password,
            }),
            (true, ..) => {
                env.invalid(format!(
                    "KAFKA_SECURITY_PROTOCOL={} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD",
                    protocol.name()
                ));
                None
            }
            // Credentials for a protocol that would not send them: a half-finished change.
            (false, Some(_), _) | (false, _, Some(_)) => {
                env.invalid(format!(
                    "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD are set but \
                     KAFKA_SECURITY_PROTOCOL={} sends no credentials (SASL_SSL?)",
                    protocol.name()
                ));
                None
            }
            (false, None, None) => None,
        };
        if ca_location.is_some() && !protocol.uses_tls() {
            env.invalid(format!(
                "KAFKA_SSL_CA_LOCATION is set but KAFKA_SECURITY_PROTOCOL={} is not TLS",
                protocol.name()
            ));
        }
        Self {
            protocol,
            sasl,
            ca_location,
        }
    }

    /// A client configuration for `brokers` with these settings: every client starts here.
    pub fn client_config(&self, brokers: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", brokers)
            .set("security.protocol", self.protocol.name());
        if let Some(sasl) = &self.sasl {
            config
                .set("sasl.mechanisms", sasl.mechanism.name())
                .set("sasl.username", &sasl.username)
                .set("sasl.password", &sasl.password);
        }
        if self.protocol.uses_tls() {
            // librdkafka's default, said out loud: the broker's name must match its certificate.
            config.set("ssl.endpoint.identification.algorithm", "https");
            if let Some(ca) = &self.ca_location {
                config.set("ssl.ca.location", ca);
            }
        }
        config
    }
}

/// Logs every rebalance and exports how many partitions this replica owns and how far behind
/// it is on them.
pub struct RebalanceLog {
    pub metrics: Metrics,
    /// The partitions this replica owns, kept from the rebalances themselves: asking the
    /// consumer for its assignment inside the rebalance callback can wait for ever on
    /// librdkafka's group queue, which the callback's own thread serves.
    owned: std::sync::Mutex<std::collections::BTreeSet<(String, i32)>>,
    /// How it signs in, to say what is missing when the broker refuses it.
    security: KafkaSecurity,
}

impl RebalanceLog {
    pub fn new(metrics: Metrics, security: KafkaSecurity) -> Self {
        Self {
            metrics,
            owned: std::sync::Mutex::default(),
            security,
        }
    }
}

/// What an operator should change when librdkafka reports `error`, if the sign-in is at fault:
/// a broker that authenticates closes a connection without SASL during the handshake, which
/// librdkafka reports only as a disconnection.
pub fn sign_in_hint(
    security: &KafkaSecurity,
    error: &rdkafka::error::KafkaError,
    reason: &str,
) -> Option<String> {
    use rdkafka::types::RDKafkaErrorCode as Code;
    let code = error.rdkafka_error_code();
    match &security.sasl {
        Some(sasl)
            if code == Some(Code::Authentication) || reason.contains("SASL authentication") =>
        {
            Some(format!(
                "Kafka refused the credentials of KAFKA_SASL_USERNAME={} ({}): check KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD (scripts/make-secrets.sh makes them; docs/operations.md, \"Kafka's principals and ACLs\")",
                sasl.username,
                sasl.mechanism.name()
            ))
        }
        None if reason.contains("Disconnected") => Some(format!(
            "Kafka closed the connection, and KAFKA_SECURITY_PROTOCOL={} sends no credentials: if the broker checks who connects (every one the fleet runs does), set KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT or SASL_SSL, KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD",
            security.protocol.name()
        )),
        _ => None,
    }
}

impl ClientContext for RebalanceLog {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        match sign_in_hint(&self.security, &error, reason) {
            Some(hint) => tracing::error!(error = %error, reason, "{hint}"),
            None => tracing::error!(error = %error, reason, "librdkafka error"),
        }
    }

    /// librdkafka's statistics, every `STATISTICS_INTERVAL`: the lag of each owned partition.
    fn stats(&self, statistics: Statistics) {
        for (name, topic) in &statistics.topics {
            let lag: i64 = topic
                .partitions
                .values()
                // -1 is librdkafka's "not known" and the internal partition; skip both.
                .filter(|p| p.partition >= 0)
                .map(|p| p.consumer_lag.max(0))
                .sum();
            self.metrics
                .consumer_lag
                .with_label_values(&[name])
                .set(lag);
        }
    }
}

/// How often consumers report their lag.
const STATISTICS_INTERVAL: Duration = Duration::from_secs(5);

impl ConsumerContext for RebalanceLog {
    /// With cooperative rebalancing a rebalance hands over only the partitions that move, so
    /// the gauge counts what the rebalances added and took away (an eager one revokes all, then
    /// assigns all, which comes to the same).
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let describe = |partitions: &TopicPartitionList| -> Vec<String> {
            partitions
                .elements()
                .iter()
                .map(|p| format!("{}[{}]", p.topic(), p.partition()))
                .collect()
        };
        match rebalance {
            Rebalance::Assign(partitions) => {
                tracing::info!(partitions = ?describe(partitions), "partitions assigned")
            }
            Rebalance::Revoke(partitions) => {
                tracing::info!(partitions = ?describe(partitions), "partitions revoked")
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance failed"),
        }
        let mut owned = self.owned.lock().expect("not poisoned");
        let moved = |partitions: &TopicPartitionList| -> Vec<(String, i32)> {
            partitions
                .elements()
                .iter()
                .map(|p| (p.topic().to_owned(), p.partition()))
                .collect()
        };
        match rebalance {
            Rebalance::Assign(partitions) => owned.extend(moved(partitions)),
            Rebalance::Revoke(partitions) => {
                for partition in moved(partitions) {
                    owned.remove(&partition);
                }
            }
            Rebalance::Error(_) => {}
        }
        self.metrics.consumer_partitions.set(owned.len() as i64);
    }
}

/// How often a client refreshes the cluster's metadata. librdkafka's default is 5 minutes: a
/// consumer that subscribed before its topic existed (a new environment, a topic created by
/// the operator after the services started) would not see it for that long.
const METADATA_REFRESH: Duration = Duration::from_secs(5);

pub type Consumer = StreamConsumer<RebalanceLog>;

#[derive(Debug, Clone)]
pub struct Kafka {
    brokers: String,
    prefix: String,
    message_timeout: Duration,
    security: KafkaSecurity,
}

impl Kafka {
    pub fn new(config: &MessagingConfig) -> Self {
        Self::with_settings(
            &config.brokers,
            &config.topic_prefix,
            config.message_timeout,
            config.security.clone(),
        )
    }

    /// Clients from the broker settings alone, for a command that reads no other setting
    /// (`<service> dlq`).
    pub fn with_settings(
        brokers: &str,
        prefix: &str,
        message_timeout: Duration,
        security: KafkaSecurity,
    ) -> Self {
        Self {
            brokers: brokers.to_owned(),
            prefix: prefix.to_owned(),
            message_timeout,
            security,
        }
    }

    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    /// The configuration every client of this cluster starts from: its brokers and how to
    /// reach them.
    pub fn client_config(&self) -> ClientConfig {
        self.security.client_config(&self.brokers)
    }

    /// The topic's name on the cluster (with this environment's prefix).
    pub fn topic(&self, topic: Topic) -> String {
        self.name(topic.name())
    }

    /// Any name on the cluster (topic or group) with this environment's prefix.
    pub fn name(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// An idempotent producer: acknowledged by all in-sync replicas (an event a broker lost
    /// with its disk is still on another), in order per partition and never written twice even
    /// when a send is retried after a lost acknowledgement (idempotence).
    pub fn producer(&self) -> Result<FutureProducer, rdkafka::error::KafkaError> {
        self.client_config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // The relay sends a batch at a time: a few milliseconds lets it share requests.
            .set("linger.ms", "5")
            .set(
                "topic.metadata.refresh.interval.ms",
                METADATA_REFRESH.as_millis().to_string(),
            )
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
        self.client_config()
            .set("group.id", self.name(group))
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            // A replica that joins or leaves moves only the partitions that must move; the
            // others keep consuming through the rebalance instead of all stopping (eager).
            .set("partition.assignment.strategy", "cooperative-sticky")
            // A killed replica's partitions go to the others within 10 s; heartbeats at a
            // tenth of that so that a missed one or two is no reason to evict a member.
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            // A member that has not asked for the next event for this long is stuck and gives
            // up its partitions. One event's bounded retries take seconds; the default 5
            // minutes is kept, so that a slow database is not taken for a stuck member.
            .set("max.poll.interval.ms", "300000")
            .set(
                "topic.metadata.refresh.interval.ms",
                METADATA_REFRESH.as_millis().to_string(),
            )
            // A broker answers a fetch as soon as events arrive, but librdkafka's mock broker
            // only when this runs out: short, so an event reaches its consumer in milliseconds
            // everywhere (a real broker just sees a few more idle fetches).
            .set("fetch.wait.max.ms", "50")
            .set(
                "statistics.interval.ms",
                STATISTICS_INTERVAL.as_millis().to_string(),
            )
            .create_with_context(RebalanceLog::new(metrics, self.security.clone()))
    }

    /// Rewinds consumer group `group` to the oldest event still kept on every partition of
    /// `topics`, so that its service reads them all again when it next starts. Returns how many
    /// partitions it rewound.
    ///
    /// It joins the group and commits as a member: a broker only takes commits from outside a
    /// group that has no members (and librdkafka's mock cluster not even then). The group must
    /// have no other member, so every replica of the service must be stopped: unless this
    /// member alone owns every partition within `wait` (plus up to 30 s while its join is still
    /// in progress), it leaves the group without committing anything and fails.
    pub async fn reset_consumer_group(
        &self,
        group: &str,
        topics: &[Topic],
        wait: Duration,
    ) -> anyhow::Result<usize> {
        let group = self.name(group);
        let topics: Vec<String> = topics.iter().map(|t| self.topic(*t)).collect();
        let consumer: BaseConsumer = self
            .client_config()
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // As the service's replicas: a group's members must share an assignment protocol.
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .create()
            .context("cannot create the Kafka consumer")?;
        // librdkafka's calls block: keep them off the async threads.
        tokio::task::spawn_blocking(move || rewind(&consumer, &group, &topics, wait)).await?
    }
}

fn rewind(
    consumer: &BaseConsumer,
    group: &str,
    topics: &[String],
    wait: Duration,
) -> anyhow::Result<usize> {
    let timeout = Duration::from_secs(10);
    let mut oldest = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), timeout)
            .with_context(|| format!("cannot read the metadata of {topic}"))?;
        let partitions = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
            .map(|t| t.partitions())
            .filter(|p| !p.is_empty())
            .with_context(|| format!("topic {topic} does not exist"))?;
        for partition in partitions {
            let (low, _) = consumer
                .fetch_watermarks(topic, partition.id(), timeout)
                .with_context(|| {
                    format!("cannot read the offsets of {topic}[{}]", partition.id())
                })?;
            oldest.add_partition_offset(topic, partition.id(), Offset::Offset(low))?;
        }
    }
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&names)?;
    let deadline = Instant::now() + wait;
    // A join still in flight cannot be abandoned cleanly (the group would count this member
    // until its session times out, holding up the replicas): give it time to complete.
    let joined_deadline = deadline + Duration::from_secs(30);
    loop {
        // Polling drives the join; what it fetches is dropped, and nothing is committed for it.
        if let Some(Err(e)) = consumer.poll(Duration::from_millis(100)) {
            tracing::debug!(error = %e, "while joining the group");
        }
        let owned = consumer.assignment()?;
        let owns_all = oldest
            .elements()
            .iter()
            .all(|p| owned.find_partition(p.topic(), p.partition()).is_some());
        if owns_all {
            break;
        }
        let now = Instant::now();
        if now > deadline && (owned.count() > 0 || now > joined_deadline) {
            leave(consumer);
            anyhow::bail!(
                "consumer group {group} still has other members after {wait:?} (this one owns {} of {} partitions): stop every replica of the service first",
                owned.count(),
                oldest.count()
            );
        }
    }
    let committed = consumer
        .commit(&oldest, CommitMode::Sync)
        .with_context(|| format!("cannot commit the offsets of consumer group {group}"));
    leave(consumer);
    committed?;
    tracing::info!(
        group,
        partitions = oldest.count(),
        "consumer group rewound to the oldest events"
    );
    Ok(oldest.count())
}

/// Leaves the group at once, so the service's replicas need not wait for this member's session
/// to time out before they get every partition.
fn leave(consumer: &BaseConsumer) {
    consumer.unsubscribe();
    let until = Instant::now() + Duration::from_secs(5);
    while consumer.assignment().is_ok_and(|a| a.count() > 0) && Instant::now() < until {
        consumer.poll(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::error::KafkaError;
    use rdkafka::types::RDKafkaErrorCode;

    use super::*;

    fn security(pairs: &[(&str, &str)]) -> KafkaSecurity {
        KafkaSecurity::read(&mut Env::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn a_client_without_credentials_is_told_what_to_set() {
        let reason =
            "127.0.0.1:59092/bootstrap: Disconnected (after 0ms in state APIVERSION_QUERY)";
        let error = KafkaError::Global(RDKafkaErrorCode::BrokerTransportFailure);
        let hint = sign_in_hint(&security(&[]), &error, reason).expect("a hint");
        assert!(
            hint.contains("KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT")
                && hint.contains("KAFKA_SASL_USERNAME"),
            "{hint}"
        );
    }

    #[test]
    fn refused_credentials_name_the_principal_and_never_the_password() {
        let signed_in = security(&[
            ("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT"),
            ("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
            ("KAFKA_SASL_USERNAME", "points"),
            ("KAFKA_SASL_PASSWORD", "hunter2"),
        ]);
        let error = KafkaError::Global(RDKafkaErrorCode::Authentication);
        let reason = "SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512";
        let hint = sign_in_hint(&signed_in, &error, reason).expect("a hint");
        assert!(hint.contains("KAFKA_SASL_USERNAME=points"), "{hint}");
        assert!(!hint.contains("hunter2"), "{hint}");
        // Any other trouble is not the sign-in's.
        let other = KafkaError::Global(RDKafkaErrorCode::AllBrokersDown);
        assert_eq!(
            sign_in_hint(&signed_in, &other, "1/1 brokers are down"),
            None
        );
    }
}
