//! `Custom::KedaInstall`, `Custom::KedaScaledObject` and `Custom::KubernetesManifest` end to
//! end through the custom-resource runtime: CloudFormation requests in, a fake EKS for
//! `DescribeCluster`, the fake API server for Kubernetes, moto's S3 for the manifest mirror.

use std::time::Duration;

use kedaform::cfn::{FAILED_CREATE_PREFIX, Runtime};
use kedaform::resources::{ClusterAccess, Resources};
use kedaform_tests::apiserver::{Behaviour, FakeApiServer, fake_eks};
use kedaform_tests::{LocalServer, Reply, cfn_request, moto, round_trip, unique};
use serde_json::{Value, json};
use tokio::time::Instant;

const CLUSTER: &str = "sales";
const OPERATOR_ROLE: &str = "arn:aws:iam::123456789012:role/keda-operator";

fn fixture() -> String {
    kedaform_tests::keda_release_text("keda-2.20.2.yaml")
}

struct Rig {
    api: FakeApiServer,
    eks: LocalServer,
    runtime: Runtime<Resources>,
    manifest_url: String,
}

async fn rig(behaviour: Behaviour) -> Rig {
    rig_with(behaviour, |access| access).await
}

/// As the CLI and the benchmarks use it: plain http:// allowed (the Lambdas never allow it).
async fn rig_with_plain_http() -> Rig {
    rig_with(Behaviour::default(), ClusterAccess::allow_plain_http).await
}

/// The fakes, moto's KEDA mirror, and a runtime over the cluster access `configure` returns.
async fn rig_with(behaviour: Behaviour, configure: impl FnOnce(ClusterAccess) -> ClusterAccess) -> Rig {
    let api = FakeApiServer::start(behaviour).await;
    let eks_server = fake_eks(CLUSTER, &api.server.url).await;
    let aws = moto().await;
    let eks = aws_sdk_eks::Client::from_conf(
        aws_sdk_eks::config::Builder::from(&aws)
            .endpoint_url(&eks_server.url)
            .build(),
    );
    let s3 = kedaform_common::aws::s3(&aws);
    let bucket = unique("keda-mirror-");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    s3.put_object()
        .bucket(&bucket)
        .key("keda-2.20.2.yaml")
        .body(fixture().into_bytes().into())
        .send()
        .await
        .unwrap();
    let access = configure(ClusterAccess::new(&aws, eks, s3).unwrap());
    Rig {
        api,
        eks: eks_server,
        runtime: Runtime::new(Resources::default().with_kubernetes(access))
            .with_response_margin(Duration::from_millis(500)),
        manifest_url: format!("s3://{bucket}/keda-2.20.2.yaml"),
    }
}

impl Rig {
    /// One request of `resource_type` through the runtime; the response CloudFormation got.
    async fn send(&self, resource_type: &str, kind: &str, properties: Value, old: Option<Value>, secs: u64) -> Value {
        round_trip(&self.runtime, resource_type, (kind, "Resource"), properties, old, secs).await
    }

    /// A `Custom::KubernetesManifest` of namespace `sales` and a `ConfigMap` in it
    /// ([`namespace_and_config`]), adopting or not; `old` adopting or not, for an Update.
    async fn sales(&self, kind: &str, adopt: bool, old: Option<bool>) -> Value {
        let old = old.map(namespace_and_config);
        self.send(MANIFEST_TYPE, kind, namespace_and_config(adopt), old, 60)
            .await
    }

    /// KEDA from moto's mirror, installed and ready.
    async fn install_keda(&self) {
        let keda = self
            .send("Custom::KedaInstall", "Create", install(&self.manifest_url), None, 120)
            .await;
        assert_eq!(keda["Status"], "SUCCESS", "{keda}");
    }

    /// The Delete CloudFormation's rollback sends after a failed Create, whose answer named
    /// `marker`; the response it got.
    async fn delete_failed_create(&self, resource_type: &str, properties: Value, marker: &str) -> Value {
        assert!(marker.starts_with(FAILED_CREATE_PREFIX), "{marker}");
        let endpoint = LocalServer::cloudformation().await;
        let mut delete = cfn_request("Delete", &endpoint.url, properties, Some(marker), None);
        delete["ResourceType"] = json!(resource_type);
        delete["LogicalResourceId"] = json!("Resource");
        self.runtime
            .handle(delete, Instant::now() + Duration::from_secs(60))
            .await;
        let answer = endpoint.only_request().json();
        assert_eq!(answer["PhysicalResourceId"], marker);
        answer
    }

    fn patched(&self) -> Vec<String> {
        self.api
            .requests()
            .iter()
            .filter(|r| r.method == "PATCH")
            .map(|r| r.path_and_query.split('?').next().unwrap().to_owned())
            .collect()
    }
}

fn install(url: &str) -> Value {
    json!({"ClusterName": CLUSTER, "ManifestUrl": url, "OperatorRoleArn": OPERATOR_ROLE,
           "ManifestSha256": "9bae123eb64fab8f96c67bbd576bb5819e4794df346c5aaa402a01c68b0557ab"})
}

