use fleet_config::Env;
use user::{Config, build};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `user dlq …`: the dead-letter command, instead of the service.
    fleet_messaging::dlq::run_if_asked(user::SERVICE, &user::CONSUMED_TOPICS).await;
    // `--print-env`: the variables the configuration reads, for the deployment checks.
    fleet_config::print_env_if_asked(|env| Config::from_env(env).map(drop));
    let config = Config::from_env(Env::from_process())?;
    let _telemetry = fleet_telemetry::init(user::SERVICE, config.kit.http.log_format)?;
    build(config).await?.run().await
}
