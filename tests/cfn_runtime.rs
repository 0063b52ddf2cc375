//! The custom-resource runtime against a local HTTP server playing CloudFormation's
//! pre-signed response endpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kedaform::Error;
use kedaform::cfn::{CustomResource, FAILED_CREATE_PREFIX, Invocation, Outcome, Runtime, response::MAX_BODY_BYTES};
use kedaform_tests::{LocalServer, Reply, STACK_ID, cfn_request};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Props {
    name: String,
    count: u32,
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    behaviour: String,
}

/// A handler whose behaviour the request chooses; it counts its calls.
#[derive(Debug, Default)]
struct Scripted {
    calls: Arc<AtomicUsize>,
}

impl Scripted {
    async fn act(&self, invocation: &Invocation, props: Props) -> Result<Outcome, Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match props.behaviour.as_str() {
            "error" => Err(Error::invalid("Name", format!("{} is not acceptable", props.name))),
            "huge-error" => Err(Error::invalid("Name", format!("starts here {}", "x".repeat(20_000)))),
            "panic" => panic!("boom in {}", props.name),
            "hang" => {
                invocation.step(format!("waiting for {} to become ready", props.name));
                tokio::time::sleep(Duration::from_hours(1)).await;
                unreachable!()
            }
            _ => Ok(Outcome::new(format!("thing/{}", props.name))
                .with("Count", props.count.to_string())
                .with("Enabled", props.enabled.to_string())),
        }
    }
}

impl CustomResource for Scripted {
    type Properties = Props;

    async fn create(&self, invocation: &Invocation, props: Props) -> Result<Outcome, Error> {
        self.act(invocation, props).await
    }

    async fn update(&self, invocation: &Invocation, _id: &str, props: Props, old: Props) -> Result<Outcome, Error> {
        assert_ne!(old.name, "", "old properties are decoded too");
        self.act(invocation, props).await
    }

    async fn delete(&self, invocation: &Invocation, _id: &str, props: Props) -> Result<(), Error> {
        self.act(invocation, props).await.map(|_| ())
    }
}

fn runtime() -> (Runtime<Scripted>, Arc<AtomicUsize>) {
    let handler = Scripted::default();
    let calls = Arc::clone(&handler.calls);
    (
        Runtime::new(handler).with_response_margin(Duration::from_millis(500)),
        calls,
    )
}

