//! The consumer's own `PutObject` (`consumer::objects`) and SQS calls (`consumer::queue`) sign
//! as S3 and SQS check: botocore, an independent SigV4 implementation (the one the AWS CLI
//! uses), recomputes the signature from the request as it arrived and must get the same
//! `Authorization`. moto does not check signatures, so this is what stands in for real AWS
//! here. The SQS requests' shapes are checked against the JSON protocol too.

use std::process::{Command, Stdio};
use std::sync::Arc;

use aws_credential_types::Credentials;
use consumer::objects::{Condition, Objects, Written};
use consumer::queue::{AttributeValue, ReceiptEntry, SendEntry, Sqs};
use consumer::signed::Signer;
use kedaform_tests::{LocalServer, Recorded, Reply};
use serde_json::json;

/// botocore's S3 (or plain SigV4, for SQS) signer, at the request's own `x-amz-date`, over exactly the headers the
/// request says it signed; prints the `Authorization` it computes.
const BOTOCORE_SIGNS: &str = r#"
import datetime, json, sys
import botocore.auth
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

r = json.load(sys.stdin)
at = datetime.datetime.strptime(r["headers"]["x-amz-date"], "%Y%m%dT%H%M%SZ")
botocore.auth.get_current_datetime = lambda *args, **kwargs: at
added_by_signer = {"x-amz-date", "x-amz-content-sha256", "x-amz-security-token"}
headers = {k: v for k, v in r["headers"].items() if k in r["signed"] and k not in added_by_signer}
request = AWSRequest(method=r["method"], url=r["url"], data=r["body"].encode(), headers=headers)
signer = S3SigV4Auth if r["service"] == "s3" else SigV4Auth
signer(Credentials(r["key"], r["secret"], r["token"]), r["service"], r["region"]).add_auth(request)
print(request.headers["Authorization"])
"#;

fn botocore_authorization(server: &LocalServer, request: &Recorded, service: &str) -> String {
    let authorization = request.header("authorization").expect("signed");
    let signed: Vec<&str> = authorization
        .split("SignedHeaders=")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .expect("SignedHeaders")
        .split(';')
        .collect();
    let headers: serde_json::Map<String, serde_json::Value> = request
        .headers
        .iter()
        .map(|(k, v)| (k.to_lowercase(), json!(v)))
        .collect();
    let input = json!({
        "method": request.method, "url": format!("{}{}", server.url, request.path_and_query),
        "headers": headers, "signed": signed, "body": String::from_utf8_lossy(&request.body),
        "key": "AKIDEXAMPLE", "secret": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "token": "FwoGZX+session/token=",
        "region": "eu-west-1", "service": service,
    });
    let mut child = Command::new("python")
        .args(["-c", BOTOCORE_SIGNS])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run python ({e}): `make test` puts the project venv (with botocore) first on PATH")
        });
    serde_json::to_writer(child.stdin.take().unwrap(), &input).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "botocore failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

async fn config(server: &LocalServer) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&server.url)
        .region(aws_config::Region::new("eu-west-1"))
        .credentials_provider(Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            Some("FwoGZX+session/token=".into()),
            None,
            "test",
        ))
        .load()
        .await
}

#[tokio::test]
async fn every_write_is_signed_as_botocore_signs_it() {
    let server = LocalServer::start(|n, request| match (n, request.method.as_str()) {
        (1, _) => Reply::new(412, "application/xml", "<Error><Code>PreconditionFailed</Code></Error>"),
        _ => Reply::new(200, "application/xml", "").header("etag", "\"e\""),
    })
    .await;
    let aws = config(&server).await;
    let s3 = kedaform_common::aws::s3(&aws);
    let (_, components) = Sqs::probe(&aws).await.unwrap();
    let signer = Arc::new(Signer::new(&aws, &components).unwrap());
    let objects = Objects::new(signer, &s3, "events").await.unwrap();
    let key = "sales_events/event_type=sale_event/dt=2026_11_30/0d4e 7+b.json";
    let body = r#"{"request_id": "0d4e", "ts": "2026-11-30T05:00:00.000001", "contact_me": "github.com/miztiik"}"#;
    assert_eq!(
        objects.put(key, body, Condition::Absent).await.unwrap(),
        Written::Stored
    );
    assert_eq!(
        objects.put(key, body, Condition::Matches("\"e\"")).await.unwrap(),
        Written::ConditionFailed
    );
    assert_eq!(objects.put(key, "{}", Condition::Any).await.unwrap(), Written::Stored);

    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    for (request, condition) in requests
        .iter()
        .zip([Some(("if-none-match", "*")), Some(("if-match", "\"e\"")), None])
    {
        assert_eq!(request.method, "PUT");
        assert_eq!(
            request.path_and_query,
            "/events/sales_events/event_type%3Dsale_event/dt%3D2026_11_30/0d4e%207%2Bb.json"
        );
        if let Some((name, value)) = condition {
            assert_eq!(request.header(name), Some(value));
            assert!(
                request.header("authorization").unwrap().contains(name),
                "{name} is signed"
            );
        }
        assert_eq!(request.header("x-amz-security-token"), Some("FwoGZX+session/token="));
        assert_eq!(
            request.header("authorization"),
            Some(botocore_authorization(&server, request, "s3").as_str()),
            "{condition:?}"
        );
    }
}