#[tokio::test]
async fn keda_install_applies_the_manifest_with_the_irsa_overlay_and_waits_for_it() {
    let rig = rig(Behaviour::default()).await;
    let response = rig
        .send("Custom::KedaInstall", "Create", install(&rig.manifest_url), None, 60)
        .await;
    assert_eq!(response["Status"], "SUCCESS", "{response}");
    assert_eq!(response["PhysicalResourceId"], "sales/keda");
    assert_eq!(response["Data"]["Version"], "2.20.2");
    assert_eq!(response["Data"]["ObjectCount"], "28");
    assert!(
        response["Data"]["HelmValues"]
            .as_str()
            .unwrap()
            .contains(&format!("roleArn: {OPERATOR_ROLE}"))
    );
    assert_eq!(rig.patched().len(), 28);
    let account = &rig.api.objects()["/api/v1/namespaces/keda/serviceaccounts/keda-operator"];
    assert_eq!(
        account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        OPERATOR_ROLE
    );
    assert_eq!(
        account["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "kedaform"
    );

    let deleted = rig
        .send("Custom::KedaInstall", "Delete", install(&rig.manifest_url), None, 60)
        .await;
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
    assert!(rig.api.objects().is_empty(), "uninstalled");
}

#[tokio::test]
async fn keda_install_takes_its_manifest_from_an_http_mirror_when_allowed() {
    let rig = rig_with_plain_http().await;
    let mirror = LocalServer::start(|_, request| {
        if request.path_and_query == "/keda/keda-2.20.2.yaml" {
            Reply::new(200, "application/yaml", fixture())
        } else {
            Reply::new(404, "text/plain", "no such file")
        }
    })
    .await;
    let response = rig
        .send(
            "Custom::KedaInstall",
            "Create",
            install(&format!("{}/keda/keda-2.20.2.yaml", mirror.url)),
            None,
            60,
        )
        .await;
    assert_eq!(response["Status"], "SUCCESS", "{response}");
    assert_eq!(rig.patched().len(), 28);
    let missing = rig
        .send(
            "Custom::KedaInstall",
            "Create",
            install(&format!("{}/keda/nope.yaml", mirror.url)),
            None,
            60,
        )
        .await;
    assert!(
        missing["Reason"]
            .as_str()
            .unwrap()
            .starts_with("property ManifestUrl: cannot fetch"),
        "{missing}"
    );
    let plain = rig
        .send(
            "Custom::KedaInstall",
            "Create",
            install("http://example.com/keda.yaml"),
            None,
            60,
        )
        .await;
    assert!(
        plain["Reason"]
            .as_str()
            .unwrap()
            .starts_with("property ManifestUrl: cannot fetch http://example.com/keda.yaml"),
        "{plain}"
    );

    // As the Lambda runs it, the same mirror is refused before any request.
    let lambda = self::rig(Behaviour::default()).await;
    let requests = mirror.requests().len();
    let refused = lambda
        .send(
            "Custom::KedaInstall",
            "Create",
            install(&format!("{}/keda/keda-2.20.2.yaml", mirror.url)),
            None,
            60,
        )
        .await;
    assert_eq!(
        refused["Reason"],
        format!(
            "property ManifestUrl: {}/keda/keda-2.20.2.yaml is neither https:// nor s3://",
            mirror.url
        )
    );
    assert_eq!(mirror.requests().len(), requests);
}

/// A mirror that answers every request with a redirect to `location`.
async fn redirecting_to(location: &str) -> LocalServer {
    let location = location.to_owned();
    LocalServer::start(move |_, _| Reply::new(302, "text/plain", "moved").header("location", location.clone())).await
}

#[tokio::test]
async fn redirects_lead_only_to_https_and_never_to_loopback_or_metadata_addresses() {
    let rig = rig_with_plain_http().await;
    let target = LocalServer::start(|_, _| Reply::new(200, "application/yaml", fixture())).await;
    for (location, refusal) in [
        (format!("{}/keda.yaml", target.url), "only https:// is"),
        // reqwest never follows a redirect to a scheme it cannot fetch: the 302 itself fails.
        ("file:///etc/passwd".to_owned(), "HTTP 302 Found"),
        (
            "https://169.254.169.254/latest/meta-data/iam/security-credentials/".to_owned(),
            "metadata address",
        ),
        (
            "https://[fd00:ec2::254]/latest/meta-data/".to_owned(),
            "metadata address",
        ),
        (
            format!("https://127.0.0.1:{}/keda.yaml", target.url.rsplit(':').next().unwrap()),
            "metadata address",
        ),
        (
            format!("https://localhost:{}/keda.yaml", target.url.rsplit(':').next().unwrap()),
            "resolves only to loopback",
        ),
    ] {
        let mirror = redirecting_to(&location).await;
        let response = rig
            .send(
                "Custom::KedaInstall",
                "Create",
                install(&format!("{}/keda.yaml", mirror.url)),
                None,
                30,
            )
            .await;
        let reason = response["Reason"].as_str().unwrap();
        assert!(
            reason.starts_with("property ManifestUrl: cannot fetch"),
            "{location}: {reason}"
        );
        assert!(reason.contains(refusal), "{location}: {reason}");
        assert_eq!(mirror.requests().len(), 1);
    }
    assert!(target.requests().is_empty(), "no redirect reached the target");
    assert!(rig.patched().is_empty());
}

/// Answers one request with `head` and then `chunk` in chunked encoding until the client
/// hangs up: a body without end.
async fn endless(head: &'static str, chunk: &'static [u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                stream.write_all(head.as_bytes()).await?;
                let frame = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
                loop {
                    stream.write_all(&frame).await?;
                }
                #[allow(unreachable_code)]
                Ok::<(), std::io::Error>(())
            });
        }
    });
    url
}

