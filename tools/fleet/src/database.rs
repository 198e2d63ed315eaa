//! Where the fleet's database lives (a server named by the environment, or the private cluster
//! of this clone) and the fleet database in it: one role and one schema per service, made by
//! `scripts/sql/fleet-roles.sql`, the script a deployment's set-up runs too.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::layout::SERVICES;
use crate::postgres::{Cluster, Installation};
use crate::{log, urlencode};

/// A PostgreSQL server the fleet uses: its superuser URL, and how services reach it.
#[derive(Debug, Clone)]
pub struct Server {
    pub admin_url: String,
    pub host: String,
    pub port: u16,
    /// The query of every URL handed out (`sslmode=disable` on the private cluster).
    pub params: String,
}

impl Server {
    /// The server the environment names: `DATABASE_ADMIN_URL`, else libpq's `PGHOST` (with
    /// `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`). `None`: run the private cluster.
    pub fn from_environment() -> anyhow::Result<Option<Self>> {
        if let Ok(url) = std::env::var("DATABASE_ADMIN_URL")
            && !url.is_empty()
        {
            log("PostgreSQL: using DATABASE_ADMIN_URL");
            return Self::from_admin_url(&url).map(Some);
        }
        let Ok(host) = std::env::var("PGHOST") else {
            return Ok(None);
        };
        log(&format!("PostgreSQL: using PGHOST={host}"));
        let var =
            |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
        let host = if host.starts_with('/') {
            urlencode(&host)
        } else {
            host
        };
        let mut userinfo = urlencode(&var("PGUSER", "postgres"));
        if let Ok(password) = std::env::var("PGPASSWORD") {
            userinfo += &format!(":{}", urlencode(&password));
        }
        let port: u16 = var("PGPORT", "5432").parse().context("PGPORT is a port")?;
        let db = urlencode(&var("PGDATABASE", "postgres"));
        Ok(Some(Self {
            admin_url: format!("postgres://{userinfo}@{host}:{port}/{db}"),
            host,
            port,
            params: String::new(),
        }))
    }

    pub fn from_admin_url(admin_url: &str) -> anyhow::Result<Self> {
        let url = url::Url::parse(admin_url).context("DATABASE_ADMIN_URL must be a URL")?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            bail!("DATABASE_ADMIN_URL must be a postgres:// URL");
        }
        Ok(Self {
            admin_url: admin_url.to_owned(),
            host: url.host_str().unwrap_or("localhost").to_owned(),
            port: url.port().unwrap_or(5432),
            params: url.query().unwrap_or_default().to_owned(),
        })
    }

    /// The superuser URL on database `db`.
    pub fn admin_url_on(&self, db: &str) -> String {
        match url::Url::parse(&self.admin_url) {
            Ok(mut url) => {
                url.set_path(&urlencode(db));
                url.to_string()
            }
            Err(_) => self.admin_url.clone(),
        }
    }

    /// The URL service role `role` connects to database `db` with.
    pub fn service_url(&self, role: &str, db: &str) -> String {
        let query = if self.params.is_empty() {
            String::new()
        } else {
            format!("?{}", self.params)
        };
        format!(
            "postgres://{}:{}@{}:{}/{}{query}",
            urlencode(role),
            urlencode(&role_password(role)),
            self.host,
            self.port,
            urlencode(db)
        )
    }
}

/// `FLEET_DB_PASSWORD_<ROLE>`, else the role's name: a local development default (deployments
/// take theirs from a Secret).
pub fn role_password(role: &str) -> String {
    std::env::var(format!("FLEET_DB_PASSWORD_{}", role.to_uppercase()))
        .unwrap_or_else(|_| role.to_owned())
}

