//! `Custom::KedaTrustPolicy` end to end: CloudFormation requests through the runtime, IAM
//! through the real SDK against moto server, responses to a local endpoint.

use std::time::Duration;

use aws_sdk_iam::Client;
use kedaform::cfn::Runtime;
use kedaform::iam::TrustPolicies;
use kedaform::iam::policy::KEDA_STATEMENT_SID;
use kedaform::resources::{Resources, TRUST_POLICY};
use kedaform_tests::iam::{ACCOUNT, FAKE_IAM_ROLE, OIDC, account_wide_trust, fake_iam, web_identity_statement};
use kedaform_tests::{LocalServer, cfn_request, moto, unique};
use serde_json::{Value, json};
use tokio::time::Instant;

struct Fixture {
    iam: Client,
    runtime: Runtime<Resources>,
}

impl Fixture {
    async fn new() -> Self {
        let config = moto().await;
        let iam = Client::new(&config);
        Self {
            runtime: Runtime::new(Resources::default().with_trust_policy(iam.clone())),
            iam,
        }
    }

    async fn role(&self, prefix: &str, trust: &Value) -> (String, String) {
        let name = unique(prefix);
        let role = self
            .iam
            .create_role()
            .role_name(&name)
            .assume_role_policy_document(trust.to_string())
            .send()
            .await
            .expect("moto creates the role")
            .role
            .unwrap();
        (name, role.arn)
    }

    async fn keda_role(&self) -> String {
        let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"Federated": format!("arn:aws:iam::{ACCOUNT}:oidc-provider/{OIDC}")},
            "Action": "sts:AssumeRoleWithWebIdentity"}]});
        self.role("keda-operator-", &trust).await.1
    }

    async fn trust_of(&self, role_name: &str) -> Value {
        let role = TrustPolicies::new(self.iam.clone()).read(role_name).await.unwrap();
        role.expect("the role exists").trust_policy
    }

    /// Sends one request through the runtime and returns the response CloudFormation got.
    async fn send(&self, kind: &str, properties: Value, physical_id: Option<&str>, old: Option<Value>) -> Value {
        let endpoint = LocalServer::cloudformation().await;
        let mut request = cfn_request(kind, &endpoint.url, properties, physical_id, old);
        request["ResourceType"] = json!(TRUST_POLICY);
        self.runtime
            .handle(request, Instant::now() + Duration::from_secs(30))
            .await;
        let body = endpoint.only_request().json();
        assert!(
            !body["PhysicalResourceId"].as_str().unwrap_or_default().is_empty(),
            "{body}"
        );
        body
    }
}

fn statements(document: &Value) -> Vec<Value> {
    document["Statement"].as_array().cloned().unwrap_or_default()
}

fn keda_statement(keda_role_arn: &str) -> Value {
    json!({"Sid": KEDA_STATEMENT_SID, "Effect": "Allow", "Principal": {"AWS": keda_role_arn}, "Action": "sts:AssumeRole"})
}

#[tokio::test]
async fn create_leaves_only_keda_and_the_web_identity_and_repeats_are_identical() {
    let fx = Fixture::new().await;
    let (consumer, consumer_arn) = fx.role("consumer-", &account_wide_trust()).await;
    let keda = fx.keda_role().await;
    let props = json!({"RoleName": consumer, "KedaRoleArn": keda});

    let created = fx.send("Create", props.clone(), None, None).await;
    assert_eq!(created["Status"], "SUCCESS", "{created}");
    assert_eq!(
        created["PhysicalResourceId"],
        format!("{consumer}/{KEDA_STATEMENT_SID}")
    );
    assert_eq!(
        created["Data"]["RemovedPrincipals"],
        format!("arn:aws:iam::{ACCOUNT}:root")
    );
    assert_eq!(created["Data"]["RoleArn"], consumer_arn);
    assert_eq!(created["Data"]["StatementSid"], KEDA_STATEMENT_SID);
    let after = fx.trust_of(&consumer).await;
    assert_eq!(
        statements(&after),
        vec![web_identity_statement(), keda_statement(&keda)]
    );

    // CloudFormation may deliver the same request twice.
    let repeated = fx.send("Create", props, None, None).await;
    assert_eq!(repeated["Status"], "SUCCESS");
    assert_eq!(repeated["PhysicalResourceId"], created["PhysicalResourceId"]);
    assert_eq!(repeated["Data"]["RemovedPrincipals"], "");
    assert_eq!(fx.trust_of(&consumer).await.to_string(), after.to_string());
}

