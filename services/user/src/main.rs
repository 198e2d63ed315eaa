use service_kit::{Env, telemetry};
use user::{Config, build};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env(Env::from_process())?;
    telemetry::init(config.kit.log_format);
    build(config).await?.run().await
}