#[tokio::test]
async fn a_manifest_download_stops_at_16_mib_whatever_the_server_says() {
    let rig = rig_with_plain_http().await;
    let chunk: &'static [u8] = Box::leak(
        b"# padding line of a manifest without end\n"
            .repeat(1600)
            .into_boxed_slice(),
    );
    for head in [
        "HTTP/1.1 200 OK\r\nContent-Type: application/yaml\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Type: application/yaml\r\nContent-Length: 1000\r\nTransfer-Encoding: chunked\r\n\r\n",
    ] {
        let url = endless(head, chunk).await;
        let started = Instant::now();
        let response = rig
            .send(
                "Custom::KedaInstall",
                "Create",
                install(&format!("{url}/keda.yaml")),
                None,
                60,
            )
            .await;
        assert_eq!(
            response["Reason"],
            format!("property ManifestUrl: {url}/keda.yaml is larger than the 16 MiB a manifest may have")
        );
        assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    }
    let announced = endless("HTTP/1.1 200 OK\r\nContent-Length: 17179869184\r\n\r\n", chunk).await;
    let response = rig
        .send(
            "Custom::KedaInstall",
            "Create",
            install(&format!("{announced}/keda.yaml")),
            None,
            60,
        )
        .await;
    assert_eq!(
        response["Reason"],
        format!("property ManifestUrl: {announced}/keda.yaml is larger than the 16 MiB a manifest may have"),
        "refused on the announced length, before reading"
    );
    assert!(rig.patched().is_empty());
}

#[tokio::test]
async fn a_page_that_is_not_a_manifest_is_named_not_quoted() {
    let rig = rig_with_plain_http().await;
    let page = "<!DOCTYPE html>\n<html><body>\n<p>Session token hunter2-secret</p>\n</body></html>\n";
    let mirror = LocalServer::start(move |_, _| Reply::new(200, "text/html", page)).await;
    let url = format!("{}/keda.yaml?X-Amz-Signature=hunter2-signature", mirror.url);
    let mut properties = install(&url);
    properties.as_object_mut().unwrap().remove("ManifestSha256");
    let response = rig.send("Custom::KedaInstall", "Create", properties, None, 60).await;
    let reason = response["Reason"].as_str().unwrap();
    assert_eq!(
        reason,
        "property ManifestUrl: document 1 is a string, not a Kubernetes object (a mapping with apiVersion, kind and metadata.name)"
    );
    assert!(!reason.contains("hunter2"), "{reason}");
}

#[tokio::test]
async fn keda_install_refuses_a_manifest_whose_hash_differs_before_touching_the_cluster() {
    let rig = rig(Behaviour::default()).await;
    let mut properties = install(&rig.manifest_url);
    properties["ManifestSha256"] = json!("00".repeat(32));
    let response = rig
        .send("Custom::KedaInstall", "Create", properties.clone(), None, 60)
        .await;
    assert_eq!(response["Status"], "FAILED");
    assert!(
        response["Reason"]
            .as_str()
            .unwrap()
            .starts_with("property ManifestSha256: the manifest's SHA-256 is 9bae123e"),
        "{response}"
    );
    assert!(rig.patched().is_empty());
    // Its rollback's Delete finds the same digest: nothing was applied, nothing to do.
    let answer = rig
        .delete_failed_create(
            "Custom::KedaInstall",
            properties,
            response["PhysicalResourceId"].as_str().unwrap(),
        )
        .await;
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");
    assert!(rig.api.requests().iter().all(|r| r.method == "GET"), "only reads");
}

#[tokio::test]
async fn keda_install_that_never_becomes_ready_fails_naming_the_deployment_and_its_rollback_takes_what_it_applied() {
    let rig = rig(Behaviour {
        never_ready: Some("Deployment"),
        ..Behaviour::default()
    })
    .await;
    let started = Instant::now();
    let response = rig
        .send("Custom::KedaInstall", "Create", install(&rig.manifest_url), None, 6)
        .await;
    assert!(started.elapsed() < Duration::from_secs(6));
    assert_eq!(response["Status"], "FAILED");
    let reason = response["Reason"].as_str().unwrap();
    assert!(reason.starts_with("Deployment.apps keda/keda-admission is not ready: 0 of 1 replicas updated, 0 available; events: FailedCreate"), "{reason}");

    // It had applied KEDA's objects; the rollback's Delete of the failed Create takes them.
    assert!(rig.api.objects().len() >= 28);
    let answer = rig
        .delete_failed_create(
            "Custom::KedaInstall",
            install(&rig.manifest_url),
            response["PhysicalResourceId"].as_str().unwrap(),
        )
        .await;
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");
    let left: Vec<String> = rig.api.objects().into_keys().collect();
    assert!(left.is_empty(), "left on the cluster: {left:?}");
}

