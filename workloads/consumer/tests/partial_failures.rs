//! Partial batch failures, which moto never produces: a loopback server plays SQS (JSON
//! protocol) and S3, failing one object write and one delete entry.

use std::time::Duration;

use consumer::queue::{AttributeValue, Message};
use consumer::{Config, StatsSnapshot, Worker};
use kedaform_tests::{LocalServer, Recorded, Reply, moto};
use sales_events::settings::Queue;
use serde_json::{Value, json};

const QUEUE: &str = "http://sqs.local/123456789012/events";
const STORE_FAILS_FOR: &str = "00000000-0000-4000-8000-000000000002";

fn target(request: &Recorded) -> String {
    request
        .header("x-amz-target")
        .unwrap_or_default()
        .trim_start_matches("AmazonSQS.")
        .to_owned()
}

fn sqs_json(body: &Value) -> Reply {
    Reply::new(200, "application/x-amz-json-1.0", body.to_string())
}

/// `visibility`: the queue's visibility timeout in seconds; `write_delay`: how long each S3
/// write takes.
async fn fake_aws(visibility: u32, write_delay: Duration) -> LocalServer {
    let deletes = std::sync::atomic::AtomicUsize::new(0);
    LocalServer::start(move |_, request| {
        if request.method == "PUT" && request.path_and_query.contains(consumer::WRITE_CHECK_KEY) {
            return Reply::new(200, "application/xml", "").header("etag", "\"e\"");
        }
        if request.method == "PUT" {
            return if request.path_and_query.contains(STORE_FAILS_FOR) {
                Reply::new(500, "application/xml", "<Error><Code>InternalError</Code><Message>try again</Message></Error>")
            } else {
                Reply::new(200, "application/xml", "").header("etag", "\"e\"")
            }
            .after(write_delay);
        }
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let ids = || body["Entries"].as_array().cloned().unwrap_or_default().into_iter().map(|e| e["Id"].clone());
        match target(request).as_str() {
            "GetQueueAttributes" => sqs_json(&json!({"Attributes": {
                "VisibilityTimeout": visibility.to_string(),
                "RedrivePolicy": "{\"deadLetterTargetArn\":\"arn:aws:sqs:us-east-1:123456789012:events-dlq\",\"maxReceiveCount\":\"3\"}"
            }})),
            "GetQueueUrl" => sqs_json(&json!({"QueueUrl": "http://sqs.local/123456789012/events-dlq"})),
            "SendMessageBatch" => sqs_json(&json!({"Successful": ids()
                .map(|id| json!({"Id": id, "MessageId": "m", "MD5OfMessageBody": "0"})).collect::<Vec<_>>(), "Failed": []})),
            "ChangeMessageVisibilityBatch" => sqs_json(&json!({"Successful": ids()
                .map(|id| json!({"Id": id})).collect::<Vec<_>>(), "Failed": []})),
            "DeleteMessageBatch" => {
                let first = deletes.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
                let (failed, ok): (Vec<Value>, Vec<Value>) = ids().partition(|id| first && id == "0");
                sqs_json(&json!({
                    "Successful": ok.into_iter().map(|id| json!({"Id": id})).collect::<Vec<_>>(),
                    "Failed": failed.into_iter()
                        .map(|id| json!({"Id": id, "SenderFault": false, "Code": "InternalError", "Message": "try again"}))
                        .collect::<Vec<_>>()
                }))
            }
            other => Reply::new(400, "application/x-amz-json-1.0", json!({"__type": "Unexpected", "message": other}).to_string()),
        }
    })
    .await
}

fn event(request_id: &str) -> String {
    json!({"request_id": request_id, "store_id": 3, "cust_id": 512, "category": "Books", "sku": 20001,
           "price": 12.5, "qty": 2, "discount": 10.5, "gift_wrap": false, "variant": "red",
           "priority_shipping": true, "ts": "2026-11-28T10:00:00.000Z"})
    .to_string()
}

fn message(n: u8, body: String) -> Message {
    Message {
        message_id: format!("m{n}"),
        receipt_handle: Some(format!("receipt-{n}")),
        body,
        message_attributes: [("event_type".to_owned(), AttributeValue::string("sale_event"))].into(),
    }
}

fn config() -> Config {
    Config {
        max_batch: 10,
        total: 100,
        poll_backoff: Duration::from_secs(1),
        process_delay: Duration::ZERO,
        bucket: "events".into(),
        queue: Queue::Url(QUEUE.into()),
        dlq_url: None,
        concurrency: 1,
        s3_prefix: "archive".into(),
        shutdown_grace: Duration::from_secs(5),
        stats_interval: Duration::from_secs(30),
    }
}

