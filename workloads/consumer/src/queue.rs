//! The consumer's SQS calls in SQS's JSON protocol, sent by the [`Signer`]. The endpoint is the
//! one the SDK's SQS client resolves (regions, FIPS, dual-stack, `AWS_ENDPOINT_URL_SQS`): found
//! once at start-up by letting the SDK prepare a request and stopping it before it is sent
//! ([`Sqs::probe`]), which also yields the SDK client's runtime components for the signer.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use aws_sdk_sqs::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_sqs::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_sqs::error::BoxError;
use kedaform_common::aws::SdkConfig;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::signed::{Request, RequestError, Service, Signer, authority};

/// A received message, as far as the consumer reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Message {
    /// SQS's id of the message.
    pub message_id: String,
    /// What deletes it; none for a message that was not received (a superseded body).
    pub receipt_handle: Option<String>,
    /// The body.
    pub body: String,
    /// Its message attributes.
    pub message_attributes: BTreeMap<String, AttributeValue>,
}

impl Message {
    /// A message attribute's string value.
    pub fn string_attribute(&self, name: &str) -> Option<&str> {
        self.message_attributes.get(name)?.string_value.as_deref()
    }
}

/// A message attribute.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttributeValue {
    /// `String`, `Number`, `Binary`, optionally with a custom suffix.
    pub data_type: String,
    /// The value of a `String` or `Number` attribute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_value: Option<String>,
    /// The value of a `Binary` attribute, base64 as the JSON protocol carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary_value: Option<String>,
}

impl AttributeValue {
    /// A `String` attribute.
    pub fn string(value: impl Into<String>) -> Self {
        Self {
            data_type: "String".into(),
            string_value: Some(value.into()),
            binary_value: None,
        }
    }

    /// Its size as SQS counts it against a message's limit: type and value (binary decoded).
    pub fn size(&self) -> usize {
        let binary = self.binary_value.as_deref().map_or(0, |b64| {
            let padding = b64.bytes().rev().take_while(|&b| b == b'=').count();
            (b64.len() / 4 * 3).saturating_sub(padding)
        });
        self.data_type.len() + self.string_value.as_deref().map_or(0, str::len) + binary
    }
}

/// One message of a `SendMessageBatch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SendEntry {
    /// Its id within the batch.
    pub id: String,
    /// The body.
    pub message_body: String,
    /// Its message attributes.
    pub message_attributes: BTreeMap<String, AttributeValue>,
}

/// An entry of a batch call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReceiptEntry<'a> {
    /// Its id within the batch.
    pub id: String,
    /// The message's receipt handle.
    pub receipt_handle: &'a str,
}

/// One entry per received message (those with a receipt handle), its id its position.
pub fn receipt_entries<'a>(messages: impl IntoIterator<Item = &'a Message>) -> Vec<ReceiptEntry<'a>> {
    messages
        .into_iter()
        .enumerate()
        .filter_map(|(i, m)| {
            m.receipt_handle.as_deref().map(|receipt_handle| ReceiptEntry {
                id: i.to_string(),
                receipt_handle,
            })
        })
        .collect()
}

/// What a batch call did with each entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct BatchResult {
    /// The entries done.
    pub successful: Vec<BatchEntry>,
    /// The entries refused.
    pub failed: Vec<BatchEntry>,
}

/// One entry of a [`BatchResult`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct BatchEntry {
    /// The entry's id within the batch.
    pub id: String,
    /// Why it was refused.
    pub code: Option<String>,
}

/// SQS calls to one endpoint.
#[derive(Debug)]
pub struct Sqs {
    signer: Arc<Signer>,
    endpoint: String,
    host: String,
}

/// Records the URL of the request the SDK is about to send and the client's runtime
/// components, and stops it.
#[derive(Debug, Default, Clone)]
struct EndpointProbe(Arc<Mutex<Option<(String, RuntimeComponents)>>>);

impl Intercept for EndpointProbe {
    fn name(&self) -> &'static str {
        "EndpointProbe"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        components: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let found = (context.request().uri().to_owned(), components.clone());
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(found);
        Err("the endpoint probe is never sent".into())
    }
}

impl Sqs {
    /// The endpoint an SDK SQS client built from `aws` calls, and its runtime components (for
    /// [`Signer::new`]).
    pub async fn probe(aws: &SdkConfig) -> Result<(String, RuntimeComponents), String> {
        let probe = EndpointProbe::default();
        // Stopped before it is sent: the answer is the probe's error, never SQS's.
        let _ = aws_sdk_sqs::Client::new(aws)
            .get_queue_url()
            .queue_name("kedaform-endpoint-probe")
            .customize()
            .interceptor(probe.clone())
            .send()
            .await;
        let found = probe.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        found.ok_or_else(|| "the SQS endpoint cannot be resolved: set AWS_REGION (or AWS_ENDPOINT_URL_SQS)".to_owned())
    }

    /// Calls `endpoint` (from [`Sqs::probe`]), signed by `signer`.
    pub fn new(signer: Arc<Signer>, endpoint: String) -> Self {
        Self {
            signer,
            host: authority(&endpoint).to_owned(),
            endpoint,
        }
    }

    async fn call<T: DeserializeOwned>(&self, action: &'static str, input: &impl Serialize) -> Result<T, RequestError> {
        let body = serde_json::to_vec(input).map_err(|e| RequestError::Signing(e.to_string()))?;
        let target = format!("AmazonSQS.{action}");
        let request = Request {
            service: Service::Sqs,
            method: "POST",
            url: &self.endpoint,
            host: &self.host,
            headers: &[
                ("content-type", "application/x-amz-json-1.0"),
                ("x-amz-target", &target),
                // Error codes as the query protocol named them (`x-amzn-query-error`), as the SDK asks.
                ("x-amzn-query-mode", "true"),
            ],
            body: &body,
        };
        let answer = self.signer.send(request).await?;
        serde_json::from_slice(&answer.body).map_err(|e| RequestError::Malformed {
            service: "SQS",
            what: action,
            message: e.to_string(),
        })
    }

