//! The test harness (feature `testing`): a fresh database per test holding the service's role
//! and schema, a Kafka-protocol broker per test (or the real Kafka named by `KAFKA_BROKERS`,
//! behind a topic prefix unique to the test), topic readers and writers, and service processes
//! that can be killed.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use dev_broker::{MockBroker, RealBroker, fleet_topics};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use reqwest::Url;
use shared_events::{CloudEvent, DomainEvent, RawEvent, Topic};
use sqlx::{Connection, Executor, PgConnection, PgPool};
use uuid::Uuid;

use crate::Env;
use crate::auth::keys::RsaPrivateKey;

/// Partitions per topic in tests: enough for two consumers to split them.
pub const PARTITIONS: i32 = 4;

/// Logs of the code under test, when `TEST_LOG` is set.
pub fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        // Kept for the test process's life.
        if let Ok(telemetry) = crate::telemetry::init("test", crate::config::LogFormat::Text) {
            std::mem::forget(telemetry);
        }
    }
}

/// The superuser URL of the test cluster: `DATABASE_ADMIN_URL` (the test command sets it).
pub fn admin_url() -> String {
    std::env::var("DATABASE_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database of its own for one test.
pub struct TestDatabase {
    pub name: String,
    url: Url,
    /// A superuser pool on the test's database, for setting up and checking.
    pub admin: PgPool,
}

impl TestDatabase {
    /// A database on the shared test cluster (`DATABASE_ADMIN_URL`).
    pub async fn create() -> Self {
        Self::create_on(&admin_url()).await
    }

    /// A database on the cluster of superuser URL `admin_url` (a [`TestPostgres`], say).
    pub async fn create_on(admin_url: &str) -> Self {
        let name = format!("test_{}", Uuid::new_v4().simple());
        let mut server = PgConnection::connect(admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot reach the test Postgres at DATABASE_ADMIN_URL ({admin_url}): {e}; run the tests through scripts/test.sh"));
        server
            .execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
            .await
            .expect("create the test database");
        server.close().await.ok();
        let mut url = Url::parse(admin_url).expect("DATABASE_ADMIN_URL is a URL");
        url.set_path(&name);
        let admin = PgPool::connect(url.as_str())
            .await
            .expect("connect to the test database");
        admin
            .execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
            .await
            .expect("close the public schema");
        Self { name, url, admin }
    }

    /// Gives service role `role` its own schema, as the fleet's bootstrap does, and returns the
    /// URL the service connects with. Only the owner can use a schema.
    pub async fn add_service(&self, role: &str, schema: &str) -> String {
        // Roles are cluster-wide and tests run concurrently: tolerate a role made meanwhile.
        let create_role = format!(
            "DO $$ BEGIN CREATE ROLE {role} LOGIN PASSWORD '{role}'; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        );
        self.admin
            .execute(create_role.as_str())
            .await
            .expect("create the role");
        self.admin
            .execute(format!(r#"GRANT CONNECT ON DATABASE "{}" TO {role}; CREATE SCHEMA {schema} AUTHORIZATION {role}"#, self.name).as_str())
            .await
            .expect("create the schema");
        let mut url = self.url.clone();
        url.set_username(role).unwrap();
        url.set_password(Some(role)).unwrap();
        url.to_string()
    }
}

/// A PostgreSQL cluster of the test's own, for tests that restart or stop the database: made
/// in a temporary folder with the options of `scripts/lib/postgres.sh`'s private cluster, on a
/// free loopback port, as the `postgres` OS user when the test runs as root (PostgreSQL refuses
/// root). It is stopped and removed when dropped, and by a watchdog when the test process ends
/// without dropping it (a panic across threads, a kill). Make databases on it with
/// [`TestDatabase::create_on`].
pub struct TestPostgres {
    /// The superuser's URL (user and password `postgres`, database `postgres`).
    pub admin_url: String,
    port: u16,
    /// Held while the cluster lives, so no other test's server takes the port across a restart.
    _reserved: ReservedPort,
    bin: std::path::PathBuf,
    /// Everything of the cluster: data, socket, logs.
    root: std::path::PathBuf,
}

/// The superuser's password of a cluster of the test's own, as the private cluster's default.
const OWN_PG_PASSWORD: &str = "postgres";

impl TestPostgres {
    /// Initialises and starts the cluster; returns once it accepts connections.
    pub async fn own() -> Self {
        let bin = pg_server_bin_dir();
        let root = std::env::temp_dir().join(format!(
            "fleet-pg-{}",
            &Uuid::new_v4().simple().to_string()[..12]
        ));
        let reserved = ReservedPort::new();
        let port = reserved.port();
        let postgres = Self {
            admin_url: format!("postgres://postgres:{OWN_PG_PASSWORD}@127.0.0.1:{port}/postgres"),
            port,
            _reserved: reserved,
            bin,
            root,
        };
        postgres.init().await;
        postgres.watch();
        postgres.start().await;
        postgres
    }

    fn program(&self, name: &str) -> String {
        self.bin.join(name).display().to_string()
    }

    /// Stops the server at once: its data is thrown away, so there is nothing to shut down
    /// cleanly for.
    fn immediate_stop(&self) -> Vec<String> {
        vec![
            self.program("pg_ctl"),
            "-D".into(),
            self.data().display().to_string(),
            "-m".into(),
            "immediate".into(),
            "-w".into(),
            "stop".into(),
        ]
    }

    fn data(&self) -> std::path::PathBuf {
        self.root.join("data")
    }

    /// The server's own log.
    pub fn log(&self) -> std::path::PathBuf {
        self.root.join("server.log")
    }

    async fn init(&self) {
        if running_as_root() {
            ensure_postgres_os_user();
        }
        let socket = self.root.join("socket");
        for dir in [&self.root, &socket] {
            std::fs::create_dir_all(dir).expect("create the cluster's folder");
        }
        let pwfile = self.root.join("pwfile");
        std::fs::write(&pwfile, format!("{OWN_PG_PASSWORD}\n")).expect("write the password file");
        if running_as_root() {
            let chown = std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&self.root)
                .status()
                .expect("run chown");
            assert!(
                chown.success(),
                "cannot give {} to postgres",
                self.root.display()
            );
        }
        let output = tokio::process::Command::from(as_pg_owner(&[
            self.program("initdb"),
            "-D".into(),
            self.data().display().to_string(),
            "-U".into(),
            "postgres".into(),
            "--auth-local=trust".into(),
            "--auth-host=scram-sha-256".into(),
            format!("--pwfile={}", pwfile.display()),
            "--encoding=UTF8".into(),
            "--no-locale".into(),
            "--no-sync".into(),
        ]))
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run initdb");
        let _ = std::fs::remove_file(&pwfile);
        assert!(
            output.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The private cluster's settings, tuned for throw-away data.
    fn options(&self) -> String {
        format!(
            "-c port={} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{}' \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
             -c max_connections=400 -c shared_buffers=128MB",
            self.port,
            self.root.join("socket").display()
        )
    }

    /// Runs `pg_ctl` with `args` on the cluster and waits for it (and for the server to be up or
    /// down, with `-w`).
    async fn pg_ctl(&self, args: &[&str]) {
        let mut argv = vec![
            self.program("pg_ctl"),
            "-D".into(),
            self.data().display().to_string(),
            "-w".into(),
            "-t".into(),
            "60".into(),
        ];
        argv.extend(args.iter().map(|arg| arg.to_string()));
        let output = tokio::process::Command::from(as_pg_owner(&argv))
            .stdin(Stdio::null())
            .output()
            .await
            .expect("run pg_ctl");
        if !output.status.success() {
            let log = std::fs::read_to_string(self.log()).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            panic!(
                "pg_ctl {args:?} failed: {}{}\nserver log (last lines, newest first):\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
                tail.join("\n")
            );
        }
    }

    /// Starts the (stopped) server; returns once it accepts connections.
    pub async fn start(&self) {
        let log = self.log().display().to_string();
        self.pg_ctl(&["-l", &log, "-o", &self.options(), "start"])
            .await;
    }

    /// `pg_ctl stop -m fast`, as an operator stops it: every session is ended (SQLSTATE 57P01)
    /// and new ones refused. Returns once the server is down.
    pub async fn stop(&self) {
        self.pg_ctl(&["-m", "fast", "stop"]).await;
    }

    /// `pg_ctl restart -m fast`, as an operator restarts it (a configuration change, a minor
    /// upgrade). Returns once it accepts connections again.
    pub async fn restart_fast(&self) {
        let log = self.log().display().to_string();
        self.pg_ctl(&["-l", &log, "-m", "fast", "restart"]).await;
    }

    /// A process outside the test's that stops the server and removes its folder once the test
    /// process is gone, in its own process group so that a runner killing the test's group does
    /// not take it along.
    fn watch(&self) {
        use std::os::unix::process::CommandExt;
        let stop = as_pg_owner_shell(&self.immediate_stop());
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {root}",
            pid = std::process::id(),
            root = shell_line(&[self.root.display().to_string()])
        );
        // It outlives the test process by design (and is reaped by init): never waited for.
        #[allow(clippy::zombie_processes)]
        let _watchdog = std::process::Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start the cluster's watchdog");
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let _ = as_pg_owner(&self.immediate_stop())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn running_as_root() -> bool {
    owner_switch().is_some()
}

/// As `scripts/lib/postgres.sh` does: as root, the cluster belongs to the `postgres` OS user.
fn ensure_postgres_os_user() {
    let exists = std::process::Command::new("id")
        .arg("postgres")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !exists {
        let status = std::process::Command::new("useradd")
            .args(["--system", "--user-group", "--no-create-home"])
            .args([
                "--home-dir",
                "/var/lib/postgresql",
                "--shell",
                "/bin/bash",
                "postgres",
            ])
            .status()
            .expect("run useradd");
        assert!(status.success(), "cannot create the postgres OS user");
    }
}

/// `argv`, run as the cluster's owner: the `postgres` OS user when the test runs as root.
fn as_pg_owner(argv: &[String]) -> std::process::Command {
    let mut command = match owner_switch() {
        None => std::process::Command::new(&argv[0]),
        Some(Switch::Runuser) => {
            let mut command = std::process::Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&argv[0]);
            command
        }
        Some(Switch::Su) => {
            let mut command = std::process::Command::new("su");
            command
                .args(["-s", "/bin/sh", "postgres", "-c", &shell_line(argv)])
                .current_dir("/");
            return command;
        }
    };
    command.args(&argv[1..]);
    if owner_switch().is_some() {
        // The owner may not be allowed into the test's working directory.
        command.current_dir("/");
    }
    command
}

/// The same, as a line for `sh`.
fn as_pg_owner_shell(argv: &[String]) -> String {
    let line = shell_line(argv);
    match owner_switch() {
        None => line,
        Some(Switch::Runuser) => format!("(cd / && runuser -u postgres -- {line})"),
        Some(Switch::Su) => format!(
            "(cd / && su -s /bin/sh postgres -c {})",
            shell_line(&[line])
        ),
    }
}

#[derive(Clone, Copy)]
enum Switch {
    Runuser,
    Su,
}

/// How to become the cluster's owner: not at all unless root; `runuser`, else `su`.
fn owner_switch() -> Option<Switch> {
    static SWITCH: std::sync::OnceLock<Option<Switch>> = std::sync::OnceLock::new();
    *SWITCH.get_or_init(|| {
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
        if !root {
            return None;
        }
        let runuser = std::process::Command::new("runuser")
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        Some(if runuser { Switch::Runuser } else { Switch::Su })
    })
}

/// `words` quoted for `sh`.
fn shell_line(words: &[String]) -> String {
    let quoted: Vec<String> = words
        .iter()
        .map(|w| format!("'{}'", w.replace('\'', r"'\''")))
        .collect();
    quoted.join(" ")
}

/// The newest PostgreSQL server installation, as `scripts/lib/postgres.sh` finds it:
/// `/usr/lib/postgresql/<version>/bin`, else where `initdb` on the `PATH` lives.
fn pg_server_bin_dir() -> std::path::PathBuf {
    let complete = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|program| dir.join(program).is_file())
    };
    let version = |name: &str| -> Vec<u32> {
        name.split('.')
            .map(|part| part.parse().unwrap_or(0))
            .collect()
    };
    let mut installed: Vec<(Vec<u32>, std::path::PathBuf)> =
        std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                (version(&name), entry.path().join("bin"))
            })
            .filter(|(_, bin)| complete(bin))
            .collect();
    installed.sort();
    if let Some((_, bin)) = installed.pop() {
        return bin;
    }
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("initdb"))
        .find(|initdb| initdb.is_file())
        .and_then(|initdb| std::fs::canonicalize(initdb).ok())
        .and_then(|initdb| initdb.parent().map(Path::to_path_buf))
        .filter(|dir| dir.join("pg_ctl").is_file());
    on_path.unwrap_or_else(|| {
        panic!("no PostgreSQL server (initdb, pg_ctl) found: install postgresql, as scripts/lib/postgres.sh does")
    })
}

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

/// A Kafka broker for one test.
pub struct TestKafka {
    broker: Broker,
    pub brokers: String,
    pub prefix: String,
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
        Self {
            broker,
            brokers,
            prefix,
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

    /// Creates the fleet's topics behind this test's prefix, as an operator would.
    pub async fn create_topics(&self) {
        dev_broker::ensure_topics(&self.brokers, &fleet_topics(&self.prefix), PARTITIONS, 1)
            .await
            .expect("create the test's topics");
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

    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("KAFKA_BROKERS".into(), self.brokers.clone()),
            ("KAFKA_TOPIC_PREFIX".into(), self.prefix.clone()),
        ]
    }

    /// Reads `topic` from the beginning, on every partition, outside any consumer group.
    pub async fn reader(&self, topic: &str) -> TopicReader {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
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
                ClientConfig::new()
                    .set("bootstrap.servers", &self.brokers)
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

/// Polls `check` until it returns `Some`, or panics with `what` after `wait`.
pub async fn eventually<T, F, Fut>(what: &str, wait: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + wait;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if Instant::now() > deadline {
            panic!("timed out after {wait:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The settings a service under test gets: its database, the test's broker, a random port and a
/// random operations port, and a quick outbox poll.
pub fn service_env(database_url: &str, kafka: &TestKafka) -> Vec<(String, String)> {
    let mut env = vec![
        ("DATABASE_URL".into(), database_url.to_owned()),
        ("HTTP_HOST".into(), "127.0.0.1".into()),
        ("HTTP_PORT".into(), "0".into()),
        ("OPS_PORT".into(), "0".into()),
        ("OUTBOX_POLL_INTERVAL_MS".into(), "20".into()),
        ("KAFKA_MESSAGE_TIMEOUT_MS".into(), "5000".into()),
        ("LOG_FORMAT".into(), "text".into()),
    ];
    env.extend(kafka.env());
    env
}

/// A service's configuration for a benchmark or a test that builds it in-process: the test
/// settings for `database_url` and `kafka`, `identity`'s keys to check tokens with (and rental's
/// way to its token), and `extra`
/// (which replaces a default of the same name).
pub fn settings(
    database_url: &str,
    kafka: &TestKafka,
    identity: &TestIdentity,
    extra: &[(&str, &str)],
) -> Env {
    let mut env = service_env(database_url, kafka);
    env.extend(identity.env());
    env.extend(identity.client_env());
    env.retain(|(k, _)| !extra.iter().any(|(name, _)| name == k));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env_of(&env)
}

/// An `Env` made of `pairs`, for building a service's configuration in a test.
pub fn env_of(pairs: &[(String, String)]) -> Env {
    Env::from_pairs(pairs.iter().cloned())
}

/// An HTTP client as the fleet's own: it drops idle pooled connections before a server of the
/// fleet would ([`crate::server::CLIENT_POOL_IDLE_TIMEOUT`]).
pub fn http_client() -> reqwest::Client {
    http_client_with(reqwest::header::HeaderMap::new())
}

fn http_client_with(headers: reqwest::header::HeaderMap) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_idle_timeout(crate::server::CLIENT_POOL_IDLE_TIMEOUT)
        .default_headers(headers)
        .build()
        .expect("a plain HTTP client builds")
}

/// Waits until `base_url/readyz` answers 200.
pub async fn wait_ready(base_url: &str, wait: Duration) {
    let client = reqwest::Client::new();
    eventually(&format!("{base_url}/readyz"), wait, || async {
        let response = client.get(format!("{base_url}/readyz")).send().await.ok()?;
        response.status().is_success().then_some(())
    })
    .await
}

/// Starts `binary` with only `env` and checks it refuses to start, naming every one of `expected`
/// on stderr (configuration problems are reported together).
pub fn assert_refuses_to_start(binary: &Path, env: &[(&str, &str)], expected: &[&str]) {
    let output = std::process::Command::new(binary)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
    assert!(
        !output.status.success(),
        "{} started with a bad configuration",
        binary.display()
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in expected {
        assert!(
            stderr.contains(expected),
            "{expected} missing from: {stderr}"
        );
    }
}

/// A service running as a process of its own, as in production, so a test can kill it. What it
/// logs goes to a file (or to the test's output with `TEST_LOG` set).
pub struct ServiceProcess {
    child: tokio::process::Child,
    pub base_url: String,
    /// The operations port's base URL: `/livez`, `/readyz` and `/metrics`.
    pub ops_base_url: String,
    binary: std::path::PathBuf,
    env: Vec<(String, String)>,
    port: ReservedPort,
    ops_port: ReservedPort,
    log: Option<std::path::PathBuf>,
}

/// A loopback port held for a test until dropped, for a process of its own to listen on.
///
/// A port that `bind(0)` returned and let go can be handed out again at once, by the kernel to
/// any other test's `bind(0)` or outgoing connection: a service process that lost that race
/// either failed to start or, worse, its readiness check was answered by someone else's server.
/// So these ports come from below the kernel's ephemeral range, which neither takes, and a lock
/// on a file per port keeps the concurrent test processes apart (the kernel drops the lock when
/// a test process dies, so nothing stale is left).
#[derive(Debug)]
pub struct ReservedPort {
    port: u16,
    _lock: std::fs::File,
}

impl ReservedPort {
    pub fn new() -> Self {
        let (low, high) = reservable_ports();
        let dir = std::env::temp_dir().join("fleet-test-ports");
        std::fs::create_dir_all(&dir).expect("create the port reservation folder");
        for _ in 0..10_000 {
            let port = low + (Uuid::new_v4().as_u128() % u128::from(high - low)) as u16;
            let lock = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(dir.join(port.to_string()))
                .expect("open a port reservation file");
            if lock.try_lock().is_ok() && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return Self { port, _lock: lock };
            }
        }
        panic!("no free loopback port in {low}..{high}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Default for ReservedPort {
    fn default() -> Self {
        Self::new()
    }
}

/// Ports below the ephemeral range (`net.ipv4.ip_local_port_range`), above the well-known ones
/// and clear of the ports `scripts/dev.sh` and the test command's own servers use.
fn reservable_ports() -> (u16, u16) {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let low = 20_000;
    assert!(
        ephemeral_low > low + 1_000,
        "the ephemeral port range starts at {ephemeral_low}: too low to keep test ports apart"
    );
    (low, ephemeral_low)
}

impl ServiceProcess {
    /// Starts `binary` with `env` on a free port (and its operations port on another) and waits
    /// until it is ready.
    pub async fn spawn(binary: &Path, env: &[(String, String)]) -> Self {
        let (port, ops_port) = (ReservedPort::new(), ReservedPort::new());
        let log = match std::env::var_os("TEST_LOG") {
            Some(_) => None,
            None => {
                let dir = std::env::temp_dir().join("fleet-test-logs");
                std::fs::create_dir_all(&dir).expect("create the test log folder");
                let name = binary.file_name().unwrap_or_default().to_string_lossy();
                let port = port.port();
                Some(dir.join(format!("{name}-{port}-{}.log", Uuid::new_v4().simple())))
            }
        };
        let child = start_process(binary, env, (port.port(), ops_port.port()), log.as_deref());
        let mut process = Self {
            child,
            base_url: format!("http://127.0.0.1:{}", port.port()),
            ops_base_url: format!("http://127.0.0.1:{}", ops_port.port()),
            binary: binary.to_owned(),
            env: env.to_vec(),
            port,
            ops_port,
            log,
        };
        process.wait_ready().await;
        process
    }

    /// Starts the stopped (or killed) process again, on the same ports with the same settings,
    /// as a restarted pod behind its Service.
    pub async fn restart(&mut self) {
        let _ = self.child.wait().await;
        self.child = start_process(
            &self.binary,
            &self.env,
            (self.port.port(), self.ops_port.port()),
            self.log.as_deref(),
        );
        self.wait_ready().await;
    }

    /// Until `/readyz` answers 200; a process that exits first fails the test with its log.
    async fn wait_ready(&mut self) {
        let client = reqwest::Client::new();
        let url = self.ops_url("/readyz");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited before it was ready ({status}); its log:\n{}",
                    self.binary.display(),
                    self.logs()
                );
            }
            let ready = client.get(&url).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{url} not ready within 30 s; the log:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `path` on the operations port.
    pub fn ops_url(&self, path: &str) -> String {
        format!("{}{path}", self.ops_base_url)
    }

    /// The Prometheus exposition, from the operations port.
    pub async fn metrics(&self) -> String {
        scrape(&http_client(), &self.ops_base_url).await
    }

    /// `/metrics` only on the operations port (404 on the API port), with the series of
    /// `service`; the probes on both.
    pub async fn assert_operations_port(&self, service: &str) {
        assert_operations_port(&http_client(), &self.base_url, &self.ops_base_url, service).await;
    }

    /// Everything the process has logged so far (empty with `TEST_LOG` set).
    pub fn logs(&self) -> String {
        self.log
            .as_ref()
            .and_then(|path| std::fs::read_to_string(path).ok())
            .unwrap_or_default()
    }

    /// SIGKILL: no shutdown code runs.
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("kill the service");
    }

    /// SIGTERM, then waits for the process to exit; returns whether it exited cleanly.
    pub async fn terminate(&mut self) -> bool {
        let pid = self.child.id().expect("the process is running");
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("send SIGTERM");
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the service stops within 30 s of SIGTERM")
            .expect("wait for the service");
        if !status.success() {
            // Say why, for the failure to be read from a CI log alone.
            eprintln!(
                "{} did not stop cleanly ({status}); its log:\n{}",
                self.binary.display(),
                self.logs()
            );
        }
        status.success()
    }
}

fn start_process(
    binary: &Path,
    env: &[(String, String)],
    (port, ops_port): (u16, u16),
    log: Option<&Path>,
) -> tokio::process::Child {
    let output = || match log {
        Some(path) => Stdio::from(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("open the service's log file"),
        ),
        None => Stdio::inherit(),
    };
    tokio::process::Command::new(binary)
        .envs(env.iter().cloned())
        .env("HTTP_PORT", port.to_string())
        .env("OPS_PORT", ops_port.to_string())
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdout(output())
        .stderr(output())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()))
}

/// The path of one of the fleet's binaries (`gateway`, `rental`, …), for tests that run the
/// fleet as separate processes. Under nextest, the first call in a test process builds them all
/// as the test command does (a quick no-op when they are fresh), so any one crate's tests can
/// run alone. (`cargo test` holds the build lock while tests run: build them first.)
pub fn fleet_binary(name: &str) -> std::path::PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        if std::env::var_os("NEXTEST").is_none() {
            return;
        }
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .current_dir(workspace)
            .args([
                "build",
                "--quiet",
                "--workspace",
                "--all-features",
                "--bins",
            ])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "the fleet's binaries do not build");
    });
    // Tests run from <target>/debug/deps; the binaries are in <target>/debug.
    let exe = std::env::current_exe().expect("the test binary's path");
    let binary = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary is in <target>/<profile>/deps")
        .join(name);
    assert!(
        binary.exists(),
        "{} was not built: cargo build --workspace --all-features",
        binary.display()
    );
    binary
}

