//! One process the supervisor starts and answers for.
//!
//! Each runs in a process group of its own: a Ctrl-C in the terminal reaches the supervisor
//! alone, which then stops everything in order, and a stop reaches the process's own children
//! too. Its output is appended to a log file. A supervisor asks the kernel to kill the process
//! the moment the supervisor's thread is gone (`PR_SET_PDEATHSIG`), however it goes: a SIGKILL
//! leaves nothing behind either.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

/// Whose process it is: the user and group it runs as, when not the supervisor's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// What to run: program, arguments, extra environment, and where its output goes.
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(String, String)>,
    pub log: PathBuf,
    pub owner: Option<Owner>,
    /// Killed by the kernel when the thread that started it ends. Only for a supervisor whose
    /// main thread starts every process: the signal follows the thread, not the process.
    pub dies_with_supervisor: bool,
}

impl Launch {
    pub fn new(program: impl Into<PathBuf>, log: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            log: log.into(),
            owner: None,
            dies_with_supervisor: false,
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    pub fn owned_by(mut self, owner: Option<Owner>) -> Self {
        self.owner = owner;
        self
    }

    pub fn dying_with_supervisor(mut self, yes: bool) -> Self {
        self.dies_with_supervisor = yes;
        self
    }
}

/// A running (or exited) process of the supervisor's.
#[derive(Debug)]
pub struct Process {
    pub name: String,
    child: tokio::process::Child,
    pid: u32,
    started: Instant,
    exit: Option<ExitStatus>,
}

impl Process {
    /// Starts `launch` in a process group of its own, its output appended to `launch.log`.
    pub fn spawn(name: &str, launch: &Launch) -> anyhow::Result<Self> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&launch.log)
            .with_context(|| format!("cannot open {}", launch.log.display()))?;
        let mut command = tokio::process::Command::new(&launch.program);
        command
            .args(&launch.args)
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        if let Some(owner) = launch.owner {
            // The owner may not be allowed into the caller's working directory.
            command.uid(owner.uid).gid(owner.gid).current_dir("/");
        }
        if launch.dies_with_supervisor {
            let supervisor = std::process::id() as libc::pid_t;
            // SAFETY: only async-signal-safe calls (prctl, getppid) between fork and exec. The
            // parent-death signal is set after the user switch, which would clear it.
            unsafe {
                command.pre_exec(move || {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    // The supervisor died before the signal was armed.
                    if libc::getppid() != supervisor {
                        return Err(std::io::Error::other("the supervisor is gone"));
                    }
                    Ok(())
                });
            }
        }
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {}", launch.program.display()))?;
        let pid = child.id().context("a process just started has a pid")?;
        Ok(Self {
            name: name.to_owned(),
            child,
            pid,
            started: Instant::now(),
            exit: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// How long since it started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Its exit status, if it has exited (reaping it).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    /// Waits until it exits.
    pub async fn wait(&mut self) -> ExitStatus {
        if let Some(status) = self.exit {
            return status;
        }
        let status = self
            .child
            .wait()
            .await
            .unwrap_or_else(|_| std::os::unix::process::ExitStatusExt::from_raw(0));
        self.exit = Some(status);
        status
    }

    /// Sends `signal` to its process group (to it alone if the group is gone).
    pub fn signal(&self, signal: libc::c_int) {
        if self.exit.is_some() {
            return;
        }
        let pid = self.pid as libc::pid_t;
        // SAFETY: plain system calls on a pid of ours that has not been reaped.
        unsafe {
            if libc::kill(-pid, signal) != 0 {
                libc::kill(pid, signal);
            }
        }
    }

    /// Sends `signal`, waits up to `grace` for it to exit, then kills its group. Returns its
    /// exit status and whether it had to be killed.
    pub async fn stop(&mut self, signal: libc::c_int, grace: Duration) -> (ExitStatus, bool) {
        self.signal(signal);
        self.finish(grace).await
    }

    /// After a stop signal: waits up to `grace` for it to exit, then kills its group. Returns
    /// its exit status and whether it had to be killed. (Signal several, then finish each, and
    /// they stop together.)
    pub async fn finish(&mut self, grace: Duration) -> (ExitStatus, bool) {
        match tokio::time::timeout(grace, self.wait()).await {
            Ok(status) => {
                // Whatever of its group is left (a child that ignored the signal).
                self.kill_group();
                (status, false)
            }
            Err(_) => {
                self.kill_group();
                (self.wait().await, true)
            }
        }
    }

    fn kill_group(&self) {
        // SAFETY: as in `signal`; the group may be gone already, which is fine.
        unsafe {
            libc::kill(-(self.pid as libc::pid_t), libc::SIGKILL);
        }
    }
}

/// Is `pid` a live process (not a zombie)?
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Does something accept TCP connections on 127.0.0.1:`port`?
pub fn port_in_use(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(300),
    )
    .is_ok()
}

/// `from`, or the first of the 20 ports above it that nothing listens on.
pub fn next_free_port(from: u16) -> u16 {
    (from..from.saturating_add(20))
        .find(|port| !port_in_use(*port))
        .unwrap_or(from.saturating_add(20))
}

/// The last `lines` lines of a log file, for an error message.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
