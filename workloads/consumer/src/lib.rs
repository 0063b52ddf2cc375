//! Reads sale and inventory events from SQS and stores each in S3 under
//! `[S3_PREFIX/]<event_type>/dt=YYYY-MM-DD/<request_id>.json`, losing none:
//!
//! - a message is deleted only after its object is stored (or, for an invalid event, after it
//!   reached the dead-letter queue with its reason);
//! - a redelivered or duplicated event finds its object already stored (a conditional write)
//!   and is not written again;
//! - two different bodies of one request id settle on the same winner whatever the order they
//!   arrive in: the later `ts`, then the byte-wise greater body ([`wins`]); the other body goes
//!   to the dead-letter queue with its reason, so neither is lost;
//! - transient failures leave the message for redelivery; the queue's redrive policy moves it
//!   to the dead-letter queue after `maxReceiveCount`;
//! - a batch slower than the visibility timeout has its visibility extended;
//! - SIGTERM stops receiving, finishes and deletes what is in hand, within the grace period.

pub mod objects;
pub mod queue;
pub mod signed;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use kedaform_common::aws::SdkConfig;
use objects::{Condition, Objects, Written};
use queue::{AttributeValue, Message, SendEntry, Sqs};
use sales_events::EventType;
use sales_events::settings::{self, Env, Queue, SettingsError, sleep_unless};
use serde::Serialize;
use signed::{RequestError, Signer};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// scale-eks-with-keda's ceiling for the empty-poll backoff.
pub const MAX_POLL_BACKOFF: Duration = Duration::from_secs(512);
/// SQS long-poll per receive: short, so the backoff keeps scale-eks-with-keda's meaning.
const RECEIVE_WAIT_SECONDS: i32 = 1;
const DELETE_ATTEMPTS: u32 = 5;
/// Message attribute that carries why an event was sent to the dead-letter queue.
pub const DLQ_REASON_ATTRIBUTE: &str = "dlq_reason";
/// What one dead-letter batch may carry, bodies and attributes together: SQS's batch limit
/// where it is lowest (256 KiB; 1 MiB since 2025 in most regions).
pub const MAX_BATCH_PAYLOAD: usize = 256 * 1024;
/// Batches in a row that found the bucket or the queue unusable before the consumer stops:
/// going on would only let the redrive policy move valid events to the dead-letter queue.
pub const MAX_UNUSABLE_BATCHES: u32 = 3;
/// SQS's limit on one message, body and attributes together (1 MiB).
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// The longest reason a dead letter carries.
pub const MAX_REASON_BYTES: usize = 1024;
/// Message attribute on a dead letter whose body had to be cut to fit [`MAX_MESSAGE_BYTES`]: the
/// body's original length in bytes.
pub const DLQ_TRUNCATED_ATTRIBUTE: &str = "dlq_body_truncated_from";
/// The object the start-up check writes (and rewrites) to prove the bucket takes writes; the
/// leading underscore makes Athena, Glue and Spark skip it.
pub const WRITE_CHECK_KEY: &str = "_consumer_write_check";

/// The consumer's settings, from the environment scale-eks-with-keda's consumer read.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `MAX_MSGS_PER_BATCH`, 1 to 10, default 5.
    pub max_batch: i32,
    /// `TOT_MSGS_TO_PROCESS`, default 10000: exit 0 after this many messages are done.
    pub total: u64,
    /// `MSG_POLL_BACKOFF`, default 2 s: first wait after an empty poll, doubled per empty poll
    /// up to 512 s, back to this when messages arrive.
    pub poll_backoff: Duration,
    /// `MSG_PROCESS_DELAY`, default 10 s between cycles, to mimic work as scale-eks-with-keda does.
    pub process_delay: Duration,
    /// `STORE_EVENTS_BKT`.
    pub bucket: String,
    /// `QUEUE_URL`, or `RELIABLE_QUEUE_NAME`.
    pub queue: Queue,
    /// `DLQ_URL`; default: the dead-letter queue of the queue's redrive policy.
    pub dlq_url: Option<String>,
    /// `CONCURRENCY`, default 1: pollers working in parallel.
    pub concurrency: usize,
    /// `S3_PREFIX`, default empty.
    pub s3_prefix: String,
    /// `SHUTDOWN_GRACE_SECS`, default 25 (under Kubernetes' 30 s).
    pub shutdown_grace: Duration,
    /// `STATS_INTERVAL_SECS`, default 30.
    pub stats_interval: Duration,
}

