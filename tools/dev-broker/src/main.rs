//! `dev-broker [--brokers N] [--partitions N] [--topic-prefix P] [--bootstrap-file PATH]`
//!
//! Hosts an in-memory Kafka-protocol cluster with the fleet's topics, prints its bootstrap
//! address (and writes it to PATH once the topics exist), and runs until SIGINT or SIGTERM.
//! SIGUSR1 takes the brokers down and SIGUSR2 brings them back, for fault drills.
//!
//! `dev-broker --ensure-topics-on BROKERS [--access] [--partitions N] [--replication N] [--topic-prefix P]`
//! creates the fleet's topics that a real Kafka cluster lacks, then exits. With `--access` it
//! signs in as the local broker's admin (`scripts/lib/kafka.sh`) and also stores each service's
//! SCRAM credential and writes the ACLs of `shared_events::access`.

use anyhow::{Context, bail};
use dev_broker::{MockBroker, ensure_access, ensure_topics, fleet_topics};
use fleet::kafka::{Credentials, local_password};
use tokio::signal::unix::{SignalKind, signal};

struct Args {
    brokers: i32,
    partitions: i32,
    topic_prefix: String,
    bootstrap_file: Option<String>,
    ensure_topics_on: Option<String>,
    replication: i32,
    access: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        brokers: 1,
        partitions: 3,
        topic_prefix: String::new(),
        bootstrap_file: None,
        ensure_topics_on: None,
        replication: 1,
        access: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--brokers" => args.brokers = value()?.parse().context("--brokers takes a number")?,
            "--partitions" => {
                args.partitions = value()?.parse().context("--partitions takes a number")?
            }
            "--topic-prefix" => args.topic_prefix = value()?,
            "--bootstrap-file" => args.bootstrap_file = Some(value()?),
            "--ensure-topics-on" => args.ensure_topics_on = Some(value()?),
            "--access" => args.access = true,
            "--replication" => {
                args.replication = value()?.parse().context("--replication takes a number")?
            }
            "-h" | "--help" => {
                println!(
                    "usage: dev-broker [--brokers N] [--partitions N] [--topic-prefix P] [--bootstrap-file PATH]\n       \
                     dev-broker --ensure-topics-on BROKERS [--access] [--partitions N] [--replication N] [--topic-prefix P]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}; see --help"),
        }
    }
    if args.brokers < 1 || args.partitions < 1 || args.replication < 1 {
        bail!("--brokers, --partitions and --replication must be at least 1");
    }
    Ok(args)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let topics = fleet_topics(&args.topic_prefix);
    if let Some(brokers) = &args.ensure_topics_on {
        let admin = args.access.then(Credentials::admin);
        ensure_topics(
            brokers,
            admin.as_ref(),
            &topics,
            args.partitions,
            args.replication,
        )
        .await?;
        println!("dev-broker: {} topics present on {brokers}", topics.len());
        if let Some(admin) = &admin {
            ensure_access(brokers, admin, &args.topic_prefix, local_password).await?;
            println!("dev-broker: each service's credential and ACLs present on {brokers}");
        }
        return Ok(());
    }
    let broker = MockBroker::start(args.brokers, &topics, args.partitions)?;
    println!(
        "dev-broker: Kafka protocol on {} ({} topics, {} partitions each)",
        broker.bootstrap_servers(),
        topics.len(),
        args.partitions
    );
    if let Some(path) = &args.bootstrap_file {
        std::fs::write(path, broker.bootstrap_servers())
            .with_context(|| format!("cannot write {path}"))?;
    }

    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut down = signal(SignalKind::user_defined1())?;
    let mut up = signal(SignalKind::user_defined2())?;
    loop {
        tokio::select! {
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
            _ = down.recv() => { println!("dev-broker: down"); broker.go_down() }
            _ = up.recv() => { println!("dev-broker: up"); broker.come_back() }
        }
    }
    println!("dev-broker: stopped");
    Ok(())
}
