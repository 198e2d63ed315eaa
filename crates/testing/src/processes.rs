//! Services as processes of their own (the built binaries), on reserved ports, that a test can
//! kill and start again.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::{assert_operations_port, eventually, http_client, scrape};

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

    /// Starts the stopped process again on the same ports with `changes` to its settings (a new
    /// signing key, say), without waiting for it to be ready: [`ServiceProcess::wait_ready`].
    pub async fn start_changed(&mut self, changes: &[(&str, &str)]) {
        let _ = self.child.wait().await;
        self.env
            .retain(|(name, _)| !changes.iter().any(|(changed, _)| changed == name));
        self.env
            .extend(changes.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self.child = start_process(
            &self.binary,
            &self.env,
            (self.port.port(), self.ops_port.port()),
            self.log.as_deref(),
        );
    }

    /// SIGSTOP: the process keeps its sockets (connections are accepted by the kernel) but
    /// answers nothing, as a hung process; [`ServiceProcess::resume`] lets it go on.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT, after [`ServiceProcess::pause`].
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("the process is running");
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("send a signal");
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    /// Until `/readyz` answers 200; a process that exits first fails the test with its log.
    pub async fn wait_ready(&mut self) {
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
