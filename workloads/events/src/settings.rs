//! What the producer and the consumer share besides the events: settings read from the
//! environment (with scale-eks-with-keda's names and defaults), the queue they name, and shutdown on
//! SIGTERM.

use std::str::FromStr;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// A setting that could not be used; names the variable and what it takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// A variable is set to something unusable.
    #[error("{name}={value:?} is not valid: expected {expected}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What it takes.
        expected: &'static str,
    },
    /// A required variable is not set; the text says which and how to set it.
    #[error("{0}")]
    Missing(&'static str),
    /// The queue named by the settings cannot be found.
    #[error("could not find queue {name}: {message}")]
    Queue {
        /// The queue's URL or name.
        name: String,
        /// SQS's answer.
        message: String,
    },
}

/// Environment lookup, replaceable in tests.
pub trait Env {
    /// The variable's value, if it is set.
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

impl<const N: usize> Env for [(&str, &str); N] {
    fn get(&self, name: &str) -> Option<String> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }
}

/// `name` parsed as `T`, `default` when unset, and within `range`.
pub fn number<T>(
    env: &impl Env,
    name: &'static str,
    default: T,
    range: std::ops::RangeInclusive<T>,
    expected: &'static str,
) -> Result<T, SettingsError>
where
    T: FromStr + PartialOrd + Copy,
{
    let Some(text) = env.get(name) else {
        return Ok(default);
    };
    match text.trim().parse::<T>() {
        Ok(value) if range.contains(&value) => Ok(value),
        _ => Err(SettingsError::Invalid {
            name,
            value: text,
            expected,
        }),
    }
}

/// Seconds, fractions allowed (`0.5`), `default` when unset.
pub fn seconds(env: &impl Env, name: &'static str, default: f64) -> Result<Duration, SettingsError> {
    let secs = number(env, name, default, 0.0..=86_400.0, "seconds from 0 to 86400")?;
    Ok(Duration::from_secs_f64(secs))
}

/// The queue: `QUEUE_URL`, or `RELIABLE_QUEUE_NAME` looked up in the account (scale-eks-with-keda's name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Queue {
    /// `QUEUE_URL`.
    Url(String),
    /// `RELIABLE_QUEUE_NAME`, resolved with `GetQueueUrl`.
    Name(String),
}

impl Queue {
    /// `QUEUE_URL`, else `RELIABLE_QUEUE_NAME`.
    pub fn from_env(env: &impl Env) -> Result<Self, SettingsError> {
        if let Some(url) = env.get("QUEUE_URL") {
            Ok(Self::Url(url))
        } else if let Some(name) = env.get("RELIABLE_QUEUE_NAME") {
            Ok(Self::Name(name))
        } else {
            Err(SettingsError::Missing(
                "set QUEUE_URL (or RELIABLE_QUEUE_NAME) to the queue's URL (or name)",
            ))
        }
    }

    /// The queue's URL (a name is looked up).
    pub async fn url(&self, sqs: &aws_sdk_sqs::Client) -> Result<String, SettingsError> {
        match self {
            Self::Url(url) => Ok(url.clone()),
            Self::Name(name) => sqs
                .get_queue_url()
                .queue_name(name)
                .send()
                .await
                .map_err(|e| SettingsError::Queue {
                    name: name.clone(),
                    message: aws_sdk_sqs::Error::from(e).to_string(),
                })?
                .queue_url
                .ok_or_else(|| SettingsError::Queue {
                    name: name.clone(),
                    message: "GetQueueUrl returned no URL".into(),
                }),
        }
    }
}

/// SQS's answer for a queue that does not exist, in its JSON and query-compatible codes.
pub fn is_missing_queue(error: &aws_sdk_sqs::Error) -> bool {
    use aws_sdk_sqs::error::ProvideErrorMetadata;
    matches!(error, aws_sdk_sqs::Error::QueueDoesNotExist(_))
        || matches!(
            error.code(),
            Some("AWS.SimpleQueueService.NonExistentQueue" | "QueueDoesNotExist")
        )
}

/// A token cancelled on the first SIGTERM (Kubernetes' scale-in) or Ctrl-C.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupted: shutting down"),
        }
        cancel.cancel();
    });
    token
}

/// Sleeps unless cancelled first; true when the sleep ran to its end.
pub async fn sleep_unless(shutdown: &CancellationToken, duration: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(duration) => true,
        () = shutdown.cancelled() => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_values_and_errors() {
        let env = [("A", "7"), ("B", "0.5"), ("C", "x"), ("D", "11")];
        assert_eq!(number(&env, "A", 1u32, 1..=10, "1..=10"), Ok(7));
        assert_eq!(number(&env, "UNSET", 5u32, 1..=10, "1..=10"), Ok(5));
        assert_eq!(seconds(&env, "B", 2.0), Ok(Duration::from_millis(500)));
        assert_eq!(
            number(&env, "C", 1u32, 1..=10, "a whole number from 1 to 10")
                .unwrap_err()
                .to_string(),
            "C=\"x\" is not valid: expected a whole number from 1 to 10"
        );
        assert!(number(&env, "D", 1u32, 1..=10, "1..=10").is_err());
    }

    #[test]
    fn queue_by_url_or_name() {
        assert_eq!(
            Queue::from_env(&[("QUEUE_URL", "u"), ("RELIABLE_QUEUE_NAME", "n")]),
            Ok(Queue::Url("u".into()))
        );
        assert_eq!(
            Queue::from_env(&[("RELIABLE_QUEUE_NAME", "n")]),
            Ok(Queue::Name("n".into()))
        );
        assert!(
            Queue::from_env(&[("X", "y")])
                .unwrap_err()
                .to_string()
                .contains("QUEUE_URL")
        );
    }
}
