//! The supervisor's promise: whatever it started ends when it is told to stop, even by a signal
//! the shell that started it ignores, and even when it is killed outright.
//!
//! Each test runs `fleet infra` (a private PostgreSQL cluster and a real Kafka broker, in folders
//! of the test's own) as a script in the background would: SIGINT ignored, as a non-interactive
//! shell leaves it for its background jobs.

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A folder of the test's own, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("fleet-supervisor-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // As root, the cluster's owner (postgres) must be able to enter it.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `fleet infra` in a session of its own with SIGINT ignored; returns once the infrastructure
/// answers (its environment file is written).
fn start_infra(scratch: &Path) -> (Child, HashMap<String, String>) {
    let env_file = scratch.join("infra.env");
    let pg_port = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_fleet"));
    command
        .args(["infra", "--env-file"])
        .arg(&env_file)
        .arg("--kafka-data")
        .arg(scratch.join("kafka"))
        // Not the test command's servers: ones of this test's own.
        .env_remove("DATABASE_ADMIN_URL")
        .env_remove("PGHOST")
        .env_remove("KAFKA_BROKERS")
        .env("FLEET_PG_DATA_DIR", scratch.join("postgres"))
        .env("FLEET_PG_PORT", pg_port.to_string())
        .env("FLEET_KAFKA_PORT", free_port().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(scratch.join("fleet.log")).unwrap());
    // SAFETY: setsid and signal are async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            libc::signal(libc::SIGINT, libc::SIG_IGN);
            Ok(())
        });
    }
    let mut fleet = command.spawn().expect("start fleet infra");
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        if let Ok(text) = std::fs::read_to_string(&env_file) {
            let env = text
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            return (fleet, env);
        }
        if let Ok(Some(status)) = fleet.try_wait() {
            panic!(
                "fleet infra exited ({status}) before its infrastructure answered:\n{}",
                std::fs::read_to_string(scratch.join("fleet.log")).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "fleet infra not up within 240 s:\n{}",
            std::fs::read_to_string(scratch.join("fleet.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every live descendant of `root`, from /proc.
fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of = HashMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields[0] != "Z" {
            parent_of.insert(pid, fields[1].parse::<u32>().unwrap_or(0));
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parent_of
                .iter()
                .filter(|(_, p)| **p == parent)
                .map(|(pid, _)| *pid),
        );
        i += 1;
    }
    found.remove(0);
    found
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

fn port_of(address: &str) -> u16 {
    address.rsplit(':').next().unwrap().parse().unwrap()
}

fn answers(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Waits until none of `pids` is alive; returns the ones still alive after `wait`.
fn survivors(pids: &[u32], wait: Duration) -> Vec<u32> {
    let deadline = Instant::now() + wait;
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Its exit status; fails the test (killing it) if it is still running after `wait`.
fn exit_within(fleet: &mut Child, wait: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + wait;
    loop {
        if let Some(status) = fleet.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = fleet.kill();
            panic!("fleet infra did not stop within {wait:?} of the signal");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_stop_signal_ends_every_process_it_started_even_sigint_from_a_background_script() {
    let scratch = Scratch::new("sigint");
    let (mut fleet, env) = start_infra(&scratch.0);
    let started = descendants(fleet.id());
    let pg_port: u16 = env["FLEET_PG_PORT"].parse().unwrap();
    let kafka_port = port_of(&env["KAFKA_BROKERS"]);
    assert!(answers(pg_port) && answers(kafka_port), "{env:?}");
    // The postmaster with its own processes, and the broker's JVM.
    assert!(started.len() >= 3, "only {started:?} started");

    // SAFETY: a signal to our own child.
    unsafe { libc::kill(fleet.id() as i32, libc::SIGINT) };
    let status = exit_within(&mut fleet, Duration::from_secs(90));

    assert!(status.success(), "fleet infra ended with {status}");
    assert_eq!(
        survivors(&started, Duration::from_secs(5)),
        Vec::<u32>::new()
    );
    assert!(!answers(pg_port) && !answers(kafka_port));
    assert!(
        !scratch.0.join("infra.env").exists(),
        "the environment file outlived what it describes"
    );
}

#[test]
fn a_supervisor_killed_outright_leaves_nothing_running() {
    let scratch = Scratch::new("sigkill");
    let (mut fleet, env) = start_infra(&scratch.0);
    let started = descendants(fleet.id());
    assert!(started.len() >= 3, "only {started:?} started");

    fleet.kill().unwrap();
    fleet.wait().unwrap();

    assert_eq!(
        survivors(&started, Duration::from_secs(10)),
        Vec::<u32>::new()
    );
    let pg_port: u16 = env["FLEET_PG_PORT"].parse().unwrap();
    assert!(!answers(pg_port) && !answers(port_of(&env["KAFKA_BROKERS"])));
}
