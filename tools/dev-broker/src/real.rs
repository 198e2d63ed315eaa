//! A real Apache Kafka broker of one caller's own (the supervisor's [`fleet::kafka::Broker`]),
//! that can be killed with SIGKILL and started again on its data and ports, as a crashed broker
//! comes back. The test harness uses it for the faults that a shared broker cannot take.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use fleet::kafka::{Broker, Credentials};
use fleet::process::Process;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// How long a JVM broker may take to start on a busy two-core machine.
const START_TIMEOUT: Duration = Duration::from_secs(120);

pub struct RealBroker {
    broker: Broker,
    process: Mutex<Option<Process>>,
}

/// Two ports nothing listens on (both held while the second is chosen, so they differ).
fn free_ports() -> anyhow::Result<(u16, u16)> {
    let first = std::net::TcpListener::bind("127.0.0.1:0")?;
    let second = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok((first.local_addr()?.port(), second.local_addr()?.port()))
}

impl RealBroker {
    /// Starts a broker with its data in `data` (formatted on first start) on free ports, and
    /// returns once it answers. It dies with the calling process.
    pub async fn start(data: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data)
            .with_context(|| format!("cannot create {}", data.display()))?;
        let (port, controller_port) = free_ports()?;
        let broker = Self {
            broker: Broker::new(data, port, controller_port),
            process: Mutex::new(None),
        };
        broker.come_back().await?;
        Ok(broker)
    }

    /// `127.0.0.1:port` for `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        self.broker.bootstrap_servers()
    }

    /// The broker's own log (its standard output).
    pub fn log(&self) -> PathBuf {
        self.broker.log()
    }

    /// SIGKILL, as a crash: nothing is flushed or handed over. Returns once the process is gone.
    pub fn kill(&self) {
        if let Some(process) = self.process.lock().unwrap().take() {
            process.signal(libc::SIGKILL);
            // Reaped by the runtime; gone once its port is closed.
            let deadline = Instant::now() + Duration::from_secs(10);
            while fleet::process::alive(process.pid()) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Starts the broker (again) on its data and ports; returns once it answers clients with
    /// the metadata of every topic it had.
    pub async fn come_back(&self) -> anyhow::Result<()> {
        self.kill();
        // Its threads come and go: it dies with the test process rather than with a thread.
        let process = self
            .broker
            .start(false, Some(std::process::id()))
            .await
            .context("start Kafka")?;
        *self.process.lock().unwrap() = Some(process);
        let brokers = self.bootstrap_servers();
        let started = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                bail!(
                    "Kafka exited with {status} while starting; its log: {}",
                    self.log().display()
                );
            }
            let probe = brokers.clone();
            let answered = tokio::task::spawn_blocking(move || answers(&probe)).await?;
            if answered {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                self.kill();
                return Err(anyhow!(
                    "Kafka did not answer within {START_TIMEOUT:?}; its log: {}",
                    self.log().display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn exited(&self) -> Option<std::process::ExitStatus> {
        let mut process = self.process.lock().unwrap();
        process.as_mut()?.exited()
    }
}

/// Does a broker answer at `brokers` with every partition it holds led?
fn answers(brokers: &str) -> bool {
    let Ok(client) = crate::client_config(brokers, Some(&Credentials::admin()))
        .set("log_level", "0")
        .create::<BaseConsumer>()
    else {
        return false;
    };
    match client.fetch_metadata(None, Duration::from_secs(1)) {
        Ok(metadata) => {
            !metadata.brokers().is_empty()
                && metadata
                    .topics()
                    .iter()
                    .all(|t| t.error().is_none() && t.partitions().iter().all(|p| p.leader() >= 0))
        }
        Err(_) => false,
    }
}

impl Drop for RealBroker {
    fn drop(&mut self) {
        self.kill();
    }
}
