//! Logging set-up shared by the Lambdas, the CLI and the workloads.

use tracing_subscriber::EnvFilter;

/// JSON lines on stdout (CloudWatch indexes them), level from `RUST_LOG`, default `info`.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_target(false)
        .without_time()
        .init();
}
