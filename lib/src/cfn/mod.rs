//! The custom-resource runtime every kedaform Lambda runs.
//!
//! A handler implements create / update / delete over typed properties; the runtime owns the
//! protocol: it decodes the request, runs the handler under a deadline, turns errors, panics
//! and timeouts into FAILED, and sends exactly one response per invocation.

mod properties;
mod request;
pub mod response;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A response as CloudFormation receives it ([`Runtime::respond`] returns one).
pub use aws_lambda_events::event::cloudformation::CloudFormationCustomResourceResponse as Response;
use aws_lambda_events::event::cloudformation::{
    CloudFormationCustomResourceRequest as Request, CloudFormationCustomResourceResponseStatus as Status,
};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio::time::Instant;

pub use properties::{UnknownKeys, decode as decode_properties};
pub use request::RequestBuilder;

use crate::{Error, error_chain};

/// Physical id prefix of a resource whose Create failed. CloudFormation sends a Delete for it
/// during rollback; that Delete must succeed without touching anything.
pub const FAILED_CREATE_PREFIX: &str = "kedaform:create-failed:";

/// Time kept back from the Lambda deadline to send the response.
pub const DEFAULT_RESPONSE_MARGIN: Duration = Duration::from_secs(5);

/// Time kept back from the Lambda deadline after the last delivery attempt, so that the
/// invocation ends (and logs why) before Lambda stops it.
const DELIVERY_MARGIN: Duration = Duration::from_millis(250);

/// `serde_json`'s recursion limit, which a request nested deeper cannot pass.
const JSON_DEPTH_LIMIT: usize = 128;

/// What a successful Create or Update reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Stable id of the thing managed. A different id on Update means replacement:
    /// CloudFormation later sends a Delete for the old id.
    pub physical_id: String,
    /// Attributes for `Fn::GetAtt`.
    pub data: BTreeMap<String, String>,
}

impl Outcome {
    /// An outcome for `physical_id`, with no attributes yet.
    pub fn new(physical_id: impl Into<String>) -> Self {
        Self {
            physical_id: physical_id.into(),
            data: BTreeMap::new(),
        }
    }

    #[must_use]
    /// Adds the `Fn::GetAtt` attribute `key`.
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.data.insert(key.to_owned(), value.into());
        self
    }
}

/// The request as a handler sees it, with its deadline and a note of what it is doing (which
/// a timeout reports).
#[derive(Debug)]
pub struct Invocation {
    /// The stack's ARN.
    pub stack_id: String,
    /// CloudFormation's id for this request.
    pub request_id: String,
    /// The resource's name in the template.
    pub logical_resource_id: String,
    /// The resource's `Type`.
    pub resource_type: String,
    deadline: Instant,
    step: Mutex<String>,
}

impl Invocation {
    /// When the handler must have finished; waits inside it are bounded by this.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The time left until [`Self::deadline`].
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Records what the handler is doing now.
    pub fn step(&self, doing: impl Into<String>) {
        let doing = doing.into();
        tracing::info!(step = %doing);
        *self.step.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = doing;
    }