    /// Up to `max` messages with all their message attributes, waiting up to `wait_seconds`.
    pub async fn receive(&self, queue_url: &str, max: i32, wait_seconds: i32) -> Result<Vec<Message>, RequestError> {
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Input<'a> {
            queue_url: &'a str,
            max_number_of_messages: i32,
            wait_time_seconds: i32,
            message_attribute_names: [&'a str; 1],
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Output {
            #[serde(default)]
            messages: Vec<Message>,
        }
        let input = Input {
            queue_url,
            max_number_of_messages: max,
            wait_time_seconds: wait_seconds,
            message_attribute_names: ["All"],
        };
        Ok(self.call::<Output>("ReceiveMessage", &input).await?.messages)
    }

    /// Deletes the entries' messages.
    pub async fn delete_batch(
        &self,
        queue_url: &str,
        entries: &[ReceiptEntry<'_>],
    ) -> Result<BatchResult, RequestError> {
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Input<'a> {
            queue_url: &'a str,
            entries: &'a [ReceiptEntry<'a>],
        }
        self.call("DeleteMessageBatch", &Input { queue_url, entries }).await
    }

    /// Sends the entries.
    pub async fn send_batch(&self, queue_url: &str, entries: &[SendEntry]) -> Result<BatchResult, RequestError> {
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Input<'a> {
            queue_url: &'a str,
            entries: &'a [SendEntry],
        }
        self.call("SendMessageBatch", &Input { queue_url, entries }).await
    }

    /// Makes the entries' messages invisible for `timeout` seconds from now.
    pub async fn change_visibility_batch(
        &self,
        queue_url: &str,
        entries: &[ReceiptEntry<'_>],
        timeout: i32,
    ) -> Result<BatchResult, RequestError> {
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Entry<'a> {
            id: &'a str,
            receipt_handle: &'a str,
            visibility_timeout: i32,
        }
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Input<'a> {
            queue_url: &'a str,
            entries: Vec<Entry<'a>>,
        }
        let entries = entries
            .iter()
            .map(|entry| Entry {
                id: &entry.id,
                receipt_handle: entry.receipt_handle,
                visibility_timeout: timeout,
            })
            .collect();
        self.call("ChangeMessageVisibilityBatch", &Input { queue_url, entries })
            .await
    }

    /// The queue's attributes named.
    pub async fn attributes(&self, queue_url: &str, names: &[&str]) -> Result<HashMap<String, String>, RequestError> {
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Input<'a> {
            queue_url: &'a str,
            attribute_names: &'a [&'a str],
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Output {
            #[serde(default)]
            attributes: HashMap<String, String>,
        }
        let input = Input {
            queue_url,
            attribute_names: names,
        };
        Ok(self.call::<Output>("GetQueueAttributes", &input).await?.attributes)
    }

    /// The URL of the queue `name` (of the account `owner`, else the caller's).
    pub async fn url_of(&self, name: &str, owner: Option<&str>) -> Result<String, RequestError> {
        #[derive(Serialize)]
        #[serde(rename_all = "PascalCase")]
        struct Input<'a> {
            queue_name: &'a str,
            #[serde(rename = "QueueOwnerAWSAccountId", skip_serializing_if = "Option::is_none")]
            owner: Option<&'a str>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Output {
            queue_url: String,
        }
        let input = Input {
            queue_name: name,
            owner,
        };
        Ok(self.call::<Output>("GetQueueUrl", &input).await?.queue_url)
    }
}

/// SQS's answer for a queue that does not exist, in its JSON and query-compatible codes.
pub fn is_missing_queue(error: &RequestError) -> bool {
    matches!(
        error.code(),
        Some("AWS.SimpleQueueService.NonExistentQueue" | "QueueDoesNotExist")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_sizes_count_binary_values_decoded() {
        assert_eq!(AttributeValue::string("sale_event").size(), "String".len() + 10);
        let binary = |b64: &str| AttributeValue {
            data_type: "Binary".into(),
            string_value: None,
            binary_value: Some(b64.into()),
        };
        // "abcd" → YWJjZA==, "abcde" → YWJjZGU=, "abcdef" → YWJjZGVm
        assert_eq!(binary("YWJjZA==").size(), 6 + 4);
        assert_eq!(binary("YWJjZGU=").size(), 6 + 5);
        assert_eq!(binary("YWJjZGVm").size(), 6 + 6);
    }

    #[test]
    fn messages_read_as_sqs_sends_them() {
        let answer = r#"{"MessageId":"m1","ReceiptHandle":"r1","MD5OfBody":"x","Body":"{}",
            "Attributes":{"ApproximateReceiveCount":"2"},
            "MessageAttributes":{"event_type":{"StringValue":"sale_event","DataType":"String"},
                                 "blob":{"BinaryValue":"AAE=","DataType":"Binary"}}}"#;
        let message: Message = serde_json::from_str(answer).unwrap();
        assert_eq!(message.receipt_handle.as_deref(), Some("r1"));
        assert_eq!(message.string_attribute("event_type"), Some("sale_event"));
        assert_eq!(message.message_attributes["blob"].binary_value.as_deref(), Some("AAE="));
        let forwarded = serde_json::to_value(&message.message_attributes["blob"]).unwrap();
        assert_eq!(
            forwarded,
            serde_json::json!({"DataType": "Binary", "BinaryValue": "AAE="})
        );
    }
}
