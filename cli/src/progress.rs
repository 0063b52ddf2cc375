//! What a handler is doing, on stderr: a spinner on a terminal, log lines otherwise; and what
//! it has done so far, for a message when the command is interrupted.

use std::sync::Mutex;
use std::time::Duration;

/// The handler's latest step and every object it applied or deleted, in order.
#[derive(Debug, Default)]
pub struct Record {
    /// The latest `step`.
    pub step: Option<String>,
    /// `applied <object>` / `deleted <object>`, in order.
    pub changes: Vec<String>,
}

static RECORD: Mutex<Record> = Mutex::new(Record {
    step: None,
    changes: Vec::new(),
});

/// What the handler did so far.
pub fn record() -> std::sync::MutexGuard<'static, Record> {
    RECORD.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Shows what a handler is doing: on a terminal a spinner with the current step, otherwise
/// plain log lines; both on stderr, so stdout stays the command's output.
pub fn start() -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if !std::io::stderr().is_terminal() {
        let lines = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .without_time()
            .compact();
        tracing_subscriber::registry()
            .with(filter)
            .with(lines)
            .with(Steps(None))
            .init();
        return None;
    }
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.enable_steady_tick(Duration::from_millis(120));
    tracing_subscriber::registry()
        .with(filter)
        .with(Steps(Some(spinner.clone())))
        .init();
    Some(spinner)
}

/// Records each `step` the handlers log and each object they applied or deleted; puts the
/// step into the spinner's message, when there is a spinner.
struct Steps(Option<indicatif::ProgressBar>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Steps {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        #[derive(Default)]
        struct Fields {
            step: Option<String>,
            object: Option<String>,
            message: Option<String>,
        }
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                let value = Some(format!("{value:?}"));
                match field.name() {
                    "step" => self.step = value,
                    "object" => self.object = value,
                    "message" => self.message = value,
                    _ => {}
                }
            }
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut record = record();
        if let (Some(object), Some(message)) = (fields.object, fields.message.as_deref())
            && matches!(message, "applied" | "deleted")
        {
            record.changes.push(format!("{message} {object}"));
        }
        if let Some(step) = fields.step {
            if let Some(spinner) = &self.0 {
                spinner.set_message(step.clone());
            }
            record.step = Some(step);
        }
    }
}
