//! The consumer's container entry point: settings from the environment; exit 0 after the
//! total or a SIGTERM, 2 on bad settings, 1 when the queue cannot be used.

use std::process::ExitCode;

use sales_events::settings::{ProcessEnv, shutdown_on_signals};

/// A message's requests allocate and free many small buffers; mimalloc does that with a
/// fraction of glibc's CPU (docs/src/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    kedaform_common::telemetry::init();
    let config = match consumer::Config::from_env(&ProcessEnv) {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(%error, "bad settings");
            return ExitCode::from(2);
        }
    };
    let aws = kedaform_common::aws::load().await;
    match consumer::run(&config, &aws, &shutdown_on_signals()).await {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %kedaform_common::error_chain(&error), "cannot consume");
            ExitCode::FAILURE
        }
    }
}
