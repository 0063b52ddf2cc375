//! Shared pieces of the integration tests: a local HTTP server that records every request
//! and answers from a script, CloudFormation request builders, and the moto connection.

pub mod apiserver;
pub mod iam;
pub mod proxy;
pub mod template;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// When the request arrived, for latency measurements.
    pub at: std::time::Instant,
    /// The HTTP method.
    pub method: String,
    /// The path with its query.
    pub path_and_query: String,
    /// Every header, as sent.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Recorded {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }

    /// The body as a form (`application/x-www-form-urlencoded`).
    pub fn form(&self) -> Vec<(String, String)> {
        String::from_utf8_lossy(&self.body)
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_owned(), percent_decode(v)))
            .collect()
    }
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(&text.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// The answer to one request.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// Headers to send.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
    /// How long the server takes to answer (without blocking anything else).
    pub delay: std::time::Duration,
}

impl Reply {
    /// A reply with a `Content-Type`.
    pub fn new(status: u16, content_type: &str, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
            delay: std::time::Duration::ZERO,
        }
    }

    /// The same reply, sent after `delay`.
    #[must_use]
    pub fn after(mut self, delay: std::time::Duration) -> Self {
        self.delay = delay;
        self
    }

    /// 200 with an empty body, as S3 answers the pre-signed CloudFormation response URL.
    pub fn ok() -> Self {
        Self::new(200, "text/plain", "")
    }

    #[must_use]
    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

type Script = dyn Fn(usize, &Recorded) -> Reply + Send + Sync;

/// An HTTP/1.1 server on a free loopback port, running until dropped.
#[derive(Debug)]
pub struct LocalServer {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl LocalServer {
    /// `script(n, request)` answers the n-th request (from 0).
    pub async fn start(script: impl Fn(usize, &Recorded) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let counter = Arc::new(AtomicUsize::new(0));
        let recorded = Arc::clone(&requests);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (script, counter, recorded) = (Arc::clone(&script), Arc::clone(&counter), Arc::clone(&recorded));
                let service = service_fn(move |request: Request<Incoming>| {
                    let (script, counter, recorded) =
                        (Arc::clone(&script), Arc::clone(&counter), Arc::clone(&recorded));
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body.collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
                        let request = Recorded {
                            at: std::time::Instant::now(),
                            method: parts.method.to_string(),
                            path_and_query: parts.uri.path_and_query().map(ToString::to_string).unwrap_or_default(),
                            headers: parts
                                .headers
                                .iter()
                                .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                                .collect(),
                            body,
                        };
                        let index = counter.fetch_add(1, Ordering::SeqCst);
                        let reply = script(index, &request);
                        recorded.lock().unwrap().push(request);
                        tokio::time::sleep(reply.delay).await;
                        let mut response = Response::builder().status(reply.status);
                        for (name, value) in &reply.headers {
                            response = response.header(name, value);
                        }
                        Ok::<_, Infallible>(response.body(Full::new(Bytes::from(reply.body))).unwrap())
                    }
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        Self { url, requests, task }
    }

    /// A server that answers every request 200 with an empty body, as S3 does for the
    /// pre-signed CloudFormation response URL.
    pub async fn cloudformation() -> Self {
        Self::start(|_, _| Reply::ok()).await
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// The only request received; fails the test if there were none or several.
    pub fn only_request(&self) -> Recorded {
        let requests = self.requests();
        assert_eq!(requests.len(), 1, "expected exactly one request, got {requests:#?}");
        requests.into_iter().next().unwrap()
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The stack every test request names.
pub const STACK_ID: &str = "arn:aws:cloudformation:us-east-1:123456789012:stack/kedaform-test/0a1b2c3d";

/// A CloudFormation custom-resource request as the service sends it, `ServiceToken`
/// included. `physical_id` and `old` are for Update and Delete.
// Callers build the properties inline; taking them by value keeps every call short.
#[allow(clippy::needless_pass_by_value)]
pub fn cfn_request(
    kind: &str,
    response_url: &str,
    properties: Value,
    physical_id: Option<&str>,
    old: Option<Value>,
) -> Value {
    let mut request = kedaform::cfn::RequestBuilder::create("Custom::Test", "Resource", &properties)
        .expect("JSON properties")
        .stack_id(STACK_ID)
        .request_id(&format!("req-{kind}-{}", unique("")))
        .response_url(&format!("{response_url}/cloudformation-response?X-Amz-Signature=abc"))
        .build();
    // Set field by field, not through the builder's Update and Delete: the runtime's tests also
    // send what CloudFormation never would (an unknown RequestType, an Update without old
    // properties).
    request["RequestType"] = json!(kind);
    if let Some(id) = physical_id {
        request["PhysicalResourceId"] = json!(id);
    }
    if let Some(mut old) = old {
        old["ServiceToken"] = request["ResourceProperties"]["ServiceToken"].clone();
        request["OldResourceProperties"] = old;
    }
    request
}

/// One CloudFormation request of `resource_type` through `runtime`, answered to a local
/// response endpoint: the response CloudFormation got. Update and Delete carry `prior-id`.
pub async fn round_trip<H: kedaform::cfn::CustomResource>(
    runtime: &kedaform::cfn::Runtime<H>,
    resource_type: &str,
    (kind, logical_id): (&str, &str),
    properties: Value,
    old: Option<Value>,
    secs: u64,
) -> Value {
    let endpoint = LocalServer::cloudformation().await;
    let mut request = cfn_request(
        kind,
        &endpoint.url,
        properties,
        (kind != "Create").then_some("prior-id"),
        old,
    );
    request["ResourceType"] = json!(resource_type);
    request["LogicalResourceId"] = json!(logical_id);
    runtime
        .handle(
            request,
            tokio::time::Instant::now() + std::time::Duration::from_secs(secs),
        )
        .await;
    endpoint.only_request().json()
}

/// A name no other test of this run uses (moto's state is shared by every test).
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}{}-{nanos}", COUNTER.fetch_add(1, Ordering::SeqCst))
}

/// Fails the test unless `AWS_ENDPOINT_URL` names a local moto (as `make test` sets it): for
/// tests whose child processes talk to it.
pub fn moto_endpoint() -> String {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        endpoint.starts_with("http://127.0.0.1:"),
        "AWS_ENDPOINT_URL={endpoint:?}: this test needs a local moto server. Run `make test`, which installs \
         moto into .venv and starts it, or start `moto_server -H 127.0.0.1 -p PORT` yourself and export \
         AWS_ENDPOINT_URL=http://127.0.0.1:PORT AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1"
    );
    endpoint
}

/// AWS configuration for moto, through the library's own loader. `make test` starts moto
/// and exports `AWS_ENDPOINT_URL`; without it these tests must fail, not skip.
pub async fn moto() -> aws_config::SdkConfig {
    moto_endpoint();
    kedaform_common::aws::load().await
}

/// Log lines written while its subscriber is the default, as text.
#[derive(Debug, Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// A subscriber writing every level to this buffer.
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + use<> {
        let buffer = self.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || buffer.clone())
            .finish()
    }

