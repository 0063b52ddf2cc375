//! The consumer's own `PutObject` (`consumer::objects`) signs as S3 checks: botocore, an
//! independent SigV4 implementation (the one the AWS CLI uses), recomputes the signature from
//! the request as it arrived and must get the same `Authorization`. moto does not check
//! signatures, so this is what stands in for real S3 here.

use std::process::{Command, Stdio};

use aws_credential_types::Credentials;
use consumer::objects::{Condition, Objects, Written};
use kedaform_tests::{LocalServer, Recorded, Reply};
use serde_json::json;

/// botocore's S3 signer, at the request's own `x-amz-date`, over exactly the headers the
/// request says it signed; prints the `Authorization` it computes.
const BOTOCORE_SIGNS: &str = r#"
import datetime, json, sys
import botocore.auth
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

r = json.load(sys.stdin)
at = datetime.datetime.strptime(r["headers"]["x-amz-date"], "%Y%m%dT%H%M%SZ")
botocore.auth.get_current_datetime = lambda *args, **kwargs: at
added_by_signer = {"x-amz-date", "x-amz-content-sha256", "x-amz-security-token"}
headers = {k: v for k, v in r["headers"].items() if k in r["signed"] and k not in added_by_signer}
request = AWSRequest(method=r["method"], url=r["url"], data=r["body"].encode(), headers=headers)
S3SigV4Auth(Credentials(r["key"], r["secret"], r["token"]), "s3", r["region"]).add_auth(request)
print(request.headers["Authorization"])
"#;

fn botocore_authorization(server: &LocalServer, request: &Recorded) -> String {
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
        "region": "eu-west-1",
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

#[tokio::test]
async fn every_write_is_signed_as_botocore_signs_it() {
    let server = LocalServer::start(|n, request| match (n, request.method.as_str()) {
        (1, _) => Reply::new(412, "application/xml", "<Error><Code>PreconditionFailed</Code></Error>"),
        _ => Reply::new(200, "application/xml", "").header("etag", "\"e\""),
    })
    .await;
    let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
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
        .await;
    let s3 = kedaform_common::aws::s3(&aws);
    let objects = Objects::new(&aws, &s3, "events").await.unwrap();
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
            Some(botocore_authorization(&server, request).as_str()),
            "{condition:?}"
        );
    }
}
