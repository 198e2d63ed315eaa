//! Brokers for local runs and tests. [`MockBroker`] is librdkafka's mock cluster: it speaks the
//! Kafka protocol over TCP and keeps everything in memory, with no JVM and nothing to install,
//! but it is not Kafka (no CreateTopics, nothing kept across a restart, a simplified group
//! coordinator). [`RealBroker`] runs Apache Kafka itself through `scripts/kafka.sh`.

use std::net::TcpListener;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, anyhow};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::types::RDKafkaErrorCode;
use shared_events::Topic;
use shared_events::topic::replay_of;

mod access;
mod real;
pub use access::{client_config, ensure_access};
pub use real::RealBroker;

enum Command {
    /// Each carries a way to say it is done, so the caller knows the change took effect.
    Down(mpsc::Sender<()>),
    Up(mpsc::Sender<()>),
    Stop,
}

/// A running mock cluster. It lives on a thread of its own (the cluster handle is not `Send`)
/// and is shut down when dropped.
pub struct MockBroker {
    bootstrap_servers: String,
    control: mpsc::Sender<Command>,
    thread: Option<JoinHandle<()>>,
}

/// The fleet's topics and their dead-letter twins, then each consumer's replay topic, each name
/// behind `prefix`.
pub fn fleet_topics(prefix: &str) -> Vec<String> {
    let events = Topic::ALL.iter().flat_map(|t| {
        [
            format!("{prefix}{}", t.name()),
            format!("{prefix}{}", t.dlq_name()),
        ]
    });
    let replays = shared_events::access::SERVICES
        .iter()
        .filter(|s| !s.consumes.is_empty())
        .map(|s| format!("{prefix}{}", replay_of(s.principal)));
    events.chain(replays).collect()
}

/// Creates whichever of `topics` a Kafka cluster lacks, with `partitions` partitions and
/// `replication` replicas each and unlimited retention; existing topics are left as they are. (The mock cluster has no
/// CreateTopics: it can only be asked for topics it already has.) A broker with ACLs needs its
/// `admin`.
pub async fn ensure_topics(
    brokers: &str,
    admin: Option<&fleet::kafka::Credentials>,
    topics: &[String],
    partitions: i32,
    replication: i32,
) -> anyhow::Result<()> {
    let client: BaseConsumer = client_config(brokers, admin)
        .create()
        .context("cannot create a Kafka client")?;
    let metadata =
        tokio::task::spawn_blocking(move || client.fetch_metadata(None, Duration::from_secs(10)))
            .await?
            .with_context(|| format!("cannot reach Kafka at {brokers}"))?;
    let existing: Vec<&str> = metadata.topics().iter().map(|t| t.name()).collect();
    let missing: Vec<NewTopic> = topics
        .iter()
        .filter(|t| !existing.contains(&t.as_str()))
        // Kept for ever, never compacted: `view rebuild` and a new service read every event
        // since the fleet began (README, "Rebuilding the view").
        .map(|t| {
            NewTopic::new(
                t,
                partitions_of(t, partitions),
                TopicReplication::Fixed(replication),
            )
            .set("retention.ms", "-1")
            .set("retention.bytes", "-1")
            .set("cleanup.policy", "delete")
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = client_config(brokers, admin)
        .create()
        .context("cannot create a Kafka admin client")?;
    for result in admin.create_topics(&missing, &AdminOptions::new()).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, e)) => return Err(anyhow!("cannot create topic {topic}: {e}")),
        }
    }
    Ok(())
}

/// A replay topic has one partition: replays are rare and need no parallelism, and one partition
/// keeps a service's replicas balanced on the partitions of the topics they consume (with as many
/// as those, one replica could own every replay partition and none of the real ones).
fn partitions_of(topic: &str, partitions: i32) -> i32 {
    if topic.ends_with(".replay") {
        1
    } else {
        partitions
    }
}