fn scaled_object() -> Value {
    json!({"ClusterName": CLUSTER, "Namespace": "sales", "Name": "consumer", "ScaleTargetName": "consumer",
           "QueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/reliable_q", "QueueLength": "10",
           "MinReplicas": "1", "MaxReplicas": "50", "PollingInterval": "10", "CooldownPeriod": "500",
           "RoleArn": "arn:aws:iam::123456789012:role/consumer"})
}

#[tokio::test]
async fn a_scaled_object_is_applied_after_kedas_crds_and_reports_kedas_verdict() {
    let rig = rig(Behaviour::default()).await;
    assert_eq!(
        rig.send("Custom::KedaInstall", "Create", install(&rig.manifest_url), None, 60)
            .await["Status"],
        "SUCCESS"
    );
    let response = rig
        .send("Custom::KedaScaledObject", "Create", scaled_object(), None, 60)
        .await;
    assert_eq!(response["Status"], "SUCCESS", "{response}");
    assert_eq!(response["PhysicalResourceId"], "sales/sales/consumer");
    assert_eq!(response["Data"]["TriggerAuthenticationName"], "consumer-aws");
    let patched = rig.patched();
    assert_eq!(
        patched[28..],
        [
            "/apis/keda.sh/v1alpha1/namespaces/sales/triggerauthentications/consumer-aws",
            "/apis/keda.sh/v1alpha1/namespaces/sales/scaledobjects/consumer"
        ]
    );
    let stored = &rig.api.objects()["/apis/keda.sh/v1alpha1/namespaces/sales/scaledobjects/consumer"];
    assert_eq!(stored["spec"]["triggers"][0]["metadata"]["queueLength"], "10");
    assert_eq!(stored["spec"]["maxReplicaCount"], 50);

    // KEDA cannot be removed under its objects: the Delete names them and deletes nothing.
    let objects = rig.api.objects().len();
    let refused = rig
        .send("Custom::KedaInstall", "Delete", install(&rig.manifest_url), None, 60)
        .await;
    assert_eq!(refused["Status"], "FAILED", "{refused}");
    assert_eq!(
        refused["Reason"],
        "KEDA on cluster sales is still in use by ScaledObject.keda.sh sales/consumer, \
         TriggerAuthentication.keda.sh sales/consumer-aws: delete those first (their stacks, or kubectl delete), \
         then retry; removing it now would leave them stuck on its finalizers"
    );
    assert_eq!(rig.api.objects().len(), objects, "nothing deleted");
    let deleted = rig
        .send("Custom::KedaScaledObject", "Delete", scaled_object(), None, 60)
        .await;
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
    let uninstalled = rig
        .send("Custom::KedaInstall", "Delete", install(&rig.manifest_url), None, 60)
        .await;
    assert_eq!(uninstalled["Status"], "SUCCESS", "{uninstalled}");
    assert!(rig.api.objects().is_empty(), "uninstalled");
}

#[tokio::test]
async fn a_scaled_object_keda_rejects_fails_with_kedas_reason() {
    let failure = ("ScaledObjectCheckFailed", "Target resource doesn't exist");
    let rig = rig(Behaviour {
        scaled_object_failure: Some(failure),
        ..Behaviour::default()
    })
    .await;
    assert_eq!(
        rig.send("Custom::KedaInstall", "Create", install(&rig.manifest_url), None, 60)
            .await["Status"],
        "SUCCESS"
    );
    let response = rig
        .send("Custom::KedaScaledObject", "Create", scaled_object(), None, 60)
        .await;
    assert_eq!(response["Status"], "FAILED");
    assert_eq!(
        response["Reason"],
        "ScaledObject.keda.sh sales/consumer is not ready: ScaledObjectCheckFailed: Target resource doesn't exist"
    );
}

#[tokio::test]
async fn bad_scaled_object_properties_fail_before_any_call() {
    let rig = rig(Behaviour::default()).await;
    let mut properties = scaled_object();
    properties["QueueUrl"] = json!("https://sqs.us-east-1.amazonaws.com/reliable_q");
    let response = rig
        .send("Custom::KedaScaledObject", "Create", properties, None, 60)
        .await;
    assert_eq!(response["Status"], "FAILED");
    assert!(
        response["Reason"].as_str().unwrap().starts_with("property QueueUrl:"),
        "{response}"
    );
    assert!(rig.api.requests().is_empty());
}