/// The library's `trust_fix` example (lib/examples), as a user's own program would run it.
#[tokio::test]
async fn the_trust_fix_example_patches_the_role_from_a_program_of_ones_own() {
    let fx = Fixture::new().await;
    let (consumer, _) = fx.role("example-consumer-", &account_wide_trust()).await;
    let keda = fx.keda_role().await;
    let run = |args: &[&str]| {
        std::process::Command::new(kedaform_tests::example("trust_fix"))
            .args(args)
            .output()
            .expect("run the example")
    };
    let output = run(&[&consumer, &keda]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.ends_with("written\n"), "{stdout}");
    assert!(
        stdout.contains(&format!("arn:aws:iam::{ACCOUNT}:root")),
        "the removed grant: {stdout}"
    );
    assert_eq!(
        statements(&fx.trust_of(&consumer).await),
        vec![web_identity_statement(), keda_statement(&keda)]
    );
    let again = run(&[&consumer, &keda]);
    assert!(String::from_utf8_lossy(&again.stdout).ends_with("no change\n"));
    let usage = run(&[]);
    assert!(!usage.status.success());
    assert!(String::from_utf8_lossy(&usage.stderr).contains("usage: trust_fix"));
}

#[tokio::test]
async fn role_given_as_arn_with_external_id_and_not_exclusive() {
    let fx = Fixture::new().await;
    let (consumer, consumer_arn) = fx.role("consumer-", &account_wide_trust()).await;
    let keda = fx.keda_role().await;
    let created = fx
        .send(
            "Create",
            json!({"RoleName": consumer_arn, "KedaRoleArn": keda, "ExternalId": "ext-42", "Exclusive": "false"}),
            None,
            None,
        )
        .await;
    assert_eq!(created["Status"], "SUCCESS", "{created}");
    assert_eq!(
        created["PhysicalResourceId"],
        format!("{consumer}/{KEDA_STATEMENT_SID}")
    );
    let after = statements(&fx.trust_of(&consumer).await);
    assert_eq!(after.len(), 3, "not exclusive keeps the account grant: {after:?}");
    assert_eq!(
        after[2]["Condition"],
        json!({"StringEquals": {"sts:ExternalId": "ext-42"}})
    );
}

#[tokio::test]
async fn a_role_arn_of_another_account_or_partition_fails_and_the_local_namesake_is_untouched() {
    let fx = Fixture::new().await;
    let (consumer, consumer_arn) = fx.role("consumer-", &account_wide_trust()).await;
    let keda = fx.keda_role().await;
    let before = fx.trust_of(&consumer).await;
    for (given, why) in [
        (
            consumer_arn.replace(ACCOUNT, "210987654321"),
            format!(
                "it is in account 210987654321, but these credentials are in account {ACCOUNT}; deploy kedaform in that account"
            ),
        ),
        (
            consumer_arn.replace("arn:aws:", "arn:aws-cn:"),
            "it is in partition aws-cn, but these credentials are in partition aws".to_owned(),
        ),
        (
            consumer_arn.replace(":role/", ":role/elsewhere/"),
            format!("this account's role of that name is {consumer_arn}"),
        ),
    ] {
        let created = fx
            .send("Create", json!({"RoleName": given, "KedaRoleArn": keda}), None, None)
            .await;
        assert_eq!(created["Status"], "FAILED", "{created}");
        assert_eq!(
            created["Reason"],
            format!("property RoleName: {given} is not a role kedaform can change here: {why}")
        );
        let deleted = fx
            .send(
                "Delete",
                json!({"RoleName": given, "KedaRoleArn": keda}),
                Some("x/kedaform"),
                None,
            )
            .await;
        assert_eq!(
            deleted["Status"], "SUCCESS",
            "a Delete leaves what is not ours: {deleted}"
        );
        assert_eq!(fx.trust_of(&consumer).await, before, "{given} changed the local role");
    }
}

