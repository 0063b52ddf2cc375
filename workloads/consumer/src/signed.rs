//! SigV4-signed requests for the consumer's S3 writes ([`crate::objects`]) and its SQS calls
//! ([`crate::queue`]): signed with the SDK's own `aws-sigv4`, with the credentials and clock of
//! the SDK configuration, and sent on the SDK's own HTTP client (its connection pool, TLS roots
//! and resolver), but without the SDK's per-request orchestration (config layers, endpoint
//! rules, interceptors, retry classifiers): that machinery was most of the consumer's CPU per
//! message (docs/src/benchmarks.md). Endpoints still come from the SDK's own resolution, done
//! once at start-up.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, error::CredentialsError};
use aws_sdk_s3::primitives::{ByteStream, SdkBody};
use aws_sdk_sqs::config::http::HttpRequest;
use aws_sdk_sqs::config::{HttpClient, RuntimeComponents};
use aws_sdk_sqs::error::BoxError;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings, UriPathNormalizationMode,
    sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::http::{HttpConnector, HttpConnectorSettings, SharedHttpConnector};
use kedaform_common::aws::SdkConfig;
use tokio::sync::Mutex;

/// Attempts per request for answers a retry can fix (5xx, throttling, a dropped connection).
const ATTEMPTS: u32 = 3;
/// How much of an error answer is read for its code and message.
const ERROR_BODY_LIMIT: usize = 16 * 1024;
/// How much of a successful answer is read: ten SQS messages of 1 MiB each, with room.
const BODY_LIMIT: usize = 16 * 1024 * 1024;
/// How long a new connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an answer may keep the consumer waiting for its next bytes.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Credentials are refreshed this long before they expire.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

/// The service a request is signed for, with the settings the SDK signs it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// The path as encoded, no normalisation, the payload's SHA-256 in `x-amz-content-sha256`.
    S3,
    /// SigV4's defaults.
    Sqs,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Self::S3 => "s3",
            Self::Sqs => "sqs",
        }
    }

    fn settings(self) -> SigningSettings {
        let mut settings = SigningSettings::default();
        if self == Self::S3 {
            settings.percent_encoding_mode = PercentEncodingMode::Single;
            settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        }
        settings
    }
}

/// Why a request got no usable answer. The messages carry the service's code and message,
/// never the request's body.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The service refused it.
    #[error("{service} answered {status} {code}: {message}")]
    Refused {
        /// `S3` or `SQS`.
        service: &'static str,
        /// The HTTP status.
        status: u16,
        /// The service's error code (`NoSuchBucket`, `AccessDenied`, `QueueDoesNotExist`, ...).
        code: String,
        /// The service's message.
        message: String,
    },
    /// No answer: connection, TLS, timeout, or an answer cut short.
    #[error("no answer from {service}")]
    Transport {
        /// `S3` or `SQS`.
        service: &'static str,
        /// What the HTTP client saw.
        #[source]
        source: BoxError,
    },
    /// An answer over 16 MiB.
    #[error("{service} answered with more than {BODY_LIMIT} bytes")]
    TooLarge {
        /// `S3` or `SQS`.
        service: &'static str,
    },
    /// An answer that is not what the API documents.
    #[error("{service} answered {what} that cannot be read: {message}")]
    Malformed {
        /// `S3` or `SQS`.
        service: &'static str,
        /// Which answer.
        what: &'static str,
        /// Why.
        message: String,
    },
    /// The credentials could not be loaded.
    #[error("no AWS credentials")]
    Credentials(#[source] CredentialsError),
    /// The request could not be signed (a URL or header the service would refuse anyway).
    #[error("the request cannot be signed: {0}")]
    Signing(String),
}

impl RequestError {
    /// The service's error code, when it answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Refused { code, .. } => Some(code),
            _ => None,
        }
    }

    fn retryable(&self) -> bool {
        match self {
            Self::Refused { status, code, .. } => {
                *status >= 500
                    || matches!(
                        code.as_str(),
                        "SlowDown" | "RequestTimeout" | "Throttling" | "ThrottlingException" | "RequestThrottled"
                    )
            }
            Self::Transport { .. } => true,
            Self::TooLarge { .. } | Self::Malformed { .. } | Self::Credentials(_) | Self::Signing(_) => false,
        }
    }
}

