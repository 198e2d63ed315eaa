//! PostgreSQL for tests: the cluster the test command started (`DATABASE_ADMIN_URL`), a fresh
//! database per test, or a private cluster a test owns and may stop.

use std::process::Stdio;
use std::time::Duration;

use fleet::postgres::{Cluster, Shutdown};
use fleet::process::Process;
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

    /// A database on the shared test cluster in UTF-8 with a UTF-8 locale (`C.utf8`, which
    /// every glibc has), as deployments' servers are, where the cluster's own is `--no-locale`.
    pub async fn create_utf8() -> Self {
        Self::create_as(
            &admin_url(),
            "TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C.utf8' LC_CTYPE 'C.utf8'",
        )
        .await
    }

    /// A database on the cluster of superuser URL `admin_url` (a [`TestPostgres`], say).
    pub async fn create_on(admin_url: &str) -> Self {
        Self::create_as(admin_url, "").await
    }

    async fn create_as(admin_url: &str, options: &str) -> Self {
        let name = format!("test_{}", Uuid::new_v4().simple());
        let mut server = PgConnection::connect(admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot reach the test Postgres at DATABASE_ADMIN_URL ({admin_url}): {e}; run the tests through scripts/test.sh"));
        server
            .execute(format!(r#"CREATE DATABASE "{name}" {options}"#).as_str())
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

/// A PostgreSQL cluster of the test's own, for tests that restart or stop the database: the
/// supervisor's private cluster ([`fleet::postgres::Cluster`]) in a temporary folder, on a free
/// loopback port. It is stopped and removed when dropped, and by a watchdog when the test
/// process ends without dropping it (a panic across threads, a kill). Make databases on it with
/// [`TestDatabase::create_on`].
pub struct TestPostgres {
    /// The superuser's URL (user and password `postgres`, database `postgres`).
    pub admin_url: String,
    cluster: Cluster,
    /// The server while it runs.
    server: tokio::sync::Mutex<Option<Process>>,
    /// Held while the cluster lives, so no other test's server takes the port across a restart.
    _reserved: ReservedPort,
    /// Everything of the cluster: data, socket, logs.
    root: std::path::PathBuf,
}

/// The superuser's password of a cluster of the test's own, as the private cluster's default.
const OWN_PG_PASSWORD: &str = "postgres";

impl TestPostgres {
    /// Initialises and starts the cluster; returns once it accepts connections.
    pub async fn own() -> Self {
        let root = std::env::temp_dir().join(format!(
            "fleet-pg-{}",
            &Uuid::new_v4().simple().to_string()[..12]
        ));
        std::fs::create_dir_all(&root).expect("create the cluster's folder");
        let reserved = ReservedPort::new();
        let port = reserved.port();
        let cluster = Cluster::new(&root.join("data"), port)
            .unwrap_or_else(|e| panic!("a cluster of the test's own: {e:#}"));
        cluster
            .init(OWN_PG_PASSWORD)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        let postgres = Self {
            admin_url: format!("postgres://postgres:{OWN_PG_PASSWORD}@127.0.0.1:{port}/postgres"),
            cluster,
            server: tokio::sync::Mutex::new(None),
            _reserved: reserved,
            root,
        };
        postgres.watch();
        postgres.start().await;
        postgres
    }

    /// The server's own log.
    pub fn log(&self) -> std::path::PathBuf {
        self.cluster.log.clone()
    }

    /// Starts the (stopped) server; returns once it accepts connections.
    pub async fn start(&self) {
        let mut server = self.server.lock().await;
        assert!(server.is_none(), "the test's PostgreSQL is running already");
        // Its threads come and go: the watchdog, not the thread, ends it with the test.
        *server = Some(
            self.cluster
                .start(false)
                .await
                .unwrap_or_else(|e| panic!("{e:#}")),
        );
    }

    /// A fast shutdown, as an operator stops it (`pg_ctl stop -m fast`): every session is ended
    /// (SQLSTATE 57P01) and new ones refused. Returns once the server is down.
    pub async fn stop(&self) {
        let mut server = self.server.lock().await;
        let mut process = server.take().expect("the test's PostgreSQL is running");
        self.cluster
            .stop(&mut process, Shutdown::Fast)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
    }

    /// A fast restart, as an operator restarts it (a configuration change, a minor upgrade).
    /// Returns once it accepts connections again.
    pub async fn restart_fast(&self) {
        self.stop().await;
        self.start().await;
    }

    /// A process outside the test's that stops the server at once and removes its folder once
    /// the test process is gone, in its own process group so that a runner killing the test's
    /// group does not take it along.
    fn watch(&self) {
        use std::os::unix::process::CommandExt;
        let pidfile = self.cluster.data.join("postmaster.pid");
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             kill -QUIT \"$(head -n 1 '{pidfile}' 2>/dev/null)\" 2>/dev/null; sleep 1; rm -rf '{root}'",
            pid = std::process::id(),
            pidfile = pidfile.display(),
            root = self.root.display()
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
        // Its data is thrown away: an immediate stop, nothing to shut down cleanly for.
        if let Some(server) = self.server.get_mut().take() {
            server.signal(libc::SIGQUIT);
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while fleet::process::alive(server.pid()) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