/// How long tests wait for something that should happen soon.
pub const WAIT: Duration = Duration::from_secs(20);

/// A service's world in a test: a database of its own holding the service's role and schema, and
/// a broker. Replicas of the service run in it.
pub struct TestWorld {
    pub db: TestDatabase,
    pub kafka: TestKafka,
    /// Issues access tokens; services under test check them against its keys.
    pub identity: TestIdentity,
    pub database_url: String,
    schema: String,
}

impl TestWorld {
    pub async fn new(role: &str, schema: &str) -> Self {
        Self::with_kafka(role, schema, TestKafka::start().await).await
    }

    /// The same, with a broker the test controls (see [`TestKafka::own`]).
    pub async fn with_kafka(role: &str, schema: &str, kafka: TestKafka) -> Self {
        init_logs();
        let db = TestDatabase::create().await;
        let database_url = db.add_service(role, schema).await;
        Self {
            identity: TestIdentity::start().await,
            db,
            kafka,
            database_url,
            schema: schema.to_owned(),
        }
    }

    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = service_env(&self.database_url, &self.kafka);
        env.extend(self.identity.env());
        env
    }

    /// The test settings with `extra` added (an `extra` value replaces the default).
    pub fn env_with(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env = self.env();
        env.retain(|(k, _)| !extra.iter().any(|(name, _)| name == k));
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    }

    /// A superuser pool on the test's database.
    pub fn pool(&self) -> &PgPool {
        &self.db.admin
    }

    /// Rows in one of the service's tables.
    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {}.{table}", self.schema))
            .fetch_one(self.pool())
            .await
            .unwrap()
    }

    /// Outbox events not published yet.
    pub async fn unsent(&self) -> i64 {
        sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {}.outbox WHERE sent_at IS NULL",
            self.schema
        ))
        .fetch_one(self.pool())
        .await
        .unwrap()
    }

    /// Publishes `event` as service `source` would, returning its event id.
    pub async fn publish<E: DomainEvent>(&self, source: &str, event: E) -> Uuid {
        let envelope = CloudEvent::new(source, event);
        self.publish_envelope(&envelope).await;
        envelope.id
    }

    /// Publishes a prepared envelope (to deliver the same event id twice, say).
    pub async fn publish_envelope<E: DomainEvent>(&self, envelope: &CloudEvent<E>) {
        let payload = serde_json::to_vec(envelope).unwrap();
        self.kafka
            .send(E::TOPIC, &envelope.data.key(), &payload)
            .await;
    }
}