#[tokio::test]
async fn every_sqs_call_is_signed_as_botocore_signs_it_in_the_json_protocol() {
    const QUEUE: &str = "http://sqs.local/123456789012/events";
    let server = LocalServer::start(|_, request| {
        let answer = match request.header("x-amz-target").unwrap_or_default() {
            "AmazonSQS.ReceiveMessage" => json!({"Messages": [{"MessageId": "m", "ReceiptHandle": "r", "Body": "{}",
                "MessageAttributes": {"event_type": {"DataType": "String", "StringValue": "sale_event"}}}]}),
            "AmazonSQS.GetQueueUrl" => json!({"QueueUrl": "http://sqs.local/123456789012/events-dlq"}),
            "AmazonSQS.GetQueueAttributes" => json!({"Attributes": {"VisibilityTimeout": "30"}}),
            _ => json!({"Successful": [{"Id": "0"}], "Failed": []}),
        };
        Reply::new(200, "application/x-amz-json-1.0", answer.to_string())
    })
    .await;
    let aws = config(&server).await;
    let (endpoint, components) = Sqs::probe(&aws).await.unwrap();
    let sqs = Sqs::new(Arc::new(Signer::new(&aws, &components).unwrap()), endpoint);
    let received = sqs.receive(QUEUE, 10, 1).await.unwrap();
    assert_eq!(received[0].string_attribute("event_type"), Some("sale_event"));
    let receipts = [ReceiptEntry {
        id: "0".into(),
        receipt_handle: "r",
    }];
    sqs.delete_batch(QUEUE, &receipts).await.unwrap();
    sqs.change_visibility_batch(QUEUE, &receipts, 30).await.unwrap();
    let entry = SendEntry {
        id: "0".into(),
        message_body: "{\"request_id\": \"oops\"}".into(),
        message_attributes: [("dlq_reason".to_owned(), AttributeValue::string("why"))].into(),
    };
    let sent = sqs.send_batch(QUEUE, &[entry]).await.unwrap();
    assert_eq!(sent.successful[0].id, "0");
    assert_eq!(
        sqs.attributes(QUEUE, &["VisibilityTimeout"]).await.unwrap()["VisibilityTimeout"],
        "30"
    );
    assert_eq!(
        sqs.url_of("events-dlq", Some("123456789012")).await.unwrap(),
        "http://sqs.local/123456789012/events-dlq"
    );

    let requests = server.requests();
    let expected = [
        (
            "ReceiveMessage",
            json!({"QueueUrl": QUEUE, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 1,
            "MessageAttributeNames": ["All"]}),
        ),
        (
            "DeleteMessageBatch",
            json!({"QueueUrl": QUEUE, "Entries": [{"Id": "0", "ReceiptHandle": "r"}]}),
        ),
        (
            "ChangeMessageVisibilityBatch",
            json!({"QueueUrl": QUEUE,
            "Entries": [{"Id": "0", "ReceiptHandle": "r", "VisibilityTimeout": 30}]}),
        ),
        (
            "SendMessageBatch",
            json!({"QueueUrl": QUEUE, "Entries": [{"Id": "0", "MessageBody": "{\"request_id\": \"oops\"}",
            "MessageAttributes": {"dlq_reason": {"DataType": "String", "StringValue": "why"}}}]}),
        ),
        (
            "GetQueueAttributes",
            json!({"QueueUrl": QUEUE, "AttributeNames": ["VisibilityTimeout"]}),
        ),
        (
            "GetQueueUrl",
            json!({"QueueName": "events-dlq", "QueueOwnerAWSAccountId": "123456789012"}),
        ),
    ];
    assert_eq!(requests.len(), expected.len(), "the endpoint probe is never sent");
    for (request, (action, body)) in requests.iter().zip(expected) {
        assert_eq!(
            (request.method.as_str(), request.path_and_query.as_str()),
            ("POST", "/")
        );
        assert_eq!(
            request.header("x-amz-target"),
            Some(format!("AmazonSQS.{action}").as_str())
        );
        assert_eq!(request.header("content-type"), Some("application/x-amz-json-1.0"));
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&request.body).unwrap(),
            body,
            "{action}"
        );
        assert_eq!(
            request.header("authorization"),
            Some(botocore_authorization(&server, request, "sqs").as_str()),
            "{action}"
        );
    }
}
