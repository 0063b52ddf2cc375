//! A bucket or queue that is missing, or goes away while the consumer runs, stops it with an
//! error naming it; large invalid messages reach the dead-letter queue with their reason.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::MessageAttributeValue;
use consumer::{Config, ConsumerError, DLQ_REASON_ATTRIBUTE, MAX_UNUSABLE_BATCHES};
use kedaform_tests::{moto, unique};
use sales_events::settings::Queue;
use tokio_util::sync::CancellationToken;

fn config(queue_url: &str, bucket: &str) -> Config {
    Config {
        max_batch: 1,
        total: 1_000,
        poll_backoff: Duration::from_millis(100),
        process_delay: Duration::ZERO,
        bucket: bucket.into(),
        queue: Queue::Url(queue_url.into()),
        dlq_url: None,
        concurrency: 1,
        s3_prefix: String::new(),
        shutdown_grace: Duration::from_secs(5),
        stats_interval: Duration::from_secs(30),
    }
}

fn event_type(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .unwrap()
}

fn valid_event(n: u32) -> String {
    format!(
        r#"{{"request_id": "00000000-0000-4000-8000-{n:012}", "store_id": 3, "cust_id": 512, "category": "Books", "sku": 20001, "price": 12.5, "qty": 2, "discount": 10.5, "gift_wrap": false, "variant": "red", "priority_shipping": true, "ts": "2026-11-28T10:00:00.000Z"}}"#
    )
}

/// A queue with its dead-letter queue and a bucket on moto, and a consumer running on them.
struct Running {
    sqs: aws_sdk_sqs::Client,
    s3: aws_sdk_s3::Client,
    pair: kedaform_common::queues::QueuePair,
    bucket: String,
    stop: CancellationToken,
    consumer: tokio::task::JoinHandle<Result<consumer::StatsSnapshot, ConsumerError>>,
}

async fn running(prefix: &str) -> Running {
    let aws = moto().await;
    let (sqs, s3) = (aws_sdk_sqs::Client::new(&aws), kedaform_common::aws::s3(&aws));
    let pair = kedaform_common::queues::create_queue_with_dlq(&sqs, &unique(prefix), 30, 0, 10)
        .await
        .unwrap();
    let bucket = unique(prefix);
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let config = config(&pair.url, &bucket);
    let stop = CancellationToken::new();
    let consumer = tokio::spawn({
        let stop = stop.clone();
        async move { consumer::run(&config, &aws, &stop).await }
    });
    Running {
        sqs,
        s3,
        pair,
        bucket,
        stop,
        consumer,
    }
}

#[tokio::test]
async fn a_missing_bucket_stops_the_binary_at_start_with_exit_1_naming_it() {
    let aws = moto().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let pair = kedaform_common::queues::create_queue_with_dlq(&sqs, &unique("nobucket-"), 30, 0, 10)
        .await
        .unwrap();
    let bucket = unique("never-created-");
    let output = Command::new(env!("CARGO_BIN_EXE_consumer"))
        .env("QUEUE_URL", &pair.url)
        .env("STORE_EVENTS_BKT", &bucket)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let log = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("ERROR"), "{log}");
    assert!(
        log.contains(&format!("STORE_EVENTS_BKT={bucket}: the bucket does not exist")),
        "{log}"
    );
}

#[tokio::test]
async fn a_bucket_deleted_while_running_stops_the_consumer_after_a_bounded_number_of_batches() {
    let Running {
        sqs,
        s3,
        pair,
        bucket,
        stop,
        consumer,
    } = running("gone-bucket-").await;
    // Once the start-up check wrote its object, the bucket is emptied and deleted.
    let started = Instant::now();
    loop {
        let listed = s3.list_objects_v2().bucket(&bucket).send().await.unwrap();
        if let Some(object) = listed.contents().first() {
            s3.delete_object()
                .bucket(&bucket)
                .key(object.key().unwrap())
                .send()
                .await
                .unwrap();
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no start-up check object");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s3.delete_bucket().bucket(&bucket).send().await.unwrap();
    for n in 0..5 {
        sqs.send_message()
            .queue_url(&pair.url)
            .message_body(valid_event(n))
            .message_attributes("event_type", event_type("sale_event"))
            .send()
            .await
            .unwrap();
    }
    let result = tokio::time::timeout(Duration::from_secs(30), consumer)
        .await
        .expect("it stops on its own")
        .unwrap();
    let error = result.expect_err("an unusable bucket is an error");
    assert!(matches!(error, ConsumerError::Unusable(_)), "{error}");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "stopped after {MAX_UNUSABLE_BATCHES} batches in a row failed: STORE_EVENTS_BKT={bucket}: "
        )),
        "{message}"
    );
    let dead = kedaform_common::queues::receive_all(&sqs, &pair.dead_letter_url)
        .await
        .unwrap();
    assert!(
        dead.is_empty(),
        "valid events never reach the dead-letter queue: {dead:?}"
    );
    assert!(!stop.is_cancelled());
}

