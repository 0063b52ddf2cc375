//! The plain AWS part of `infra/template.yaml` (queue, DLQ, bucket, the three IRSA roles)
//! deployed as written through moto's CloudFormation, then checked through the services' own
//! APIs, patched by the real `Custom::KedaTrustPolicy` handler and deleted.
//!
//! What is left out, and why: moto runs `Custom::` resources only by starting their Lambda in
//! Docker (none here), and does not model EKS clusters, node groups or access entries. The
//! two values the kept resources take from those (the cluster's OIDC issuer and the OIDC
//! provider's ARN) are filled in as literals; the trust patch is run by calling its handler
//! with the template's properties. moto 5.2's CloudFormation skips `AWS::S3::BucketPolicy`
//! and applies only `BucketEncryption` and `Tags` of a bucket, so the bucket policy, its
//! versioning and public-access block are checked by `tests/infra.rs`, cfn-lint and checkov.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_cloudformation::types::{Parameter, StackStatus};
use kedaform::cfn::Runtime;
use kedaform::iam::TrustPolicies;
use kedaform::resources::{Resources, TRUST_POLICY};
use kedaform_tests::template::{Evaluator, IMAGES, OIDC_ISSUER, Template, references};
use kedaform_tests::{LocalServer, cfn_request, moto, unique};
use serde_json::{Value, json};
use tokio::time::Instant;

/// Queues, the bucket and the roles pods assume through the OIDC provider.
fn plain_aws_part(template: &Template) -> BTreeSet<String> {
    let provider = template.of_type("AWS::IAM::OIDCProvider")[0];
    template
        .resources()
        .iter()
        .filter(|(_, r)| match r["Type"].as_str().unwrap() {
            "AWS::SQS::Queue" | "AWS::S3::Bucket" => true,
            "AWS::IAM::Role" => references(&r["Properties"]["AssumeRolePolicyDocument"]).contains(provider),
            _ => false,
        })
        .map(|(id, _)| id.clone())
        .collect()
}