/// An answer with a 2xx or 412 status.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The body, read whole (up to 16 MiB).
    pub body: Vec<u8>,
}

/// One request to send.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The service it is signed for.
    pub service: Service,
    /// `GET`, `PUT`, `POST`.
    pub method: &'a str,
    /// The whole URL, path encoded as it is signed.
    pub url: &'a str,
    /// The `host` the signature covers: the URL's authority.
    pub host: &'a str,
    /// Headers beyond `host`, `content-length` and the signature's own.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body.
    pub body: &'a [u8],
}

/// The HTTP connection pool, region, credentials and clock every signed request uses.
#[derive(Debug)]
pub struct Signer {
    http: SharedHttpConnector,
    region: String,
    credentials: SharedCredentialsProvider,
    cached: Mutex<Option<Credentials>>,
    /// For its clock (a test's may be fixed).
    aws: SdkConfig,
}

impl Signer {
    /// Signs for `aws`'s region with its credentials and clock; sends on the HTTP client of
    /// `components`, the runtime components of an SDK client built from `aws`.
    pub fn new(aws: &SdkConfig, components: &RuntimeComponents) -> Result<Self, String> {
        let region = aws.region().ok_or("no AWS region: set AWS_REGION")?.to_string();
        let credentials = aws.credentials_provider().ok_or("no AWS credentials provider")?;
        let settings = HttpConnectorSettings::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .build();
        let http = components
            .http_client()
            .ok_or("the SDK client has no HTTP client")?
            .http_connector(&settings, components);
        Ok(Self {
            http,
            region,
            credentials,
            cached: Mutex::new(None),
            aws: aws.clone(),
        })
    }

    fn now(&self) -> SystemTime {
        self.aws.time_source().map_or_else(SystemTime::now, |clock| clock.now())
    }

    /// Sends `request`, again for answers a retry can fix; an answer other than 2xx or 412 is
    /// an error with the service's code.
    pub async fn send(&self, request: Request<'_>) -> Result<Answer, RequestError> {
        let mut pause = Duration::from_millis(50);
        let mut attempt = 1;
        loop {
            match self.send_once(request).await {
                Err(error) if error.retryable() && attempt < ATTEMPTS => {
                    tracing::debug!(url = request.url, attempt, error = %kedaform_common::error_chain(&error), "retried");
                    tokio::time::sleep(pause).await;
                    pause *= 4;
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    async fn send_once(&self, request: Request<'_>) -> Result<Answer, RequestError> {
        let service = match request.service {
            Service::S3 => "S3",
            Service::Sqs => "SQS",
        };
        let credentials = self.credentials().await?;
        let length = request.body.len().to_string();
        let signed_headers = [("host", request.host), ("content-length", length.as_str())]
            .into_iter()
            .chain(request.headers.iter().copied());
        let identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(request.service.name())
            .time(self.now())
            .settings(request.service.settings())
            .build()
            .map_err(|e| RequestError::Signing(e.to_string()))?
            .into();
        let signable = SignableRequest::new(
            request.method,
            request.url,
            signed_headers,
            SignableBody::Bytes(request.body),
        )
        .map_err(|e| RequestError::Signing(e.to_string()))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| RequestError::Signing(e.to_string()))?
            .into_parts();
        let invalid = |e: &dyn std::fmt::Display| RequestError::Signing(e.to_string());
        let mut http = HttpRequest::new(SdkBody::from(request.body));
        http.set_method(request.method).map_err(|e| invalid(&e))?;
        http.set_uri(request.url.to_owned()).map_err(|e| invalid(&e))?;
        for (name, value) in [("content-length", length.as_str())]
            .into_iter()
            .chain(request.headers.iter().copied())
            .chain(instructions.headers())
        {
            http.headers_mut()
                .try_insert(name.to_owned(), value.to_owned())
                .map_err(|e| invalid(&e))?;
        }
        let transport = |source: BoxError| RequestError::Transport { service, source };
        let response = self.http.call(http).await.map_err(|e| transport(e.into()))?;
        let status = response.status().as_u16();
        let ok = (200..=299).contains(&status) || status == 412;
        let limit = if ok { BODY_LIMIT } else { ERROR_BODY_LIMIT };
        let query_error = response
            .headers()
            .get("x-amzn-query-error")
            .and_then(|value| value.split(';').next())
            .map(str::to_owned);
        let mut stream = ByteStream::new(response.into_body());
        let mut body = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| transport(e.into()))?;
            if body.len() + chunk.len() > limit {
                if ok {
                    return Err(RequestError::TooLarge { service });
                }
                body.extend_from_slice(&chunk[..limit - body.len()]);
                break;
            }
            body.extend_from_slice(&chunk);
        }
        if ok {
            return Ok(Answer { status, body });
        }
        let (code, message) = error_code_and_message(&String::from_utf8_lossy(&body));
        Err(RequestError::Refused {
            service,
            status,
            code: query_error.or(code).unwrap_or_else(|| format!("HTTP{status}")),
            message: message.unwrap_or_default(),
        })
    }

    /// The credentials, loaded once and again shortly before they expire.
    async fn credentials(&self) -> Result<Credentials, RequestError> {
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
                    .map_err(RequestError::Credentials)?,
            );
        }
        Ok(cached.clone().expect("just loaded"))
    }
}