#[tokio::test]
async fn a_manifest_update_prunes_what_left_and_delete_survives_a_deleted_cluster() {
    let rig = rig(Behaviour::default()).await;
    let both = "apiVersion: v1\nkind: Namespace\nmetadata: {name: sales}\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: consumer, namespace: sales}";
    let one = "apiVersion: v1\nkind: Namespace\nmetadata: {name: sales}";
    let created = rig
        .send(
            "Custom::KubernetesManifest",
            "Create",
            json!({"ClusterName": CLUSTER, "Manifest": both}),
            None,
            60,
        )
        .await;
    assert_eq!(created["Status"], "SUCCESS", "{created}");
    assert_eq!(
        created["Data"]["Objects"],
        "Namespace sales, ServiceAccount sales/consumer"
    );
    let updated = rig
        .send(
            "Custom::KubernetesManifest",
            "Update",
            json!({"ClusterName": CLUSTER, "Manifest": one}),
            Some(json!({"ClusterName": CLUSTER, "Manifest": both})),
            60,
        )
        .await;
    assert_eq!(updated["Status"], "SUCCESS", "{updated}");
    assert_eq!(updated["PhysicalResourceId"], created["PhysicalResourceId"]);
    let left: Vec<String> = rig.api.objects().into_keys().collect();
    assert_eq!(left, ["/api/v1/namespaces/sales"]);

    let gone = rig
        .send(
            "Custom::KubernetesManifest",
            "Delete",
            json!({"ClusterName": "deleted-cluster", "Manifest": one}),
            None,
            60,
        )
        .await;
    assert_eq!(
        gone["Status"], "SUCCESS",
        "a cluster that no longer exists took its objects with it: {gone}"
    );
    let unknown = rig
        .send(
            "Custom::KedaInstall",
            "Create",
            json!({"ClusterName": "nope", "OperatorRoleArn": OPERATOR_ROLE}),
            None,
            60,
        )
        .await;
    assert_eq!(
        unknown["Reason"],
        "property ClusterName: EKS cluster nope does not exist in us-east-1"
    );
}

const SALES_NAMESPACE: &str = "/api/v1/namespaces/sales";

fn namespace_and_config(adopt: bool) -> Value {
    json!({"ClusterName": CLUSTER, "AdoptExisting": adopt.to_string(),
           "Manifest": "apiVersion: v1\nkind: Namespace\nmetadata: {name: sales}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: sales}\ndata: {level: info}"})
}

#[tokio::test]
async fn an_object_that_exists_and_is_not_the_resources_is_refused_and_never_deleted() {
    let rig = rig(Behaviour::default()).await;
    let theirs =
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "sales", "labels": {"team": "sales"}}});
    rig.api.insert(SALES_NAMESPACE, theirs.clone());
    let refused = rig.sales("Create", false, None).await;
    assert_eq!(refused["Status"], "FAILED", "{refused}");
    let reason = refused["Reason"].as_str().unwrap();
    assert!(
        reason
            .starts_with("Namespace sales already exists and was not created by this resource: it was left unchanged."),
        "{reason}"
    );
    assert!(reason.contains("AdoptExisting"), "{reason}");
    assert!(rig.patched().is_empty(), "nothing applied: {:?}", rig.patched());
    // CloudFormation deletes a resource whose Create failed: the namespace stays.
    let deleted = rig.sales("Delete", false, None).await;
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
    assert_eq!(rig.api.objects()[SALES_NAMESPACE], theirs, "untouched");
}

#[tokio::test]
async fn an_adopted_object_is_applied_but_left_by_delete_and_prune() {
    let rig = rig(Behaviour::default()).await;
    rig.api.insert(
        SALES_NAMESPACE,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "sales"}}),
    );
    let created = rig.sales("Create", true, None).await;
    assert_eq!(created["Status"], "SUCCESS", "{created}");
    let objects = rig.api.objects();
    let namespace = &objects[SALES_NAMESPACE]["metadata"];
    assert!(
        namespace["annotations"]["kedaform.io/adopted-by"].is_string(),
        "{namespace}"
    );
    assert!(namespace["labels"]["kedaform.io/owner"].is_null(), "{namespace}");
    let config = &objects["/api/v1/namespaces/sales/configmaps/settings"]["metadata"];
    assert!(
        config["labels"]["kedaform.io/owner"].is_string(),
        "its own object: {config}"
    );
    // A second Update without AdoptExisting keeps applying what it adopted.
    let updated = rig.sales("Update", false, Some(true)).await;
    assert_eq!(updated["Status"], "SUCCESS", "{updated}");
    let deleted = rig.sales("Delete", false, None).await;
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
    let left: Vec<String> = rig.api.objects().into_keys().collect();
    assert_eq!(
        left,
        [SALES_NAMESPACE],
        "its own ConfigMap went, the adopted namespace stayed"
    );
}