    fn current_step(&self) -> String {
        self.step
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// A custom resource type: create, update and delete over typed properties. The [`Runtime`]
/// owns the protocol (decoding, deadlines, the one response); an implementation owns the work.
///
/// # Contract
///
/// **Idempotence.** CloudFormation may deliver the same request more than once, and a
/// retried stack operation repeats requests that already succeeded: every method must reach
/// the same end state when called again.
///
/// **A failed Create.** When `create` fails (error, panic or timeout), the runtime answers
/// FAILED with the physical id [`FAILED_CREATE_PREFIX`] + the request id. CloudFormation's
/// rollback then sends a Delete for that id, which the runtime answers SUCCESS without calling
/// `delete` (something of the same name may belong to another stack), unless
/// [`deletes_after_failed_create`](CustomResource::deletes_after_failed_create) says the
/// resource's `delete` removes only what this resource made: then it runs, and takes what the
/// failed Create made before it failed (a cut-off Create can leave things behind).
///
/// **Update never deletes.** An `update` that returns a new physical id is a replacement:
/// CloudFormation sends a Delete for the old id once the stack update has succeeded, and none
/// when it rolls back. So `update` must not delete the old thing itself, or a rollback would
/// have nothing to return to.
///
/// **Deadlines.** Every call runs until [`Invocation::deadline`]: the Lambda's deadline, or the
/// request's `ServiceTimeout` when that is sooner, less the time kept to send the answer.
/// Waits inside are bounded by it; a call still running then is
/// cut off and the answer is FAILED, naming the last [`Invocation::step`]. A Delete is never
/// refused for its `ServiceTimeout`.
///
/// **Delete.** Already gone is success; so is a target that no longer exists (a deleted
/// cluster, a deleted role).
///
/// # Example
///
/// ```
/// use kedaform::cfn::{CustomResource, Invocation, Outcome, RequestBuilder, Runtime, response};
/// use kedaform::Error;
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// #[serde(rename_all = "PascalCase")]
/// struct Greeting {
///     name: String,
/// }
///
/// struct Greeter;
///
/// impl CustomResource for Greeter {
///     type Properties = Greeting;
///
///     async fn create(&self, _: &Invocation, greeting: Greeting) -> Result<Outcome, Error> {
///         if greeting.name.is_empty() {
///             return Err(Error::invalid("Name", "is empty"));
///         }
///         Ok(Outcome::new(format!("greeting/{}", greeting.name)).with("Text", format!("hello {}", greeting.name)))
///     }
///
///     async fn update(&self, invocation: &Invocation, _: &str, new: Greeting, _: Greeting) -> Result<Outcome, Error> {
///         self.create(invocation, new).await
///     }
///
///     async fn delete(&self, _: &Invocation, _: &str, _: Greeting) -> Result<(), Error> {
///         Ok(())
///     }
/// }
///
/// # #[tokio::main] async fn main() -> Result<(), Error> {
/// let runtime = Runtime::new(Greeter);
/// let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
/// let request = |name: &str| RequestBuilder::create("Custom::Greeting", "Hello", &Greeting { name: name.into() });
///
/// let mut created = runtime.respond(request("world")?.build(), deadline).await;
/// assert!(response::is_success(&created));
/// assert_eq!(created.physical_resource_id, "greeting/world");
/// let body: serde_json::Value = serde_json::from_slice(&response::body(&mut created)).unwrap();
/// assert_eq!(body["Data"]["Text"], "hello world");
///
/// // A failed Create answers with a marker id; the rollback's Delete of it touches nothing.
/// let failed = runtime.respond(request("")?.build(), deadline).await;
/// assert!(!response::is_success(&failed));
/// assert!(failed.physical_resource_id.starts_with(kedaform::cfn::FAILED_CREATE_PREFIX));
/// let rollback = request("")?.delete(&failed.physical_resource_id).build();
/// assert!(response::is_success(&runtime.respond(rollback, deadline).await));
/// # Ok(()) }
/// ```
pub trait CustomResource: Send + Sync + 'static {
    /// The properties, decoded from the request (CloudFormation's strings included).
    type Properties: DeserializeOwned + Send + 'static;

    /// Creates the thing. A failure leaves nothing behind that a retry or another stack could trip on.
    fn create(
        &self,
        invocation: &Invocation,
        properties: Self::Properties,
    ) -> impl Future<Output = Result<Outcome, Error>> + Send;

    /// Never deletes the old thing itself when it returns a new physical id.
    fn update(
        &self,
        invocation: &Invocation,
        physical_id: &str,
        properties: Self::Properties,
        old_properties: Self::Properties,
    ) -> impl Future<Output = Result<Outcome, Error>> + Send;

    /// Already gone is success.
    fn delete(
        &self,
        invocation: &Invocation,
        physical_id: &str,
        properties: Self::Properties,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Whether the rollback's Delete of a failed Create of `resource_type` calls
    /// [`delete`](Self::delete): true only where `delete` can tell what this stack's resource
    /// made from what others did (the Kubernetes resources, by owner label). Default: false.
    fn deletes_after_failed_create(&self, resource_type: &str) -> bool {
        let _ = resource_type;
        false
    }
}

/// Runs one handler for every request of a Lambda's lifetime: decodes each request, runs the
/// handler under its deadline, and sends exactly one response (PUT, empty `Content-Type`, ids
/// copied from the request, at most 4,096 bytes) before the Lambda's deadline, even when the
/// handler fails, panics or overruns.
///
/// A Lambda's whole `main` (the trust-policy Lambda's):
///
/// ```no_run
/// use kedaform::cfn::Runtime;
/// use kedaform::resources::Resources;
/// use lambda_runtime::service_fn;
///
/// #[tokio::main]
/// async fn main() -> Result<(), lambda_runtime::Error> {
///     kedaform_common::telemetry::init();
///     let config = kedaform_common::aws::load().await;
///     let runtime = &Runtime::new(Resources::default().with_trust_policy(aws_sdk_iam::Client::new(&config)));
///     lambda_runtime::run(service_fn(move |event| runtime.invoke(event))).await
/// }
/// ```
///
/// [`Runtime::respond`] computes the response without sending it (the CLI and tests use it;
/// see [`CustomResource`]'s example).
#[derive(Debug)]
pub struct Runtime<H> {
    handler: Arc<H>,
    http: reqwest::Client,
    response_margin: Duration,
}

impl<H: CustomResource> Runtime<H> {
    /// A runtime for `handler`, answering 5 s before the Lambda's deadline.
    pub fn new(handler: H) -> Self {
        Self {
            handler: Arc::new(handler),
            http: reqwest::Client::new(),
            response_margin: DEFAULT_RESPONSE_MARGIN,
        }
    }

    #[must_use]
    /// Keeps `margin` back from the deadline for sending the answer.
    pub fn with_response_margin(mut self, margin: Duration) -> Self {
        self.response_margin = margin;
        self
    }

    /// The Lambda entry point. Always `Ok`: CloudFormation invokes asynchronously and an
    /// error would only make Lambda deliver the same event again. The event arrives as text so
    /// that one too deep for the JSON decoder still gets its answer.
    pub async fn invoke(&self, event: lambda_runtime::LambdaEvent<Box<RawValue>>) -> Result<(), lambda_runtime::Error> {
        let deadline = deadline_from_epoch_millis(event.context.deadline);
        self.handle_text(event.payload.get(), deadline).await;
        Ok(())
    }

    /// Handles a request given as JSON text. When the whole text cannot be decoded (nested
    /// deeper than the decoder's recursion limit, say), its top level still names where to
    /// answer, and the answer is FAILED naming the key that could not be read.
    pub async fn handle_text(&self, payload: &str, deadline: Instant) -> Option<Response> {
        let error = match serde_json::from_str::<Value>(payload) {
            Ok(value) => return self.handle(value, deadline).await,
            Err(error) => error,
        };
        let Ok(top) = serde_json::from_str::<BTreeMap<String, Box<RawValue>>>(payload) else {
            tracing::error!(error = %error, "the event is not a JSON object: nothing to answer");
            return None;
        };
        let mut shallow = Map::new();
        let mut unreadable = Vec::new();
        for (key, raw) in &top {
            match serde_json::from_str::<Value>(raw.get()) {
                Ok(value @ Value::String(_)) => {
                    shallow.insert(key.clone(), value);
                }
                Ok(_) => {}
                Err(error) => unreadable.push(format!("{key} ({error})")),
            }
        }
        let reason = format!(
            "the request could not be read: {} (nested deeper than {JSON_DEPTH_LIMIT} levels?)",
            unreadable.join(", ")
        );
        let shallow = Value::Object(shallow);
        let url = response_url(&shallow)?;
        let response = failed(Self::skeleton(&shallow), reason);
        self.send(&url, response, deadline).await
    }

    /// Handles one request and delivers its response; returns the response as sent.
    /// `deadline` is the Lambda's; a shorter `ServiceTimeout` in the request wins, so that
    /// CloudFormation gets our reason rather than a timeout of its own.
    pub async fn handle(&self, payload: Value, deadline: Instant) -> Option<Response> {
        let url = response_url(&payload)?;
        let request_deadline = match payload.get("ResourceProperties").map(properties::service_timeout) {
            Some(Ok(Some(timeout))) => deadline.min(Instant::now() + timeout),
            Some(Err(error)) if payload.get("RequestType").and_then(Value::as_str) != Some("Delete") => {
                let response = failed(Self::skeleton(&payload), error_chain(&error));
                return self.send(&url, response, deadline).await;
            }
            // A Delete is never refused for its ServiceTimeout: the resource could not go.
            _ => deadline,
        };
        let response = self.respond(payload, request_deadline).await;
        self.send(&url, response, deadline).await
    }

    /// Delivers the response, giving up in time for the invocation to end before `deadline`.
    async fn send(&self, url: &str, mut response: Response, deadline: Instant) -> Option<Response> {
        let body = response::body(&mut response);
        tracing::info!(
            status = ?response.status,
            physical_resource_id = %response.physical_resource_id,
            reason = response.reason.as_deref().unwrap_or(""),
            "responding"
        );
        let give_up = deadline.checked_sub(DELIVERY_MARGIN).unwrap_or_else(Instant::now);
        match response::deliver(&self.http, url, body, give_up).await {
            Ok(attempts) => tracing::info!(attempts, "response delivered"),
            Err(failure) => tracing::error!(
                attempts = failure.attempts,
                error = %failure.last_error,
                request_id = %response.request_id,
                stack_id = %response.stack_id,
                "COULD NOT DELIVER THE RESPONSE: the stack waits until CloudFormation's own timeout"
            ),
        }
        Some(response)
    }

    /// A response with the request's ids and no status yet.
    fn skeleton(payload: &Value) -> Response {
        let mut response = Response::default();
        let text = |key: &str| payload.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
        response.stack_id = text("StackId");
        response.request_id = text("RequestId");
        response.logical_resource_id = text("LogicalResourceId");
        let known_id = text("PhysicalResourceId");
        response.physical_resource_id = if known_id.is_empty() {
            format!("{FAILED_CREATE_PREFIX}{}", response.request_id)
        } else {
            known_id
        };
        response
    }

    /// Computes the response for a request without sending it: the handler's work and every
    /// way it can fail, mapped to SUCCESS or FAILED.
    pub async fn respond(&self, payload: Value, deadline: Instant) -> Response {
        let mut response = Self::skeleton(&payload);
        if let Some(reason) = oversized_ids(&mut response) {
            return failed(response, reason);
        }
        let request: Request<Value, Value> = match serde_json::from_value(payload) {
            Ok(request) => request,
            Err(error) => return failed(response, format!("malformed custom-resource request: {error}")),
        };
        let handler_deadline = deadline.checked_sub(self.response_margin).unwrap_or_else(Instant::now);
        let invocation = |resource_type: &str| {
            Arc::new(Invocation {
                stack_id: response.stack_id.clone(),
                request_id: response.request_id.clone(),
                logical_resource_id: response.logical_resource_id.clone(),
                resource_type: resource_type.to_owned(),
                deadline: handler_deadline,
                step: Mutex::new("starting".into()),
            })
        };
        let handler = Arc::clone(&self.handler);

        // Some(outcome) for Create and Update; None for Delete, which keeps the request's id.
        let outcome: Result<Option<Outcome>, String> = match request {
            Request::Create(create) => match properties::decode(&create.resource_properties, UnknownKeys::Reject) {
                Ok(props) => {
                    let work =
                        move |h: Arc<H>, inv: Arc<Invocation>| async move { h.create(&inv, props).await.map(Some) };
                    supervise(handler, invocation(&create.resource_type), work).await
                }
                Err(error) => Err(error_chain(&error)),
            },
            Request::Update(update) => {
                let decoded = properties::decode(&update.resource_properties, UnknownKeys::Reject).and_then(|new| {
                    properties::decode(&update.old_resource_properties, UnknownKeys::Ignore).map(|old| (new, old))
                });
                match decoded {
                    Ok((props, old)) => {
                        let id = update.physical_resource_id;
                        let work = move |h: Arc<H>, inv: Arc<Invocation>| async move {
                            h.update(&inv, &id, props, old).await.map(Some)
                        };
                        supervise(handler, invocation(&update.resource_type), work).await
                    }
                    Err(error) => Err(error_chain(&error)),
                }
            }
            Request::Delete(delete)
                if delete.physical_resource_id.starts_with(FAILED_CREATE_PREFIX)
                    && !handler.deletes_after_failed_create(&delete.resource_type) =>
            {
                tracing::info!(physical_id = %delete.physical_resource_id, "its Create failed: nothing to delete");
                Ok(None)
            }
            Request::Delete(delete) => match properties::decode(&delete.resource_properties, UnknownKeys::Ignore) {
                Ok(props) => {
                    let id = delete.physical_resource_id;
                    let work = move |h: Arc<H>, inv: Arc<Invocation>| async move {
                        h.delete(&inv, &id, props).await.map(|()| None)
                    };
                    supervise(handler, invocation(&delete.resource_type), work).await
                }
                Err(error) => Err(error_chain(&error)),
            },
            _ => Err("unsupported RequestType: expected Create, Update or Delete".into()),
        };
        match outcome {
            Ok(Some(outcome)) => succeeded(response, outcome),
            Ok(None) => response,
            Err(reason) => failed(response, reason),
        }
    }
}

/// Runs the handler's work as a task of its own (so that a panic stays in it) and waits for
/// it until the deadline; errors, panics and the timeout become the reason.
async fn supervise<H, T, Work, Fut>(handler: Arc<H>, invocation: Arc<Invocation>, work: Work) -> Result<T, String>
where
    Work: FnOnce(Arc<H>, Arc<Invocation>) -> Fut,
    Fut: Future<Output = Result<T, Error>> + Send + 'static,
    T: Send + 'static,
{
    let started = Instant::now();
    let mut task = tokio::spawn(work(handler, Arc::clone(&invocation)));
    match tokio::time::timeout_at(invocation.deadline, &mut task).await {
        Ok(Ok(Ok(value))) => Ok(value),
        Ok(Ok(Err(error))) => Err(error_chain(&error)),
        Ok(Err(join)) => Err(match join.try_into_panic() {
            Ok(panic) => format!("the handler panicked: {}", panic_message(panic.as_ref())),
            Err(join) => format!("the handler was cancelled: {join}"),
        }),
        Err(_) => {
            task.abort();
            Err(format!(
                "timed out after {:.1}s while {}; raise the Lambda timeout or fix what it waited for",
                started.elapsed().as_secs_f64(),
                invocation.current_step()
            ))
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    if let Some(text) = panic.downcast_ref::<&str>() {
        text
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text
    } else {
        "(no message)"
    }
}

fn succeeded(mut response: Response, outcome: Outcome) -> Response {
    response.status = Status::Success;
    response.physical_resource_id = outcome.physical_id;
    response.data = outcome.data.into_iter().collect();
    response
}

/// The longest id CloudFormation sends (a physical id is 1,024 bytes at most).
pub const MAX_ID_BYTES: usize = 1024;

/// Refuses a request whose ids are longer than CloudFormation's, cutting them in the response
/// to at most 256 bytes each so that it stays within the 4,096-byte limit; the reason names
/// the id.
fn oversized_ids(response: &mut Response) -> Option<String> {
    let ids = [
        ("PhysicalResourceId", &mut response.physical_resource_id),
        ("StackId", &mut response.stack_id),
        ("RequestId", &mut response.request_id),
        ("LogicalResourceId", &mut response.logical_resource_id),
    ];
    let mut named = None;
    for (name, id) in ids {
        if id.len() > MAX_ID_BYTES {
            named.get_or_insert(format!(
                "{name} is {} bytes; CloudFormation's ids are {MAX_ID_BYTES} bytes at most, so this request was not \
                 sent by CloudFormation and nothing was done",
                id.len()
            ));
            let mut end = 256;
            while !id.is_char_boundary(end) {
                end -= 1;
            }
            id.truncate(end);
        }
    }
    named
}

fn failed(mut response: Response, reason: String) -> Response {
    response.status = Status::Failed;
    response.reason = Some(reason);
    response
}

/// Where to answer: the request's `ResponseURL` when it is an http(s) URL. An event without
/// one is logged by its ids only: its content may hold anything.
fn response_url(payload: &Value) -> Option<String> {
    let url = payload.get("ResponseURL").and_then(Value::as_str);
    if let Some(url) = url.filter(|u| reqwest::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "https" | "http"))) {
        return Some(url.to_owned());
    }
    let id = |key: &str| payload.get(key).and_then(Value::as_str).unwrap_or("(none)").to_owned();
    tracing::error!(
        request_id = %id("RequestId"),
        stack_id = %id("StackId"),
        logical_resource_id = %id("LogicalResourceId"),
        "the event has no usable ResponseURL: not a CloudFormation custom-resource request, nothing to answer"
    );
    None
}

/// The Lambda context gives the deadline as milliseconds since the Unix epoch.
fn deadline_from_epoch_millis(deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let left = u128::from(deadline_ms).saturating_sub(now_ms);
    Instant::now() + Duration::from_millis(u64::try_from(left).unwrap_or(u64::MAX))
}
