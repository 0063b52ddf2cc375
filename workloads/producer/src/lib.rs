//! Streams sale and inventory events to SQS.
//!
//! scale-eks-with-keda's knobs and defaults, plus bad events, deliberate duplicates (an earlier event
//! sent again unchanged), batching and a seed for reproducible streams. Entries SQS fails are
//! retried, never dropped silently.

use std::collections::VecDeque;
use std::time::Duration;

use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use sales_events::settings::{self, Env, Queue, SettingsError, sleep_unless};
use sales_events::{Generator, Message};
use serde::Serialize;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

/// How many recent valid events a duplicate is drawn from.
const RECENT_EVENTS: usize = 1000;
/// Attempts for the entries of one batch before they count as failures.
const SEND_ATTEMPTS: u32 = 8;

/// The producer's settings, from the environment scale-eks-with-keda's producer read.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `TOT_MSGS_TO_PRODUCE`, default 10000: messages to send, duplicates included.
    pub total: u64,
    /// `WAIT_SECS_BETWEEN_MSGS`, default 2; 0 sends as fast as SQS takes them.
    pub wait_between_messages: Duration,
    /// `QUEUE_URL`, or `RELIABLE_QUEUE_NAME`.
    pub queue: Queue,
    /// `BAD_MSG_PERCENT`, default 10.
    pub bad_percent: u8,
    /// `DUPLICATE_PERCENT`, default 0.
    pub duplicate_percent: u8,
    /// `SEND_BATCH_SIZE`, 1 to 10, default 1.
    pub batch_size: usize,
    /// `SEED`: the same seed gives the same events (but for timestamps).
    pub seed: Option<u64>,
}

impl Config {
    /// Reads and checks every variable; an error names the one at fault.
    pub fn from_env(env: &impl Env) -> Result<Self, SettingsError> {
        Ok(Self {
            total: settings::number(env, "TOT_MSGS_TO_PRODUCE", 10_000, 0..=u64::MAX, "a whole number")?,
            wait_between_messages: settings::seconds(env, "WAIT_SECS_BETWEEN_MSGS", 2.0)?,
            queue: Queue::from_env(env)?,
            bad_percent: settings::number(env, "BAD_MSG_PERCENT", 10, 0..=100, "a percentage, 0 to 100")?,
            duplicate_percent: settings::number(env, "DUPLICATE_PERCENT", 0, 0..=100, "a percentage, 0 to 100")?,
            batch_size: settings::number(env, "SEND_BATCH_SIZE", 1, 1..=10, "1 to 10 (SendMessageBatch's limit)")?,
            seed: env
                .get("SEED")
                .map(|_| settings::number(env, "SEED", 0, 0..=u64::MAX, "a whole number"))
                .transpose()?,
        })
    }
}

/// The one line the producer prints when it stops.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Messages SQS accepted, duplicates and bad ones included.
    pub sent: u64,
    /// Of those, repeats of an event already sent.
    pub duplicates: u64,
    /// Of those, deliberately invalid events.
    pub bad: u64,
    /// Messages SQS still refused after every retry, or not sent because of a shutdown.
    pub failures: u64,
    /// Entries sent again after SQS refused them.
    pub retries: u64,
}

/// Produces until `config.total` messages are sent or `shutdown` is cancelled; `on_sent`
/// sees every message SQS accepted.
pub async fn run(
    config: &Config,
    sqs: &aws_sdk_sqs::Client,
    shutdown: &CancellationToken,
    mut on_sent: impl FnMut(&Message),
) -> Result<Summary, SettingsError> {
    let queue_url = config.queue.url(sqs).await?;
    let mut generator = Generator::new(config.seed, config.bad_percent);
    let mut recent: VecDeque<Message> = VecDeque::with_capacity(RECENT_EVENTS);
    let mut summary = Summary::default();
    let mut planned = 0u64;
    while planned < config.total && !shutdown.is_cancelled() {
        let room = usize::try_from(config.total - planned).unwrap_or(usize::MAX);
        let mut batch = Vec::with_capacity(config.batch_size.min(room));
        while batch.len() < batch.capacity() {
            if !recent.is_empty() && generator.chance(config.duplicate_percent) {
                batch.push((recent[generator.index(recent.len())].clone(), true));
                continue;
            }
            let message = generator.next_message(OffsetDateTime::now_utc());
            if !message.bad {
                if recent.len() == RECENT_EVENTS {
                    recent.pop_front();
                }
                recent.push_back(message.clone());
            }
            batch.push((message, false));
        }
        planned += batch.len() as u64;
        let wait = config.wait_between_messages * u32::try_from(batch.len()).unwrap_or(1);
        let outcome = send(sqs, &queue_url, &batch, shutdown).await;
        if let Some(message) = outcome.fatal {
            return Err(SettingsError::Queue {
                name: queue_url,
                message,
            });
        }
        summary.retries += outcome.retries;
        summary.failures += (batch.len() - outcome.sent.len()) as u64;
        for index in outcome.sent {
            let (message, duplicate) = &batch[index];
            summary.sent += 1;
            summary.duplicates += u64::from(*duplicate);
            summary.bad += u64::from(message.bad);
            on_sent(message);
        }
        if !wait.is_zero() && !sleep_unless(shutdown, wait).await {
            break;
        }
    }
    tracing::info!(?summary, "producer stopped");
    Ok(summary)
}

