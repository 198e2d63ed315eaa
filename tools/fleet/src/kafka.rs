//! A real Apache Kafka broker (KRaft, one node that is broker and controller), run by
//! `scripts/kafka.sh`, which fetches its jars once, writes its configuration and then becomes the
//! JVM: the process started here is the broker itself, so SIGTERM stops it cleanly and SIGKILL
//! kills it as a crash would.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::process::{Launch, Process, port_in_use, tail};

/// One broker's data folder and ports.
#[derive(Debug, Clone)]
pub struct Broker {
    pub data: PathBuf,
    pub port: u16,
    pub controller_port: u16,
    /// The SASL_SSL listener of the TLS tests, with its certificates' folder.
    pub sasl_ssl: Option<(u16, PathBuf)>,
    pub start_timeout: Duration,
}

impl Broker {
    pub fn new(data: &Path, port: u16, controller_port: u16) -> Self {
        let start_timeout = std::env::var("FLEET_KAFKA_START_TIMEOUT")
            .ok()
            .and_then(|s| s.parse().ok())
            .map(Duration::from_secs)
            // A JVM on a busy two-core machine.
            .unwrap_or(Duration::from_secs(120));
        Self {
            data: data.to_owned(),
            port,
            controller_port,
            sasl_ssl: None,
            start_timeout,
        }
    }

    /// `127.0.0.1:port`, for `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Its own log (the JVM's output), beside its data.
    pub fn log(&self) -> PathBuf {
        self.data.join("broker.log")
    }

    /// Starts the broker on its data (formatted when new) and returns once its listener accepts
    /// clients and it has joined the quorum. `exit_with` names a process whose end kills it
    /// (for a test process, whose threads come and go).
    pub async fn start(
        &self,
        dies_with_supervisor: bool,
        exit_with: Option<u32>,
    ) -> anyhow::Result<Process> {
        std::fs::create_dir_all(&self.data)
            .with_context(|| format!("cannot create {}", self.data.display()))?;
        let log = self.log();
        let from = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let mut launch = Launch::new(crate::repository().join("scripts/kafka.sh"), &log)
            .arg("--data")
            .arg(&self.data)
            .args(["--port".to_owned(), self.port.to_string()])
            .args([
                "--controller-port".to_owned(),
                self.controller_port.to_string(),
            ])
            // The broker's own password for its super user, as the tools will use it.
            .env("FLEET_KAFKA_ADMIN_PASSWORD", local_password(ADMIN))
            .dying_with_supervisor(dies_with_supervisor);
        if let Some(pid) = exit_with {
            launch = launch.args(["--exit-with".to_owned(), pid.to_string()]);
        }
        if let Some((port, tls)) = &self.sasl_ssl {
            launch = launch
                .env("FLEET_KAFKA_SASL_SSL_PORT", port.to_string())
                .env("FLEET_KAFKA_TLS_DIR", tls.display().to_string());
        }
        let mut broker = Process::spawn("kafka", &launch)?;
        let started = Instant::now();
        loop {
            if let Some(status) = broker.exited() {
                bail!(
                    "Kafka exited while starting ({status}); its log, {}:\n{}",
                    log.display(),
                    tail(&log, 30)
                );
            }
            if started_since(&log, from) && port_in_use(self.port) {
                return Ok(broker);
            }
            if started.elapsed() > self.start_timeout {
                broker.stop(libc::SIGKILL, Duration::from_secs(5)).await;
                bail!(
                    "Kafka did not start within {:?}; its log: {}",
                    self.start_timeout,
                    log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Has the broker logged, after byte `from` of its log, the line it writes once its listeners
/// accept clients and it has joined the quorum?
fn started_since(log: &Path, from: u64) -> bool {
    std::fs::read(log).is_ok_and(|bytes| {
        let new = &bytes[(from as usize).min(bytes.len())..];
        String::from_utf8_lossy(new).contains("Kafka Server started")
    })
}

/// The broker's super user: the broker itself between its listeners, and the tools that create
/// topics, credentials and ACLs (never a service).
pub const ADMIN: &str = "admin";

/// How a client signs in to the local broker (`scripts/lib/kafka.sh`): a service with
/// SCRAM-SHA-512 as its own principal, the admin with PLAIN (its one user is in the broker's
/// configuration, so it works before any credential is stored).
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    pub mechanism: &'static str,
}

impl std::fmt::Debug for Credentials {
    // The password never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("mechanism", &self.mechanism)
            .finish()
    }
}

impl Credentials {
    /// The super user's, for the tools.
    pub fn admin() -> Self {
        Self {
            username: ADMIN.to_owned(),
            password: local_password(ADMIN),
            mechanism: "PLAIN",
        }
    }

    /// Service `principal`'s (its name: `rental`, `book-management`, …).
    pub fn service(principal: &str) -> Self {
        Self {
            username: principal.to_owned(),
            password: local_password(principal),
            mechanism: "SCRAM-SHA-512",
        }
    }

    /// The settings a service's Kafka clients read (crates/messaging's `KafkaSecurity`).
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("KAFKA_SECURITY_PROTOCOL".into(), "SASL_PLAINTEXT".into()),
            ("KAFKA_SASL_MECHANISM".into(), self.mechanism.into()),
            ("KAFKA_SASL_USERNAME".into(), self.username.clone()),
            ("KAFKA_SASL_PASSWORD".into(), self.password.clone()),
        ]
    }

    /// The same as librdkafka properties.
    pub fn client_properties(&self) -> [(&'static str, String); 4] {
        [
            ("security.protocol", "SASL_PLAINTEXT".into()),
            ("sasl.mechanisms", self.mechanism.into()),
            ("sasl.username", self.username.clone()),
            ("sasl.password", self.password.clone()),
        ]
    }
}

/// The local development password of Kafka principal `name`: `FLEET_KAFKA_PASSWORD_<NAME>`
/// (upper case, `-` as `_`; `FLEET_KAFKA_ADMIN_PASSWORD` for the admin), else the name itself,
/// as the database roles' defaults. Only the local broker knows them; a deployment's come from
/// `scripts/make-secrets.sh`.
pub fn local_password(name: &str) -> String {
    let variable = if name == ADMIN {
        "FLEET_KAFKA_ADMIN_PASSWORD".to_owned()
    } else {
        format!(
            "FLEET_KAFKA_PASSWORD_{}",
            name.to_ascii_uppercase().replace('-', "_")
        )
    };
    std::env::var(variable)
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| name.to_owned())
}
