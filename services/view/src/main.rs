use fleet_config::Env;
use view::{Config, RebuildConfig, build, rebuild};

const USAGE: &str = "usage: view            serve the boards (configuration from the environment)
       view rebuild    with every replica stopped: empty the boards and rewind the consumer
                       group, so that the next start builds them again from the topics
       view dlq        list and replay the dead letters of the topics view consumes
                       (view dlq --help)";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `view dlq …`: the dead-letter command (`view dlq --help`).
    fleet_messaging::dlq::run_if_asked(view::SERVICE, &view::TOPICS).await;
    // `--print-env`: the variables the configuration reads, for the deployment checks.
    fleet_config::print_env_if_asked(|env| Config::from_env(env).map(drop));
    match std::env::args().nth(1).as_deref() {
        None => {
            let config = Config::from_env(Env::from_process())?;
            let _telemetry = fleet_telemetry::init(view::SERVICE, config.kit.http.log_format)?;
            build(config).await?.run().await
        }
        Some("rebuild") => {
            let config = RebuildConfig::from_env(Env::from_process())?;
            let _telemetry = fleet_telemetry::init(view::SERVICE, config.kit.http.log_format)?;
            let partitions = rebuild(&config).await?;
            println!(
                "view: boards emptied and {partitions} partitions rewound; start view to rebuild them"
            );
            Ok(())
        }
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => {
            eprintln!("view: unknown command {other:?}\n{USAGE}");
            std::process::exit(2)
        }
    }
}