/// A consumer role of Pod Identity (`IdentityMode: pod-identity`): its own statement for
/// `pods.eks.amazonaws.com`, conditions and all, stays; the account-wide grant goes; KEDA's role
/// is added. The same fix as for IRSA roles.
#[tokio::test]
async fn a_pod_identity_consumer_role_keeps_its_association_and_trusts_keda_alone() {
    let fx = Fixture::new().await;
    let pod_identity = json!({"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"},
        "Action": ["sts:AssumeRole", "sts:TagSession"],
        "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT,
            "aws:RequestTag/kubernetes-namespace": "sales", "aws:RequestTag/kubernetes-service-account": "consumer"}}});
    let account_wide = json!({"Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")},
        "Action": "sts:AssumeRole"});
    let (consumer, _) = fx
        .role(
            "consumer-",
            &json!({"Version": "2012-10-17", "Statement": [pod_identity, account_wide]}),
        )
        .await;
    let keda = fx.keda_role().await;
    let response = fx
        .send("Create", json!({"RoleName": consumer, "KedaRoleArn": keda}), None, None)
        .await;
    assert_eq!(response["Status"], "SUCCESS", "{response}");
    assert_eq!(
        response["Data"]["RemovedPrincipals"],
        format!("arn:aws:iam::{ACCOUNT}:root")
    );
    assert_eq!(
        statements(&fx.trust_of(&consumer).await),
        [pod_identity, keda_statement(&keda)]
    );
}

#[tokio::test]
async fn a_keda_role_of_another_account_is_trusted_with_its_account_named_and_an_external_id() {
    let fx = Fixture::new().await;
    let (consumer, _) = fx.role("consumer-", &account_wide_trust()).await;
    let keda = "arn:aws:iam::444455556666:role/keda-operator";
    let response = fx
        .send(
            "Create",
            json!({"RoleName": consumer, "KedaRoleArn": keda, "KedaAccountId": "444455556666", "ExternalId": "kedaform-sales"}),
            None,
            None,
        )
        .await;
    assert_eq!(response["Status"], "SUCCESS", "{response}");
    let trust = fx.trust_of(&consumer).await;
    let ours: Vec<Value> = statements(&trust)
        .into_iter()
        .filter(|s| s["Principal"].get("AWS").is_some())
        .collect();
    let [statement] = &ours[..] else {
        panic!("the account-wide grant is gone, the KEDA role's is the one AWS principal: {trust}")
    };
    assert_eq!(statement["Sid"], "KedaformKedaOperator");
    assert_eq!(statement["Principal"]["AWS"], keda);
    assert_eq!(
        statement["Condition"]["StringEquals"]["sts:ExternalId"],
        "kedaform-sales"
    );
}

#[tokio::test]
async fn update_to_another_keda_role_replaces_the_statement_in_place() {
    let fx = Fixture::new().await;
    let (consumer, _) = fx.role("consumer-", &account_wide_trust()).await;
    let (old_keda, new_keda) = (fx.keda_role().await, fx.keda_role().await);
    let old = json!({"RoleName": consumer, "KedaRoleArn": old_keda});
    let created = fx.send("Create", old.clone(), None, None).await;
    let id = created["PhysicalResourceId"].as_str().unwrap();

    let updated = fx
        .send(
            "Update",
            json!({"RoleName": consumer, "KedaRoleArn": new_keda}),
            Some(id),
            Some(old),
        )
        .await;
    assert_eq!(updated["Status"], "SUCCESS", "{updated}");
    assert_eq!(updated["PhysicalResourceId"], id, "same role: no replacement");
    assert_eq!(
        statements(&fx.trust_of(&consumer).await),
        vec![web_identity_statement(), keda_statement(&new_keda)]
    );
}