/// The private cluster's data folder: `FLEET_PG_DATA_DIR`, else `target/postgres` of the clone,
/// or a folder under the temporary one when the cluster's owner cannot reach into the clone (a
/// home folder closed to others, say).
pub fn private_data_dir(owner_can_enter: impl Fn(&Path) -> bool) -> PathBuf {
    if let Some(dir) = std::env::var_os("FLEET_PG_DATA_DIR") {
        return PathBuf::from(dir);
    }
    let parent = crate::repository().join("target");
    let _ = std::fs::create_dir_all(&parent);
    if owner_can_enter(&parent) {
        return parent.join("postgres");
    }
    let dir = std::env::temp_dir().join(format!(
        "book-rental-fleet-pg-{}",
        crate::postgres::short_hash(&parent)
    ));
    log(&format!(
        "postgres cannot enter {}; the private cluster lives in {}",
        parent.display(),
        dir.display()
    ));
    dir
}

/// Can the cluster's owner (uid, gid) go into `dir` and every folder above it?
pub fn can_enter(dir: &Path, owner: Option<crate::process::Owner>) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(owner) = owner else { return true };
    let Ok(dir) = std::fs::canonicalize(dir) else {
        return false;
    };
    dir.ancestors().all(|folder| {
        std::fs::metadata(folder).is_ok_and(|m| {
            let mode = m.mode();
            (m.uid() == owner.uid && mode & 0o100 != 0)
                || (m.gid() == owner.gid && mode & 0o010 != 0)
                || mode & 0o001 != 0
        })
    })
}

