//! `PutObject`, the consumer's one request per message, signed with the SDK's own SigV4 signer
//! and sent on a plain pooled HTTP client, without the SDK's per-request orchestration
//! (interceptors, config layers, endpoint rules, retry classifiers): that machinery was most of
//! the consumer's CPU per message (README: measured numbers). Everything else the consumer
//! does, and every read, still goes through the SDK clients; the bucket's URL and region come
//! from the S3 client (its own endpoint resolution), the credentials and clock from the
//! configuration it was built from, so both paths reach the same bucket the same way.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, error::CredentialsError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings, UriPathNormalizationMode,
    sign,
};
use aws_sigv4::sign::v4;
use kedaform_common::aws::SdkConfig;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use tokio::sync::Mutex;

/// RFC 3986 unreserved characters and `/` stay in a key's path; everything else is encoded.
const KEY_PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');
/// Attempts per write for answers a retry can fix (5xx, throttling, a dropped connection).
const ATTEMPTS: u32 = 3;
/// How much of an error answer is read for its code and message.
const ERROR_BODY_LIMIT: usize = 16 * 1024;
/// Credentials are refreshed this long before they expire.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

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

/// Why a write did not happen. The messages carry S3's code and message, never the body.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    /// S3 refused it.
    #[error("S3 answered {status} {code}: {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// S3's error code (`NoSuchBucket`, `AccessDenied`, ...).
        code: String,
        /// S3's message.
        message: String,
    },
    /// No answer: connection, TLS or timeout.
    #[error("no answer from S3")]
    Transport(#[source] reqwest::Error),
    /// The credentials could not be loaded.
    #[error("no credentials for S3")]
    Credentials(#[source] CredentialsError),
    /// The request could not be signed (a key or header S3 would refuse anyway).
    #[error("the request cannot be signed: {0}")]
    Signing(String),
}

impl PutError {
    /// S3's error code, when S3 answered.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Refused { code, .. } => Some(code),
            _ => None,
        }
    }

    fn retryable(&self) -> bool {
        match self {
            Self::Refused { status, code, .. } => {
                *status >= 500 || matches!(code.as_str(), "SlowDown" | "RequestTimeout" | "Throttling")
            }
            Self::Transport(_) => true,
            Self::Credentials(_) | Self::Signing(_) => false,
        }
    }
}

/// Conditional writes to one bucket.
#[derive(Debug)]
pub struct Objects {
    http: reqwest::Client,
    /// The bucket's URL, without a trailing `/`: path-style or virtual-hosted, as the SDK
    /// resolves it.
    bucket_url: String,
    /// The `host` the signature covers: the URL's authority.
    host: String,
    region: String,
    credentials: SharedCredentialsProvider,
    cached: Mutex<Option<Credentials>>,
    /// For its clock (a test's may be fixed).
    aws: SdkConfig,
}

