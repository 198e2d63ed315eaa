//! PostgreSQL for tests: the cluster the test command started (`DATABASE_ADMIN_URL`), a fresh
//! database per test, or a private cluster a test owns and may stop.

use std::path::Path;
use std::process::Stdio;

use reqwest::Url;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use uuid::Uuid;

use crate::ReservedPort;

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