impl Config {
    /// Reads and checks every variable; an error names the one at fault.
    pub fn from_env(env: &impl Env) -> Result<Self, SettingsError> {
        Ok(Self {
            max_batch: settings::number(env, "MAX_MSGS_PER_BATCH", 5, 1..=10, "1 to 10 (ReceiveMessage's limit)")?,
            total: settings::number(
                env,
                "TOT_MSGS_TO_PROCESS",
                10_000,
                1..=u64::MAX,
                "a positive whole number",
            )?,
            poll_backoff: settings::seconds(env, "MSG_POLL_BACKOFF", 2.0)?.min(MAX_POLL_BACKOFF),
            process_delay: settings::seconds(env, "MSG_PROCESS_DELAY", 10.0)?,
            bucket: env.get("STORE_EVENTS_BKT").ok_or(SettingsError::Missing(
                "set STORE_EVENTS_BKT to the bucket that stores the events",
            ))?,
            queue: Queue::from_env(env)?,
            dlq_url: env.get("DLQ_URL"),
            concurrency: settings::number(env, "CONCURRENCY", 1, 1..=64, "1 to 64")?,
            s3_prefix: env.get("S3_PREFIX").unwrap_or_default(),
            shutdown_grace: settings::seconds(env, "SHUTDOWN_GRACE_SECS", 25.0)?,
            stats_interval: settings::seconds(env, "STATS_INTERVAL_SECS", 30.0)?.max(Duration::from_secs(1)),
        })
    }
}

/// The wait after an empty poll that follows a wait of `current`.
pub fn next_backoff(current: Duration) -> Duration {
    (current * 2).min(MAX_POLL_BACKOFF)
}

/// Why the consumer stops with exit code 1.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    /// A setting is wrong.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// An SQS call failed for good.
    #[error("SQS {action} on {queue} failed: {source}")]
    Sqs {
        /// The API action.
        action: &'static str,
        /// The queue.
        queue: String,
        /// What SQS (or the connection) answered.
        #[source]
        source: RequestError,
    },
    /// The SQS endpoint or the credentials cannot be set up.
    #[error("cannot call AWS: {0}")]
    Setup(String),
    /// Invalid events would have nowhere to go.
    #[error(
        "queue {0} has no redrive policy, so invalid events have nowhere to go: set DLQ_URL or give the queue a dead-letter queue"
    )]
    NoDeadLetterQueue(String),
    /// The bucket is missing or refuses writes.
    #[error("STORE_EVENTS_BKT={bucket}: {message}")]
    Bucket {
        /// The bucket.
        bucket: String,
        /// S3's answer.
        message: String,
    },
    /// Batch after batch failed (bucket or queue gone).
    #[error("stopped after {MAX_UNUSABLE_BATCHES} batches in a row failed: {0}")]
    Unusable(String),
    /// A poller panicked (a defect): the consumer stopped the others; the batches in hand come
    /// back after their visibility timeout.
    #[error("{0} poller(s) panicked (a defect: see the panic message above); the consumer stopped")]
    Panicked(usize),
}

/// Counters, logged periodically and returned at the end.
#[derive(Debug, Default)]
pub struct Stats {
    received: AtomicU64,
    stored: AtomicU64,
    duplicates: AtomicU64,
    invalid: AtomicU64,
    superseded: AtomicU64,
    retries: AtomicU64,
    delete_retries: AtomicU64,
    extensions: AtomicU64,
    done: AtomicU64,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    /// Messages received, redeliveries included.
    pub received: u64,
    /// Objects written.
    pub stored: u64,
    /// Messages whose event was already stored with the same bytes (not written again).
    pub duplicates: u64,
    /// Invalid events sent to the dead-letter queue.
    pub invalid: u64,
    /// Bodies of a request id that lost to another body of it, sent to the dead-letter queue.
    pub superseded: u64,
    /// Messages left for redelivery after a transient failure.
    pub retries: u64,
    /// Delete entries sent again after SQS refused them.
    pub delete_retries: u64,
    /// Visibility extensions of slow batches.
    pub extensions: u64,
    /// Messages finished and deleted.
    pub done: u64,
}

impl Stats {
    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        StatsSnapshot {
            received: get(&self.received),
            stored: get(&self.stored),
            duplicates: get(&self.duplicates),
            invalid: get(&self.invalid),
            superseded: get(&self.superseded),
            retries: get(&self.retries),
            delete_retries: get(&self.delete_retries),
            extensions: get(&self.extensions),
            done: get(&self.done),
        }
    }
}

fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::Relaxed);
}

/// What one consumer process works with; built once, shared by its pollers.
#[derive(Debug)]
pub struct Worker {
    sqs: Sqs,
    s3: aws_sdk_s3::Client,
    objects: Objects,
    queue_url: String,
    dlq_url: String,
    bucket: String,
    prefix: String,
    visibility: Duration,
    stats: Stats,
    /// Batches in a row that found the bucket or the queue unusable.
    unusable: std::sync::atomic::AtomicU32,
    /// Why the consumer stopped, when it stopped on its own.
    fatal: Mutex<Option<String>>,
}

enum Fate {
    Stored,
    /// Stored in place of another body of its request id, which goes to the dead-letter queue.
    Superseding(String),
    Invalid(String),
    Retry,
    /// The bucket is gone or refuses writes: no retry of this message can succeed.
    Unusable(String),
}

/// How many compare-and-write rounds a contended key gets before its message is left for
/// redelivery.
const SETTLE_ATTEMPTS: u32 = 5;

/// What writing a body under its key came to.
enum Settled {
    /// Nothing was there: it is stored.
    Stored,
    /// The same bytes were there.
    Same,
    /// Another body was there and lost: this one is stored, the loser is returned.
    Won { loser: String },
    /// Another body is there and wins.
    Lost,
    /// The key kept changing under every conditional write: left for redelivery.
    Contended,
}

/// Why an object could not be written or read.
#[derive(Debug, thiserror::Error)]
enum StoreError {
    #[error(transparent)]
    Put(RequestError),
    #[error(transparent)]
    Get(aws_sdk_s3::Error),
}

impl StoreError {
    fn code(&self) -> Option<&str> {
        match self {
            Self::Put(error) => error.code(),
            Self::Get(error) => aws_sdk_s3::error::ProvideErrorMetadata::code(error),
        }
    }
}

/// The rule for two different bodies of one request id: the later `ts` (as a UTC instant)
/// wins; on the same instant, the byte-wise greater body. A total order, so every consumer
/// settles on the same winner whatever the order the bodies arrive in. A stored body that is
/// not a valid event always loses.
pub fn wins(candidate: &str, stored: &str, event_type: EventType) -> bool {
    let instant = |body: &str| {
        sales_events::validate(body, Some(event_type.as_str()))
            .ok()
            .and_then(|(_, event)| sales_events::timestamp(&event.ts))
    };
    match (instant(candidate), instant(stored)) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(a), Some(b)) => (a, candidate.as_bytes()) > (b, stored.as_bytes()),
    }
}

/// A dead-letter message for a superseded body: the winner's attributes, the loser's body.
fn loser_message(winner: &Message, loser: String) -> Message {
    Message {
        body: loser,
        message_attributes: winner.message_attributes.clone(),
        ..Message::default()
    }
}

/// S3 answers that no retry fixes: the bucket is gone, or the role may not write to it.
fn bucket_unusable(error: &StoreError) -> bool {
    matches!(error, StoreError::Get(aws_sdk_s3::Error::NoSuchBucket(_)))
        || matches!(
            error.code(),
            Some("NoSuchBucket" | "AccessDenied" | "AllAccessDisabled")
        )
}

