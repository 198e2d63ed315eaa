//! `fleet up`: the whole fleet on this machine, infrastructure included, until a stop signal.
//!
//! A service that exits is started again, as Kubernetes restarts a pod; one that fails (exits
//! non-zero) within the crash window of its start is crash-looping, and the fleet stops. What a
//! tool driving the fleet needs (pids, logs, addresses) is written under `target/dev-logs`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::signal::unix::{SignalKind, signal};

use crate::database::{Postgres, create_fleet_database, drop_database};
use crate::kafka::{Broker, Credentials};
use crate::layout::{Instance, Replicas, instances, peers};
use crate::process::{Launch, Process, next_free_port, port_in_use, tail};
use crate::{format_elapsed, http_status, log, repository, setting};

/// Which Kafka the fleet uses when `KAFKA_BROKERS` names none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaChoice {
    /// A real Apache Kafka broker, its data kept across runs.
    Real,
    /// librdkafka's mock cluster (`dev-broker`): no JVM, keeps nothing.
    Mock,
}

/// What `fleet up` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the fleet's binaries are (`$CARGO_TARGET_DIR/<profile>`).
    pub bin_dir: PathBuf,
    pub fresh: bool,
    pub kafka: KafkaChoice,
    pub with_prometheus: bool,
    /// Jaeger's binary and configuration, when traces are asked for.
    pub tracing: Option<(PathBuf, PathBuf)>,
}

/// The settings every run reads from the environment.
struct Settings {
    logs: PathBuf,
    secrets: PathBuf,
    kafka_data: PathBuf,
    ready_timeout: Duration,
    stop_timeout: Duration,
    crash_window: Duration,
    db_name: String,
    rust_log: String,
    replicas: Replicas,
    prometheus_port: u16,
    otlp_port: u16,
    jaeger_port: u16,
}

impl Settings {
    fn read() -> anyhow::Result<Self> {
        let target = repository().join("target");
        Ok(Self {
            logs: target.join("dev-logs"),
            secrets: target.join("dev-secrets"),
            kafka_data: target.join("kafka/dev"),
            ready_timeout: Duration::from_secs(setting("FLEET_READY_TIMEOUT", 60)?),
            stop_timeout: Duration::from_secs(setting("FLEET_STOP_TIMEOUT", 30)?),
            crash_window: Duration::from_secs(setting("FLEET_CRASH_WINDOW", 10)?),
            db_name: setting("FLEET_DB_NAME", "fleet".to_owned())?,
            rust_log: setting("RUST_LOG", "info".to_owned())?,
            replicas: Replicas::parse(&std::env::var("FLEET_REPLICAS").unwrap_or_default())?,
            prometheus_port: setting("FLEET_PROMETHEUS_PORT", 9090)?,
            otlp_port: setting("FLEET_OTLP_PORT", 4318)?,
            jaeger_port: setting("FLEET_JAEGER_PORT", 16686)?,
        })
    }
}

/// A service process and what it takes to start it again.
struct Running {
    instance: Instance,
    launch: Launch,
    process: Process,
}

/// Everything started so far, stopped in reverse order of need.
#[derive(Default)]
struct Fleet {
    services: Vec<Running>,
    prometheus: Option<Process>,
    jaeger: Option<Process>,
    mock_broker: Option<Process>,
    kafka: Option<Process>,
    postgres: Option<Postgres>,
}

/// Runs the fleet until SIGINT, SIGTERM or SIGHUP (exit 0), or until something fails (an error).
pub async fn run(options: Options) -> anyhow::Result<()> {
    let settings = Settings::read()?;
    std::fs::create_dir_all(&settings.logs)?;
    // Handlers first: a signal during start-up stops what has started.
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut fleet = Fleet::default();
    let outcome = tokio::select! {
        outcome = async {
            start(&options, &settings, &mut fleet).await?;
            supervise(&settings, &mut fleet).await
        } => outcome,
        _ = interrupt.recv() => { log("interrupted"); Ok(()) }
        _ = terminate.recv() => { log("interrupted"); Ok(()) }
        _ = hangup.recv() => { log("hung up"); Ok(()) }
    };
    if let Err(e) = &outcome {
        log(&format!("ERROR: {e:#}"));
    }
    fleet.stop(&settings).await;
    outcome
}

