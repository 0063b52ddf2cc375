//! `PutObject`, the consumer's one request per message, sent by the [`Signer`]. The bucket's URL
//! comes from the S3 client (its own endpoint resolution), so both paths reach the same bucket
//! the same way; reads still go through the SDK client.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::signed::{Request, RequestError, Service, Signer, authority};

/// RFC 3986 unreserved characters and `/` stay in a key's path; everything else is encoded.
const KEY_PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// When a write may happen.
#[derive(Debug, Clone, Copy)]
pub enum Condition<'a> {
    /// Whatever is there.
    Any,
    /// Only where no object is (`If-None-Match: *`).
    Absent,
    /// Only over the object with this `ETag` (`If-Match`).
    Matches(&'a str),
}

/// A write that S3 answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    /// The object is stored.
    Stored,
    /// The condition did not hold (412 `PreconditionFailed`, or 409 `ConditionalRequestConflict`
    /// while another conditional write to the key is in flight): nothing was written.
    ConditionFailed,
}

/// Conditional writes to one bucket.
#[derive(Debug)]
pub struct Objects {
    signer: Arc<Signer>,
    /// The bucket's URL, without a trailing `/`: path-style or virtual-hosted, as the SDK
    /// resolves it.
    bucket_url: String,
    /// The `host` the signature covers: the URL's authority.
    host: String,
}

impl Objects {
    /// Writes to `bucket` where `s3` would (its endpoint resolution, found by presigning a
    /// request with it), signed by `signer`.
    pub async fn new(signer: Arc<Signer>, s3: &aws_sdk_s3::Client, bucket: &str) -> Result<Self, String> {
        const PROBE: &str = "kedaform-endpoint-probe";
        let presigning = PresigningConfig::expires_in(Duration::from_secs(60)).map_err(|e| e.to_string())?;
        let probe = s3
            .put_object()
            .bucket(bucket)
            .key(PROBE)
            .presigned(presigning)
            .await
            .map_err(|e| kedaform_common::error_chain(&e))?;
        let url = probe.uri().split('?').next().unwrap_or_default();
        let bucket_url = url
            .strip_suffix(&format!("/{PROBE}"))
            .ok_or_else(|| format!("unexpected S3 URL for bucket {bucket}: {url}"))?
            .to_owned();
        Ok(Self {
            signer,
            host: authority(&bucket_url).to_owned(),
            bucket_url,
        })
    }

    /// The URL `key` is written to.
    pub fn url(&self, key: &str) -> String {
        format!("{}/{}", self.bucket_url, utf8_percent_encode(key, KEY_PATH))
    }

    /// Writes `body` (JSON) under `key` if `condition` holds, retrying what a retry can fix.
    pub async fn put(&self, key: &str, body: &str, condition: Condition<'_>) -> Result<Written, RequestError> {
        let url = self.url(key);
        let content_type = ("content-type", "application/json");
        let with_condition;
        let headers: &[(&str, &str)] = match condition {
            Condition::Any => &[content_type],
            Condition::Absent => {
                with_condition = [content_type, ("if-none-match", "*")];
                &with_condition
            }
            Condition::Matches(etag) => {
                with_condition = [content_type, ("if-match", etag)];
                &with_condition
            }
        };
        let request = Request {
            service: Service::S3,
            method: "PUT",
            url: &url,
            host: &self.host,
            headers,
            body: body.as_bytes(),
        };
        match self.signer.send(request).await {
            Ok(answer) if answer.status == 412 => Ok(Written::ConditionFailed),
            Ok(_) => Ok(Written::Stored),
            // Another conditional write to the key is in flight.
            Err(RequestError::Refused { status: 409, code, .. }) if code == "ConditionalRequestConflict" => {
                Ok(Written::ConditionFailed)
            }
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_encoded_as_the_sdk_encodes_them() {
        assert_eq!(
            utf8_percent_encode("sales_events/event_type=sale_event/dt=2026_11_30/a b+c.json", KEY_PATH).to_string(),
            "sales_events/event_type%3Dsale_event/dt%3D2026_11_30/a%20b%2Bc.json"
        );
    }
}
