use fleet_config::Env;
use gateway::{Config, build};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `--print-env`: the variables the configuration reads, for the deployment checks.
    fleet_config::print_env_if_asked(|env| Config::from_env(env).map(drop));
    let config = Config::from_env(Env::from_process())?;
    let _telemetry = fleet_telemetry::init(gateway::NAME, config.http.log_format)?;
    build(config).await?.run().await
}
