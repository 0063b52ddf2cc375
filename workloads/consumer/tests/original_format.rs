//! Drop-in for scale-eks-with-keda: a stream written exactly as the original Python producer writes it
//! (one `SendMessage` per event, `json.dumps` separators, `datetime.now().isoformat()` without an
//! offset, string attributes `event_type` and `priority_shipping` as "True"/"False",
//! `contact_me`, `is_return`, `bad_msg` on bad events) is stored byte-identical, and every bad
//! event goes to the dead-letter queue with its reason. The generator is this test's own.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::MessageAttributeValue;
use kedaform_tests::{moto, unique};
use sales_events::{CATEGORIES, object_key, validate};

const EVENTS: usize = 300;

/// A small deterministic generator (xorshift), so the stream is the same on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }

    /// A whole number below `below` (at most 2^32), as f64.
    fn float(&mut self, below: u32) -> f64 {
        f64::from(u32::try_from(self.next(u64::from(below))).expect("below 2^32"))
    }
}

/// One event as scale-eks-with-keda's producer sends it: (body, `event_type`, `priority_shipping`, bad).
fn original_event(n: usize, rng: &mut Lcg) -> (String, &'static str, bool, bool) {
    let bad = rng.next(10) == 0;
    let priority = rng.next(2) == 0;
    let event_type = if rng.next(2) == 0 {
        "sale_event"
    } else {
        "inventory_event"
    };
    let request_id = format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        rng.next(1 << 32),
        rng.next(1 << 16),
        rng.next(1 << 12),
        rng.next(1 << 12),
        rng.next(1 << 48)
    );
    let price = rng.float(10_001) / 100.0;
    let discount = rng.float(201) / 10.0;
    // Python's isoformat() drops the fraction when the microseconds are zero.
    let micros = if n.is_multiple_of(50) {
        String::new()
    } else {
        format!(".{:06}", rng.next(1_000_000))
    };
    let ts = format!(
        "2026-11-29T{:02}:{:02}:{:02}{micros}",
        rng.next(24),
        rng.next(60),
        rng.next(60)
    );
    let python_bool = |b: bool| if b { "true" } else { "false" };
    let store = if bad {
        String::new()
    } else {
        format!("\"store_id\": {}, ", rng.next(10) + 1)
    };
    let mut body = format!(
        "{{\"request_id\": \"{request_id}\", {store}\"cust_id\": {}, \"category\": \"{}\", \"sku\": {}, \
         \"price\": {price:?}, \"qty\": {}, \"discount\": {discount:?}, \"gift_wrap\": {}, \"variant\": \"{}\", \
         \"priority_shipping\": {}, \"ts\": \"{ts}\", \"contact_me\": \"github.com/miztiik\", \"is_return\": {}",
        rng.next(900) + 100,
        CATEGORIES[usize::try_from(rng.next(16)).expect("below 16")],
        rng.next(170_301) + 18_981,
        rng.next(38) + 1,
        python_bool(rng.next(2) == 0),
        if rng.next(2) == 0 { "black" } else { "red" },
        python_bool(priority),
        python_bool(rng.next(2) == 0),
    );
    if bad {
        body.push_str(", \"bad_msg\": true");
    }
    body.push('}');
    (body, event_type, priority, bad)
}

fn attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("data type and value are set")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_of_the_original_producer_is_stored_byte_identical_or_dead_lettered() -> anyhow::Result<()> {
    let aws = moto().await;
    let sqs = aws_sdk_sqs::Client::new(&aws);
    let s3 = kedaform_common::aws::s3(&aws);
    let pair = kedaform_common::queues::create_queue_with_dlq(&sqs, &unique("original-"), 30, 0, 10).await?;
    let bucket = unique("original-events-");
    s3.create_bucket().bucket(&bucket).send().await?;

    let mut rng = Lcg(0x5eed_cafe_f00d_1234);
    let mut stored: HashMap<String, String> = HashMap::new();
    let mut bad = 0;
    for n in 0..EVENTS {
        let (body, event_type, priority, is_bad) = original_event(n, &mut rng);
        if is_bad {
            bad += 1;
        } else {
            let (kind, event) = validate(&body, Some(event_type)).map_err(|e| anyhow::anyhow!("{e}: {body}"))?;
            stored.insert(object_key("", kind, &event), body.clone());
        }
        sqs.send_message()
            .queue_url(&pair.url)
            .message_body(&body)
            .message_attributes("event_type", attribute(event_type))
            .message_attributes("priority_shipping", attribute(if priority { "True" } else { "False" }))
            .send()
            .await?;
    }
    assert!(bad > 10 && stored.len() > 200, "{bad} bad, {} valid", stored.len());

    let mut consumer = Command::new(env!("CARGO_BIN_EXE_consumer"))
        .env("QUEUE_URL", &pair.url)
        .env("STORE_EVENTS_BKT", &bucket)
        .env("MSG_PROCESS_DELAY", "0")
        .env("MAX_MSGS_PER_BATCH", "10")
        .env("MSG_POLL_BACKOFF", "0.2")
        .env("TOT_MSGS_TO_PROCESS", EVENTS.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = consumer.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            consumer.kill()?;
            anyhow::bail!("the consumer did not process {EVENTS} messages in 120 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(status.success(), "{status}");

    let keys = kedaform_common::queues::object_keys(&s3, &bucket).await?;
    assert_eq!(keys.len(), stored.len(), "one object per valid event");
    for (key, body) in &stored {
        let object = s3.get_object().bucket(&bucket).key(key).send().await?;
        let bytes = object.body.collect().await?.into_bytes();
        assert_eq!(std::str::from_utf8(&bytes)?, body, "{key} is the message's bytes");
    }
    let dead = kedaform_common::queues::receive_all(&sqs, &pair.dead_letter_url).await?;
    assert_eq!(dead.len(), bad, "every bad event in the dead-letter queue");
    for message in dead {
        let reason = message
            .message_attributes()
            .and_then(|a| a.get(consumer::DLQ_REASON_ATTRIBUTE))
            .and_then(|v| v.string_value());
        assert_eq!(reason, Some("missing field store_id"));
        assert!(message.body().unwrap_or_default().ends_with(", \"bad_msg\": true}"));
    }
    Ok(())
}
