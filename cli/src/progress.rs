//! What a handler is doing, on stderr: a spinner on a terminal, log lines otherwise.

use std::time::Duration;

/// Shows what a handler is doing: on a terminal a spinner with the current step, otherwise
/// plain log lines; both on stderr, so stdout stays the command's output.
pub fn start() -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if !std::io::stderr().is_terminal() {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(filter)
            .with_target(false)
            .without_time()
            .compact()
            .init();
        return None;
    }
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.enable_steady_tick(Duration::from_millis(120));
    tracing_subscriber::registry()
        .with(filter)
        .with(Steps(spinner.clone()))
        .init();
    Some(spinner)
}

/// Puts each `step` the handlers record into the spinner's message.
struct Steps(indicatif::ProgressBar);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Steps {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Step(Option<String>);
        impl tracing::field::Visit for Step {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "step" {
                    self.0 = Some(format!("{value:?}"));
                }
            }
        }
        let mut step = Step(None);
        event.record(&mut step);
        if let Some(step) = step.0 {
            self.0.set_message(step);
        }
    }
}