#[tokio::test]
async fn a_new_role_name_is_a_replacement_and_the_old_role_is_cleaned_by_the_delete() {
    let fx = Fixture::new().await;
    let (first, _) = fx.role("consumer-a-", &account_wide_trust()).await;
    let (second, _) = fx.role("consumer-b-", &account_wide_trust()).await;
    let keda = fx.keda_role().await;
    let old = json!({"RoleName": first, "KedaRoleArn": keda});
    let created = fx.send("Create", old.clone(), None, None).await;
    let old_id = created["PhysicalResourceId"].as_str().unwrap().to_owned();

    let updated = fx
        .send(
            "Update",
            json!({"RoleName": second, "KedaRoleArn": keda}),
            Some(&old_id),
            Some(old.clone()),
        )
        .await;
    assert_eq!(updated["PhysicalResourceId"], format!("{second}/{KEDA_STATEMENT_SID}"));
    assert!(
        statements(&fx.trust_of(&first).await).contains(&keda_statement(&keda)),
        "Update must not touch the old role"
    );
    assert!(statements(&fx.trust_of(&second).await).contains(&keda_statement(&keda)));

    let deleted = fx.send("Delete", old, Some(&old_id), None).await;
    assert_eq!(deleted["Status"], "SUCCESS");
    assert_eq!(statements(&fx.trust_of(&first).await), vec![web_identity_statement()]);
    assert!(statements(&fx.trust_of(&second).await).contains(&keda_statement(&keda)));
}

#[tokio::test]
async fn delete_removes_only_our_statement_is_idempotent_and_survives_a_deleted_role() {
    let fx = Fixture::new().await;
    let (consumer, _) = fx.role("consumer-", &account_wide_trust()).await;
    let keda = fx.keda_role().await;
    let props = json!({"RoleName": consumer, "KedaRoleArn": keda});
    let created = fx.send("Create", props.clone(), None, None).await;
    let id = created["PhysicalResourceId"].as_str().unwrap().to_owned();

    for _ in 0..2 {
        let deleted = fx.send("Delete", props.clone(), Some(&id), None).await;
        assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
        assert_eq!(deleted["PhysicalResourceId"], id.as_str());
        let after = fx.trust_of(&consumer).await;
        assert_eq!(
            statements(&after),
            vec![web_identity_statement()],
            "never re-opened to the account"
        );
    }

    fx.iam.delete_role().role_name(&consumer).send().await.unwrap();
    let gone = fx.send("Delete", props, Some(&id), None).await;
    assert_eq!(gone["Status"], "SUCCESS", "{gone}");
}

#[tokio::test]
async fn bad_input_fails_with_a_reason_naming_the_property() {
    let fx = Fixture::new().await;
    let (consumer, _) = fx.role("consumer-", &account_wide_trust()).await;
    let keda = fx.keda_role().await;
    let cases = [
        (
            json!({"RoleName": consumer, "KedaRoleArn": "keda-operator"}),
            "property KedaRoleArn: \"keda-operator\" is not an IAM role ARN",
        ),
        (
            json!({"RoleName": consumer, "KedaRoleArn": format!("arn:aws-cn:iam::{ACCOUNT}:role/keda")}),
            "property KedaRoleArn: arn:aws-cn:iam::123456789012:role/keda is in partition aws-cn but role",
        ),
        (
            json!({"RoleName": "no-such-role-kedaform", "KedaRoleArn": keda}),
            "property RoleName: role no-such-role-kedaform does not exist",
        ),
        (
            json!({"RoleName": "bad name", "KedaRoleArn": keda}),
            "property RoleName: \"bad name\" is not a valid IAM role name",
        ),
        (json!({"KedaRoleArn": keda}), "property RoleName: is required"),
        (
            json!({"RoleName": consumer, "KedaRoleArn": keda, "Exclusive": "maybe"}),
            "property Exclusive: found a string that is not true or false",
        ),
        (
            json!({"RoleName": consumer, "KedaRoleArn": keda, "KedaRoleARN": keda}),
            "unknown property: KedaRoleARN",
        ),
        // A KEDA role of another account: never trusted without the explicit consent.
        (
            json!({"RoleName": consumer, "KedaRoleArn": "arn:aws:iam::444455556666:role/keda"}),
            "property KedaRoleArn: names a role of another account than the consumer role's",
        ),
        (
            json!({"RoleName": consumer, "KedaRoleArn": "arn:aws:iam::444455556666:role/keda", "KedaAccountId": "444455556667"}),
            "property KedaAccountId: is not the account of the KEDA role",
        ),
        (
            json!({"RoleName": consumer, "KedaRoleArn": keda, "KedaAccountId": ACCOUNT}),
            "property KedaAccountId: is the consumer role's own account",
        ),
        (
            json!({"RoleName": consumer, "KedaRoleArn": "arn:aws:iam::444455556666:role/keda", "KedaAccountId": "4444-5555-6666"}),
            "property KedaAccountId: is not a 12-digit AWS account id",
        ),
        // Wrong ARN kinds for the KEDA role.
        (
            json!({"RoleName": consumer, "KedaRoleArn": format!("arn:aws:iam::{ACCOUNT}:user/keda")}),
            "property KedaRoleArn:",
        ),
        (
            json!({"RoleName": consumer, "KedaRoleArn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/keda/s")}),
            "property KedaRoleArn:",
        ),
    ];
    for (props, expected) in cases {
        let response = fx.send("Create", props.clone(), None, None).await;
        assert_eq!(response["Status"], "FAILED", "{props} -> {response}");
        let reason = response["Reason"].as_str().unwrap();
        assert!(
            reason.starts_with(expected),
            "{props}\n  reason:   {reason}\n  expected: {expected}"
        );
    }
    assert_eq!(
        statements(&fx.trust_of(&consumer).await),
        statements(&account_wide_trust()),
        "failed requests change nothing"
    );
}