async fn start(options: &Options, settings: &Settings, fleet: &mut Fleet) -> anyhow::Result<()> {
    let built = |name: &str| options.bin_dir.join(name).is_file();
    for name in crate::layout::SERVICES
        .iter()
        .map(|s| s.name)
        .filter(|n| !built(n))
    {
        log(&format!(
            "skipping {name}: {} is not built",
            options.bin_dir.join(name).display()
        ));
    }
    let to_start = instances(&settings.replicas, built);
    if to_start.is_empty() {
        bail!("no service binary found in {}", options.bin_dir.display());
    }
    // Every port checked before anything starts.
    for instance in &to_start {
        if port_in_use(instance.port) {
            bail!(
                "port {} (for {}) is already in use",
                instance.port,
                instance.name
            );
        }
        if port_in_use(instance.ops_port) {
            bail!(
                "port {} (for {}'s operations port) is already in use",
                instance.ops_port,
                instance.name
            );
        }
    }
    if options.with_prometheus && port_in_use(settings.prometheus_port) {
        bail!(
            "port {} (for prometheus) is already in use",
            settings.prometheus_port
        );
    }
    if options.tracing.is_some() {
        let (otlp, ui) = (settings.otlp_port, settings.jaeger_port);
        for port in [otlp - 1, otlp, ui - 1, ui, ui + 1] {
            if port_in_use(port) {
                bail!(
                    "port {port} (for jaeger) is already in use (FLEET_OTLP_PORT, FLEET_JAEGER_PORT)"
                );
            }
        }
    }

    // PostgreSQL.
    let postgres = fleet.postgres.insert(Postgres::ensure(true).await?);
    if options.fresh {
        drop_database(
            &postgres.server,
            postgres.installation.as_ref(),
            &settings.db_name,
        )
        .await?;
    }
    create_fleet_database(
        &postgres.server,
        postgres.installation.as_ref(),
        &settings.db_name,
    )
    .await?;

    // Kafka.
    let (brokers, kafka_kind) = start_kafka(options, settings, fleet).await?;

    // Jaeger, before the services, so that their first spans have somewhere to go.
    let mut jaeger_ui = false;
    if let Some((binary, config)) = &options.tracing {
        let (otlp, ui) = (settings.otlp_port, settings.jaeger_port);
        log(&format!(
            "starting jaeger: UI on port {ui}, OTLP/HTTP on port {otlp} (log: {}/jaeger.log)",
            settings.logs.display()
        ));
        // The Kubernetes component's configuration, on loopback and these ports.
        let launch = Launch::new(binary, settings.logs.join("jaeger.log"))
            .arg(format!("--config={}", config.display()))
            .env("JAEGER_LISTEN_HOST", "127.0.0.1")
            .env("JAEGER_QUERY_HOST", "127.0.0.1")
            .env("JAEGER_OTLP_HTTP_PORT", otlp.to_string())
            .env("JAEGER_OTLP_GRPC_PORT", (otlp - 1).to_string())
            .env("JAEGER_UI_PORT", ui.to_string())
            .env("JAEGER_QUERY_GRPC_PORT", (ui - 1).to_string())
            .env("JAEGER_HEALTH_PORT", (ui + 1).to_string())
            .env("GOMEMLIMIT", "360MiB")
            .dying_with_supervisor(true);
        let jaeger = fleet.jaeger.insert(Process::spawn("jaeger", &launch)?);
        write_pid(settings, "jaeger", jaeger.pid());
        wait_ready(
            jaeger,
            &launch.log,
            ui + 1,
            "/status",
            settings.ready_timeout,
        )
        .await?;
        // Built from the Go module, Jaeger has no UI pages (release builds embed them).
        jaeger_ui = !std::fs::read_to_string(&launch.log)
            .unwrap_or_default()
            .contains("ui assets not embedded");
    }

    // The services.
    let postgres = fleet.postgres.as_ref().expect("started above");
    for instance in to_start {
        let mut launch = Launch::new(
            options.bin_dir.join(instance.service.name),
            settings.logs.join(format!("{}.log", instance.name)),
        )
        // Loopback only: internal endpoints and metrics are not for the network.
        .env("HTTP_HOST", "127.0.0.1")
        .env("HTTP_PORT", instance.port.to_string())
        .env("OPS_PORT", instance.ops_port.to_string())
        .env("KAFKA_BROKERS", &brokers)
        .env("RUST_LOG", &settings.rust_log)
        .dying_with_supervisor(true);
        // Each service signs in to the broker the fleet runs as its own principal (the
        // gateway uses no Kafka). The mock has no authentication; a broker of KAFKA_BROKERS
        // takes the settings the caller gives.
        if kafka_kind == "real" && instance.service.database.is_some() {
            for (name, value) in Credentials::service(instance.service.name).env() {
                launch = launch.env(name, value);
            }
        }
        if let Some((role, _)) = instance.service.database {
            launch = launch.env(
                "DATABASE_URL",
                postgres.server.service_url(role, &settings.db_name),
            );
        }
        if options.tracing.is_some() {
            // Each process names itself (service.name); the SDK appends /v1/traces.
            launch = launch.env(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://127.0.0.1:{}", settings.otlp_port),
            );
        }
        for pair in peers(instance.service.name, &settings.replicas, built)
            .into_iter()
            .chain(secrets_of(instance.service.name, &settings.secrets)?)
        {
            if let Some((name, value)) = pair.split_once('=') {
                launch = launch.env(name, value);
            }
        }
        log(&format!(
            "starting {} on port {}, operations port {} (log: {})",
            instance.name,
            instance.port,
            instance.ops_port,
            launch.log.display()
        ));
        std::fs::write(&launch.log, "")?;
        let process = Process::spawn(&instance.name, &launch)?;
        write_pid(settings, &instance.name, process.pid());
        fleet.services.push(Running {
            instance,
            launch,
            process,
        });
    }
    for running in &mut fleet.services {
        // Where Kubernetes probes it too: the operations port.
        wait_ready(
            &mut running.process,
            &running.launch.log,
            running.instance.ops_port,
            "/readyz",
            settings.ready_timeout,
        )
        .await?;
    }

    if options.with_prometheus {
        fleet.prometheus = Some(start_prometheus(settings, fleet)?);
    }

    // What a tool driving this fleet needs to reach it (siege/run reads it).
    let postgres = fleet.postgres.as_ref().expect("started above");
    std::fs::write(
        settings.logs.join("fleet.env"),
        format!(
            "DATABASE_ADMIN_URL={}\nFLEET_DB_NAME={}\nKAFKA_BROKERS={brokers}\nFLEET_KAFKA={kafka_kind}\n",
            postgres.server.admin_url, settings.db_name
        ),
    )?;
    print_summary(options, settings, fleet, &brokers, jaeger_ui);
    Ok(())
}