impl Objects {
    /// Writes to `bucket` where `s3` would (its endpoint resolution, found by presigning a
    /// request with it, and its region), with the credentials and clock of `aws`, the
    /// configuration `s3` was built from.
    pub async fn new(aws: &SdkConfig, s3: &aws_sdk_s3::Client, bucket: &str) -> Result<Self, String> {
        const PROBE: &str = "kedaform-endpoint-probe";
        let region = s3.config().region().ok_or("no AWS region: set AWS_REGION")?.to_string();
        let credentials = aws.credentials_provider().ok_or("no AWS credentials provider")?;
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
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| kedaform_common::error_chain(&e))?;
        Ok(Self {
            http,
            host: bucket_url
                .split("://")
                .nth(1)
                .and_then(|rest| rest.split('/').next())
                .unwrap_or_default()
                .to_owned(),
            bucket_url,
            region,
            credentials,
            cached: Mutex::new(None),
            aws: aws.clone(),
        })
    }

    fn now(&self) -> SystemTime {
        self.aws.time_source().map_or_else(SystemTime::now, |clock| clock.now())
    }

    /// The URL `key` is written to.
    pub fn url(&self, key: &str) -> String {
        format!("{}/{}", self.bucket_url, utf8_percent_encode(key, KEY_PATH))
    }

    /// Writes `body` (JSON) under `key` if `condition` holds, retrying what a retry can fix.
    pub async fn put(&self, key: &str, body: &str, condition: Condition<'_>) -> Result<Written, PutError> {
        let mut pause = Duration::from_millis(50);
        let mut attempt = 1;
        loop {
            match self.put_once(key, body, condition).await {
                Err(error) if error.retryable() && attempt < ATTEMPTS => {
                    tracing::debug!(%key, attempt, error = %kedaform_common::error_chain(&error), "PutObject retried");
                    tokio::time::sleep(pause).await;
                    pause *= 4;
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    async fn put_once(&self, key: &str, body: &str, condition: Condition<'_>) -> Result<Written, PutError> {
        let url = self.url(key);
        let credentials = self.credentials().await?;
        let condition = match condition {
            Condition::Any => None,
            Condition::Absent => Some(("if-none-match", "*")),
            Condition::Matches(etag) => Some(("if-match", etag)),
        };
        let length = body.len().to_string();
        let headers = [
            ("host", self.host.as_str()),
            ("content-type", "application/json"),
            ("content-length", length.as_str()),
        ];
        let identity = credentials.into();
        let mut settings = SigningSettings::default();
        // What the SDK signs S3 requests with: the path as encoded, a SHA-256 of the payload.
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("s3")
            .time(self.now())
            .settings(settings)
            .build()
            .map_err(|e| PutError::Signing(e.to_string()))?
            .into();
        let signable = SignableRequest::new(
            "PUT",
            url.as_str(),
            headers.into_iter().chain(condition),
            SignableBody::Bytes(body.as_bytes()),
        )
        .map_err(|e| PutError::Signing(e.to_string()))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| PutError::Signing(e.to_string()))?
            .into_parts();
        let mut request = self.http.put(&url).header("content-type", "application/json");
        if let Some((name, value)) = condition {
            request = request.header(name, value);
        }
        for (name, value) in instructions.headers() {
            request = request.header(name, value);
        }
        let mut response = request
            .body(body.to_owned())
            .send()
            .await
            .map_err(PutError::Transport)?;
        let status = response.status().as_u16();
        match status {
            200..=299 => return Ok(Written::Stored),
            412 => return Ok(Written::ConditionFailed),
            _ => {}
        }
        let mut text = Vec::new();
        while text.len() < ERROR_BODY_LIMIT {
            match response.chunk().await {
                Ok(Some(chunk)) => text.extend_from_slice(&chunk[..chunk.len().min(ERROR_BODY_LIMIT - text.len())]),
                Ok(None) | Err(_) => break,
            }
        }
        let (code, message) = error_code_and_message(&String::from_utf8_lossy(&text));
        let code = code.unwrap_or_else(|| format!("HTTP{status}"));
        if status == 409 && code == "ConditionalRequestConflict" {
            return Ok(Written::ConditionFailed);
        }
        Err(PutError::Refused {
            status,
            code,
            message: message.unwrap_or_default(),
        })
    }

    /// The credentials, loaded once and again shortly before they expire.
    async fn credentials(&self) -> Result<Credentials, PutError> {
        let mut cached = self.cached.lock().await;
        let fresh = cached.as_ref().is_some_and(|c| {
            c.expiry()
                .is_none_or(|expiry| expiry > self.now() + REFRESH_BEFORE_EXPIRY)
        });
        if !fresh {
            *cached = Some(
                self.credentials
                    .provide_credentials()
                    .await
                    .map_err(PutError::Credentials)?,
            );
        }
        Ok(cached.clone().expect("just loaded"))
    }
}

/// `<Code>` and `<Message>` of an S3 error document, if there.
pub fn error_code_and_message(xml: &str) -> (Option<String>, Option<String>) {
    let element = |name: &str| {
        let open = format!("<{name}>");
        let start = xml.find(&open)? + open.len();
        let end = xml[start..].find(&format!("</{name}>"))? + start;
        Some(xml[start..end].chars().take(512).collect())
    };
    (element("Code"), element("Message"))
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

    #[test]
    fn error_documents_give_their_code_and_message() {
        let xml = "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message><BucketName>b</BucketName></Error>";
        assert_eq!(
            error_code_and_message(xml),
            (
                Some("NoSuchBucket".to_owned()),
                Some("The specified bucket does not exist".to_owned())
            )
        );
        assert_eq!(error_code_and_message("<html>bad gateway</html>"), (None, None));
        let long = format!("<Error><Code>{}</Code></Error>", "x".repeat(10_000));
        assert_eq!(error_code_and_message(&long).0.unwrap().len(), 512);
    }

    #[test]
    fn only_what_a_retry_can_fix_is_retried() {
        let refused = |status, code: &str| PutError::Refused {
            status,
            code: code.into(),
            message: String::new(),
        };
        assert!(refused(503, "SlowDown").retryable());
        assert!(refused(500, "InternalError").retryable());
        assert!(!refused(404, "NoSuchBucket").retryable());
        assert!(!refused(403, "AccessDenied").retryable());
        assert!(!PutError::Signing("x".into()).retryable());
    }
}