impl Worker {
    /// Resolves the queue, its visibility timeout and its dead-letter queue, with clients
    /// built from `aws` (an endpoint it names, else AWS's).
    pub async fn connect(config: &Config, aws: &SdkConfig) -> Result<Self, ConsumerError> {
        let (endpoint, components) = Sqs::probe(aws).await.map_err(ConsumerError::Setup)?;
        let signer = Arc::new(Signer::new(aws, &components).map_err(ConsumerError::Setup)?);
        let sqs = Sqs::new(Arc::clone(&signer), endpoint);
        let s3 = kedaform_common::aws::s3(aws);
        let queue_url = match &config.queue {
            Queue::Url(url) => url.clone(),
            Queue::Name(name) => sqs.url_of(name, None).await.map_err(|e| SettingsError::Queue {
                name: name.clone(),
                message: e.to_string(),
            })?,
        };
        let attributes = sqs
            .attributes(&queue_url, &["VisibilityTimeout", "RedrivePolicy"])
            .await
            .map_err(|e| sqs_error("GetQueueAttributes", &queue_url, e))?;
        let visibility = attributes
            .get("VisibilityTimeout")
            .and_then(|v| v.parse().ok())
            .map_or(Duration::from_secs(30), Duration::from_secs);
        let dlq_url = if let Some(url) = &config.dlq_url {
            url.clone()
        } else {
            let arn = attributes
                .get("RedrivePolicy")
                .and_then(|policy| serde_json::from_str::<serde_json::Value>(policy).ok())
                .and_then(|policy| policy["deadLetterTargetArn"].as_str().map(str::to_owned))
                .ok_or_else(|| ConsumerError::NoDeadLetterQueue(queue_url.clone()))?;
            dead_letter_url(&sqs, &arn).await?
        };
        let objects = Objects::new(signer, &s3, &config.bucket)
            .await
            .map_err(|message| ConsumerError::Bucket {
                bucket: config.bucket.clone(),
                message,
            })?;
        check_bucket(&objects, &config.bucket, &config.s3_prefix).await?;
        Ok(Self {
            s3,
            objects,
            sqs,
            queue_url,
            dlq_url,
            bucket: config.bucket.clone(),
            prefix: config.s3_prefix.clone(),
            visibility,
            stats: Stats::default(),
            unusable: std::sync::atomic::AtomicU32::new(0),
            fatal: Mutex::new(None),
        })
    }

    /// Counts a batch that found the bucket or the queue unusable (`Some(why)`) or that went
    /// through (`None`); true when the consumer must stop.
    fn unusable_batch(&self, why: Option<String>) -> bool {
        let Some(why) = why else {
            self.unusable.store(0, Ordering::Relaxed);
            return false;
        };
        let count = self.unusable.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::error!(count, limit = MAX_UNUSABLE_BATCHES, %why, "bucket or queue unusable");
        if count < MAX_UNUSABLE_BATCHES {
            return false;
        }
        *self.fatal.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(why);
        true
    }

    /// The counters so far.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// Handles one received batch to the end: store, dead-letter, delete. Its visibility is
    /// extended while it takes longer than half the visibility timeout.
    /// Returns true when the bucket was found unusable too often and the consumer must stop.
    pub async fn process(&self, messages: &[Message]) -> bool {
        add(&self.stats.received, messages.len());
        let work = async {
            let fates = join_all(messages.iter().map(|m| self.store(m))).await;
            let mut done: Vec<&Message> = Vec::with_capacity(messages.len());
            let mut invalid = Vec::new();
            let mut unusable = None;
            let mut superseded = Vec::new();
            for (message, fate) in messages.iter().zip(fates) {
                match fate {
                    Fate::Stored => done.push(message),
                    Fate::Superseding(loser) => {
                        done.push(message);
                        superseded.push(loser_message(message, loser));
                    }
                    Fate::Invalid(reason) => invalid.push((message, reason)),
                    Fate::Retry => add(&self.stats.retries, 1),
                    Fate::Unusable(why) => {
                        add(&self.stats.retries, 1);
                        unusable = Some(why);
                    }
                }
            }
            let reason = "superseded: another body of this request_id wins (a later ts, or the same ts and greater bytes) and is stored";
            invalid.extend(superseded.iter().map(|m| (m, reason.to_owned())));
            let taken = self.dead_letter(&invalid).await;
            // A superseded body has no receipt: it never was a message of this queue.
            let lost_losers = superseded.len() - taken.iter().filter(|m| m.receipt_handle.is_none()).count();
            if lost_losers > 0 {
                tracing::error!(
                    lost_losers,
                    "superseded bodies the dead-letter queue refused; they are only in the logs' counts now"
                );
            }
            done.extend(taken.into_iter().filter(|m| m.receipt_handle.is_some()));
            self.delete(&done).await;
            unusable
        };
        let unusable = tokio::select! {
            unusable = work => unusable,
            () = self.keep_invisible(messages) => None,
        };
        self.unusable_batch(unusable)
    }