struct BatchOutcome {
    /// Indices into the batch that SQS accepted.
    sent: Vec<usize>,
    retries: u64,
    /// Why sending cannot go on (the queue does not exist): retrying would not help.
    fatal: Option<String>,
}

/// Sends one batch; refused entries (and whole calls that failed) are retried with backoff.
async fn send(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    batch: &[(Message, bool)],
    shutdown: &CancellationToken,
) -> BatchOutcome {
    let mut pending: Vec<usize> = (0..batch.len()).collect();
    let mut sent = Vec::with_capacity(batch.len());
    let mut retries = 0;
    let mut backoff = Duration::from_millis(100);
    for attempt in 1..=SEND_ATTEMPTS {
        let entries = pending.iter().map(|&i| entry(i, &batch[i].0)).collect();
        match sqs
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(output) => {
                sent.extend(output.successful.iter().filter_map(|ok| ok.id.parse::<usize>().ok()));
                for failed in &output.failed {
                    tracing::warn!(id = %failed.id, code = %failed.code, message = failed.message.as_deref().unwrap_or(""), attempt, "SQS refused an entry");
                }
                pending.retain(|i| !sent.contains(i));
            }
            Err(error) => {
                let error = aws_sdk_sqs::Error::from(error);
                if settings::is_missing_queue(&error) {
                    return BatchOutcome {
                        sent,
                        retries,
                        fatal: Some(format!("the queue does not exist ({error})")),
                    };
                }
                tracing::warn!(%error, attempt, "SendMessageBatch failed");
            }
        }
        if pending.is_empty() || attempt == SEND_ATTEMPTS || !sleep_unless(shutdown, backoff).await {
            break;
        }
        retries += pending.len() as u64;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
    for &i in &pending {
        tracing::error!(request_id = %batch[i].0.request_id, "message not sent after retries");
    }
    BatchOutcome {
        sent,
        retries,
        fatal: None,
    }
}

fn entry(index: usize, message: &Message) -> SendMessageBatchRequestEntry {
    let attribute = |value: &str| {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .expect("data type is set")
    };
    SendMessageBatchRequestEntry::builder()
        .id(index.to_string())
        .message_body(&message.body)
        .message_attributes("event_type", attribute(message.event_type.as_str()))
        // scale-eks-with-keda wrote Python's str(bool).
        .message_attributes(
            "priority_shipping",
            attribute(if message.priority_shipping { "True" } else { "False" }),
        )
        .build()
        .expect("id and body are set")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_follow_the_original_defaults() {
        let config = Config::from_env(&[("QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/1/q")]).unwrap();
        assert_eq!(config.total, 10_000);
        assert_eq!(config.wait_between_messages, Duration::from_secs(2));
        assert_eq!(
            (
                config.bad_percent,
                config.duplicate_percent,
                config.batch_size,
                config.seed
            ),
            (10, 0, 1, None)
        );

        let config = Config::from_env(&[
            ("RELIABLE_QUEUE_NAME", "reliable_q"),
            ("TOT_MSGS_TO_PRODUCE", "20"),
            ("WAIT_SECS_BETWEEN_MSGS", "0"),
            ("SEND_BATCH_SIZE", "10"),
            ("SEED", "9"),
        ])
        .unwrap();
        assert_eq!((config.total, config.batch_size, config.seed), (20, 10, Some(9)));
        assert_eq!(config.queue, Queue::Name("reliable_q".into()));
        assert!(config.wait_between_messages.is_zero());
    }

    #[test]
    fn bad_settings_name_the_variable() {
        let error = Config::from_env(&[("QUEUE_URL", "u"), ("SEND_BATCH_SIZE", "11")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "SEND_BATCH_SIZE=\"11\" is not valid: expected 1 to 10 (SendMessageBatch's limit)"
        );
        assert!(Config::from_env(&[("BAD_MSG_PERCENT", "5")]).is_err(), "no queue");
    }
}