#[tokio::test]
async fn a_queue_deleted_while_running_stops_the_consumer_naming_it() {
    let Running {
        sqs, pair, consumer, ..
    } = running("gone-queue-").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    sqs.delete_queue().queue_url(&pair.url).send().await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(60), consumer)
        .await
        .expect("it stops on its own")
        .unwrap();
    let message = result.expect_err("a deleted queue is an error").to_string();
    assert!(
        message.starts_with(&format!(
            "stopped after {MAX_UNUSABLE_BATCHES} batches in a row failed: queue {}: the queue does not exist",
            pair.url
        )),
        "{message}"
    );
}

/// A queue with its dead-letter queue and a bucket on moto, `bodies` sent as sale events, and
/// one consumer run (batches of 10) until it has handled them all: its counters, the queues.
async fn consume(
    prefix: &str,
    bodies: &[String],
) -> (
    consumer::StatsSnapshot,
    aws_sdk_sqs::Client,
    kedaform_common::queues::QueuePair,
) {
    let aws = moto().await;
    let (sqs, s3) = (aws_sdk_sqs::Client::new(&aws), kedaform_common::aws::s3(&aws));
    let pair = kedaform_common::queues::create_queue_with_dlq(&sqs, &unique(prefix), 30, 0, 10)
        .await
        .unwrap();
    let bucket = unique(prefix);
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    for body in bodies {
        sqs.send_message()
            .queue_url(&pair.url)
            .message_body(body)
            .message_attributes("event_type", event_type("sale_event"))
            .send()
            .await
            .unwrap();
    }
    let mut config = config(&pair.url, &bucket);
    config.max_batch = 10;
    config.total = u64::try_from(bodies.len()).unwrap();
    let stats = tokio::time::timeout(
        Duration::from_secs(60),
        consumer::run(&config, &aws, &CancellationToken::new()),
    )
    .await
    .expect("done within a minute")
    .expect("no panic, no error");
    (stats, sqs, pair)
}

#[tokio::test]
async fn large_invalid_messages_over_the_batch_limit_all_reach_the_dead_letter_queue_with_their_reason() {
    // Ten invalid events of 200 KB: 2 MB in one receive, over any SQS batch limit.
    let bodies: Vec<String> = (0..10)
        .map(|n| {
            format!(
                r#"{{"request_id": "not-a-uuid-{n}", "padding": "{}"}}"#,
                "x".repeat(200_000)
            )
        })
        .collect();
    let (stats, sqs, pair) = consume("large-", &bodies).await;
    assert_eq!((stats.invalid, stats.done), (10, 10), "{stats:?}");
    let dead = kedaform_common::queues::receive_all(&sqs, &pair.dead_letter_url)
        .await
        .unwrap();
    assert_eq!(dead.len(), 10);
    for message in dead {
        let reason = message
            .message_attributes()
            .and_then(|a| a.get(DLQ_REASON_ATTRIBUTE))
            .and_then(|v| v.string_value());
        assert_eq!(reason, Some("field request_id should be a UUID"));
        assert!(message.body().unwrap().len() > 200_000);
    }
}

#[tokio::test]
async fn an_impossible_date_and_an_oversized_reason_are_dead_lettered_and_the_rest_stored() {
    let year_10000 = valid_event(900).replace("2026-11-28T10:00:00.000Z", "9999-12-31T23:30:00-01:00");
    // A category just under SQS's 1 MiB: its reason quoting it would have pushed the dead
    // letter over the limit.
    let huge = valid_event(901).replace("\"Books\"", &format!("\"{}\"", "b".repeat(1_040_000)));
    let bodies = [valid_event(1), year_10000, valid_event(2), huge, valid_event(3)];
    let (stats, sqs, pair) = consume("dates-", &bodies).await;
    assert_eq!((stats.stored, stats.invalid, stats.done), (3, 2, 5), "{stats:?}");
    let dead = kedaform_common::queues::receive_all(&sqs, &pair.dead_letter_url)
        .await
        .unwrap();
    let mut reasons: Vec<String> = dead
        .iter()
        .map(|m| {
            let attributes = m.message_attributes().unwrap();
            let reason = attributes[DLQ_REASON_ATTRIBUTE].string_value().unwrap().to_owned();
            let size = m.body().unwrap().len()
                + attributes
                    .iter()
                    .map(|(n, v)| n.len() + v.data_type().len() + v.string_value().unwrap_or_default().len())
                    .sum::<usize>();
            assert!(size <= consumer::MAX_MESSAGE_BYTES, "{size} bytes");
            reason
        })
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 2);
    assert!(
        reasons[0].starts_with("field category is bbbb"),
        "{}",
        &reasons[0][..80]
    );
    assert!(reasons[0].len() < 200, "{} bytes", reasons[0].len());
    assert!(
        reasons[1].starts_with("field ts should be an RFC 3339 timestamp"),
        "{}",
        reasons[1]
    );
}