async fn wait_for(cfn: &aws_sdk_cloudformation::Client, stack: &str) -> aws_sdk_cloudformation::types::Stack {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stacks = cfn
            .describe_stacks()
            .stack_name(stack)
            .send()
            .await
            .unwrap()
            .stacks
            .unwrap();
        let stack = stacks.into_iter().next().unwrap();
        let status = stack.stack_status.clone().unwrap();
        if !status.as_str().ends_with("_IN_PROGRESS") {
            return stack;
        }
        assert!(Instant::now() < deadline, "stack still {status:?} after 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Creates the stack; returns its id and outputs.
async fn deploy(cfn: &aws_sdk_cloudformation::Client, template: &Template) -> (String, BTreeMap<String, String>) {
    let keep = plain_aws_part(template);
    assert_eq!(keep.len(), 6, "queue, DLQ, bucket, three IRSA roles: {keep:?}");
    let body = template.subset(&keep, &Evaluator::new(template, &IMAGES));

    let name = unique("kedaform-infra-");
    let parameters: Vec<Parameter> = IMAGES
        .iter()
        .map(|(k, v)| Parameter::builder().parameter_key(*k).parameter_value(*v).build())
        .collect();
    let stack = cfn
        .create_stack()
        .stack_name(&name)
        .template_body(body.to_string())
        .set_parameters(Some(parameters))
        .capabilities(aws_sdk_cloudformation::types::Capability::CapabilityIam)
        .send()
        .await
        .expect("moto accepts the template")
        .stack_id
        .unwrap();
    let created = wait_for(cfn, &stack).await;
    assert_eq!(
        created.stack_status,
        Some(StackStatus::CreateComplete),
        "{:?}",
        created.stack_status_reason
    );
    let outputs: BTreeMap<String, String> = created
        .outputs
        .unwrap_or_default()
        .into_iter()
        .map(|o| (o.output_key.unwrap(), o.output_value.unwrap()))
        .collect();
    for name in [
        "QueueUrl",
        "DeadLetterQueueUrl",
        "BucketName",
        "ConsumerRoleArn",
        "KedaOperatorRoleArn",
    ] {
        assert!(outputs.contains_key(name), "output {name}: {outputs:?}");
    }
    (stack, outputs)
}

/// Every attribute of a queue, by name.
async fn queue_attributes(sqs: &aws_sdk_sqs::Client, url: &str) -> BTreeMap<String, String> {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    attributes
        .into_iter()
        .map(|(k, v)| (k.as_str().to_owned(), v))
        .collect()
}

/// The queue as the consumer and KEDA expect it.
async fn check_queue(sqs: &aws_sdk_sqs::Client, outputs: &BTreeMap<String, String>) {
    let queue = queue_attributes(sqs, &outputs["QueueUrl"]).await;
    assert_eq!(
        (queue["VisibilityTimeout"].as_str(), queue["DelaySeconds"].as_str()),
        ("30", "2")
    );
    let redrive: Value = serde_json::from_str(&queue["RedrivePolicy"]).unwrap();
    let dlq = queue_attributes(sqs, &outputs["DeadLetterQueueUrl"]).await;
    assert_eq!(redrive["deadLetterTargetArn"], dlq["QueueArn"].as_str());
    assert_eq!(redrive["maxReceiveCount"].to_string().trim_matches('"'), "5");
}

/// The bucket: encrypted at rest.
async fn check_bucket(s3: &aws_sdk_s3::Client, outputs: &BTreeMap<String, String>) {
    let bucket = &outputs["BucketName"];
    let encryption = s3
        .get_bucket_encryption()
        .bucket(bucket)
        .send()
        .await
        .unwrap()
        .server_side_encryption_configuration
        .unwrap();
    let rule = encryption.rules()[0].apply_server_side_encryption_by_default().unwrap();
    assert_eq!(rule.sse_algorithm().as_str(), "AES256");
}

/// The consumer role trusts its own service account; the template's `Custom::KedaTrustPolicy`,
/// run through its handler on the deployed role, adds the KEDA role. Returns the role's name.
async fn patch_consumer_trust(
    iam: &aws_sdk_iam::Client,
    template: &Template,
    outputs: &BTreeMap<String, String>,
) -> String {
    let policies = TrustPolicies::new(iam.clone());
    let trust_of = async |name: &str| {
        policies
            .read(name)
            .await
            .unwrap()
            .expect("the role exists")
            .trust_policy
    };
    let consumer_role = outputs["ConsumerRoleArn"].rsplit('/').next().unwrap().to_owned();
    let trust = trust_of(&consumer_role).await;
    let issuer = OIDC_ISSUER.trim_start_matches("https://");
    assert_eq!(
        trust["Statement"][0]["Condition"]["StringEquals"][format!("{issuer}:sub")],
        "system:serviceaccount:consumer:consumer",
        "{trust}"
    );

    // The template's Custom::KedaTrustPolicy, with the deployed roles, through its handler.
    let mut properties = Evaluator::new(template, &IMAGES)
        .eval(&template.resource("ConsumerTrust")["Properties"])
        .unwrap();
    properties["RoleName"] = json!(consumer_role);
    properties["KedaRoleArn"] = json!(outputs["KedaOperatorRoleArn"]);
    let endpoint = LocalServer::cloudformation().await;
    let mut request = cfn_request("Create", &endpoint.url, properties, None, None);
    request["ResourceType"] = json!(TRUST_POLICY);
    Runtime::new(Resources::default().with_trust_policy(iam.clone()))
        .handle(request, Instant::now() + Duration::from_secs(30))
        .await;
    let response = endpoint.only_request().json();
    assert_eq!(response["Status"], "SUCCESS", "{response}");
    let patched = trust_of(&consumer_role).await;
    let principals: Vec<&Value> = patched["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["Principal"])
        .collect();
    assert_eq!(principals.len(), 2, "{patched}");
    assert!(
        principals.contains(&&json!({"AWS": outputs["KedaOperatorRoleArn"]})),
        "{patched}"
    );
    consumer_role
}

#[tokio::test]
async fn plain_aws_part_deploys_as_written_and_deletes_cleanly() {
    let config = moto().await;
    let cfn = aws_sdk_cloudformation::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let s3 = kedaform_common::aws::s3(&config);
    let iam = aws_sdk_iam::Client::new(&config);
    let template = Template::load("infra/template.yaml");

    let (stack, outputs) = deploy(&cfn, &template).await;
    check_queue(&sqs, &outputs).await;
    check_bucket(&s3, &outputs).await;
    let consumer_role = patch_consumer_trust(&iam, &template, &outputs).await;

    // Teardown: everything goes but the bucket, which DeletionPolicy Retain keeps. A deleted
    // stack is found by its id only.
    cfn.delete_stack().stack_name(&stack).send().await.unwrap();
    let deleted = wait_for(&cfn, &stack).await;
    assert_eq!(deleted.stack_status, Some(StackStatus::DeleteComplete));
    assert!(
        sqs.get_queue_attributes()
            .queue_url(&outputs["QueueUrl"])
            .send()
            .await
            .is_err(),
        "the queue is deleted with the stack"
    );
    assert!(
        TrustPolicies::new(iam).read(&consumer_role).await.unwrap().is_none(),
        "roles are deleted"
    );
    let bucket = &outputs["BucketName"];
    s3.head_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("the events bucket outlives the stack");
    s3.delete_bucket().bucket(bucket).send().await.unwrap();
}