/// A replica of a service running in the test's process, on a random port, with its operations
/// port (probes and `/metrics`) on another.
pub struct TestApp {
    pub address: String,
    /// The operations port's base URL: `/livez`, `/readyz` and `/metrics`.
    pub ops_address: String,
    pub client: reqwest::Client,
    stop: tokio_util::sync::CancellationToken,
    running: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    /// Runs `service` without waiting for it to be ready.
    pub fn start(service: crate::Service) -> Self {
        let address = format!("http://127.0.0.1:{}", service.port());
        let ops_address = format!("http://127.0.0.1:{}", service.ops_port());
        let stop = service.stop_token();
        let running = tokio::spawn(service.run());
        Self {
            address,
            ops_address,
            client: http_client(),
            stop,
            running: Some(running),
        }
    }

    /// Every request of this app's client carries `token` unless it sets its own.
    pub fn signed_in_as(mut self, token: &str) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        let bearer = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .expect("a token is ASCII");
        headers.insert(reqwest::header::AUTHORIZATION, bearer);
        self.client = http_client_with(headers);
        self
    }

    /// Runs `service` and waits until it is ready.
    pub async fn spawn(service: crate::Service) -> Self {
        let app = Self::start(service);
        wait_ready(&app.ops_address, WAIT).await;
        app
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// `path` on the operations port.
    pub fn ops_url(&self, path: &str) -> String {
        format!("{}{path}", self.ops_address)
    }

    /// The Prometheus exposition, from the operations port.
    pub async fn metrics(&self) -> String {
        scrape(&self.client, &self.ops_address).await
    }

    /// `/livez` and `/readyz` both answer 200, on the API port and on the operations port.
    pub async fn assert_probes_answer(&self) {
        assert_probes_answer(&self.client, &self.address, &self.ops_address).await;
    }

    /// `/metrics` answers only on the operations port, 200 with the series of `service`; on the
    /// API port it is 404. The probes answer on both.
    pub async fn assert_operations_port(&self, service: &str) {
        assert_operations_port(&self.client, &self.address, &self.ops_address, service).await;
    }

    /// The service's OpenAPI 3 document, checked to describe every one of `paths`.
    pub async fn api_document(&self, paths: &[&str]) -> serde_json::Value {
        let response = self
            .client
            .get(self.url("/openapi.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let doc: serde_json::Value = response.json().await.unwrap();
        assert!(
            doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
            "{doc}"
        );
        for path in paths {
            assert!(
                doc["paths"][path].is_object(),
                "{path} missing from {:?}",
                doc["paths"]
            );
        }
        doc
    }

    /// Starts shutting down, as SIGTERM does.
    pub fn begin_stop(&self) {
        self.stop.cancel();
    }

    /// Shuts down as SIGTERM does and waits until the service has stopped.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(running) = self.running.take() {
            running.await.unwrap().unwrap();
        }
    }
}

