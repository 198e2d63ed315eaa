//! A private PostgreSQL cluster: initialised in a folder of its own, its server (the postmaster)
//! run as a child of the caller rather than daemonised by `pg_ctl`, so that whoever started it
//! answers for it. As root the cluster belongs to the `postgres` OS user, since PostgreSQL
//! refuses to run as root.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::process::{Launch, Owner, Process, alive, tail};

/// The server programs of one PostgreSQL installation.
#[derive(Debug, Clone)]
pub struct Installation {
    pub bin: PathBuf,
}

impl Installation {
    /// The installation of `version` if given and installed, else the newest one:
    /// `/usr/lib/postgresql/<version>/bin`, else where `initdb` on the `PATH` lives.
    pub fn find(version: Option<&str>) -> anyhow::Result<Self> {
        let complete = |dir: &Path| {
            ["initdb", "postgres", "pg_ctl"]
                .iter()
                .all(|program| dir.join(program).is_file())
        };
        if let Some(version) = version {
            let dir = PathBuf::from(format!("/usr/lib/postgresql/{version}/bin"));
            if complete(&dir) {
                return Ok(Self { bin: dir });
            }
        }
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let major = entry.file_name().to_str()?.parse().ok()?;
                Some((major, entry.path().join("bin")))
            })
            .filter(|(_, bin)| complete(bin))
            .collect();
        versions.sort();
        if let Some((_, bin)) = versions.pop() {
            return Ok(Self { bin });
        }
        let on_path = std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .find(|dir| complete(dir));
        match on_path {
            Some(dir) => Ok(Self {
                bin: std::fs::canonicalize(dir.join("initdb"))?
                    .parent()
                    .map(Path::to_owned)
                    .unwrap_or(dir),
            }),
            None => bail!(
                "no PostgreSQL server is installed (initdb, postgres, pg_ctl): install Debian's \
                 postgresql package (scripts/dev.sh and scripts/test.sh do)"
            ),
        }
    }

    pub fn program(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    /// Whether the installation has the extension library `name` (`pg_config --pkglibdir`, else
    /// Debian's layout: `lib` beside `bin`).
    pub fn has_library(&self, name: &str) -> bool {
        let pkglibdir = std::process::Command::new(self.program("pg_config"))
            .arg("--pkglibdir")
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()))
            .unwrap_or_else(|| self.bin.with_file_name("lib"));
        pkglibdir.join(format!("{name}.so")).is_file()
    }

    /// The major version the server reports (`postgres --version`).
    pub fn major_version(&self) -> Option<String> {
        let output = std::process::Command::new(self.program("postgres"))
            .arg("--version")
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&output.stdout);
        let version = text.split_whitespace().nth(2)?;
        Some(version.split('.').next()?.to_owned())
    }
}

/// Who owns the cluster's files and runs its server: nobody else unless the caller is root, then
/// the `postgres` OS user (made when missing, as Debian's package makes it).
pub fn cluster_owner() -> anyhow::Result<Option<Owner>> {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        return Ok(None);
    }
    if lookup_user("postgres").is_none() {
        let status = std::process::Command::new("useradd")
            .args(["--system", "--user-group", "--no-create-home"])
            .args(["--home-dir", "/var/lib/postgresql", "--shell", "/bin/bash"])
            .arg("postgres")
            .status()
            .context("cannot run useradd")?;
        if !status.success() {
            bail!("cannot create the postgres OS user");
        }
    }
    lookup_user("postgres")
        .map(Some)
        .context("the postgres OS user has no entry")
}

fn lookup_user(name: &str) -> Option<Owner> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: getpwnam returns a pointer into static storage or null; read at once.
    unsafe {
        let entry = libc::getpwnam(name.as_ptr());
        (!entry.is_null()).then(|| Owner {
            uid: (*entry).pw_uid,
            gid: (*entry).pw_gid,
        })
    }
}

/// The settings of every private cluster: throw-away data, so no durability, and many
/// connections for the tests.
const SETTINGS: &[&str] = &[
    "listen_addresses=127.0.0.1",
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=400",
    "shared_buffers=128MB",
];

/// A private cluster: its data folder, the folder of its unix socket, and its port.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub installation: Installation,
    pub data: PathBuf,
    pub socket: PathBuf,
    pub port: u16,
    pub owner: Option<Owner>,
    pub log: PathBuf,
}

/// How a server is asked to stop (PostgreSQL's shutdown modes, by signal).
#[derive(Debug, Clone, Copy)]
pub enum Shutdown {
    /// SIGINT: every session is ended (SQLSTATE 57P01), then a clean checkpoint.
    Fast,
    /// SIGQUIT: at once, with crash recovery at the next start.
    Immediate,
}

impl Cluster {
    /// A cluster whose data is (or will be) in `data`, its socket beside it, on `port`.
    pub fn new(data: &Path, port: u16) -> anyhow::Result<Self> {
        let version = std::fs::read_to_string(data.join("PG_VERSION"))
            .ok()
            .map(|v| v.trim().to_owned());
        let installation = Installation::find(version.as_deref())?;
        if let Some(version) = &version
            && installation.major_version().as_deref() != Some(version.as_str())
        {
            bail!(
                "{} was made by PostgreSQL {version}, which is not installed (install \
                 postgresql-{version} or remove that folder)",
                data.display()
            );
        }
        let parent = data.parent().unwrap_or(Path::new("/"));
        let name = data.file_name().unwrap_or_default().to_string_lossy();
        let mut socket = parent.join(format!("{name}-socket"));
        // A unix socket path has at most 107 bytes, "/.s.PGSQL.NNNNN" included.
        if socket.as_os_str().len() > 90 {
            socket = std::env::temp_dir().join(format!("brf-pg-{}", short_hash(data)));
        }
        Ok(Self {
            installation,
            data: data.to_owned(),
            socket,
            port,
            owner: cluster_owner()?,
            log: data.join("server.log"),
        })
    }

