//! The producer binary against moto, and refused batch entries against a loopback SQS.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use kedaform_tests::{LocalServer, Reply, moto, unique};
use producer::{Config, Summary};
use sales_events::settings::Queue;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

async fn queue(sqs: &aws_sdk_sqs::Client) -> (String, String) {
    let name = unique("reliable_q_");
    let url = sqs
        .create_queue()
        .queue_name(&name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    (name, url)
}

async fn depth(sqs: &aws_sdk_sqs::Client, url: &str) -> u64 {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    attributes[&QueueAttributeName::ApproximateNumberOfMessages]
        .parse()
        .unwrap()
}

fn producer(env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_producer"));
    command
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn summary(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|_| panic!("no summary line in {stdout}"))
}

#[tokio::test]
async fn the_binary_sends_the_total_by_queue_name_and_prints_one_summary_line() {
    let sqs = aws_sdk_sqs::Client::new(&moto().await);
    let (name, url) = queue(&sqs).await;
    let output = producer(&[
        ("RELIABLE_QUEUE_NAME", &name),
        ("TOT_MSGS_TO_PRODUCE", "25"),
        ("WAIT_SECS_BETWEEN_MSGS", "0"),
        ("SEND_BATCH_SIZE", "10"),
        ("BAD_MSG_PERCENT", "20"),
        ("DUPLICATE_PERCENT", "20"),
        ("SEED", "11"),
    ])
    .output()
    .unwrap();
    assert!(output.status.success(), "{output:?}");
    let line = summary(&output);
    assert_eq!(
        (line["sent"].as_u64(), line["failures"].as_u64()),
        (Some(25), Some(0)),
        "{line}"
    );
    assert!(
        line["duplicates"].as_u64().unwrap() > 0 && line["bad"].as_u64().unwrap() > 0,
        "{line}"
    );
    assert_eq!(depth(&sqs, &url).await, 25);
}

#[tokio::test]
async fn bad_settings_exit_2_naming_the_variable() {
    let output = producer(&[("QUEUE_URL", "http://127.0.0.1:9/q"), ("SEND_BATCH_SIZE", "0")])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let text = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
    assert!(text.contains("SEND_BATCH_SIZE=\\\"0\\\" is not valid"), "{text}");
}

#[tokio::test]
async fn a_queue_url_without_a_queue_exits_1_naming_the_queue() {
    let sqs = aws_sdk_sqs::Client::new(&moto().await);
    let (_, url) = queue(&sqs).await;
    let missing = format!("{url}-gone");
    let started = Instant::now();
    let output = producer(&[
        ("QUEUE_URL", &missing),
        ("WAIT_SECS_BETWEEN_MSGS", "0"),
        ("TOT_MSGS_TO_PRODUCE", "5"),
    ])
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
    assert!(text.contains("ERROR"), "{text}");
    assert!(
        text.contains(&format!("could not find queue {missing}: the queue does not exist")),
        "{text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "no retries: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn sigterm_stops_cleanly_with_a_summary() {
    let sqs = aws_sdk_sqs::Client::new(&moto().await);
    let (_, url) = queue(&sqs).await;
    let child = producer(&[
        ("QUEUE_URL", &url),
        ("WAIT_SECS_BETWEEN_MSGS", "0.1"),
        ("TOT_MSGS_TO_PRODUCE", "1000"),
    ])
    .spawn()
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let signalled = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let output = child.wait_with_output().unwrap();
    assert!(
        signalled.elapsed() < Duration::from_secs(2),
        "took {:?} to stop",
        signalled.elapsed()
    );
    assert!(output.status.success(), "{output:?}");
    let line = summary(&output);
    let sent = line["sent"].as_u64().unwrap();
    assert!((1..1000).contains(&sent), "{line}");
    assert_eq!(line["failures"], 0);
    assert_eq!(
        depth(&sqs, &url).await,
        sent,
        "everything reported sent is in the queue"
    );
}

/// A loopback SQS that refuses the entries `refuse(call, id)` names.
async fn refusing_sqs(refuse: fn(usize, &str) -> bool) -> LocalServer {
    let calls = std::sync::atomic::AtomicUsize::new(0);
    LocalServer::start(move |_, request| {
        let call = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let (failed, ok): (Vec<String>, Vec<String>) = body["Entries"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|e| e["Id"].as_str().unwrap_or_default().to_owned())
            .partition(|id| refuse(call, id));
        let answer = json!({
            "Successful": ok.iter().map(|id| json!({"Id": id, "MessageId": "m", "MD5OfMessageBody": "0"})).collect::<Vec<_>>(),
            "Failed": failed.iter().map(|id| json!({"Id": id, "SenderFault": false, "Code": "InternalError"})).collect::<Vec<_>>(),
        });
        Reply::new(200, "application/x-amz-json-1.0", answer.to_string())
    })
    .await
}

async fn produce_three(server: &LocalServer) -> Summary {
    let aws = moto().await;
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&aws)
            .endpoint_url(&server.url)
            .build(),
    );
    let config = Config {
        total: 3,
        wait_between_messages: Duration::ZERO,
        queue: Queue::Url("http://sqs.local/123456789012/q".into()),
        bad_percent: 0,
        duplicate_percent: 0,
        batch_size: 10,
        seed: Some(5),
    };
    producer::run(&config, &sqs, &CancellationToken::new(), |_| {})
        .await
        .unwrap()
}

fn entries(server: &LocalServer) -> Vec<Vec<(String, String)>> {
    server
        .requests()
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            body["Entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["Id"].as_str().unwrap().to_owned(),
                        e["MessageBody"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn a_refused_entry_is_sent_again_alone_with_the_same_body() {
    let server = refusing_sqs(|call, id| call == 0 && id == "1").await;
    let summary = produce_three(&server).await;
    assert_eq!(
        summary,
        Summary {
            sent: 3,
            duplicates: 0,
            bad: 0,
            failures: 0,
            retries: 1
        }
    );
    let calls = entries(&server);
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].len(), 3);
    assert_eq!(calls[1], vec![calls[0][1].clone()]);
}

#[tokio::test]
async fn an_entry_refused_every_time_is_counted_as_a_failure_not_dropped_silently() {
    let server = refusing_sqs(|_, id| id == "0").await;
    let summary = produce_three(&server).await;
    assert_eq!((summary.sent, summary.failures), (2, 1), "{summary:?}");
    assert!(
        entries(&server).iter().all(|call| call.iter().any(|(id, _)| id == "0")),
        "it was tried every time"
    );
}
