//! No message lost, end to end against moto: 2,000 events with 5 % duplicates and 10 % bad,
//! three consumer processes at full speed, one killed with SIGKILL and one stopped with
//! SIGTERM while the producer is still sending.

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use futures_util::future::join_all;
use kedaform_tests::{moto, unique};
use sales_events::settings::Queue;
use sales_events::{Message, object_key, validate};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const EVENTS: u64 = 2_000;
const VISIBILITY_SECS: u32 = 5;
const GRACE_SECS: u64 = 10;

struct Consumer {
    name: &'static str,
    child: Child,
    log: std::path::PathBuf,
}

impl Consumer {
    fn start(name: &'static str, queue_url: &str, bucket: &str) -> anyhow::Result<Self> {
        let log = std::env::temp_dir().join(format!("kedaform-{}-{name}.log", unique("")));
        let file = std::fs::File::create(&log)?;
        let child = Command::new(env!("CARGO_BIN_EXE_consumer"))
            .env("QUEUE_URL", queue_url)
            .env("STORE_EVENTS_BKT", bucket)
            .env("MSG_PROCESS_DELAY", "0")
            .env("MAX_MSGS_PER_BATCH", "10")
            .env("MSG_POLL_BACKOFF", "0.2")
            .env("TOT_MSGS_TO_PROCESS", "1000000")
            .env("CONCURRENCY", "2")
            .env("SHUTDOWN_GRACE_SECS", GRACE_SECS.to_string())
            .env("STATS_INTERVAL_SECS", "2")
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .spawn()
            .context("start the consumer binary")?;
        Ok(Self { name, child, log })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then the exit status within the grace period (plus start-up slack).
    async fn terminate(&mut self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        ensure!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(GRACE_SECS + 5);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                ensure!(
                    status.success(),
                    "{} exited with {status} after SIGTERM; log:\n{}",
                    self.name,
                    self.log()
                );
                ensure!(
                    self.log().contains("SIGTERM: shutting down"),
                    "{} did not log the SIGTERM",
                    self.name
                );
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!(
            "{} still running {GRACE_SECS} s after SIGTERM; log:\n{}",
            self.name,
            self.log()
        )
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

async fn queue_counts(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> anyhow::Result<[u64; 3]> {
    let counts = kedaform_common::queues::queue_counts(sqs, queue_url).await?;
    Ok([counts.visible, counts.in_flight, counts.delayed])
}

/// The source queue (visibility 5 s, redrive after 10 receives) and its dead-letter queue.
async fn queues(sqs: &aws_sdk_sqs::Client) -> anyhow::Result<(String, String)> {
    let pair = kedaform_common::queues::create_queue_with_dlq(sqs, &unique("events-"), VISIBILITY_SECS, 0, 10).await?;
    Ok((pair.url, pair.dead_letter_url))
}

/// What the bucket and the dead-letter queue must hold for what was sent.
struct Expected {
    /// key → body, one per distinct valid event.
    objects: HashMap<String, String>,
    valid: HashSet<Uuid>,
    bad: HashSet<Uuid>,
}

fn expected(sent: &[Message]) -> anyhow::Result<Expected> {
    let mut expected = Expected {
        objects: HashMap::new(),
        valid: HashSet::new(),
        bad: HashSet::new(),
    };
    for message in sent {
        if message.bad {
            expected.bad.insert(message.request_id);
            continue;
        }
        let (event_type, event) = validate(&message.body, Some(message.event_type.as_str()))?;
        let key = object_key("", event_type, &event);
        if let Some(earlier) = expected.objects.insert(key, message.body.clone()) {
            ensure!(earlier == message.body, "a duplicate is the same bytes");
        }
        expected.valid.insert(message.request_id);
    }
    Ok(expected)
}

/// Request ids in the dead-letter queue; each message must carry the reason.
async fn dead_lettered(sqs: &aws_sdk_sqs::Client, dlq_url: &str) -> anyhow::Result<HashSet<Uuid>> {
    let mut dead = HashSet::new();
    for message in kedaform_common::queues::receive_all(sqs, dlq_url).await? {
        let reason = message
            .message_attributes()
            .and_then(|a| a.get(consumer::DLQ_REASON_ATTRIBUTE))
            .and_then(|v| v.string_value())
            .unwrap_or_default();
        ensure!(reason == "missing field store_id", "{message:?}");
        let body: serde_json::Value = serde_json::from_str(message.body().unwrap_or_default())?;
        dead.insert(body["request_id"].as_str().unwrap_or_default().parse()?);
    }
    Ok(dead)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_is_stored_once_or_dead_lettered_through_sigkill_and_sigterm() -> anyhow::Result<()> {
    let aws = moto().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let s3 = kedaform_common::aws::s3(&aws);
    let (queue_url, dlq_url) = queues(&sqs).await?;
    let bucket = unique("sales-events-");
    s3.create_bucket().bucket(&bucket).send().await?;

    let mut killed = Consumer::start("killed", &queue_url, &bucket)?;
    let mut stopped = Consumer::start("stopped", &queue_url, &bucket)?;
    let mut survivor = Consumer::start("survivor", &queue_url, &bucket)?;

    let sent: Arc<Mutex<Vec<Message>>> = Arc::default();
    let count = Arc::new(AtomicUsize::new(0));
    let producing = {
        let (sqs, sent, count) = (sqs.clone(), Arc::clone(&sent), Arc::clone(&count));
        let config = producer::Config {
            total: EVENTS,
            wait_between_messages: Duration::ZERO,
            queue: Queue::Url(queue_url.clone()),
            bad_percent: 10,
            duplicate_percent: 5,
            batch_size: 10,
            seed: Some(2026),
        };
        tokio::spawn(async move {
            producer::run(&config, &sqs, &CancellationToken::new(), |message| {
                sent.lock().unwrap().push(message.clone());
                count.fetch_add(1, Ordering::SeqCst);
            })
            .await
        })
    };
    while count.load(Ordering::SeqCst) < 600 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    killed.child.kill()?;
    killed.child.wait()?;
    while count.load(Ordering::SeqCst) < 1_200 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stopped.terminate().await?;
    let summary = producing.await??;
    assert_eq!((summary.sent, summary.failures), (EVENTS, 0), "{summary:?}");
    assert!(summary.duplicates > 40 && summary.bad > 120, "{summary:?}");
    let expected = expected(&sent.lock().unwrap())?;

    // The killed consumer's batches come back after the visibility timeout.
    let started = Instant::now();
    while queue_counts(&sqs, &queue_url).await? != [0, 0, 0]
        || kedaform_common::queues::object_keys(&s3, &bucket).await?.len() != expected.objects.len()
    {
        ensure!(
            started.elapsed() < Duration::from_secs(120),
            "not drained after 120 s; survivor log:\n{}",
            survivor.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    survivor.terminate().await?;

    let keys = kedaform_common::queues::object_keys(&s3, &bucket).await?;
    let expected_keys: HashSet<String> = expected.objects.keys().cloned().collect();
    assert_eq!(
        keys, expected_keys,
        "exactly one object per distinct valid event, under its event type"
    );
    assert!(
        keys.iter().any(|k| k.starts_with("sale_event/dt="))
            && keys.iter().any(|k| k.starts_with("inventory_event/dt="))
    );
    for chunk in expected.objects.iter().collect::<Vec<_>>().chunks(50) {
        let bodies = join_all(
            chunk
                .iter()
                .map(|(key, _)| s3.get_object().bucket(&bucket).key(*key).send()),
        )
        .await;
        for ((key, body), stored) in chunk.iter().zip(bodies) {
            let stored = stored?.body.collect().await?.into_bytes();
            assert_eq!(stored.as_ref(), body.as_bytes(), "{key} holds the exact body");
        }
    }
    let dead = dead_lettered(&sqs, &dlq_url).await?;
    assert_eq!(
        dead, expected.bad,
        "every bad event, and nothing else, is in the dead-letter queue"
    );
    assert!(dead.is_disjoint(&expected.valid));
    assert_eq!(
        queue_counts(&sqs, &queue_url).await?,
        [0, 0, 0],
        "the source queue is empty"
    );
    Ok(())
}
