//! IAM fixtures: scale-eks-with-keda's consumer trust policy and a fake IAM for what moto cannot play.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

use crate::{LocalServer, Reply};

/// moto's default account.
pub const ACCOUNT: &str = "123456789012";
/// The OIDC provider the test roles trust.
pub const OIDC: &str = "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";

/// The statement that lets the consumer's pods assume their role through IRSA.
pub fn web_identity_statement() -> Value {
    json!({
        "Effect": "Allow",
        "Principal": {"Federated": format!("arn:aws:iam::{ACCOUNT}:oidc-provider/{OIDC}")},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {
            format!("{OIDC}:sub"): "system:serviceaccount:sales:consumer",
            format!("{OIDC}:aud"): "sts.amazonaws.com"
        }}
    })
}

/// scale-eks-with-keda's consumer role trust: the whole account plus the consumer's service account.
pub fn account_wide_trust() -> Value {
    json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")}, "Action": "sts:AssumeRole"},
        web_identity_statement()
    ]})
}

/// A role (on moto) with scale-eks-with-keda's trust; returns its name.
pub async fn account_wide_role(iam: &aws_sdk_iam::Client, prefix: &str) -> String {
    let name = crate::unique(prefix);
    iam.create_role()
        .role_name(&name)
        .assume_role_policy_document(account_wide_trust().to_string())
        .send()
        .await
        .expect("moto creates the role");
    name
}

/// The one role the fake IAM knows, with scale-eks-with-keda's trust.
pub const FAKE_IAM_ROLE: &str = "consumer";

/// A policy document as IAM's `GetRole` returns it: URL-encoded.
pub fn url_encoded(document: &Value) -> String {
    document
        .to_string()
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn get_role() -> String {
    let encoded = url_encoded(&account_wide_trust());
    format!(
        r#"<GetRoleResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><GetRoleResult><Role>
<Path>/</Path><AssumeRolePolicyDocument>{encoded}</AssumeRolePolicyDocument><RoleId>AROAEXAMPLEID0000001</RoleId>
<RoleName>{FAKE_IAM_ROLE}</RoleName><Arn>arn:aws:iam::{ACCOUNT}:role/{FAKE_IAM_ROLE}</Arn>
<CreateDate>2026-11-01T00:00:00Z</CreateDate></Role></GetRoleResult>
<ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></GetRoleResponse>"#
    )
}

fn invalid_principal() -> String {
    format!(
        r#"<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type>
<Code>MalformedPolicyDocument</Code><Message>Invalid principal in policy: "AWS":"arn:aws:iam::{ACCOUNT}:role/keda"</Message>
</Error><RequestId>r</RequestId></ErrorResponse>"#
    )
}

const UPDATED: &str = r#"<UpdateAssumeRolePolicyResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></UpdateAssumeRolePolicyResponse>"#;

/// IAM's query protocol for `GetRole` and `UpdateAssumeRolePolicy` on [`FAKE_IAM_ROLE`],
/// rejecting the first `rejections` writes as IAM does for a principal it does not know yet
/// (moto accepts any principal, so it cannot play IAM's eventual consistency).
pub async fn fake_iam(rejections: usize) -> LocalServer {
    let writes = AtomicUsize::new(0);
    LocalServer::start(move |_, request| {
        let action = request
            .form()
            .into_iter()
            .find(|(k, _)| k == "Action")
            .map(|(_, v)| v)
            .unwrap_or_default();
        match action.as_str() {
            "GetRole" => Reply::new(200, "text/xml", get_role()),
            "UpdateAssumeRolePolicy" if writes.fetch_add(1, Ordering::SeqCst) < rejections => {
                Reply::new(400, "text/xml", invalid_principal())
            }
            "UpdateAssumeRolePolicy" => Reply::new(200, "text/xml", UPDATED),
            other => Reply::new(
                400,
                "text/xml",
                format!(
                    "<ErrorResponse><Error><Code>Unexpected</Code><Message>{other}</Message></Error></ErrorResponse>"
                ),
            ),
        }
    })
    .await
}
