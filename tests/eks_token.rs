//! The in-process EKS token against the AWS CLI's `aws eks get-token`: the CLI signs at its
//! own clock, kedaform signs the same request at the CLI's `X-Amz-Date`, and the URLs must be
//! identical to the byte.

use std::process::Command;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kedaform::eks::{TOKEN_PREFIX, token};

const KEY: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fn cli_token(region: &str, cluster: &str, session: Option<&str>) -> String {
    let mut command = Command::new("aws");
    command
        .args([
            "eks",
            "get-token",
            "--cluster-name",
            cluster,
            "--region",
            region,
            "--output",
            "json",
        ])
        .env("AWS_ACCESS_KEY_ID", KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_STS_REGIONAL_ENDPOINTS", "regional")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE");
    if let Some(session) = session {
        command.env("AWS_SESSION_TOKEN", session);
    }
    let output = command.output().unwrap_or_else(|e| {
        panic!(
            "cannot run the AWS CLI ({e}): `make test` installs it into the project venv (pip install awscli==1.46.3)"
        )
    });
    assert!(
        output.status.success(),
        "aws eks get-token failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["kind"], "ExecCredential");
    json["status"]["token"].as_str().unwrap().to_owned()
}

fn url_of(token: &str) -> String {
    let encoded = token.strip_prefix(TOKEN_PREFIX).expect("k8s-aws-v1. prefix");
    String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).expect("unpadded base64url")).unwrap()
}

/// `X-Amz-Date=20261128T101500Z` as a time.
fn signing_time(url: &str) -> SystemTime {
    let date = url.split("X-Amz-Date=").nth(1).unwrap().get(..16).unwrap();
    let number = |range: std::ops::Range<usize>| date[range].parse::<i64>().unwrap();
    let (year, month, day) = (number(0..4), number(4..6), number(6..8));
    let (hour, minute, second) = (number(9..11), number(11..13), number(13..15));
    // Days since the epoch of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second;
    SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).unwrap())
}

#[test]
fn tokens_are_byte_identical_to_aws_eks_get_token() {
    for (region, cluster, session) in [
        ("us-east-1", "sales-cluster", None),
        ("eu-west-1", "kedaform-demo", Some("IQoJb3JpZ2luX2VjEXAMPLE+/=")),
    ] {
        let reference = cli_token(region, cluster, session);
        let at = signing_time(&url_of(&reference));
        let credentials = Credentials::new(KEY, SECRET, session.map(str::to_owned), None, "test");
        let ours = token(&credentials, region, cluster, at).unwrap();
        assert_eq!(url_of(&ours), url_of(&reference), "{region} {cluster}");
        assert_eq!(ours, reference);
    }
}
