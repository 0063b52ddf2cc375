//! Two different bodies of one request id (at-least-once delivery of a producer that sent
//! it twice, edited): every order of arrival leaves the same body stored, the one that wins by
//! `consumer::wins`, and the other in the dead-letter queue with its reason. Against moto's
//! S3, whose conditional writes (`If-None-Match`, `If-Match`) are the real API's.

use std::time::Duration;

use consumer::queue::{AttributeValue, Message};
use consumer::{Config, DLQ_REASON_ATTRIBUTE, Worker};
use kedaform_tests::{moto, unique};
use sales_events::EventType;
use sales_events::settings::Queue;

const ID: &str = "00000000-0000-4000-8000-00000000c0de";

fn body(ts: &str, qty: u32) -> String {
    format!(
        r#"{{"request_id": "{ID}", "store_id": 3, "cust_id": 512, "category": "Books", "sku": 20001, "price": 12.5, "qty": {qty}, "discount": 10.5, "gift_wrap": false, "variant": "red", "priority_shipping": true, "ts": "{ts}"}}"#
    )
}

fn message(n: usize, body: &str) -> Message {
    Message {
        message_id: format!("m{n}"),
        receipt_handle: Some(format!("receipt-{n}")),
        body: body.to_owned(),
        message_attributes: [("event_type".to_owned(), AttributeValue::string("sale_event"))].into(),
    }
}

#[test]
fn the_rule_is_a_total_order_later_ts_then_greater_bytes() {
    let sale = EventType::SaleEvent;
    let early = body("2026-11-28T10:00:00Z", 1);
    let late = body("2026-11-28T10:00:01Z", 1);
    assert!(consumer::wins(&late, &early, sale) && !consumer::wins(&early, &late, sale));
    // The same instant written with another offset is the same instant: bytes decide.
    let same_instant = body("2026-11-28T11:00:00+01:00", 1);
    assert_ne!(
        consumer::wins(&same_instant, &early, sale),
        consumer::wins(&early, &same_instant, sale)
    );
    let (a, b) = (body("2026-11-28T10:00:00Z", 1), body("2026-11-28T10:00:00Z", 2));
    assert!(consumer::wins(&b, &a, sale) && !consumer::wins(&a, &b, sale));
    assert!(
        consumer::wins(&a, "not json", sale),
        "an invalid stored body always loses"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_order_of_arrival_stores_the_same_winner_and_dead_letters_the_loser() {
    let aws = moto().await;
    let (sqs, s3) = (aws_sdk_sqs::Client::new(&aws), kedaform_common::aws::s3(&aws));
    let winner = body("2026-11-28T10:00:05.000Z", 7);
    let loser = body("2026-11-28T10:00:00.000Z", 9);
    let orders: [(&str, Vec<Vec<&str>>); 4] = [
        ("loser then winner, two batches", vec![vec![&loser], vec![&winner]]),
        ("winner then loser, two batches", vec![vec![&winner], vec![&loser]]),
        ("both in one batch", vec![vec![&loser, &winner]]),
        (
            "both in one batch, other order, and again",
            vec![vec![&winner, &loser], vec![&loser, &winner]],
        ),
    ];
    for (order, batches) in orders {
        let pair = kedaform_common::queues::create_queue_with_dlq(&sqs, &unique("conflict-"), 30, 0, 10)
            .await
            .unwrap();
        let bucket = unique("conflict-");
        s3.create_bucket().bucket(&bucket).send().await.unwrap();
        let config = Config {
            max_batch: 10,
            total: 100,
            poll_backoff: Duration::from_secs(1),
            process_delay: Duration::ZERO,
            bucket: bucket.clone(),
            queue: Queue::Url(pair.url.clone()),
            dlq_url: None,
            concurrency: 1,
            s3_prefix: String::new(),
            shutdown_grace: Duration::from_secs(5),
            stats_interval: Duration::from_secs(30),
        };
        let worker = Worker::connect(&config, &aws).await.unwrap();
        let mut n = 0;
        for batch in batches {
            let messages: Vec<Message> = batch
                .iter()
                .map(|b| {
                    n += 1;
                    message(n, b)
                })
                .collect();
            assert!(!worker.process(&messages).await);
        }
        let key = format!("sale_event/dt=2026-11-28/{ID}.json");
        let stored = s3.get_object().bucket(&bucket).key(&key).send().await.unwrap();
        let stored = String::from_utf8(stored.body.collect().await.unwrap().into_bytes().to_vec()).unwrap();
        assert_eq!(stored, winner, "{order}: the later ts is stored");
        let dead = kedaform_common::queues::receive_all(&sqs, &pair.dead_letter_url)
            .await
            .unwrap();
        assert!(!dead.is_empty(), "{order}: the loser is dead-lettered");
        for message in &dead {
            assert_eq!(message.body(), Some(loser.as_str()), "{order}: only the loser");
            let reason = message
                .message_attributes()
                .and_then(|a| a.get(DLQ_REASON_ATTRIBUTE))
                .and_then(|v| v.string_value());
            assert!(
                reason.is_some_and(|r| r.starts_with("superseded")),
                "{order}: {reason:?}"
            );
            assert_eq!(
                message
                    .message_attributes()
                    .and_then(|a| a.get("event_type"))
                    .and_then(|v| v.string_value()),
                Some("sale_event")
            );
        }
        let stats = worker.stats();
        assert_eq!(stats.invalid, dead.len() as u64, "{order}: {stats:?}");
        assert!(stats.superseded >= 1, "{order}: {stats:?}");
    }
}