/// `psql` of the installation, else on the `PATH`.
fn psql(installation: Option<&Installation>) -> PathBuf {
    installation
        .map(|i| i.program("psql"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("psql"))
}

/// Runs psql as the superuser on `db` with `args`, `input` on its standard input.
pub async fn psql_admin(
    server: &Server,
    installation: Option<&Installation>,
    db: &str,
    args: &[&str],
    input: Option<&str>,
) -> anyhow::Result<String> {
    use tokio::io::AsyncWriteExt;
    let mut command = tokio::process::Command::new(psql(installation));
    command
        .arg(server.admin_url_on(db))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().context("cannot run psql")?;
    let mut stdin = child.stdin.take().expect("piped");
    if let Some(input) = input {
        stdin.write_all(input.as_bytes()).await?;
    }
    drop(stdin);
    let output = child.wait_with_output().await?;
    if !output.status.success() {
        bail!(
            "psql on {db} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Drops database `db`, sessions and all.
pub async fn drop_database(
    server: &Server,
    installation: Option<&Installation>,
    db: &str,
) -> anyhow::Result<()> {
    log(&format!("dropping database {db}"));
    let sql = format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)");
    psql_admin(server, installation, "postgres", &["-c", &sql], None).await?;
    Ok(())
}

/// Database `db` with one role and schema per service (idempotent).
pub async fn create_fleet_database(
    server: &Server,
    installation: Option<&Installation>,
    db: &str,
) -> anyhow::Result<()> {
    log(&format!("database {db}: one role and schema per service"));
    let create = "SELECT format('CREATE DATABASE %I', :'db') \
                  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\n\\gexec\n";
    let db_var = format!("db={db}");
    psql_admin(
        server,
        installation,
        "postgres",
        &["-v", &db_var],
        Some(create),
    )
    .await?;
    let script = crate::repository().join("scripts/sql/fleet-roles.sql");
    let script = script.display().to_string();
    for (role, schema) in SERVICES.iter().filter_map(|s| s.database) {
        let (role_var, schema_var) = (format!("role={role}"), format!("schema={schema}"));
        let password_var = format!("password={}", role_password(role));
        psql_admin(
            server,
            installation,
            db,
            &[
                "-v",
                &role_var,
                "-v",
                &schema_var,
                "-v",
                &password_var,
                "-f",
                &script,
            ],
            None,
        )
        .await
        .with_context(|| format!("cannot make role {role} and schema {schema}"))?;
    }
    Ok(())
}

/// The private cluster of this clone, as the scripts have always run it: `target/postgres`,
/// 127.0.0.1 on `FLEET_PG_PORT` (default 55432, or the next free port when that default is
/// taken), superuser `postgres` with password `FLEET_PG_SUPERUSER_PASSWORD` (default
/// `postgres`).
pub struct PrivateCluster {
    pub cluster: Cluster,
    pub password: String,
}

impl PrivateCluster {
    pub fn configure() -> anyhow::Result<Self> {
        let owner = crate::postgres::cluster_owner()?;
        let data = private_data_dir(|dir| can_enter(dir, owner));
        let port = match std::env::var("FLEET_PG_PORT") {
            Ok(port) if !port.is_empty() => port.parse().context("FLEET_PG_PORT is a port")?,
            // The default port is taken (another clone's cluster, say): the next free one.
            _ => crate::process::next_free_port(55432),
        };
        let cluster = Cluster::new(&data, port)?;
        let password =
            std::env::var("FLEET_PG_SUPERUSER_PASSWORD").unwrap_or_else(|_| "postgres".into());
        Ok(Self { cluster, password })
    }

    /// The server's description for URLs, on the port it runs on.
    pub fn server(&self, port: u16) -> Server {
        Server {
            admin_url: format!(
                "postgres://postgres:{}@127.0.0.1:{port}/postgres?sslmode=disable",
                urlencode(&self.password)
            ),
            host: "127.0.0.1".into(),
            port,
            // Plain text on the loopback: the cluster may serve TLS (the TLS tests' role), and
            // sqlx's default `prefer` would take it for every connection.
            params: "sslmode=disable".into(),
        }
    }
}

/// The fleet's PostgreSQL once it answers: a server the environment names, or the private
/// cluster (started here unless an earlier run left it running, which is then used and left
/// running).
pub struct Postgres {
    pub server: Server,
    pub installation: Option<Installation>,
    pub cluster: Option<Cluster>,
    /// The server this caller started and must stop.
    pub process: Option<crate::process::Process>,
}

impl Postgres {
    pub async fn ensure(dies_with_supervisor: bool) -> anyhow::Result<Self> {
        if let Some(server) = Server::from_environment()? {
            return Ok(Self {
                server,
                installation: Installation::find(None).ok(),
                cluster: None,
                process: None,
            });
        }
        let private = PrivateCluster::configure()?;
        let mut cluster = private.cluster.clone();
        if !cluster.is_initialised() {
            log(&format!(
                "initialising a private PostgreSQL cluster in {}",
                cluster.data.display()
            ));
            cluster.init(&private.password).await?;
        }
        let mut process = None;
        if let Some((pid, port)) = cluster.running() {
            // An earlier run's (a dev.sh in another terminal, say): used, and left running.
            if port != cluster.port {
                log(&format!(
                    "WARNING: the private cluster is already running on port {port}; using that"
                ));
                cluster.port = port;
            }
            log(&format!(
                "private PostgreSQL already running (pid {pid}, 127.0.0.1:{port}, {})",
                cluster.data.display()
            ));
        } else {
            log(&format!(
                "starting private PostgreSQL on 127.0.0.1:{} ({})",
                cluster.port,
                cluster.data.display()
            ));
            process = Some(cluster.start(dies_with_supervisor).await?);
        }
        Ok(Self {
            server: private.server(cluster.port),
            installation: Some(cluster.installation.clone()),
            cluster: Some(cluster),
            process,
        })
    }

    /// Stops the private cluster if this caller started it.
    pub async fn stop(&mut self) {
        if let (Some(cluster), Some(mut process)) = (&self.cluster, self.process.take()) {
            log(&format!(
                "stopping private PostgreSQL ({})",
                cluster.data.display()
            ));
            if let Err(e) = cluster
                .stop(&mut process, crate::postgres::Shutdown::Fast)
                .await
            {
                log(&format!("WARNING: {e:#}"));
            }
        }
    }
}