/// The error code and message of an S3 (XML) or SQS (JSON) error document, if there.
pub fn error_code_and_message(document: &str) -> (Option<String>, Option<String>) {
    let clip = |text: &str| text.chars().take(512).collect::<String>();
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(document) {
        // "__type": "com.amazonaws.sqs#QueueDoesNotExist"
        let code = json["__type"]
            .as_str()
            .map(|kind| clip(kind.rsplit('#').next().unwrap_or(kind)));
        let message = json["message"].as_str().or(json["Message"].as_str()).map(clip);
        return (code, message);
    }
    let element = |name: &str| {
        let open = format!("<{name}>");
        let start = document.find(&open)? + open.len();
        let end = document[start..].find(&format!("</{name}>"))? + start;
        Some(clip(&document[start..end]))
    };
    (element("Code"), element("Message"))
}

/// The URL's authority (`host[:port]`), the `host` a signature covers.
pub fn authority(url: &str) -> &str {
    url.split("://")
        .nth(1)
        .and_then(|rest| rest.split(['/', '?']).next())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let json =
            r#"{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"The specified queue does not exist."}"#;
        assert_eq!(
            error_code_and_message(json),
            (
                Some("QueueDoesNotExist".to_owned()),
                Some("The specified queue does not exist.".to_owned())
            )
        );
        assert_eq!(error_code_and_message("<html>bad gateway</html>"), (None, None));
        let long = format!("<Error><Code>{}</Code></Error>", "x".repeat(10_000));
        assert_eq!(error_code_and_message(&long).0.unwrap().len(), 512);
    }

    #[test]
    fn only_what_a_retry_can_fix_is_retried() {
        let refused = |status, code: &str| RequestError::Refused {
            service: "S3",
            status,
            code: code.into(),
            message: String::new(),
        };
        assert!(refused(503, "SlowDown").retryable());
        assert!(refused(500, "InternalError").retryable());
        assert!(refused(400, "ThrottlingException").retryable());
        assert!(!refused(404, "NoSuchBucket").retryable());
        assert!(!refused(403, "AccessDenied").retryable());
        assert!(!refused(400, "AWS.SimpleQueueService.NonExistentQueue").retryable());
        assert!(!RequestError::Signing("x".into()).retryable());
    }

    #[test]
    fn the_signed_host_is_the_authority() {
        assert_eq!(authority("http://127.0.0.1:4566/bucket"), "127.0.0.1:4566");
        assert_eq!(
            authority("https://sqs.eu-west-1.amazonaws.com"),
            "sqs.eu-west-1.amazonaws.com"
        );
        assert_eq!(authority("https://b.s3.amazonaws.com?x"), "b.s3.amazonaws.com");
    }
}