fn in_secs(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

/// Checks the protocol every response must follow and returns its JSON body.
fn assert_protocol(server: &LocalServer, request: &Value) -> Value {
    let sent = server.only_request();
    assert_eq!(sent.method, "PUT");
    assert_eq!(sent.path_and_query, "/cloudformation-response?X-Amz-Signature=abc");
    assert_eq!(
        sent.header("content-type"),
        Some(""),
        "Content-Type must be present and empty: {:?}",
        sent.headers
    );
    assert_eq!(
        sent.header("content-length"),
        Some(sent.body.len().to_string().as_str())
    );
    assert!(sent.body.len() <= MAX_BODY_BYTES, "body is {} bytes", sent.body.len());
    let body = sent.json();
    assert_eq!(body["StackId"], STACK_ID);
    assert_eq!(body["RequestId"], request["RequestId"]);
    assert_eq!(body["LogicalResourceId"], "Resource");
    assert!(!body["PhysicalResourceId"].as_str().unwrap().is_empty());
    body
}

#[tokio::test]
async fn create_succeeds_with_stringified_scalars() {
    let server = LocalServer::cloudformation().await;
    let (runtime, calls) = runtime();
    let request = cfn_request(
        "Create",
        &server.url,
        json!({"Name": "a", "Count": "5", "Enabled": "true"}),
        None,
        None,
    );
    runtime.handle(request.clone(), in_secs(10)).await.expect("a response");
    let body = assert_protocol(&server, &request);
    assert_eq!(body["Status"], "SUCCESS");
    assert_eq!(body["PhysicalResourceId"], "thing/a");
    assert_eq!(body["Data"], json!({"Count": "5", "Enabled": "true"}));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn unknown_property_fails_naming_it_and_the_handler_never_runs() {
    let server = LocalServer::cloudformation().await;
    let (runtime, calls) = runtime();
    let request = cfn_request(
        "Create",
        &server.url,
        json!({"Name": "a", "Count": "1", "Cuont": "2"}),
        None,
        None,
    );
    runtime.handle(request.clone(), in_secs(10)).await;
    let body = assert_protocol(&server, &request);
    assert_eq!(body["Status"], "FAILED");
    assert!(
        body["Reason"].as_str().unwrap().starts_with("unknown property: Cuont"),
        "{body}"
    );
    assert!(
        body["PhysicalResourceId"]
            .as_str()
            .unwrap()
            .starts_with(FAILED_CREATE_PREFIX)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn handler_error_on_create_gets_a_marker_id_and_its_delete_touches_nothing() {
    let server = LocalServer::cloudformation().await;
    let (runtime, calls) = runtime();
    let create = cfn_request(
        "Create",
        &server.url,
        json!({"Name": "a", "Count": "1", "Behaviour": "error"}),
        None,
        None,
    );
    let sent = runtime.handle(create.clone(), in_secs(10)).await.unwrap();
    let body = assert_protocol(&server, &create);
    assert_eq!(body["Status"], "FAILED");
    assert_eq!(body["Reason"], "property Name: a is not acceptable");
    let marker = body["PhysicalResourceId"].as_str().unwrap().to_owned();
    assert_eq!(marker, sent.physical_resource_id);
    assert_eq!(
        marker,
        format!("{FAILED_CREATE_PREFIX}{}", create["RequestId"].as_str().unwrap())
    );

    let rollback_server = LocalServer::cloudformation().await;
    let delete = cfn_request(
        "Delete",
        &rollback_server.url,
        json!({"Name": "a", "Count": "1", "Behaviour": "error"}),
        Some(&marker),
        None,
    );
    runtime.handle(delete.clone(), in_secs(10)).await;
    let body = assert_protocol(&rollback_server, &delete);
    assert_eq!(body["Status"], "SUCCESS");
    assert_eq!(body["PhysicalResourceId"], marker.as_str());
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the rollback Delete must not call the handler"
    );
}

#[tokio::test]
async fn failed_update_keeps_the_physical_id_and_a_new_id_means_replacement() {
    let (runtime, _) = runtime();
    let old = json!({"Name": "a", "Count": "1"});

    let server = LocalServer::cloudformation().await;
    let failing = cfn_request(
        "Update",
        &server.url,
        json!({"Name": "b", "Count": "1", "Behaviour": "error"}),
        Some("thing/a"),
        Some(old.clone()),
    );
    runtime.handle(failing.clone(), in_secs(10)).await;
    let body = assert_protocol(&server, &failing);
    assert_eq!(
        (body["Status"].as_str(), body["PhysicalResourceId"].as_str()),
        (Some("FAILED"), Some("thing/a"))
    );

    let server = LocalServer::cloudformation().await;
    let replacing = cfn_request(
        "Update",
        &server.url,
        json!({"Name": "b", "Count": "2"}),
        Some("thing/a"),
        Some(old),
    );
    runtime.handle(replacing.clone(), in_secs(10)).await;
    let body = assert_protocol(&server, &replacing);
    assert_eq!(
        (body["Status"].as_str(), body["PhysicalResourceId"].as_str()),
        (Some("SUCCESS"), Some("thing/b"))
    );
}

#[tokio::test]
async fn old_properties_from_an_older_handler_do_not_fail_an_update_or_delete() {
    let (runtime, _) = runtime();
    let server = LocalServer::cloudformation().await;
    let request = cfn_request(
        "Update",
        &server.url,
        json!({"Name": "a", "Count": "1"}),
        Some("thing/a"),
        Some(json!({"Name": "a", "Count": "1", "Retired": "x"})),
    );
    runtime.handle(request.clone(), in_secs(10)).await;
    assert_eq!(assert_protocol(&server, &request)["Status"], "SUCCESS");

    let server = LocalServer::cloudformation().await;
    let request = cfn_request(
        "Delete",
        &server.url,
        json!({"Name": "a", "Count": "1", "Retired": "x"}),
        Some("thing/a"),
        None,
    );
    runtime.handle(request.clone(), in_secs(10)).await;
    assert_eq!(assert_protocol(&server, &request)["Status"], "SUCCESS");
}

#[tokio::test]
async fn panic_becomes_failed_with_its_message() {
    let server = LocalServer::cloudformation().await;
    let (runtime, _) = runtime();
    let request = cfn_request(
        "Update",
        &server.url,
        json!({"Name": "p", "Count": "1", "Behaviour": "panic"}),
        Some("thing/p"),
        Some(json!({"Name": "p", "Count": "1"})),
    );
    runtime.handle(request.clone(), in_secs(10)).await;
    let body = assert_protocol(&server, &request);
    assert_eq!(body["Status"], "FAILED");
    assert_eq!(body["Reason"], "the handler panicked: boom in p");
    assert_eq!(body["PhysicalResourceId"], "thing/p");
}

#[tokio::test]
async fn a_handler_past_its_deadline_is_answered_before_the_lambda_deadline() {
    let server = LocalServer::cloudformation().await;
    let (runtime, _) = runtime();
    let request = cfn_request(
        "Create",
        &server.url,
        json!({"Name": "slow", "Count": "1", "Behaviour": "hang"}),
        None,
        None,
    );
    let started = Instant::now();
    let lambda_deadline = started + Duration::from_secs(2);
    runtime.handle(request.clone(), lambda_deadline).await;
    let finished = Instant::now();
    let body = assert_protocol(&server, &request);
    assert_eq!(body["Status"], "FAILED");
    let reason = body["Reason"].as_str().unwrap();
    assert!(reason.starts_with("timed out after 1."), "{reason}");
    assert!(reason.contains("while waiting for slow to become ready"), "{reason}");
    assert!(
        finished < lambda_deadline,
        "answered {:?} after the Lambda deadline",
        finished - lambda_deadline
    );
    assert!(
        finished - started >= Duration::from_millis(1400),
        "gave up too early: {:?}",
        finished - started
    );
}

#[tokio::test]
async fn a_service_timeout_shorter_than_the_lambda_deadline_bounds_the_handler() {
    let server = LocalServer::cloudformation().await;
    let (runtime, _) = runtime();
    let request = cfn_request(
        "Create",
        &server.url,
        json!({"Name": "slow", "Count": "1", "Behaviour": "hang", "ServiceTimeout": "2"}),
        None,
        None,
    );
    let started = Instant::now();
    runtime.handle(request.clone(), in_secs(600)).await;
    let body = assert_protocol(&server, &request);
    assert_eq!(body["Status"], "FAILED");
    assert!(
        body["Reason"].as_str().unwrap().starts_with("timed out after 1."),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

#[tokio::test]
async fn oversized_error_text_is_cut_to_fit_keeping_its_head() {
    let server = LocalServer::cloudformation().await;
    let (runtime, _) = runtime();
    let request = cfn_request(
        "Create",
        &server.url,
        json!({"Name": "h", "Count": "1", "Behaviour": "huge-error"}),
        None,
        None,
    );
    runtime.handle(request.clone(), in_secs(10)).await;
    let body = assert_protocol(&server, &request);
    let reason = body["Reason"].as_str().unwrap();
    assert!(reason.starts_with("property Name: starts here xxx"), "{reason}");
    assert!(reason.ends_with("bytes cut: response limit is 4096 bytes]"), "{reason}");
}

#[tokio::test]
async fn ids_longer_than_cloudformations_are_refused_within_the_response_limit() {
    let server = LocalServer::cloudformation().await;
    let (runtime, calls) = runtime();
    let long_id = "p".repeat(10_000);
    let mut request = cfn_request(
        "Delete",
        &server.url,
        json!({"Name": "h", "Count": "1"}),
        Some(&long_id),
        None,
    );
    request["LogicalResourceId"] = json!("L".repeat(5_000));
    runtime.handle(request, in_secs(10)).await;
    let sent = server.only_request();
    assert!(sent.body.len() <= MAX_BODY_BYTES, "{} bytes", sent.body.len());
    let body = sent.json();
    assert_eq!(body["Status"], "FAILED");
    assert!(
        body["Reason"]
            .as_str()
            .unwrap()
            .starts_with("PhysicalResourceId is 10000 bytes; CloudFormation's ids are 1024 bytes at most"),
        "{body}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the handler never ran");
}

#[tokio::test]
async fn response_endpoint_failing_twice_then_succeeding_gets_three_identical_puts() {
    let server = LocalServer::start(|n, _| {
        if n < 2 {
            Reply::new(503, "text/plain", "SlowDown")
        } else {
            Reply::ok()
        }
    })
    .await;
    let (runtime, calls) = runtime();
    let request = cfn_request("Create", &server.url, json!({"Name": "r", "Count": "1"}), None, None);
    runtime.handle(request, in_secs(10)).await;
    let sent = server.requests();
    assert_eq!(sent.len(), 3);
    assert!(sent.iter().all(|r| r.method == "PUT" && r.body == sent[0].body));
    assert_eq!(sent[2].json()["Status"], "SUCCESS");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the handler runs once however often the PUT is retried"
    );
}

#[tokio::test]
async fn a_client_error_from_the_endpoint_is_not_retried() {
    let server =
        LocalServer::start(|_, _| Reply::new(403, "application/xml", "<Error><Code>AccessDenied</Code></Error>")).await;
    let (runtime, _) = runtime();
    let request = cfn_request("Create", &server.url, json!({"Name": "r", "Count": "1"}), None, None);
    runtime.handle(request, in_secs(10)).await;
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn malformed_requests_are_answered_failed_and_events_without_url_are_not() {
    let server = LocalServer::cloudformation().await;
    let (runtime, calls) = runtime();
    let mut request = cfn_request("Create", &server.url, json!({"Name": "a", "Count": "1"}), None, None);
    request["RequestType"] = json!("Explode");
    runtime.handle(request.clone(), in_secs(10)).await;
    let body = assert_protocol(&server, &request);
    assert_eq!(body["Status"], "FAILED");
    assert!(
        body["Reason"]
            .as_str()
            .unwrap()
            .starts_with("malformed custom-resource request"),
        "{body}"
    );

    assert!(runtime.handle(json!({"hello": "world"}), in_secs(10)).await.is_none());
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn the_lambda_entry_point_answers_and_returns_ok() {
    let server = LocalServer::cloudformation().await;
    let (runtime, _) = runtime();
    let request = cfn_request(
        "Delete",
        &server.url,
        json!({"Name": "a", "Count": "1", "Behaviour": "error"}),
        Some("thing/a"),
        None,
    );
    let mut context = lambda_runtime::Context::default();
    context.deadline = u64::try_from(
        (std::time::SystemTime::now() + Duration::from_secs(30))
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let payload = serde_json::value::RawValue::from_string(request.to_string()).unwrap();
    let result = runtime.invoke(lambda_runtime::LambdaEvent::new(payload, context)).await;
    assert!(result.is_ok(), "a failed resource must not make Lambda retry the event");
    let body = assert_protocol(&server, &request);
    assert_eq!(body["Status"], "FAILED");
    assert_eq!(body["PhysicalResourceId"], "thing/a");
}

/// `"Triggers": [[[…]]]` nested `depth` levels inside the properties.
fn nested_request(url: &str, depth: usize) -> String {
    let request = cfn_request(
        "Create",
        url,
        json!({"Name": "deep", "Count": "1", "Triggers": "NEST"}),
        None,
        None,
    );
    let nest = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    request.to_string().replace("\"NEST\"", &nest)
}

#[tokio::test]
async fn a_request_nested_deeper_than_the_json_decoder_allows_still_gets_one_failed_answer() {
    let server = LocalServer::cloudformation().await;
    let (runtime, calls) = runtime();
    let text = nested_request(&server.url, 200);
    assert!(
        serde_json::from_str::<Value>(&text).is_err(),
        "the decoder must refuse it"
    );
    runtime.handle_text(&text, in_secs(10)).await.expect("an answer");
    let request: Value = serde_json::from_str(&nested_request(&server.url, 1)).unwrap();
    let sent = server.only_request();
    let body = sent.json();
    assert_eq!(body["Status"], "FAILED");
    assert_eq!(body["StackId"], STACK_ID);
    assert_eq!(body["LogicalResourceId"], "Resource");
    assert!(body["RequestId"].as_str().unwrap().starts_with("req-Create-"), "{body}");
    assert_ne!(
        body["RequestId"], request["RequestId"],
        "ids come from the request itself"
    );
    let reason = body["Reason"].as_str().unwrap();
    assert!(
        reason.starts_with("the request could not be read: ResourceProperties (recursion limit exceeded"),
        "{reason}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    // Just under the limit, it is an ordinary request (whose handler knows no Triggers).
    let server = LocalServer::cloudformation().await;
    let sent = runtime
        .handle_text(&nested_request(&server.url, 100), in_secs(10))
        .await
        .unwrap();
    assert_eq!(
        sent.reason.as_deref(),
        Some(
            "unknown property: Triggers; check the spelling against the resource reference (docs/src/reference/custom-resources.md)"
        )
    );
}

#[tokio::test]
async fn a_service_timeout_outside_cloudformations_range_fails_the_request_without_a_panic() {
    for timeout in [
        json!("18446744073709551615"),
        json!(u64::MAX),
        json!("0"),
        json!("3601"),
    ] {
        let server = LocalServer::cloudformation().await;
        let (runtime, calls) = runtime();
        let request = cfn_request(
            "Create",
            &server.url,
            json!({"Name": "t", "Count": "1", "ServiceTimeout": timeout}),
            None,
            None,
        );
        runtime.handle(request.clone(), in_secs(10)).await;
        let body = assert_protocol(&server, &request);
        assert_eq!(body["Status"], "FAILED");
        assert_eq!(
            body["Reason"],
            "property ServiceTimeout: expected whole seconds from 1 to 3600, as CloudFormation accepts"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }
    // A Delete is never refused for it: the resource could not leave the stack.
    let server = LocalServer::cloudformation().await;
    let (runtime, calls) = runtime();
    let request = cfn_request(
        "Delete",
        &server.url,
        json!({"Name": "t", "Count": "1", "ServiceTimeout": u64::MAX}),
        Some("thing/t"),
        None,
    );
    runtime.handle(request.clone(), in_secs(10)).await;
    assert_eq!(assert_protocol(&server, &request)["Status"], "SUCCESS");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_response_endpoint_that_never_answers_cannot_hold_the_invocation_past_its_deadline() {
    let server = LocalServer::start(|_, _| {
        let mut reply = Reply::ok();
        reply.delay = Duration::from_hours(1);
        reply
    })
    .await;
    let (runtime, _) = runtime();
    let request = cfn_request("Create", &server.url, json!({"Name": "r", "Count": "1"}), None, None);
    let lambda_deadline = in_secs(2);
    runtime.handle(request, lambda_deadline).await;
    let finished = Instant::now();
    assert!(
        finished < lambda_deadline,
        "returned {:?} after the Lambda deadline",
        finished - lambda_deadline
    );
    assert!(!server.requests().is_empty(), "the PUT was made");
}

#[test]
fn an_event_without_a_usable_response_url_is_logged_by_its_ids_only() {
    let logs = kedaform_tests::CapturedLogs::default();
    let _guard = tracing::subscriber::set_default(logs.subscriber());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (handler, calls) = self::runtime();
    for event in [
        json!({"RequestId": "r-1", "StackId": "s-1", "Password": "hunter2-secret"}),
        json!({"RequestId": "r-2", "ResponseURL": "file:///etc/passwd", "ResourceProperties": {"Token": "hunter2-secret"}}),
        json!({"RequestId": "r-3", "ResponseURL": 7, "Manifest": "hunter2-secret"}),
    ] {
        assert!(runtime.block_on(handler.handle(event, in_secs(5))).is_none());
    }
    let text = logs.text();
    for id in ["r-1", "r-2", "r-3", "s-1"] {
        assert!(text.contains(id), "{text}");
    }
    assert!(!text.contains("hunter2"), "event content reached the log: {text}");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}
