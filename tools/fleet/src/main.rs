//! `fleet up --bin-dir DIR [--fresh] [--kafka real|mock] [--with-prometheus]
//!    [--with-tracing JAEGER_BINARY JAEGER_CONFIG]`
//!   the whole fleet, infrastructure included, until SIGINT, SIGTERM or SIGHUP
//!   (`scripts/dev.sh` builds, installs what is missing, then runs this)
//!
//! `fleet infra --env-file PATH [--kafka-data DIR] [--tls-dir DIR] [--exit-with-parent]`
//!   the private PostgreSQL and a Kafka broker for the test command, until a stop signal

use std::path::PathBuf;

use anyhow::{Context, bail};

const USAGE: &str = "usage: fleet up --bin-dir DIR [--fresh] [--kafka real|mock] [--with-prometheus] \
[--with-tracing JAEGER_BINARY JAEGER_CONFIG]\n       \
fleet infra --env-file PATH [--kafka-data DIR] [--tls-dir DIR] [--exit-with-parent]";

// One thread: every process is started from it, and a process's parent-death signal follows
// the thread that started it.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let result = match parse(std::env::args().skip(1).collect()) {
        Ok(Command::Up(options)) => fleet::up::run(options).await,
        Ok(Command::Infra(options)) => fleet::infra::run(options).await,
        Ok(Command::Help) => {
            println!("{USAGE}");
            Ok(())
        }
        Err(e) => {
            eprintln!("fleet: {e:#}\n{USAGE}");
            std::process::exit(2);
        }
    };
    if result.is_err() {
        // Already logged where it happened, before the stop.
        std::process::exit(1);
    }
}

enum Command {
    Up(fleet::up::Options),
    Infra(fleet::infra::Options),
    Help,
}

fn parse(args: Vec<String>) -> anyhow::Result<Command> {
    let mut args = args.into_iter();
    let command = args.next().unwrap_or_default();
    let mut value = |flag: &str| -> anyhow::Result<String> {
        args.next().with_context(|| format!("{flag} needs a value"))
    };
    match command.as_str() {
        "up" => {
            let mut options = fleet::up::Options {
                bin_dir: PathBuf::new(),
                fresh: false,
                kafka: fleet::up::KafkaChoice::Real,
                with_prometheus: false,
                tracing: None,
            };
            while let Ok(flag) = value("") {
                match flag.as_str() {
                    "--bin-dir" => options.bin_dir = value(&flag)?.into(),
                    "--fresh" => options.fresh = true,
                    "--kafka" => {
                        options.kafka = match value(&flag)?.as_str() {
                            "real" => fleet::up::KafkaChoice::Real,
                            "mock" => fleet::up::KafkaChoice::Mock,
                            other => bail!("--kafka takes real or mock, not {other:?}"),
                        }
                    }
                    "--with-prometheus" => options.with_prometheus = true,
                    "--with-tracing" => {
                        options.tracing = Some((value(&flag)?.into(), value(&flag)?.into()))
                    }
                    other => bail!("unknown argument {other:?}"),
                }
            }
            if options.bin_dir.as_os_str().is_empty() {
                bail!("fleet up needs --bin-dir");
            }
            Ok(Command::Up(options))
        }
        "infra" => {
            let mut options = fleet::infra::Options {
                env_file: PathBuf::new(),
                kafka_data: None,
                tls_dir: None,
                exit_with_parent: false,
            };
            while let Ok(flag) = value("") {
                match flag.as_str() {
                    "--env-file" => options.env_file = value(&flag)?.into(),
                    "--kafka-data" => options.kafka_data = Some(value(&flag)?.into()),
                    "--tls-dir" => options.tls_dir = Some(value(&flag)?.into()),
                    "--exit-with-parent" => options.exit_with_parent = true,
                    other => bail!("unknown argument {other:?}"),
                }
            }
            if options.env_file.as_os_str().is_empty() {
                bail!("fleet infra needs --env-file");
            }
            Ok(Command::Infra(options))
        }
        "-h" | "--help" | "help" => Ok(Command::Help),
        "" => bail!("which command?"),
        other => bail!("unknown command {other:?}"),
    }
}