    async fn store(&self, message: &Message) -> Fate {
        let body = message.body.as_str();
        let (event_type, event) = match sales_events::validate(body, message.string_attribute("event_type")) {
            Ok(valid) => valid,
            Err(error) => return Fate::Invalid(error.to_string()),
        };
        let key = sales_events::object_key(&self.prefix, event_type, &event);
        match self.settle(&key, body, event_type).await {
            Ok(Settled::Stored) => {
                add(&self.stats.stored, 1);
                Fate::Stored
            }
            Ok(Settled::Same) => {
                add(&self.stats.duplicates, 1);
                Fate::Stored
            }
            Ok(Settled::Won { loser }) => {
                add(&self.stats.stored, 1);
                add(&self.stats.superseded, 1);
                Fate::Superseding(loser)
            }
            Ok(Settled::Contended) => {
                tracing::warn!(%key, attempts = SETTLE_ATTEMPTS, "the object kept changing; left for redelivery");
                Fate::Retry
            }
            Ok(Settled::Lost) => {
                add(&self.stats.superseded, 1);
                Fate::Invalid(format!(
                    "superseded: request_id {} is stored with another body that wins (a later ts, or the same ts and greater bytes)",
                    event.request_id
                ))
            }
            Err(error) => {
                if bucket_unusable(&error) {
                    return Fate::Unusable(format!("STORE_EVENTS_BKT={}: {error}", self.bucket));
                }
                tracing::warn!(%key, %error, "not stored; left for redelivery");
                Fate::Retry
            }
        }
    }

    /// Writes `body` under `key` so that, of all bodies ever written there, the one that
    /// [`wins`] stays, whatever the order: a write only where nothing is (`If-None-Match`),
    /// else a compare with what is there and a write only over exactly that (`If-Match`).
    async fn settle(&self, key: &str, body: &str, event_type: EventType) -> Result<Settled, StoreError> {
        let mut condition: Option<(String, String)> = None;
        for _ in 0..SETTLE_ATTEMPTS {
            let when = match &condition {
                None => Condition::Absent,
                Some((etag, _)) => Condition::Matches(etag),
            };
            match self.objects.put(key, body, when).await.map_err(StoreError::Put)? {
                Written::Stored => {
                    return Ok(match condition {
                        None => Settled::Stored,
                        Some((_, loser)) => Settled::Won { loser },
                    });
                }
                Written::ConditionFailed => {}
            }
            // Something is there (or changed since it was read): read it and compare.
            let existing = match self.s3.get_object().bucket(&self.bucket).key(key).send().await {
                Ok(existing) => existing,
                Err(error) => {
                    let error = aws_sdk_s3::Error::from(error);
                    if matches!(error, aws_sdk_s3::Error::NoSuchKey(_)) {
                        condition = None;
                        continue;
                    }
                    return Err(StoreError::Get(error));
                }
            };
            let etag = existing.e_tag().unwrap_or_default().to_owned();
            let bytes = existing
                .body
                .collect()
                .await
                .map(|b| b.into_bytes().to_vec())
                .unwrap_or_default();
            let stored = String::from_utf8_lossy(&bytes).into_owned();
            if stored == body {
                return Ok(Settled::Same);
            }
            if !wins(body, &stored, event_type) {
                return Ok(Settled::Lost);
            }
            condition = Some((etag, stored));
        }
        Ok(Settled::Contended)
    }