fn ports_of(bootstrap: &str) -> Vec<u16> {
    bootstrap
        .split(',')
        .filter_map(|address| address.rsplit(':').next()?.parse().ok())
        .collect()
}

fn hold(port: u16) -> Option<TcpListener> {
    let listener = TcpListener::bind(("127.0.0.1", port)).ok()?;
    listener.set_nonblocking(true).ok()?;
    Some(listener)
}

impl MockBroker {
    /// Starts a cluster of `brokers` brokers with `topics` created, each with `partitions`
    /// partitions.
    pub fn start(brokers: i32, topics: &[String], partitions: i32) -> anyhow::Result<Self> {
        let (control, commands) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let topics = topics.to_vec();
        let thread = std::thread::Builder::new()
            .name("mock-broker".into())
            .spawn(move || {
                let cluster = match MockCluster::new(brokers) {
                    Ok(cluster) => cluster,
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow!("cannot start the mock cluster: {e}")));
                        return;
                    }
                };
                for topic in &topics {
                    if let Err(e) = cluster.create_topic(topic, partitions_of(topic, partitions), 1)
                    {
                        let _ = ready_tx.send(Err(anyhow!("cannot create topic {topic}: {e}")));
                        return;
                    }
                }
                let bootstrap = cluster.bootstrap_servers();
                let ports = ports_of(&bootstrap);
                let _ = ready_tx.send(Ok(bootstrap));
                // While down, the brokers' listeners are closed. Hold their ports meanwhile
                // (accepting and dropping connections, like a broker that is gone): the mock
                // binds the same ports again on the way up and aborts if anyone else took one.
                let mut held: Vec<TcpListener> = Vec::new();
                loop {
                    let command = if held.is_empty() {
                        commands.recv().ok()
                    } else {
                        match commands.recv_timeout(Duration::from_millis(20)) {
                            Ok(command) => Some(command),
                            Err(mpsc::RecvTimeoutError::Timeout) => {
                                for listener in &held {
                                    while let Ok((connection, _)) = listener.accept() {
                                        drop(connection);
                                    }
                                }
                                continue;
                            }
                            Err(mpsc::RecvTimeoutError::Disconnected) => None,
                        }
                    };
                    // -1 addresses every broker of the cluster.
                    let (outcome, done) = match command {
                        Some(Command::Down(done)) if held.is_empty() => {
                            let outcome = cluster.broker_down(-1);
                            held = ports.iter().filter_map(|port| hold(*port)).collect();
                            (outcome, done)
                        }
                        Some(Command::Up(done)) if !held.is_empty() => {
                            held.clear();
                            (cluster.broker_up(-1), done)
                        }
                        Some(Command::Down(done) | Command::Up(done)) => (Ok(()), done),
                        Some(Command::Stop) | None => break,
                    };
                    if let Err(e) = outcome {
                        eprintln!("mock broker: {e}");
                    }
                    let _ = done.send(());
                }
            })
            .context("cannot spawn the mock broker thread")?;
        let bootstrap_servers = ready_rx
            .recv()
            .context("the mock broker thread died while starting")??;
        Ok(Self {
            bootstrap_servers,
            control,
            thread: Some(thread),
        })
    }

    /// `host:port[,host:port…]` for `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }

    /// Drops every connection and refuses new ones, like a broker that went away. Returns once
    /// the broker is down.
    pub fn go_down(&self) {
        self.command(Command::Down);
    }

    /// Accepts connections again; what was stored before is still there. Returns once the
    /// broker is up.
    pub fn come_back(&self) {
        self.command(Command::Up);
    }

    fn command(&self, command: fn(mpsc::Sender<()>) -> Command) {
        let (done, finished) = mpsc::channel();
        if self.control.send(command(done)).is_ok() {
            let _ = finished.recv();
        }
    }
}

impl Drop for MockBroker {
    fn drop(&mut self) {
        let _ = self.control.send(Command::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