#[tokio::test]
async fn another_resources_object_is_refused_even_with_adoption_and_keeps_its_owner() {
    let rig = rig(Behaviour::default()).await;
    rig.install_keda().await;
    let keda_namespace = rig.api.objects()["/api/v1/namespaces/keda"].clone();
    let owner = keda_namespace["metadata"]["labels"]["kedaform.io/owner"].clone();
    let mut other = json!({"ClusterName": CLUSTER, "AdoptExisting": "true",
                           "Manifest": "apiVersion: v1\nkind: Namespace\nmetadata: {name: keda}"});
    // Another logical id: another owner.
    let refused = round_trip(
        &rig.runtime,
        "Custom::KubernetesManifest",
        ("Create", "Intruder"),
        other.clone(),
        None,
        60,
    )
    .await;
    assert_eq!(refused["Status"], "FAILED", "{refused}");
    assert!(
        refused["Reason"].as_str().unwrap().starts_with(&format!(
            "Namespace keda already exists and belongs to another kedaform resource (owner label {})",
            owner.as_str().unwrap()
        )),
        "{refused}"
    );
    other["AdoptExisting"] = json!("false");
    let deleted = round_trip(
        &rig.runtime,
        "Custom::KubernetesManifest",
        ("Delete", "Intruder"),
        other,
        None,
        60,
    )
    .await;
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
    assert_eq!(
        rig.api.objects()["/api/v1/namespaces/keda"],
        keda_namespace,
        "KEDA's namespace untouched"
    );
}

#[tokio::test]
async fn a_replacing_scaled_object_update_deletes_nothing() {
    let rig = rig(Behaviour::default()).await;
    rig.install_keda().await;
    let created = rig.send(SO, "Create", scaled_object(), None, 60).await;
    assert_eq!(created["Status"], "SUCCESS", "{created}");
    let mut renamed = scaled_object();
    renamed["Name"] = json!("consumer-v2");
    let updated = rig.send(SO, "Update", renamed, Some(scaled_object()), 60).await;
    assert_eq!(updated["Status"], "SUCCESS", "{updated}");
    assert_ne!(
        updated["PhysicalResourceId"], created["PhysicalResourceId"],
        "a replacement"
    );
    let deletes: Vec<String> = rig
        .api
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.path_and_query.clone())
        .collect();
    assert!(
        deletes.is_empty(),
        "CloudFormation's Delete of the old id removes the old objects: {deletes:?}"
    );
    let objects = rig.api.objects();
    for name in ["consumer", "consumer-v2"] {
        assert!(
            objects.contains_key(&format!("/apis/keda.sh/v1alpha1/namespaces/sales/scaledobjects/{name}")),
            "{name} is there"
        );
    }
}

#[tokio::test]
async fn a_deployer_limited_to_kinds_and_namespaces_refuses_the_rest_before_any_call() {
    let rig = rig_with(Behaviour::default(), |access| {
        access.with_scope(kedaform::kube::scope::Scope::new("", "sales"))
    })
    .await;
    let admin = json!({"ClusterName": CLUSTER, "Manifest": "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: everyone-admin}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}"});
    let refused = round_trip(&rig.runtime, MANIFEST_TYPE, ("Create", "Admin"), admin, None, 60).await;
    assert_eq!(refused["Status"], "FAILED", "{refused}");
    assert!(
        refused["Reason"].as_str().unwrap().starts_with(
            "ClusterRoleBinding.rbac.authorization.k8s.io everyone-admin is outside what this deployer may apply"
        ),
        "{refused}"
    );
    assert!(
        rig.eks.requests().is_empty() && rig.api.requests().is_empty(),
        "no call at all"
    );
    let allowed = round_trip(
        &rig.runtime,
        MANIFEST_TYPE,
        ("Create", "Sales"),
        namespace_and_config(false),
        None,
        60,
    )
    .await;
    assert_eq!(allowed["Status"], "SUCCESS", "{allowed}");
}

const MANIFEST_TYPE: &str = "Custom::KubernetesManifest";

/// Files directly in the temporary directory that hold an EKS token.
fn token_files() -> Vec<std::path::PathBuf> {
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_file())
        .filter(|path| std::fs::read(path).is_ok_and(|bytes| bytes.windows(11).any(|w| w == b"k8s-aws-v1.")))
        .collect()
}