/// `base_url/metrics`: a process's Prometheus exposition (`base_url` its operations port).
pub async fn scrape(client: &reqwest::Client, base_url: &str) -> String {
    let response = client
        .get(format!("{base_url}/metrics"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("scrape {base_url}/metrics: {e}"));
    assert_eq!(response.status(), 200, "{base_url}/metrics");
    response.text().await.unwrap()
}

/// `/livez` and `/readyz` answer 200 on the API port and on the operations port.
pub async fn assert_probes_answer(client: &reqwest::Client, api: &str, ops: &str) {
    for base in [api, ops] {
        for probe in ["/livez", "/readyz"] {
            let response = client.get(format!("{base}{probe}")).send().await.unwrap();
            assert_eq!(response.status(), 200, "{base}{probe}");
        }
    }
}

/// `/metrics` is 404 (a problem) on the API port `api` and 200 on the operations port `ops`,
/// with series labelled `service`; the probes answer on both.
pub async fn assert_operations_port(client: &reqwest::Client, api: &str, ops: &str, service: &str) {
    assert_probes_answer(client, api, ops).await;
    let on_api = client.get(format!("{api}/metrics")).send().await.unwrap();
    assert_problem(on_api, 404).await;
    let metrics = scrape(client, ops).await;
    let labelled = format!("service=\"{service}\"");
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("process_resident_memory_bytes")
                && line.contains(&labelled)),
        "no process_resident_memory_bytes{{{labelled}}} in {ops}/metrics:\n{metrics}"
    );
}