    /// The captured text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A library example of this build (`cargo test` builds them), for tests that run it.
pub fn example(name: &str) -> std::path::PathBuf {
    built(&format!("examples/{name}"), "cargo build -p kedaform --examples")
}

/// The `kedaform` binary of this build, for tests outside the CLI's package that run it.
pub fn cli_binary() -> std::path::PathBuf {
    built("kedaform", "cargo build -p kedaform-cli")
}

/// `path` in this build's target directory (`target/debug`), which `command` builds.
fn built(path: &str, command: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let debug = exe.parent().and_then(std::path::Path::parent).expect("target/debug");
    let binary = debug.join(path);
    assert!(
        binary.exists(),
        "{} is missing: build it with `{command}` (cargo test --workspace does)",
        binary.display()
    );
    binary
}

/// The path of one of KEDA 2.20.2's release files the tests read (`keda-2.20.2.yaml`, the
/// ScaledObject and TriggerAuthentication CRDs), in the directory `$KEDAFORM_KEDA_MIRROR`, which
/// `make test` sets (scripts/common.sh: `ensure_keda_release`).
pub fn keda_release(name: &str) -> std::path::PathBuf {
    let Some(mirror) = std::env::var_os("KEDAFORM_KEDA_MIRROR") else {
        panic!(
            "KEDAFORM_KEDA_MIRROR is not set: run `make test`, or point it at a directory holding KEDA 2.20.2's \
             release files (`bash -c 'source scripts/common.sh && ensure_keda_release && echo $KEDAFORM_KEDA_MIRROR'` \
             downloads them and checks their digests)"
        )
    };
    let path = std::path::Path::new(&mirror).join(name);
    assert!(path.exists(), "{} is missing from KEDAFORM_KEDA_MIRROR", path.display());
    path
}

/// The text of [`keda_release`]`(name)`.
pub fn keda_release_text(name: &str) -> String {
    let path = keda_release(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