    /// Sends invalid events to the dead-letter queue with their reason, in batches within
    /// SQS's payload limit; returns those it took.
    async fn dead_letter<'m>(&self, invalid: &[(&'m Message, String)]) -> Vec<&'m Message> {
        let entries: Vec<SendEntry> = invalid
            .iter()
            .enumerate()
            .map(|(i, (message, reason))| dead_letter_entry(i, message, reason))
            .collect();
        let mut taken = Vec::with_capacity(invalid.len());
        for batch in payload_batches(entries, MAX_BATCH_PAYLOAD) {
            let count = batch.len();
            match self.sqs.send_batch(&self.dlq_url, &batch).await {
                Ok(output) => taken.extend(
                    output
                        .successful
                        .iter()
                        .filter_map(|ok| ok.id.parse::<usize>().ok())
                        .filter_map(|i| invalid.get(i).map(|(m, _)| *m)),
                ),
                Err(error) => {
                    tracing::warn!(count, %error, "dead-letter queue refused the batch; left for redelivery");
                }
            }
        }
        add(&self.stats.invalid, taken.len());
        add(&self.stats.retries, invalid.len() - taken.len());
        taken
    }

    /// Deletes finished messages; refused entries are sent again. One still refused after
    /// that comes back later and is stored again under the same key: no loss, no duplicate.
    async fn delete(&self, done: &[&Message]) {
        let mut pending = queue::receipt_entries(done.iter().copied());
        let mut backoff = Duration::from_millis(100);
        for attempt in 1..=DELETE_ATTEMPTS {
            if pending.is_empty() {
                break;
            }
            match self.sqs.delete_batch(&self.queue_url, &pending).await {
                Ok(output) => {
                    let deleted: HashSet<&str> = output.successful.iter().map(|ok| ok.id.as_str()).collect();
                    let before = pending.len();
                    pending.retain(|entry| !deleted.contains(entry.id.as_str()));
                    add(&self.stats.done, before - pending.len());
                }
                Err(error) => {
                    tracing::warn!(%error, attempt, "DeleteMessageBatch failed");
                }
            }
            if pending.is_empty() || attempt == DELETE_ATTEMPTS {
                break;
            }
            add(&self.stats.delete_retries, pending.len());
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
        if !pending.is_empty() {
            tracing::error!(
                count = pending.len(),
                "messages stored but not deleted; SQS will redeliver them"
            );
        }
    }

    /// Never returns: every half visibility timeout, extends the batch's visibility.
    async fn keep_invisible(&self, messages: &[Message]) {
        let period = (self.visibility / 2).max(Duration::from_secs(1));
        let timeout = i32::try_from(self.visibility.as_secs()).unwrap_or(i32::MAX).max(1);
        let entries = queue::receipt_entries(messages);
        loop {
            tokio::time::sleep(period).await;
            match self
                .sqs
                .change_visibility_batch(&self.queue_url, &entries, timeout)
                .await
            {
                Ok(_) => add(&self.stats.extensions, 1),
                Err(error) => tracing::warn!(%error, "visibility not extended"),
            }
        }
    }

    /// One poller: receive, process, pause; backs off while the queue is empty.
    async fn poll(&self, config: &Config, stop: &CancellationToken) {
        let mut backoff = config.poll_backoff;
        while !stop.is_cancelled() {
            let receive = self
                .sqs
                .receive(&self.queue_url, config.max_batch, RECEIVE_WAIT_SECONDS);
            // Cancelling a receive loses nothing: what it took becomes visible again.
            let received = tokio::select! {
                received = receive => received,
                () = stop.cancelled() => break,
            };
            let messages = match received {
                Ok(messages) => messages,
                Err(error) => {
                    if queue::is_missing_queue(&error) {
                        let why = format!("queue {}: the queue does not exist ({error})", self.queue_url);
                        if self.unusable_batch(Some(why)) {
                            stop.cancel();
                            break;
                        }
                    } else {
                        tracing::warn!(%error, "ReceiveMessage failed");
                    }
                    Vec::new()
                }
            };
            if messages.is_empty() {
                if !sleep_unless(stop, backoff).await {
                    break;
                }
                backoff = next_backoff(backoff);
                continue;
            }
            backoff = config.poll_backoff;
            if self.process(&messages).await {
                stop.cancel();
                break;
            }
            if self.stats.done.load(Ordering::Relaxed) >= config.total {
                tracing::info!(total = config.total, "processed the total: stopping");
                stop.cancel();
            }
            if !config.process_delay.is_zero() {
                sleep_unless(stop, config.process_delay).await;
            }
        }
    }
}

async fn dead_letter_url(sqs: &Sqs, arn: &str) -> Result<String, ConsumerError> {
    // arn:aws:sqs:<region>:<account>:<name>
    let mut parts = arn.rsplitn(3, ':');
    let (name, account) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    sqs.url_of(name, Some(account))
        .await
        .map_err(|e| sqs_error("GetQueueUrl", arn, e))
}