/// The sum of the Prometheus samples whose line starts with `series`.
pub fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(series))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Checks that `response` is an RFC 9457 problem with `status`, and returns it.
pub async fn assert_problem(response: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(response.status(), status, "{:?}", response.text().await);
    assert_eq!(
        response.headers()["content-type"],
        crate::problem::CONTENT_TYPE
    );
    let problem: serde_json::Value = response.json().await.unwrap();
    assert_eq!(problem["status"], status);
    assert!(
        problem["title"].is_string() && problem["detail"].is_string(),
        "{problem}"
    );
    problem
}

/// Where rental and payment disagree, as readable lines; empty when they agree.
/// docs/design.md §3.4's invariant: no RENTED (or RETURNED, or EXPIRED) rental without an APPROVED
/// payment, no APPROVED payment without such a rental, and a CANCELLED rental's payment REFUNDED.
/// Needs the `rental` and `payment` schemas in one database (a superuser pool on it).
pub async fn rental_payment_disagreements(pool: &PgPool) -> Vec<String> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT format('rental %s is %s but its payment is %s', r.id, r.status, coalesce(p.status, 'missing')) \
         FROM rental.rentals r LEFT JOIN payment.payments p ON p.rental_id = r.id \
         WHERE (r.status IN ('RENTED', 'RETURNED', 'EXPIRED') AND p.status IS DISTINCT FROM 'APPROVED') \
            OR (r.status = 'CANCELLED' AND p.status IS DISTINCT FROM 'REFUNDED') \
         UNION ALL \
         SELECT format('payment %s is APPROVED but rental %s is %s', p.id, p.rental_id, coalesce(r.status, 'missing')) \
         FROM payment.payments p LEFT JOIN rental.rentals r ON r.id = p.rental_id \
         WHERE p.status = 'APPROVED' AND r.status IS DISTINCT FROM 'RENTED' AND r.status IS DISTINCT FROM 'RETURNED' \
           AND r.status IS DISTINCT FROM 'EXPIRED'",
    )
    .fetch_all(pool)
    .await
    .expect("rental and payment schemas readable");
    rows.into_iter().map(|(line,)| line).collect()
}