    pub fn is_initialised(&self) -> bool {
        self.data.join("PG_VERSION").is_file()
    }

    /// `initdb` with superuser `postgres` and `password` (over TCP; trust on the socket).
    pub async fn init(&self, password: &str) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.data)?;
        let pwfile = self
            .data
            .parent()
            .unwrap_or(Path::new("/tmp"))
            .join(format!(".pwfile-{}", std::process::id()));
        std::fs::write(&pwfile, format!("{password}\n"))?;
        self.give_to_owner(&self.data)?;
        self.give_to_owner(&pwfile)?;
        let mut initdb = tokio::process::Command::new(self.installation.program("initdb"));
        initdb
            .arg("-D")
            .arg(&self.data)
            .args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .args(["--encoding=UTF8", "--no-locale", "--no-sync"])
            .stdin(Stdio::null());
        if let Some(owner) = self.owner {
            initdb.uid(owner.uid).gid(owner.gid).current_dir("/");
        }
        let output = initdb.output().await.context("cannot run initdb")?;
        let _ = std::fs::remove_file(&pwfile);
        if !output.status.success() {
            bail!(
                "initdb failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    fn give_to_owner(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(owner) = self.owner {
            std::os::unix::fs::chown(path, Some(owner.uid), Some(owner.gid))
                .with_context(|| format!("cannot give {} to postgres", path.display()))?;
        }
        Ok(())
    }

    /// The pid and port of a server already running on this data (an earlier run's), if any.
    pub fn running(&self) -> Option<(u32, u16)> {
        let pidfile = std::fs::read_to_string(self.data.join("postmaster.pid")).ok()?;
        let mut lines = pidfile.lines();
        let pid: u32 = lines.next()?.trim().parse().ok()?;
        let port: u16 = lines.nth(2)?.trim().parse().ok()?;
        alive(pid).then_some((pid, port))
    }

    /// Starts the server as a child of the caller and returns once it accepts connections.
    pub async fn start(&self, dies_with_supervisor: bool) -> anyhow::Result<Process> {
        std::fs::create_dir_all(&self.socket)?;
        std::fs::set_permissions(
            &self.socket,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )?;
        self.give_to_owner(&self.socket)?;
        let mut launch = Launch::new(self.installation.program("postgres"), &self.log)
            .arg("-D")
            .arg(&self.data)
            .args(["-c".to_owned(), format!("port={}", self.port)])
            .args([
                "-c".to_owned(),
                format!("unix_socket_directories={}", self.socket.display()),
            ])
            .owned_by(self.owner)
            .dying_with_supervisor(dies_with_supervisor);
        for setting in SETTINGS {
            launch = launch.args(["-c", setting]);
        }
        // pg_stat_statements (PostgreSQL's contrib, in the server package) where the installation
        // has it: the load runner's benchmark report counts the statements the fleet runs with it
        // (siege/statements.py); the extension is created only where it is read.
        if self.installation.has_library("pg_stat_statements") {
            launch = launch.args(["-c", "shared_preload_libraries=pg_stat_statements"]);
        }
        let mut server = Process::spawn("postgres", &launch)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = server.exited() {
                bail!(
                    "PostgreSQL exited while starting ({status}; is port {} taken?); its log, {}:\n{}",
                    self.port,
                    self.log.display(),
                    tail(&self.log, 20)
                );
            }
            if self.accepts_connections(server.pid()) {
                return Ok(server);
            }
            if Instant::now() > deadline {
                server.stop(libc::SIGQUIT, Duration::from_secs(5)).await;
                bail!(
                    "PostgreSQL did not start within 60 s; its log: {}",
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Has the server of `pid` said it is ready (the status `pg_ctl -w` waits for)?
    fn accepts_connections(&self, pid: u32) -> bool {
        let Ok(pidfile) = std::fs::read_to_string(self.data.join("postmaster.pid")) else {
            return false;
        };
        let lines: Vec<&str> = pidfile.lines().collect();
        lines.first().map(|l| l.trim()) == Some(pid.to_string().as_str())
            && lines.get(7).map(|l| l.trim()) == Some("ready")
    }

    /// Stops a server this caller started, returning once it is down.
    pub async fn stop(&self, server: &mut Process, how: Shutdown) -> anyhow::Result<()> {
        let signal = match how {
            Shutdown::Fast => libc::SIGINT,
            Shutdown::Immediate => libc::SIGQUIT,
        };
        let (status, killed) = server.stop(signal, Duration::from_secs(30)).await;
        if killed {
            bail!("PostgreSQL did not stop within 30 s; it was killed ({status})");
        }
        Ok(())
    }

    /// The superuser's URL, with `password`, on database `postgres`.
    pub fn admin_url(&self, password: &str) -> String {
        format!(
            "postgres://postgres:{password}@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }
}

/// 8 hex characters, stable for the same path.
pub(crate) fn short_hash(path: &Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    path.hash(&mut hasher);
    format!("{:08x}", hasher.finish() as u32)
}