async fn worker(fake: &LocalServer) -> Worker {
    moto().await;
    // Set here, the endpoint wins over AWS_ENDPOINT_URL (which names moto).
    let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&fake.url)
        .load()
        .await;
    Worker::connect(&config(), &aws)
        .await
        .expect("the fake answers GetQueueAttributes and GetQueueUrl")
}

#[tokio::test]
async fn a_failed_write_is_left_for_redelivery_and_a_refused_delete_is_retried() {
    let fake = fake_aws(30, Duration::ZERO).await;
    let worker = worker(&fake).await;
    let batch = [
        message(0, event("00000000-0000-4000-8000-000000000001")),
        message(1, event(STORE_FAILS_FOR)),
        message(2, "{\"request_id\": \"oops\"}".into()),
        message(3, event("00000000-0000-4000-8000-000000000003")),
    ];
    worker.process(&batch).await;

    let requests = fake.requests();
    let puts: Vec<&str> = requests
        .iter()
        .filter(|r| r.method == "PUT" && !r.path_and_query.contains(consumer::WRITE_CHECK_KEY))
        .map(|r| r.path_and_query.as_str())
        .collect();
    let keys: std::collections::BTreeSet<&str> = puts.iter().map(|p| p.split('?').next().unwrap()).collect();
    assert_eq!(
        keys.into_iter().collect::<Vec<_>>(),
        [1, 2, 3]
            .map(|n| format!("/events/archive/sale_event/dt%3D2026-11-28/00000000-0000-4000-8000-00000000000{n}.json")),
        "one key per valid event, dated by the event"
    );
    let failing = puts.iter().filter(|p| p.contains(STORE_FAILS_FOR)).count();
    assert!(
        failing > 1,
        "a 500 is retried before the consumer gives the message back: {puts:?}"
    );

    let sqs_calls: Vec<(String, Value)> = requests
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| (target(r), serde_json::from_slice(&r.body).unwrap()))
        .collect();
    let dead: Vec<&Value> = sqs_calls
        .iter()
        .filter(|(t, _)| t == "SendMessageBatch")
        .map(|(_, b)| b)
        .collect();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["QueueUrl"], "http://sqs.local/123456789012/events-dlq");
    assert_eq!(dead[0]["Entries"][0]["MessageBody"], "{\"request_id\": \"oops\"}");
    assert_eq!(
        dead[0]["Entries"][0]["MessageAttributes"]["dlq_reason"]["StringValue"],
        "field request_id should be a UUID"
    );

    let deletes: Vec<Vec<String>> = sqs_calls
        .iter()
        .filter(|(t, _)| t == "DeleteMessageBatch")
        .map(|(_, b)| {
            b["Entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["ReceiptHandle"].as_str().unwrap().to_owned())
                .collect()
        })
        .collect();
    assert_eq!(
        deletes,
        vec![vec!["receipt-0", "receipt-3", "receipt-2"], vec!["receipt-0"]],
        "stored and dead-lettered messages are deleted, the refused entry once more; the unstored one never"
    );
    assert_eq!(
        worker.stats(),
        StatsSnapshot {
            received: 4,
            stored: 2,
            duplicates: 0,
            invalid: 1,
            superseded: 0,
            retries: 1,
            delete_retries: 1,
            extensions: 0,
            done: 3
        }
    );
}

#[tokio::test]
async fn a_batch_slower_than_the_visibility_timeout_keeps_its_messages_invisible() {
    let fake = fake_aws(2, Duration::from_millis(4_600)).await;
    let worker = worker(&fake).await;
    worker
        .process(&[
            message(0, event("00000000-0000-4000-8000-000000000001")),
            message(1, event("00000000-0000-4000-8000-000000000003")),
        ])
        .await;
    let extensions: Vec<Value> = fake
        .requests()
        .iter()
        .filter(|r| target(r) == "ChangeMessageVisibilityBatch")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert!(
        extensions.len() >= 2,
        "every second while the 4.6 s writes run: {extensions:?}"
    );
    for extension in &extensions {
        assert_eq!(
            extension["Entries"][0],
            json!({"Id": "0", "ReceiptHandle": "receipt-0", "VisibilityTimeout": 2})
        );
        assert_eq!(extension["Entries"][1]["ReceiptHandle"], "receipt-1");
    }
    assert_eq!(worker.stats().extensions, extensions.len() as u64);
    assert_eq!(worker.stats().done, 2);
}