/// Waits (events and the reconciler settle things) until rental and payment agree; panics with
/// every disagreement left after `wait`.
pub async fn assert_rentals_and_payments_agree(pool: &PgPool, wait: Duration) {
    let deadline = Instant::now() + wait;
    loop {
        let disagreements = rental_payment_disagreements(pool).await;
        if disagreements.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "rental and payment disagree:\n  {}",
                disagreements.join("\n  ")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The user service's token issuing, as other services' tests need it: one RSA key per test
/// process, its JWKS served over HTTP on a random port, and tokens minted for anyone.
pub struct TestIdentity {
    pub jwks_url: String,
    key: &'static IdentityKey,
}

struct IdentityKey {
    encoding: jsonwebtoken::EncodingKey,
    /// PKCS#8, as the user service reads `JWT_SIGNING_KEY`.
    private_pem: String,
    public_pem: String,
    jwks: crate::auth::JwkSet,
}

pub const TEST_ISSUER: &str = "book-rental-fleet";
pub const TEST_AUDIENCE: &str = "book-rental-api";
/// rental's client secret in tests, as the user service and rental are both given it.
pub const TEST_RENTAL_CLIENT_SECRET: &str = "test-only-rental-client-secret-0123456789abcdef";

fn identity_key() -> &'static IdentityKey {
    static KEY: std::sync::OnceLock<IdentityKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let private = RsaPrivateKey::generate().expect("generate a test RSA key");
        IdentityKey {
            encoding: private.encoding_key(),
            private_pem: private.to_pkcs8_pem(),
            public_pem: private.public_key_pem(),
            jwks: crate::auth::JwkSet {
                keys: vec![private.jwk().clone()],
            },
        }
    })
}