/// The first `limit` bytes of `text`, cut at a character boundary.
fn cut(text: &str, limit: usize) -> &str {
    let mut end = limit.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The invalid message as the dead-letter queue gets it: its body and attributes, and why (at
/// most [`MAX_REASON_BYTES`]). One that would pass [`MAX_MESSAGE_BYTES`] with its reason keeps
/// the reason and as much of the body as fits, marked with [`DLQ_TRUNCATED_ATTRIBUTE`]: a
/// dead letter without its reason, or none at all, would be worse.
pub fn dead_letter_entry(index: usize, message: &Message, reason: &str) -> SendEntry {
    let mut message_attributes = message.message_attributes.clone();
    message_attributes.insert(
        DLQ_REASON_ATTRIBUTE.into(),
        AttributeValue::string(cut(reason, MAX_REASON_BYTES)),
    );
    let mut entry = SendEntry {
        id: index.to_string(),
        message_body: message.body.clone(),
        message_attributes,
    };
    let over = payload_size(&entry).saturating_sub(MAX_MESSAGE_BYTES);
    if over > 0 {
        let original = message.body.len();
        entry.message_attributes.insert(
            DLQ_TRUNCATED_ATTRIBUTE.into(),
            AttributeValue {
                data_type: "Number".into(),
                string_value: Some(original.to_string()),
                binary_value: None,
            },
        );
        let marker_size = DLQ_TRUNCATED_ATTRIBUTE.len() + "Number".len() + original.to_string().len();
        let keep = original.saturating_sub(over + marker_size);
        cut(&message.body, keep).clone_into(&mut entry.message_body);
    }
    entry
}

/// An entry's size as SQS counts it against the batch limit: body, and each attribute's name,
/// type and value.
pub fn payload_size(entry: &SendEntry) -> usize {
    entry.message_body.len()
        + entry
            .message_attributes
            .iter()
            .map(|(name, value)| name.len() + value.size())
            .sum::<usize>()
}

/// Entries in order, in batches of at most 10 entries and `limit` bytes (an entry larger than
/// the limit alone goes in a batch of its own, for SQS to judge).
pub fn payload_batches(entries: Vec<SendEntry>, limit: usize) -> Vec<Vec<SendEntry>> {
    let mut batches: Vec<Vec<SendEntry>> = Vec::new();
    let mut size = 0;
    for entry in entries {
        let entry_size = payload_size(&entry);
        match batches.last_mut() {
            Some(batch) if batch.len() < 10 && size + entry_size <= limit => {
                size += entry_size;
                batch.push(entry);
            }
            _ => {
                size = entry_size;
                batches.push(vec![entry]);
            }
        }
    }
    batches
}

/// Proves at start-up that the bucket exists and takes this role's writes, by writing
/// [`WRITE_CHECK_KEY`] under the first event prefix (where the role may write).
async fn check_bucket(objects: &Objects, bucket: &str, prefix: &str) -> Result<(), ConsumerError> {
    let key = sales_events::under_prefix(prefix, &format!("{}/{WRITE_CHECK_KEY}", EventType::SaleEvent.as_str()));
    let written = objects.put(&key, "{}", Condition::Any).await;
    written.map(|_| ()).map_err(|error| {
        let message = if error.code() == Some("NoSuchBucket") {
            format!("the bucket does not exist ({error})")
        } else {
            format!(
                "cannot write {key} to the bucket: {}; the consumer's role needs s3:PutObject there",
                kedaform_common::error_chain(&error)
            )
        };
        ConsumerError::Bucket {
            bucket: bucket.to_owned(),
            message,
        }
    })
}

fn sqs_error(action: &'static str, queue: &str, source: RequestError) -> ConsumerError {
    ConsumerError::Sqs {
        action,
        queue: queue.to_owned(),
        source,
    }
}

/// Waits for every poller to end; one that panicked stops the others (`stop`). Returns how
/// many panicked, so that a defect ends the process with an error, never as if done.
async fn join_pollers(pollers: &mut JoinSet<()>, stop: &CancellationToken) -> usize {
    let mut panics = 0;
    while let Some(joined) = pollers.join_next().await {
        if joined.is_err_and(|e| e.is_panic()) {
            panics += 1;
            stop.cancel();
        }
    }
    panics
}

/// Runs `config.concurrency` pollers until `config.total` messages are done or `shutdown` is
/// cancelled; after a shutdown, waits at most `config.shutdown_grace` for batches in hand.
pub async fn run(
    config: &Config,
    aws: &SdkConfig,
    shutdown: &CancellationToken,
) -> Result<StatsSnapshot, ConsumerError> {
    let worker = std::sync::Arc::new(Worker::connect(config, aws).await?);
    tracing::info!(queue = %worker.queue_url, dlq = %worker.dlq_url, visibility = ?worker.visibility, "consuming");
    let stop = shutdown.child_token();
    let mut pollers = JoinSet::new();
    for _ in 0..config.concurrency {
        let (worker, config, stop) = (std::sync::Arc::clone(&worker), config.clone(), stop.clone());
        pollers.spawn(async move { worker.poll(&config, &stop).await });
    }
    let stats = {
        let (worker, stop, interval) = (std::sync::Arc::clone(&worker), stop.clone(), config.stats_interval);
        tokio::spawn(async move {
            while sleep_unless(&stop, interval).await {
                let stats = worker.stats();
                tracing::info!(stats = %serde_json::to_string(&stats).unwrap_or_default(), "stats");
            }
        })
    };
    let (grace_over, panics) = tokio::select! {
        panics = join_pollers(&mut pollers, &stop) => (false, panics),
        () = async { shutdown.cancelled().await; tokio::time::sleep(config.shutdown_grace).await } => (true, 0),
    };
    if grace_over {
        tracing::warn!(grace = ?config.shutdown_grace, "grace period over with batches in hand; SQS will redeliver them");
    }
    pollers.abort_all();
    stop.cancel();
    stats.await.ok();
    let stats = worker.stats();
    tracing::info!(stats = %serde_json::to_string(&stats).unwrap_or_default(), "consumer stopped");
    let fatal = worker
        .fatal
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    match fatal {
        Some(why) => Err(ConsumerError::Unusable(why)),
        None if panics > 0 => Err(ConsumerError::Panicked(panics)),
        None => Ok(stats),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_poller_stops_the_others_and_is_counted() {
        let stop = CancellationToken::new();
        let mut pollers = JoinSet::new();
        let waiting = stop.clone();
        pollers.spawn(async move { waiting.cancelled().await });
        pollers.spawn(async { panic!("a defect") });
        let panics = tokio::time::timeout(Duration::from_secs(5), join_pollers(&mut pollers, &stop))
            .await
            .expect("the other poller stopped");
        assert_eq!(panics, 1);
        assert!(stop.is_cancelled());
    }

    #[test]
    fn a_dead_letter_keeps_a_bounded_reason_and_fits_one_message() {
        let mut message = Message {
            body: "é".repeat(MAX_MESSAGE_BYTES / 2 - 10),
            ..Message::default()
        };
        message
            .message_attributes
            .insert("event_type".into(), AttributeValue::string("sale_event"));
        let entry = dead_letter_entry(3, &message, &"why ".repeat(100_000));
        assert_eq!(entry.id, "3");
        let reason = entry.message_attributes[DLQ_REASON_ATTRIBUTE]
            .string_value
            .clone()
            .unwrap();
        assert!(reason.len() <= MAX_REASON_BYTES && reason.starts_with("why why"));
        assert!(payload_size(&entry) <= MAX_MESSAGE_BYTES, "{}", payload_size(&entry));
        assert_eq!(
            entry.message_attributes[DLQ_TRUNCATED_ATTRIBUTE]
                .string_value
                .as_deref(),
            Some(message.body.len().to_string().as_str())
        );
        assert!(message.body.starts_with(&entry.message_body));
        let small = Message {
            body: "{}".into(),
            ..Message::default()
        };
        let entry = dead_letter_entry(0, &small, "missing field request_id");
        assert_eq!(entry.message_body, "{}");
        assert!(!entry.message_attributes.contains_key(DLQ_TRUNCATED_ATTRIBUTE));
    }

    #[test]
    fn backoff_doubles_to_the_ceiling() {
        let mut backoff = Duration::from_secs(2);
        let mut seen = vec![backoff];
        for _ in 0..10 {
            backoff = next_backoff(backoff);
            seen.push(backoff);
        }
        let secs: Vec<u64> = seen.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [2, 4, 8, 16, 32, 64, 128, 256, 512, 512, 512]);
        assert_eq!(next_backoff(Duration::from_millis(300)), Duration::from_millis(600));
    }

    #[test]
    fn settings_follow_the_original_defaults() {
        let config = Config::from_env(&[("QUEUE_URL", "q"), ("STORE_EVENTS_BKT", "b")]).unwrap();
        assert_eq!((config.max_batch, config.total, config.concurrency), (5, 10_000, 1));
        assert_eq!(config.poll_backoff, Duration::from_secs(2));
        assert_eq!(config.process_delay, Duration::from_secs(10));
        assert_eq!(config.shutdown_grace, Duration::from_secs(25));
        assert_eq!((config.s3_prefix.as_str(), config.dlq_url.as_deref()), ("", None));
    }

    #[test]
    fn bad_settings_name_the_variable() {
        let missing_bucket = Config::from_env(&[("QUEUE_URL", "q")]).unwrap_err();
        assert!(
            missing_bucket.to_string().contains("STORE_EVENTS_BKT"),
            "{missing_bucket}"
        );
        let too_big = Config::from_env(&[
            ("QUEUE_URL", "q"),
            ("STORE_EVENTS_BKT", "b"),
            ("MAX_MSGS_PER_BATCH", "11"),
        ]);
        assert!(
            too_big
                .unwrap_err()
                .to_string()
                .starts_with("MAX_MSGS_PER_BATCH=\"11\"")
        );
    }
}
