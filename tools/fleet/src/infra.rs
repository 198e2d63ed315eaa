//! `fleet infra`: the infrastructure the test command needs — the private PostgreSQL and a real
//! Kafka broker — until a stop signal, or until the process that started it ends.
//!
//! Once both answer, the environment that reaches them is written to a file (`NAME=VALUE`
//! lines) for the caller to read; it is removed again when they stop.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};

use crate::database::Postgres;
use crate::kafka::Broker;
use crate::process::{Process, next_free_port};
use crate::{format_elapsed, log, setting};

/// What `fleet infra` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the environment is written once everything answers.
    pub env_file: PathBuf,
    /// The broker's data folder; `None` (or `KAFKA_BROKERS` set) starts no broker.
    pub kafka_data: Option<PathBuf>,
    /// The TLS tests' certificates: the broker gets a SASL_SSL listener with them.
    pub tls_dir: Option<PathBuf>,
    /// Stop when the parent process ends, however it ends.
    pub exit_with_parent: bool,
}

pub async fn run(options: Options) -> anyhow::Result<()> {
    if options.exit_with_parent {
        // The kernel sends SIGTERM when the parent goes, which the handlers below turn into an
        // orderly stop.
        // SAFETY: prctl on the calling process with a valid signal number.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong);
        }
        if std::os::unix::process::parent_id() == 1 {
            anyhow::bail!("the process that started fleet infra is gone already");
        }
    }
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let _ = std::fs::remove_file(&options.env_file);
    let mut postgres: Option<Postgres> = None;
    let mut kafka: Option<Process> = None;
    let outcome = tokio::select! {
        outcome = async {
            start(&options, &mut postgres, &mut kafka).await?;
            watch(&mut postgres, &mut kafka).await
        } => outcome,
        _ = interrupt.recv() => Ok(()),
        _ = terminate.recv() => Ok(()),
        _ = hangup.recv() => Ok(()),
    };
    if let Err(e) = &outcome {
        log(&format!("ERROR: {e:#}"));
    }
    let _ = std::fs::remove_file(&options.env_file);
    if let Some(mut broker) = kafka.take() {
        log("stopping Kafka");
        broker
            .stop(libc::SIGTERM, std::time::Duration::from_secs(30))
            .await;
    }
    if let Some(postgres) = &mut postgres {
        postgres.stop().await;
    }
    outcome
}

async fn start(
    options: &Options,
    postgres: &mut Option<Postgres>,
    kafka: &mut Option<Process>,
) -> anyhow::Result<()> {
    let db = postgres.insert(Postgres::ensure(true).await?);
    let mut env = vec![
        ("DATABASE_ADMIN_URL".to_owned(), db.server.admin_url.clone()),
        ("FLEET_PG_HOST".to_owned(), db.server.host.clone()),
        ("FLEET_PG_PORT".to_owned(), db.server.port.to_string()),
    ];
    if let Some(cluster) = &db.cluster {
        env.push((
            "FLEET_PG_DATA".to_owned(),
            cluster.data.display().to_string(),
        ));
        env.push((
            "FLEET_PG_BIN".to_owned(),
            cluster.installation.bin.display().to_string(),
        ));
    }
    let external = std::env::var("KAFKA_BROKERS")
        .ok()
        .filter(|b| !b.is_empty());
    if let (None, Some(data)) = (external, &options.kafka_data) {
        let _ = std::fs::create_dir_all(data);
        let port = next_free_port(setting("FLEET_KAFKA_PORT", 59092)?);
        let mut broker = Broker::new(data, port, next_free_port(port + 1));
        if let Some(tls) = &options.tls_dir {
            let sasl_port = next_free_port(broker.controller_port + 1);
            let password = random_secret()?;
            std::fs::write(tls.join("kafka-password"), &password)?;
            broker.sasl_ssl = Some((sasl_port, tls.clone()));
            // Advertised by name: the clients check the certificate against it.
            env.push((
                "FLEET_TLS_KAFKA_BROKERS".to_owned(),
                format!("localhost:{sasl_port}"),
            ));
            env.push(("FLEET_TLS_KAFKA_USERNAME".to_owned(), "fleet".to_owned()));
            env.push(("FLEET_TLS_KAFKA_PASSWORD".to_owned(), password));
        }
        log(&format!(
            "starting Apache Kafka on 127.0.0.1:{port} (log: {})",
            broker.log().display()
        ));
        let started = Instant::now();
        *kafka = Some(broker.start(true, None).await?);
        log(&format!(
            "Kafka answers at {} (ready in {})",
            broker.bootstrap_servers(),
            format_elapsed(started.elapsed())
        ));
        env.push(("KAFKA_BROKERS".to_owned(), broker.bootstrap_servers()));
        // Its authorizer is on and its admin is the local one: the test harness stores the
        // services' credentials and each test's ACLs, and signs every client in.
        env.push(("FLEET_KAFKA_ACCESS".to_owned(), "scram".to_owned()));
    }
    let text: String = env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    // Written whole, then renamed: a reader never sees half of it.
    let partial = options.env_file.with_extension("partial");
    std::fs::write(&partial, text)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, &options.env_file)?;
    Ok(())
}

/// Until a signal drops this future, or the broker or the database exits.
async fn watch(postgres: &mut Option<Postgres>, kafka: &mut Option<Process>) -> anyhow::Result<()> {
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        if let Some(status) = kafka.as_mut().and_then(Process::exited) {
            kafka.take();
            anyhow::bail!("Kafka exited ({status})");
        }
        if let Some(status) = postgres
            .as_mut()
            .and_then(|p| p.process.as_mut())
            .and_then(Process::exited)
        {
            if let Some(p) = postgres.as_mut() {
                p.process.take();
            }
            anyhow::bail!("PostgreSQL exited ({status})");
        }
    }
}

/// 24 characters of URL-safe randomness from the kernel.
fn random_secret() -> anyhow::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 18];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[(*b as usize) % 64] as char)
        .collect())
}