fn service_token(key: &IdentityKey, client_id: &str, audience: &str, scope: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({
        "sub": client_id, "scope": scope, "iss": TEST_ISSUER, "aud": audience,
        "iat": now, "exp": now + 300,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(key.jwks.keys[0].kid.clone());
    jsonwebtoken::encode(&header, &claims, &key.encoding).expect("sign a test token")
}

/// The RSA key the project once committed for development (its thumbprint is in the user
/// service's list of published keys). Kept only so tests can show that tokens signed with it get
/// nowhere: no deployment accepts it.
pub const PUBLISHED_DEV_KEY: &str = include_str!("../fixtures/published-dev-signing-key.pem");

/// `claims` signed with [`PUBLISHED_DEV_KEY`], named by its key id, as an attacker who read the
/// project would sign them.
pub fn sign_with_published_key(claims: serde_json::Value) -> String {
    let key =
        RsaPrivateKey::from_pem(PUBLISHED_DEV_KEY).expect("the published key is a PEM RSA key");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(key.kid().to_owned());
    jsonwebtoken::encode(&header, &claims, &key.encoding_key())
        .expect("sign with the published key")
}

/// rental's token for payment's internal endpoints, signed with the test key that every
/// [`TestIdentity`] publishes.
pub fn rental_token() -> String {
    service_token(identity_key(), "rental", "payment", "payments")
}

/// The user service's client credentials grant as rental uses it: HTTP Basic, rental's secret.
async fn client_credentials(headers: axum::http::HeaderMap) -> axum::response::Response {
    use axum::response::IntoResponse;
    use base64::Engine;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("rental:{TEST_RENTAL_CLIENT_SECRET}"))
    );
    let authorization = headers.get(axum::http::header::AUTHORIZATION);
    if authorization.and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (
            axum::http::StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let token = rental_token();
    axum::Json(serde_json::json!({
        "access_token": token, "token_type": "Bearer", "expires_in": 300, "scope": "payments",
    }))
    .into_response()
}

impl TestIdentity {
    pub async fn start() -> Self {
        let key = identity_key();
        let app = axum::Router::new()
            .route(
                "/.well-known/jwks.json",
                axum::routing::get(move || async move { axum::Json(key.jwks.clone()) }),
            )
            .route("/token", axum::routing::post(client_credentials));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let jwks_url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { jwks_url, key }
    }

    /// What a service needs to check tokens from this issuer.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("JWKS_URL".into(), self.jwks_url.clone()),
            ("JWT_ISSUER".into(), TEST_ISSUER.into()),
            ("JWT_AUDIENCE".into(), TEST_AUDIENCE.into()),
        ]
    }

    /// What rental needs to get its token for payment here: `TOKEN_URL`, `RENTAL_CLIENT_SECRET`.
    pub fn client_env(&self) -> Vec<(String, String)> {
        vec![
            ("TOKEN_URL".into(), self.token_url()),
            (
                "RENTAL_CLIENT_SECRET".into(),
                TEST_RENTAL_CLIENT_SECRET.into(),
            ),
        ]
    }

    /// The client credentials grant, for rental with [`TEST_RENTAL_CLIENT_SECRET`] only.
    pub fn token_url(&self) -> String {
        self.jwks_url.replace("/.well-known/jwks.json", "/token")
    }

    /// A valid service token: `client_id` calling `audience` with `scope`.
    pub fn service_token(&self, client_id: &str, audience: &str, scope: &str) -> String {
        service_token(self.key, client_id, audience, scope)
    }

    /// A valid token for `user_id` with `roles` (`customer`, `manager`).
    pub fn token(&self, user_id: Uuid, roles: &[&str]) -> String {
        let now = chrono::Utc::now().timestamp();
        self.sign(serde_json::json!({
            "sub": user_id.to_string(), "roles": roles, "iss": TEST_ISSUER, "aud": TEST_AUDIENCE,
            "iat": now, "exp": now + 900,
        }))
    }

    /// The private key as PEM: a user service given it as `JWT_SIGNING_KEY` issues tokens this
    /// identity could have signed.
    pub fn private_key_pem(&self) -> &str {
        &self.key.private_pem
    }

    /// The public key as PEM, as an attacker who read the JWKS would hold it.
    pub fn public_key_pem(&self) -> &str {
        &self.key.public_pem
    }

    /// Any claims, signed with the test key (an expired token, another audience, …).
    pub fn sign(&self, claims: serde_json::Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(self.key.jwks.keys[0].kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.key.encoding).expect("sign a test token")
    }
}