/// Starts (or finds) the broker; returns its bootstrap servers and what kind it is.
async fn start_kafka(
    options: &Options,
    settings: &Settings,
    fleet: &mut Fleet,
) -> anyhow::Result<(String, &'static str)> {
    let dev_broker = options.bin_dir.join("dev-broker");
    if !dev_broker.is_file() {
        bail!(
            "{} is not built (run without --no-build)",
            dev_broker.display()
        );
    }
    let external = std::env::var("KAFKA_BROKERS")
        .ok()
        .filter(|b| !b.is_empty());
    if external.is_none() && options.kafka == KafkaChoice::Mock {
        let bootstrap_file = settings.logs.join("dev-broker.bootstrap");
        let _ = std::fs::remove_file(&bootstrap_file);
        let launch = Launch::new(&dev_broker, settings.logs.join("dev-broker.log"))
            .args(["--partitions", "3", "--bootstrap-file"])
            .arg(&bootstrap_file)
            .env("RUST_LOG", &settings.rust_log)
            .dying_with_supervisor(true);
        log(&format!(
            "starting dev-broker (log: {})",
            launch.log.display()
        ));
        let broker = fleet
            .mock_broker
            .insert(Process::spawn("dev-broker", &launch)?);
        let deadline = Instant::now() + Duration::from_secs(30);
        let brokers = loop {
            let written = std::fs::read_to_string(&bootstrap_file).unwrap_or_default();
            if !written.trim().is_empty() {
                break written.trim().to_owned();
            }
            if broker.exited().is_some() {
                bail!(
                    "dev-broker exited during startup (log: {}):\n{}",
                    launch.log.display(),
                    tail(&launch.log, 20)
                );
            }
            if Instant::now() > deadline {
                bail!("dev-broker wrote no bootstrap address within 30s");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        log(&format!("dev-broker answers at {brokers}"));
        return Ok((brokers, "mock"));
    }
    let (brokers, kind) = match external {
        Some(brokers) => {
            log(&format!("Kafka: using KAFKA_BROKERS={brokers}"));
            (brokers, "external")
        }
        None => {
            if options.fresh {
                log(&format!(
                    "removing the broker's data ({})",
                    settings.kafka_data.display()
                ));
                let _ = std::fs::remove_dir_all(&settings.kafka_data);
            }
            let port = next_free_port(setting("FLEET_KAFKA_PORT", 59092)?);
            let broker = Broker::new(&settings.kafka_data, port, next_free_port(port + 1));
            log(&format!(
                "starting Apache Kafka on 127.0.0.1:{port} (log: {})",
                broker.log().display()
            ));
            let started = Instant::now();
            let process = fleet.kafka.insert(broker.start(true, None).await?);
            write_pid(settings, "kafka", process.pid());
            log(&format!(
                "Kafka answers at {} (ready in {})",
                broker.bootstrap_servers(),
                format_elapsed(started.elapsed())
            ));
            (broker.bootstrap_servers(), "real")
        }
    };
    // Topics are created explicitly, never by a producer's first message; on the broker the
    // fleet runs, with each service's credential and ACLs.
    let mut command = tokio::process::Command::new(&dev_broker);
    if kind == "real" {
        command.arg("--access");
    }
    let status = command
        .args(["--ensure-topics-on", &brokers, "--partitions"])
        .arg(setting("FLEET_KAFKA_PARTITIONS", 3u32)?.to_string())
        .arg("--replication")
        .arg(setting("FLEET_KAFKA_REPLICATION", 1u32)?.to_string())
        .status()
        .await?;
    if !status.success() {
        bail!(
            "cannot create the fleet's topics (and on its own broker, the services' credentials and ACLs) on {brokers}"
        );
    }
    Ok((brokers, kind))
}

/// A service's secrets from the deployment's secret files (scripts/make-secrets.sh): rental's
/// client secret for rental and the user service, the manager's account for the user service.
fn secrets_of(service: &str, secrets: &Path) -> anyhow::Result<Vec<String>> {
    let files: &[&str] = match service {
        "rental" => &["rental-client.env"],
        "user" => &["manager.env", "rental-client.env"],
        _ => &[],
    };
    let mut pairs = Vec::new();
    for file in files {
        let path = secrets.join(file);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {} (scripts/make-secrets.sh makes it)",
                path.display()
            )
        })?;
        pairs.extend(
            text.lines()
                .filter(|l| l.contains('=') && !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    Ok(pairs)
}

fn write_pid(settings: &Settings, name: &str, pid: u32) {
    let _ = std::fs::write(
        settings.logs.join(format!("{name}.pid")),
        format!("{pid}\n"),
    );
}

/// Waits until `GET path` on `port` answers 200; fails with the log when the process exits
/// first or the time runs out.
async fn wait_ready(
    process: &mut Process,
    log_file: &Path,
    port: u16,
    path: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let owned = path.to_owned();
        let probe =
            tokio::task::spawn_blocking(move || http_status(port, &owned, Duration::from_secs(2)));
        if probe.await? == Some(200) {
            return Ok(());
        }
        if process.exited().is_some() {
            bail!(
                "{} exited during startup (log: {}):\n{}",
                process.name,
                log_file.display(),
                tail(log_file, 20)
            );
        }
        if Instant::now() > deadline {
            bail!(
                "{} is not ready at http://127.0.0.1:{port}{path} after {}s (log: {})",
                process.name,
                timeout.as_secs(),
                log_file.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn start_prometheus(settings: &Settings, fleet: &Fleet) -> anyhow::Result<Process> {
    let dir = repository().join("target/dev-prometheus");
    std::fs::create_dir_all(dir.join("data"))?;
    // The cluster's configuration finds replicas through DNS; here every process is local.
    let targets: String = fleet
        .services
        .iter()
        .map(|r| format!("          - 127.0.0.1:{}\n", r.instance.ops_port))
        .collect();
    let rules = repository().join("kubernetes/base/observability/alerts.yml");
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 5s\n  evaluation_interval: 15s\nrule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: fleet\n    static_configs:\n      - targets:\n{targets}",
            rules.display()
        ),
    )?;
    let launch = Launch::new("prometheus", settings.logs.join("prometheus.log"))
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!(
            "--web.listen-address=127.0.0.1:{}",
            settings.prometheus_port
        ))
        .dying_with_supervisor(true);
    log(&format!(
        "starting prometheus on port {} (log: {})",
        settings.prometheus_port,
        launch.log.display()
    ));
    Process::spawn("prometheus", &launch)
}

fn print_summary(
    options: &Options,
    settings: &Settings,
    fleet: &Fleet,
    brokers: &str,
    jaeger_ui: bool,
) {
    let mut out = String::from("\n");
    out += &format!("{:<17} {:<24} {:<10} {}\n", "service", "url", "ops", "log");
    for r in &fleet.services {
        out += &format!(
            "{:<17} {:<24} {:<10} {}\n",
            r.instance.name,
            format!("http://127.0.0.1:{}", r.instance.port),
            r.instance.ops_port,
            r.launch.log.display()
        );
    }
    if fleet.prometheus.is_some() {
        out += &format!(
            "{:<17} {:<24} {:<10} {}\n",
            "prometheus",
            format!("http://127.0.0.1:{}", settings.prometheus_port),
            "-",
            settings.logs.join("prometheus.log").display()
        );
    }
    if fleet.jaeger.is_some() {
        out += &format!(
            "{:<17} {:<24} {:<10} {}\n",
            "jaeger",
            format!("http://127.0.0.1:{}", settings.jaeger_port),
            "-",
            settings.logs.join("jaeger.log").display()
        );
    }
    out += "\n";
    out += &if fleet.mock_broker.is_some() {
        format!("kafka broker:  {brokers} (librdkafka's mock, dev-broker)\n")
    } else if fleet.kafka.is_some() {
        format!(
            "kafka broker:  {brokers} (Apache Kafka, log: {})\n",
            settings.kafka_data.join("broker.log").display()
        )
    } else {
        format!("kafka broker:  {brokers}\n")
    };
    if let Some(postgres) = &fleet.postgres {
        out += &format!(
            "postgres:      {}:{}, database {}\n",
            postgres.server.host, postgres.server.port, settings.db_name
        );
    }
    let manager = std::fs::read_to_string(settings.secrets.join("manager.env")).unwrap_or_default();
    let value = |name: &str| {
        manager
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or("?")
            .to_owned()
    };
    out += &format!(
        "manager:       {} / {} ({})\n",
        value("MANAGER_EMAIL"),
        value("MANAGER_PASSWORD"),
        settings.secrets.join("manager.env").display()
    );
    if options.bin_dir.join("gateway").is_file() {
        out += "public API:    http://127.0.0.1:8080/api/v1 (Swagger UI: http://127.0.0.1:8080/api/v1/docs/)\n";
    }
    if fleet.jaeger.is_some() {
        let (ui, otlp) = (settings.jaeger_port, settings.otlp_port);
        out += &if jaeger_ui {
            format!(
                "traces:        http://127.0.0.1:{ui} (Jaeger UI; every process sends OTLP to http://127.0.0.1:{otlp})\n"
            )
        } else {
            format!(
                "traces:        http://127.0.0.1:{ui}/api/traces?service=gateway&limit=20 (Jaeger's query API;\n               \
                 every process sends OTLP to http://127.0.0.1:{otlp}). This Jaeger, built from its\n               \
                 Go module, has no UI pages: FLEET_JAEGER_BIN takes a release binary that has them\n"
            )
        };
    }
    out += "\nThe fleet is up. Press Ctrl-C to stop it.\n";
    eprint!("{out}");
}

/// Until a signal (which drops this future) or a failure: restarts what exits, unless it
/// crash-loops; the infrastructure exiting ends the run.
async fn supervise(settings: &Settings, fleet: &mut Fleet) -> anyhow::Result<()> {
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        for running in &mut fleet.services {
            let Some(status) = running.process.exited() else {
                continue;
            };
            let name = running.instance.name.clone();
            if !status.success() && running.process.uptime() < settings.crash_window {
                bail!(
                    "{name} exited ({status}) within {}s of its start: it is crash-looping (log: {}):\n{}",
                    settings.crash_window.as_secs(),
                    running.launch.log.display(),
                    tail(&running.launch.log, 20)
                );
            }
            log(&format!("{name} exited ({status}); starting it again"));
            running.process = Process::spawn(&name, &running.launch)?;
            write_pid(settings, &name, running.process.pid());
        }
        for (what, process, log_file) in [
            (
                "prometheus",
                &mut fleet.prometheus,
                settings.logs.join("prometheus.log"),
            ),
            (
                "jaeger",
                &mut fleet.jaeger,
                settings.logs.join("jaeger.log"),
            ),
            (
                "dev-broker",
                &mut fleet.mock_broker,
                settings.logs.join("dev-broker.log"),
            ),
            (
                "Kafka",
                &mut fleet.kafka,
                settings.kafka_data.join("broker.log"),
            ),
        ] {
            if let Some(process) = process
                && let Some(status) = process.exited()
            {
                bail!(
                    "{what} exited ({status}; log: {}):\n{}",
                    log_file.display(),
                    tail(&log_file, 20)
                );
            }
        }
    }
}

impl Fleet {
    /// Stops everything in order: the services (in parallel, so they drain together), then what
    /// they used; whatever does not stop within the stop timeout is killed.
    async fn stop(&mut self, settings: &Settings) {
        let grace = settings.stop_timeout;
        if !self.services.is_empty() {
            let names: Vec<&str> = self
                .services
                .iter()
                .map(|r| r.instance.name.as_str())
                .collect();
            log(&format!("stopping services: {}", names.join(" ")));
            for running in &self.services {
                running.process.signal(libc::SIGTERM);
            }
            for running in &mut self.services {
                let (_, killed) = running.process.finish(grace).await;
                if killed {
                    log(&format!(
                        "WARNING: {} did not stop within {}s; killed it",
                        running.instance.name,
                        grace.as_secs()
                    ));
                }
            }
        }
        // After the services: their last spans, flushed as they stop, still land.
        for (name, process) in [
            ("prometheus", &mut self.prometheus),
            ("jaeger", &mut self.jaeger),
            ("dev-broker", &mut self.mock_broker),
            ("Kafka", &mut self.kafka),
        ] {
            if let Some(mut process) = process.take() {
                log(&format!("stopping {name}"));
                let (_, killed) = process.stop(libc::SIGTERM, grace).await;
                if killed {
                    log(&format!(
                        "WARNING: {name} did not stop within {}s; killed it",
                        grace.as_secs()
                    ));
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir(&settings.logs) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "pid") {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        let _ = std::fs::remove_file(settings.logs.join("fleet.env"));
        if let Some(postgres) = &mut self.postgres {
            postgres.stop().await;
        }
        log("fleet stopped");
    }
}
