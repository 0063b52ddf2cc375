//! The producer's container entry point: settings from the environment, exit 0 after the
//! total (the Deployment restarts it, as in scale-eks-with-keda), exit 2 on bad settings, exit 1 when
//! the queue does not exist.

use std::process::ExitCode;

use sales_events::settings::{ProcessEnv, shutdown_on_signals};

#[tokio::main]
async fn main() -> ExitCode {
    kedaform_common::telemetry::init();
    let config = match producer::Config::from_env(&ProcessEnv) {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(%error, "bad settings");
            return ExitCode::from(2);
        }
    };
    let sqs = aws_sdk_sqs::Client::new(&kedaform_common::aws::load().await);
    match producer::run(&config, &sqs, &shutdown_on_signals(), |_| {}).await {
        Ok(summary) => {
            println!("{}", serde_json::to_string(&summary).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(%error, "cannot produce");
            ExitCode::FAILURE
        }
    }
}