/// A span as an OTLP receiver got it.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// `service.name` of the process that exported it.
    pub service: String,
    pub name: String,
    /// `SPAN_KIND_SERVER`, `SPAN_KIND_CLIENT`, `SPAN_KIND_PRODUCER`, `SPAN_KIND_CONSUMER`, …
    pub kind: String,
    /// Lower-case hex, as in `traceparent`.
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a trace's root.
    pub parent_span_id: String,
}

/// An OTLP/HTTP trace receiver in the test process, as a collector would be: point a service's
/// `OTEL_EXPORTER_OTLP_ENDPOINT` at [`OtlpReceiver::endpoint`] and read what it exported.
pub struct OtlpReceiver {
    pub endpoint: String,
    spans: std::sync::Arc<std::sync::Mutex<Vec<ReceivedSpan>>>,
    _server: tokio::task::JoinHandle<()>,
}

impl OtlpReceiver {
    pub async fn start() -> Self {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        use prost::Message as _;

        let spans = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = spans.clone();
        let export = move |body: axum::body::Bytes| {
            let kept = kept.clone();
            async move {
                let Ok(request) = ExportTraceServiceRequest::decode(body) else {
                    return axum::http::StatusCode::BAD_REQUEST;
                };
                let mut kept = kept.lock().expect("not poisoned");
                for resource in request.resource_spans {
                    let service = resource
                        .resource
                        .iter()
                        .flat_map(|r| &r.attributes)
                        .find(|a| a.key == "service.name")
                        .and_then(|a| a.value.as_ref()?.value.as_ref())
                        .map(|v| {
                            match v {
                            opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                                s,
                            ) => s.clone(),
                            other => format!("{other:?}"),
                        }
                        })
                        .unwrap_or_default();
                    for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
                        let kind = opentelemetry_proto::tonic::trace::v1::span::SpanKind::try_from(
                            span.kind,
                        )
                        .map_or_else(|_| span.kind.to_string(), |k| k.as_str_name().to_owned());
                        kept.push(ReceivedSpan {
                            service: service.clone(),
                            name: span.name,
                            kind,
                            trace_id: hex(&span.trace_id),
                            span_id: hex(&span.span_id),
                            parent_span_id: hex(&span.parent_span_id),
                        });
                    }
                }
                axum::http::StatusCode::OK
            }
        };
        let app = axum::Router::new().route("/v1/traces", axum::routing::post(export));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("the OTLP receiver serves");
        });
        Self {
            endpoint,
            spans,
            _server: server,
        }
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().expect("not poisoned").clone()
    }

    /// The settings that make a service export to this receiver, quickly.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), self.endpoint.clone()),
            ("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()),
        ]
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
