//! The reference system's queue and bucket as the demo, the bench and the tests handle them:
//! a queue with its dead-letter queue made, its depth read as KEDA's scaler reads it, drained,
//! and the consumer's bucket listed. Not part of the deployer (`kedaform`).

/// What these calls fail with: the action, the queue or bucket, and the SDK's error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An SQS call failed.
    #[error("SQS {action} on {queue} failed")]
    Sqs {
        /// The API action.
        action: &'static str,
        /// The queue.
        queue: String,
        /// The SDK's error.
        #[source]
        source: Box<aws_sdk_sqs::Error>,
    },

    /// An S3 call failed.
    #[error("S3 {action} on bucket {bucket} failed")]
    S3 {
        /// The API action.
        action: &'static str,
        /// The bucket.
        bucket: String,
        /// The SDK's error.
        #[source]
        source: Box<aws_sdk_s3::Error>,
    },
}

/// The queue as KEDA's `aws-sqs-queue` scaler reads it (`ApproximateNumberOf…`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    /// `ApproximateNumberOfMessages`.
    pub visible: u64,
    /// `ApproximateNumberOfMessagesNotVisible`.
    pub in_flight: u64,
    /// `ApproximateNumberOfMessagesDelayed`.
    pub delayed: u64,
}

/// A queue and the dead-letter queue its redrive policy names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuePair {
    /// The queue.
    pub url: String,
    /// Its dead-letter queue.
    pub dead_letter_url: String,
}

fn sqs_error(action: &'static str, queue: &str, source: aws_sdk_sqs::Error) -> Error {
    Error::Sqs {
        action,
        queue: queue.to_owned(),
        source: Box::new(source),
    }
}

/// Creates `name` and `name-dlq`, the first redriving to the second after `max_receive_count`.
pub async fn create_queue_with_dlq(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    visibility_timeout: u32,
    delay_seconds: u32,
    max_receive_count: u32,
) -> Result<QueuePair, Error> {
    use aws_sdk_sqs::types::QueueAttributeName as Attribute;
    let dlq_name = format!("{name}-dlq");
    let dead_letter_url = sqs
        .create_queue()
        .queue_name(&dlq_name)
        .send()
        .await
        .map_err(|e| sqs_error("CreateQueue", &dlq_name, e.into()))?
        .queue_url
        .unwrap_or_default();
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dead_letter_url)
        .attribute_names(Attribute::QueueArn)
        .send()
        .await
        .map_err(|e| sqs_error("GetQueueAttributes", &dlq_name, e.into()))?
        .attributes
        .and_then(|mut a| a.remove(&Attribute::QueueArn))
        .unwrap_or_default();
    let redrive = serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count.to_string()});
    let url = sqs
        .create_queue()
        .queue_name(name)
        .attributes(Attribute::VisibilityTimeout, visibility_timeout.to_string())
        .attributes(Attribute::DelaySeconds, delay_seconds.to_string())
        .attributes(Attribute::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .map_err(|e| sqs_error("CreateQueue", name, e.into()))?
        .queue_url
        .unwrap_or_default();
    Ok(QueuePair { url, dead_letter_url })
}

/// Visible, in-flight and delayed messages, as the KEDA scaler reads them.
pub async fn queue_counts(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<QueueCounts, Error> {
    use aws_sdk_sqs::types::QueueAttributeName as Attribute;
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(Attribute::ApproximateNumberOfMessages)
        .attribute_names(Attribute::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(Attribute::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .map_err(|e| sqs_error("GetQueueAttributes", url, e.into()))?
        .attributes
        .unwrap_or_default();
    let count = |name| attributes.get(&name).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(QueueCounts {
        visible: count(Attribute::ApproximateNumberOfMessages),
        in_flight: count(Attribute::ApproximateNumberOfMessagesNotVisible),
        delayed: count(Attribute::ApproximateNumberOfMessagesDelayed),
    })
}

/// Receives every message of `url`, with its attributes, until three receives in a row come
/// back empty; each is hidden for ten minutes, so none comes back while this runs.
pub async fn receive_all(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<Vec<aws_sdk_sqs::types::Message>, Error> {
    let mut all = Vec::new();
    let mut empty = 0;
    while empty < 3 {
        let messages = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(600)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| sqs_error("ReceiveMessage", url, e.into()))?
            .messages
            .unwrap_or_default();
        empty = if messages.is_empty() { empty + 1 } else { 0 };
        all.extend(messages);
    }
    Ok(all)
}

/// Every data key in `bucket`: not the files a query engine skips (`_…`, `.…`).
pub async fn object_keys(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<std::collections::HashSet<String>, Error> {
    let mut keys = std::collections::HashSet::new();
    let mut token = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket(bucket)
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| Error::S3 {
                action: "ListObjectsV2",
                bucket: bucket.to_owned(),
                source: Box::new(e.into()),
            })?;
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key())
                // As Athena and Glue read a prefix: files named _… or .… are not data.
                .filter(|key| !key.rsplit('/').next().is_some_and(|file| file.starts_with(['_', '.'])))
                .map(str::to_owned),
        );
        token = page.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            return Ok(keys);
        }
    }
}