/// moto accepts any principal, so IAM's eventual consistency (a role created seconds ago is
/// rejected as an invalid principal for a while) is played by a local server speaking IAM's
/// query protocol.
mod eventual_consistency {
    use super::*;

    async fn runtime_with_fake_iam(rejections: usize) -> (LocalServer, Runtime<Resources>) {
        let server = fake_iam(rejections).await;
        let config = moto().await;
        let iam = Client::from_conf(
            aws_sdk_iam::config::Builder::from(&config)
                .endpoint_url(&server.url)
                .build(),
        );
        (
            server,
            Runtime::new(Resources::default().with_trust_policy(iam)).with_response_margin(Duration::from_millis(500)),
        )
    }

    fn writes(server: &LocalServer) -> Vec<Value> {
        server
            .requests()
            .iter()
            .filter_map(|r| {
                let form = r.form();
                form.iter()
                    .any(|(k, v)| k == "Action" && v == "UpdateAssumeRolePolicy")
                    .then(|| {
                        serde_json::from_str(&form.iter().find(|(k, _)| k == "PolicyDocument").unwrap().1).unwrap()
                    })
            })
            .collect()
    }

    #[tokio::test]
    async fn an_invalid_principal_is_retried_until_iam_accepts_it() {
        let (iam, runtime) = runtime_with_fake_iam(2).await;
        let endpoint = LocalServer::cloudformation().await;
        let keda = format!("arn:aws:iam::{ACCOUNT}:role/keda");
        let mut request = cfn_request(
            "Create",
            &endpoint.url,
            json!({"RoleName": FAKE_IAM_ROLE, "KedaRoleArn": keda}),
            None,
            None,
        );
        request["ResourceType"] = json!(TRUST_POLICY);
        runtime.handle(request, Instant::now() + Duration::from_secs(30)).await;
        let body = endpoint.only_request().json();
        assert_eq!(body["Status"], "SUCCESS", "{body}");
        let written = writes(&iam);
        assert_eq!(written.len(), 3, "two rejections, then success");
        assert!(written.iter().all(|w| w == &written[0]));
        assert_eq!(
            statements(&written[0]),
            vec![web_identity_statement(), keda_statement(&keda)]
        );
    }

    #[tokio::test]
    async fn a_principal_iam_never_accepts_fails_before_the_deadline_naming_keda_role_arn() {
        let (iam, runtime) = runtime_with_fake_iam(usize::MAX).await;
        let endpoint = LocalServer::cloudformation().await;
        let mut request = cfn_request(
            "Create",
            &endpoint.url,
            json!({"RoleName": FAKE_IAM_ROLE, "KedaRoleArn": format!("arn:aws:iam::{ACCOUNT}:role/keda")}),
            None,
            None,
        );
        request["ResourceType"] = json!(TRUST_POLICY);
        let deadline = Instant::now() + Duration::from_secs(4);
        runtime.handle(request, deadline).await;
        assert!(Instant::now() < deadline);
        let body = endpoint.only_request().json();
        assert_eq!(body["Status"], "FAILED");
        let reason = body["Reason"].as_str().unwrap();
        assert!(
            reason.starts_with("property KedaRoleArn: IAM still rejects the principal as invalid after"),
            "{reason}"
        );
        assert!(reason.contains("check that the KEDA role exists"), "{reason}");
        assert!(writes(&iam).len() >= 2);
    }
}