#[tokio::test]
async fn the_eks_token_goes_in_each_request_and_never_to_disk() {
    let rig = rig(Behaviour::default()).await;
    let before = token_files();
    // The temporary directory is watched while the request runs: a token file would exist
    // exactly then.
    let done = std::sync::atomic::AtomicBool::new(false);
    let watch = async {
        let mut seen = Vec::new();
        while !done.load(std::sync::atomic::Ordering::Relaxed) {
            seen.extend(token_files().into_iter().filter(|f| !before.contains(f)));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        seen
    };
    let request = async {
        let response = rig.sales("Create", false, None).await;
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        response
    };
    let (created, seen) = tokio::join!(request, watch);
    assert_eq!(created["Status"], "SUCCESS", "{created}");
    assert!(seen.is_empty(), "token files while the request ran: {seen:?}");
    let requests = rig.api.requests();
    assert!(!requests.is_empty());
    for request in &requests {
        let authorization = request.header("authorization").unwrap_or_default();
        assert!(
            authorization.starts_with("Bearer k8s-aws-v1."),
            "{}",
            request.path_and_query
        );
    }
    let after = token_files();
    assert!(after.iter().all(|f| before.contains(f)), "token files: {after:?}");
}

/// (resource type, property, value as JSON, the error after `property <name>: `).
const WRONG_TYPES: [(&str, &str, &str, &str); 16] = [
    (SO, "QueueLength", r#""ten""#, "found a string that is not a number"),
    (SO, "QueueLength", r#""-1""#, "found a string that is not a number"),
    (
        SO,
        "ActivationQueueLength",
        r#""none""#,
        "found a string that is not a number",
    ),
    (SO, "MinReplicas", r#""1.5""#, "found a string that is not a number"),
    (SO, "MaxReplicas", r#"["50"]"#, "expected i32, found a list"),
    (SO, "PollingInterval", r#"{"a": 1}"#, "expected i32, found a map"),
    (SO, "CooldownPeriod", r#""5m""#, "found a string that is not a number"),
    (
        SO,
        "ScaleOnInFlight",
        r#""maybe""#,
        "found a string that is not true or false",
    ),
    (SO, "QueueUrl", r#"["x"]"#, "expected a string, found a list"),
    (
        SO,
        "Fallback",
        r#"{"failureThreshold": "x", "replicas": 1}"#,
        "found a string that is not a number",
    ),
    (
        KI,
        "TokenExpiration",
        r#""one day""#,
        "found a string that is not a number",
    ),
    (
        KI,
        "LegacyFsGroup",
        r#""sometimes""#,
        "found a string that is not true or false",
    ),
    (KI, "IdentityMode", r#""Root""#, "expected one of"),
    (
        KI,
        "OperatorRoleArn",
        r#"{"Ref": "x"}"#,
        "expected a string, found a map",
    ),
    (
        KM,
        "WaitForReady",
        r#""perhaps""#,
        "found a string that is not true or false",
    ),
    (KM, "Manifest", r#"["hunter2"]"#, "expected a string, found a list"),
];
const SO: &str = "Custom::KedaScaledObject";
const KI: &str = "Custom::KedaInstall";
const KM: &str = "Custom::KubernetesManifest";

#[test]
fn a_typed_property_of_the_wrong_type_is_named_with_the_kind_of_value_not_the_value() {
    use kedaform::resources::check_properties;
    for (resource_type, property, value, message) in WRONG_TYPES {
        let mut properties = match resource_type {
            SO => scaled_object(),
            KI => install("s3://mirror/keda.yaml"),
            _ => json!({"ClusterName": CLUSTER, "Manifest": "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n"}),
        };
        properties[property] = serde_json::from_str(value).unwrap();
        let error = check_properties(resource_type, &properties).unwrap_err().to_string();
        let path = if property == "Fallback" {
            "Fallback.failureThreshold"
        } else {
            property
        };
        assert!(
            error.starts_with(&format!("property {path}: {message}")),
            "{resource_type} {property}={value}: {error}"
        );
        for secret in ["ten", "none", "5m", "maybe", "sometimes", "Root", "perhaps", "hunter2"] {
            assert!(!error.contains(secret), "{error}");
        }
    }
    let trust = json!({"RoleName": "consumer", "KedaRoleArn": OPERATOR_ROLE, "Exclusive": "maybe"});
    assert_eq!(
        check_properties(kedaform::resources::TRUST_POLICY, &trust)
            .unwrap_err()
            .to_string(),
        "property Exclusive: found a string that is not true or false"
    );
}

/// A cluster endpoint nothing answers on (a private endpoint seen from outside its VPC, subnets
/// without a route, a security group that drops the function): the request fails at once,
/// naming the network path to fix rather than the objects.
#[tokio::test]
async fn an_endpoint_the_function_cannot_reach_fails_at_once_naming_the_network_path() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let eks_server = fake_eks(CLUSTER, &format!("https://127.0.0.1:{closed}")).await;
    let aws = moto().await;
    let eks = aws_sdk_eks::Client::from_conf(
        aws_sdk_eks::config::Builder::from(&aws)
            .endpoint_url(&eks_server.url)
            .build(),
    );
    let access = ClusterAccess::new(&aws, eks, kedaform_common::aws::s3(&aws)).unwrap();
    let runtime =
        Runtime::new(Resources::default().with_kubernetes(access)).with_response_margin(Duration::from_millis(500));
    let started = Instant::now();
    let response = round_trip(
        &runtime,
        "Custom::KubernetesManifest",
        ("Create", "Resource"),
        json!({"ClusterName": CLUSTER, "Manifest": "apiVersion: v1\nkind: Namespace\nmetadata: {name: sales}"}),
        None,
        60,
    )
    .await;
    assert_eq!(response["Status"], "FAILED", "{response}");
    let reason = response["Reason"].as_str().unwrap();
    assert!(
        reason.contains("cannot reach the cluster's API server for the") && reason.contains("security group"),
        "{reason}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "at once, not at the deadline: {:?}",
        started.elapsed()
    );
}

/// Another metrics adapter (prometheus-adapter, say) serves `v1beta1.external.metrics.k8s.io`:
/// KEDA's install fails naming the Service that holds it and leaves it alone; its rollback
/// Delete takes only what it applied. With `AdoptExisting` it takes the APIService over and its
/// Delete still never removes it.
#[tokio::test]
async fn keda_install_names_the_metrics_adapter_that_holds_the_apiservice_and_never_deletes_it() {
    const PATH: &str = "/apis/apiregistration.k8s.io/v1/apiservices/v1beta1.external.metrics.k8s.io";
    let rig = rig(Behaviour::default()).await;
    let theirs = json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": "v1beta1.external.metrics.k8s.io"},
        "spec": {"service": {"namespace": "monitoring", "name": "prometheus-adapter"},
                 "group": "external.metrics.k8s.io", "version": "v1beta1",
                 "groupPriorityMinimum": 100, "versionPriority": 100}});
    rig.api.insert(PATH, theirs.clone());

    let refused = rig
        .send("Custom::KedaInstall", "Create", install(&rig.manifest_url), None, 60)
        .await;
    assert_eq!(refused["Status"], "FAILED", "{refused}");
    let reason = refused["Reason"].as_str().unwrap();
    assert!(
        reason.starts_with(
            "APIService.apiregistration.k8s.io v1beta1.external.metrics.k8s.io (served by Service \
             monitoring/prometheus-adapter) already exists and was not created by this resource"
        ),
        "{reason}"
    );
    assert!(reason.contains("AdoptExisting"), "{reason}");
    let marker = refused["PhysicalResourceId"].as_str().unwrap();
    let rolled_back = rig
        .delete_failed_create("Custom::KedaInstall", install(&rig.manifest_url), marker)
        .await;
    assert_eq!(rolled_back["Status"], "SUCCESS", "{rolled_back}");
    let left = rig.api.objects();
    assert_eq!(left.keys().collect::<Vec<_>>(), [PATH], "only theirs is left");
    assert_eq!(left[PATH], theirs, "untouched");

    let mut adopting = install(&rig.manifest_url);
    adopting["AdoptExisting"] = json!(true);
    let adopted = rig
        .send("Custom::KedaInstall", "Create", adopting.clone(), None, 60)
        .await;
    assert_eq!(adopted["Status"], "SUCCESS", "{adopted}");
    assert_eq!(
        rig.api.objects()[PATH]["spec"]["service"],
        json!({"namespace": "keda", "name": "keda-metrics-apiserver"}),
        "taken over: KEDA's metrics server serves it now"
    );
    let deleted = rig.send("Custom::KedaInstall", "Delete", adopting, None, 60).await;
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
    assert_eq!(
        rig.api.objects().keys().collect::<Vec<_>>(),
        [PATH],
        "an adopted APIService is never deleted"
    );
}

/// KEDA without a single point of failure: replicas, budgets, spread and resources reach the
/// Deployments as CloudFormation sends them (every scalar a string), and the budgets go with
/// the install on Delete.
#[tokio::test]
async fn keda_install_applies_replicas_budgets_spread_and_resources() {
    let rig = rig(Behaviour::default()).await;
    let mut properties = install(&rig.manifest_url);
    for (key, value) in [
        ("OperatorReplicas", json!("2")),
        ("MetricsServerReplicas", json!("2")),
        ("PodDisruptionBudgets", json!("true")),
        ("TopologySpread", json!("zone")),
        (
            "Resources",
            json!({"Operator": {"requests": {"cpu": "250m", "memory": "256Mi"}}}),
        ),
    ] {
        properties[key] = value;
    }
    let created = rig
        .send("Custom::KedaInstall", "Create", properties.clone(), None, 60)
        .await;
    assert_eq!(created["Status"], "SUCCESS", "{created}");
    assert_eq!(created["Data"]["ObjectCount"], "30", "28 and two budgets");
    let objects = rig.api.objects();
    let operator = &objects["/apis/apps/v1/namespaces/keda/deployments/keda-operator"]["spec"];
    assert_eq!(operator["replicas"], 2);
    assert_eq!(
        operator["template"]["spec"]["containers"][0]["resources"],
        json!({"requests": {"cpu": "250m", "memory": "256Mi"}})
    );
    assert_eq!(
        operator["template"]["spec"]["topologySpreadConstraints"][0]["topologyKey"],
        "topology.kubernetes.io/zone"
    );
    for name in ["keda-operator", "keda-metrics-apiserver"] {
        let budget = &objects[&format!("/apis/policy/v1/namespaces/keda/poddisruptionbudgets/{name}")];
        assert_eq!(budget["spec"]["maxUnavailable"], 1, "{name}");
    }
    assert!(
        created["Data"]["HelmValues"]
            .as_str()
            .unwrap()
            .contains("replicaCount: 2")
    );

    let mut refused = install(&rig.manifest_url);
    refused["PodDisruptionBudgets"] = json!("true");
    let answer = rig
        .send("Custom::KedaInstall", "Update", refused, Some(properties.clone()), 60)
        .await;
    assert_eq!(answer["Status"], "FAILED", "{answer}");
    assert!(
        answer["Reason"]
            .as_str()
            .unwrap()
            .starts_with("property PodDisruptionBudgets: protects nothing with one replica"),
        "{answer}"
    );
    let deleted = rig.send("Custom::KedaInstall", "Delete", properties, None, 60).await;
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
    assert!(rig.api.objects().is_empty(), "{:?}", rig.api.objects().keys());
}
