//! The `dev-broker` binary as the local run command uses it.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fleet::kafka::Credentials;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// The broker process, killed when the test ends, even by a failed assertion.
struct Broker(std::process::Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_file(path: &std::path::Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && !text.is_empty()
        {
            return text;
        }
        assert!(Instant::now() < deadline, "no bootstrap file written");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serves_the_fleet_topics_and_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("dev-broker-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bootstrap");
    let mut child = Broker(
        Command::new(env!("CARGO_BIN_EXE_dev-broker"))
            .args(["--partitions", "5", "--bootstrap-file"])
            .arg(&file)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let bootstrap = wait_for_file(&file);

    let client: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let metadata = client
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    let mut topics: Vec<(String, usize)> = metadata
        .topics()
        .iter()
        .map(|t| (t.name().to_owned(), t.partitions().len()))
        .collect();
    topics.sort();
    let expected = [
        "book.events",
        "payment.events",
        "rental.events",
        "user.events",
    ];
    for name in expected {
        assert!(
            topics.contains(&(name.to_owned(), 5)),
            "{name} with 5 partitions in {topics:?}"
        );
        assert!(
            topics.contains(&(format!("{name}.dlq"), 5)),
            "{name}.dlq in {topics:?}"
        );
    }

    Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn ensuring_topics_that_exist_changes_nothing() {
    let dir = std::env::temp_dir().join(format!("dev-broker-ensure-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bootstrap");
    let _broker = Broker(
        Command::new(env!("CARGO_BIN_EXE_dev-broker"))
            .args(["--partitions", "3", "--bootstrap-file"])
            .arg(&file)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let bootstrap = wait_for_file(&file);
    let status = Command::new(env!("CARGO_BIN_EXE_dev-broker"))
        .args(["--ensure-topics-on", &bootstrap, "--partitions", "7"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let client: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let metadata = client
        .fetch_metadata(Some("rental.events"), Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        metadata.topics()[0].partitions().len(),
        3,
        "an existing topic keeps its partitions"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn ensuring_topics_on_an_unreachable_cluster_fails_clearly() {
    let output = Command::new(env!("CARGO_BIN_EXE_dev-broker"))
        .args(["--ensure-topics-on", "127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot reach Kafka at 127.0.0.1:1"),
        "{stderr}"
    );
}

#[test]
fn refuses_unknown_arguments() {
    let output = Command::new(env!("CARGO_BIN_EXE_dev-broker"))
        .arg("--nope")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown argument"));
}

/// Partitions of every topic behind `prefix` on `brokers`, by name without the prefix.
fn partitions_behind(brokers: &str, prefix: &str) -> std::collections::BTreeMap<String, usize> {
    let client: BaseConsumer = dev_broker::client_config(brokers, Some(&Credentials::admin()))
        .create()
        .unwrap();
    let metadata = client
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    metadata
        .topics()
        .iter()
        .filter_map(|t| {
            let name = t.name().strip_prefix(prefix)?;
            Some((name.to_owned(), t.partitions().len()))
        })
        .collect()
}

#[tokio::test]
async fn on_a_real_kafka_the_missing_topics_and_dead_letter_topics_are_created_and_existing_ones_left_alone()
 {
    let brokers = match std::env::var("KAFKA_BROKERS") {
        Ok(b) if !b.is_empty() && std::env::var("FLEET_KAFKA").as_deref() != Ok("mock") => b,
        _ => {
            eprintln!("not run on librdkafka's mock broker: it has no CreateTopics");
            return;
        }
    };
    let prefix = format!("ensure{}.", std::process::id());
    // An operator made one topic already, with a partition count of their own.
    let admin = Credentials::admin();
    dev_broker::ensure_topics(
        &brokers,
        Some(&admin),
        &[format!("{prefix}book.events")],
        1,
        1,
    )
    .await
    .unwrap();
    let ensure = || {
        Command::new(env!("CARGO_BIN_EXE_dev-broker"))
            .args([
                "--ensure-topics-on",
                &brokers,
                "--access",
                "--partitions",
                "3",
            ])
            .args(["--topic-prefix", &prefix])
            .stdout(Stdio::null())
            .status()
            .unwrap()
    };
    assert!(ensure().success());
    let expected: std::collections::BTreeMap<String, usize> = [
        ("book.events", 1),
        ("book.events.dlq", 3),
        ("rental.events", 3),
        ("rental.events.dlq", 3),
        ("payment.events", 3),
        ("payment.events.dlq", 3),
        ("user.events", 3),
        ("user.events.dlq", 3),
        ("book-management.replay", 1),
        ("rental.replay", 1),
        ("payment.replay", 1),
        ("user.replay", 1),
        ("view.replay", 1),
        ("points.replay", 1),
    ]
    .into_iter()
    .map(|(name, n)| (name.to_owned(), n))
    .collect();
    assert_eq!(partitions_behind(&brokers, &prefix), expected);
    // Created to keep every event, as `view rebuild` needs.
    let admin: AdminClient<DefaultClientContext> =
        dev_broker::client_config(&brokers, Some(&admin))
            .create()
            .unwrap();
    let topic = format!("{prefix}rental.events");
    let described = admin
        .describe_configs(&[ResourceSpecifier::Topic(&topic)], &AdminOptions::new())
        .await
        .unwrap();
    let config = described[0].as_ref().unwrap();
    for setting in ["retention.ms", "retention.bytes"] {
        assert_eq!(
            config.get(setting).and_then(|e| e.value.as_deref()),
            Some("-1"),
            "{setting} of {topic}"
        );
    }
    // Again: nothing to create, nothing changed.
    assert!(ensure().success());
    assert_eq!(partitions_behind(&brokers, &prefix), expected);
}
