//! The three Kubernetes custom resources against a real control plane: upstream
//! kube-apiserver, kube-controller-manager (with its HPA controller) and kube-scheduler, kwok's
//! fake nodes, and the KEDA v2.20.2 operator, metrics API server and admission webhooks run as
//! the processes of the pods KEDA's own manifest creates (`scripts/cluster.sh`). AWS is the
//! cluster's moto. `make test` starts the cluster and runs this file inside its network
//! namespace; run alone: `scripts/cluster.sh up && scripts/cluster.sh exec cargo test --test cluster`.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kedaform::cfn::Runtime;
use kedaform::kube::Kubeconfig;
use kedaform::resources::{ClusterAccess, Resources};
use kedaform_tests::{cfn_request, round_trip, unique};
use kube::Api;
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::time::Instant;

/// The cluster entry of the local kubeconfig.
const CLUSTER: &str = "local";
const ACCOUNT: &str = "123456789012";
const OPERATOR_ROLE: &str = "arn:aws:iam::123456789012:role/keda-operator";
const CONSUMER_ROLE: &str = "arn:aws:iam::123456789012:role/consumer";

fn kubeconfig_path() -> String {
    let path = std::env::var("KUBECONFIG").unwrap_or_default();
    assert!(
        path.ends_with("/kubeconfig") && Path::new(&path).exists() && std::env::var("KEDAFORM_NETNS").is_ok(),
        "KUBECONFIG={path:?}: these tests need the local cluster. Run `make test`, or `make cluster` and then \
         `scripts/cluster.sh exec cargo test --test cluster` (it needs root, Go and the first build takes ~15 min)"
    );
    path
}

struct Rig {
    runtime: Runtime<Resources>,
    client: kube::Client,
    aws: aws_config::SdkConfig,
}

async fn rig() -> Rig {
    let kubeconfig = Kubeconfig::read(Path::new(&kubeconfig_path())).await.unwrap();
    let client = kubeconfig.client(CLUSTER).unwrap();
    let aws = kedaform_tests::moto().await;
    let access = ClusterAccess::new(&aws, aws_sdk_eks::Client::new(&aws), kedaform_common::aws::s3(&aws))
        .unwrap()
        .with_kubeconfig(kubeconfig);
    Rig {
        runtime: Runtime::new(Resources::default().with_kubernetes(access))
            .with_response_margin(Duration::from_secs(1)),
        client,
        aws,
    }
}

impl Rig {
    /// One request through the runtime, as CloudFormation would send it; the response it got.
    async fn send(
        &self,
        resource_type: &str,
        kind: &str,
        logical_id: &str,
        properties: Value,
        old: Option<Value>,
        secs: u64,
    ) -> Value {
        round_trip(&self.runtime, resource_type, (kind, logical_id), properties, old, secs).await
    }

    /// `Custom::KubernetesManifest` with `documents` after a Namespace `namespace`.
    async fn manifest_request(
        &self,
        kind: &str,
        logical_id: &str,
        namespace: &str,
        documents: &[&str],
        old: Option<&[&str]>,
    ) -> Value {
        let old = old.map(|documents| manifest(namespace, documents));
        self.send(
            "Custom::KubernetesManifest",
            kind,
            logical_id,
            manifest(namespace, documents),
            old,
            120,
        )
        .await
    }

    /// `namespace`, created by someone else (field manager `kubectl`); the namespaces' API.
    async fn their_namespace(&self, namespace: &str) -> Api<Namespace> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let theirs = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
        namespaces
            .patch(namespace, &PatchParams::apply("kubectl"), &Patch::Apply(&theirs))
            .await
            .unwrap();
        namespaces
    }

    fn namespaced<K>(&self, namespace: &str) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// Polls `check` every second until it returns Some, or panics naming `what`.
    async fn eventually<T, F, Fut>(&self, what: &str, secs: u64, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(value) = check().await {
                return value;
            }
            assert!(Instant::now() < deadline, "{what} did not happen within {secs} s");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// KEDA's release manifest in a moto bucket of its own: its `s3://` URL.
    async fn mirror_keda(&self) -> String {
        let s3 = kedaform_common::aws::s3(&self.aws);
        let bucket = unique("keda-mirror-");
        s3.create_bucket().bucket(&bucket).send().await.unwrap();
        s3.put_object()
            .bucket(&bucket)
            .key("keda.yaml")
            .body(fixture().into())
            .send()
            .await
            .unwrap();
        format!("s3://{bucket}/keda.yaml")
    }

    /// Creates the `Custom::KedaScaledObject` `ScaledObject` of `properties`: the response.
    async fn create_scaled_object(&self, properties: &Value) -> Value {
        self.send(
            "Custom::KedaScaledObject",
            "Create",
            "ScaledObject",
            properties.clone(),
            None,
            180,
        )
        .await
    }

    /// `count` small messages on the queue, as the producer would send them.
    async fn queue_messages(&self, queue_url: &str, count: u32) {
        let sqs = aws_sdk_sqs::Client::new(&self.aws);
        for i in 0..count {
            sqs.send_message()
                .queue_url(queue_url)
                .message_body(format!("{{\"n\": {i}}}"))
                .send()
                .await
                .unwrap();
        }
    }

    /// Deletes the `Custom::KedaScaledObject` `logical` of `properties`, which must succeed.
    async fn delete_scaled_object(&self, logical: &str, properties: Value) {
        let deleted = self
            .send("Custom::KedaScaledObject", "Delete", logical, properties, None, 120)
            .await;
        assert_eq!(deleted["Status"], "SUCCESS", "{logical}: {deleted}");
    }

    /// The consumer of [`Self::consumer_and_queue`], then KEDA (`install`: its properties).
    async fn remove_consumer_and_keda(&self, namespace: &str, install: Value) {
        let deleted = self
            .manifest_request("Delete", "Consumer", namespace, &[CONSUMER], None)
            .await;
        assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
        let uninstalled = self
            .send("Custom::KedaInstall", "Delete", "Keda", install, None, 600)
            .await;
        assert_eq!(uninstalled["Status"], "SUCCESS", "{uninstalled}");
    }

    /// `maxReplicas` of the HPA KEDA created for the consumer in `namespace`.
    async fn hpa_max_replicas(&self, namespace: &str) -> i32 {
        let hpa = self
            .namespaced::<HorizontalPodAutoscaler>(namespace)
            .get("keda-hpa-consumer")
            .await
            .unwrap();
        hpa.spec.unwrap().max_replicas
    }

    /// The consumer Deployment (0 replicas) in `namespace`, through `Custom::KubernetesManifest`,
    /// and a queue named after `prefix`: the queue's name and its (moto) URL.
    async fn consumer_and_queue(&self, namespace: &str, prefix: &str) -> (String, String) {
        let workload = self
            .manifest_request("Create", "Consumer", namespace, &[CONSUMER], None)
            .await;
        assert_eq!(workload["Status"], "SUCCESS", "{workload}");
        let queue = unique(prefix);
        let queue_url = aws_sdk_sqs::Client::new(&self.aws)
            .create_queue()
            .queue_name(&queue)
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        (queue, queue_url)
    }

    /// `Custom::KedaInstall` from the release manifest, mirrored to a moto bucket; the
    /// properties, for the Delete.
    async fn install_keda(&self) -> Value {
        let install = json!({"ClusterName": CLUSTER, "ManifestUrl": self.mirror_keda().await,
                             "OperatorRoleArn": OPERATOR_ROLE});
        let started = Instant::now();
        let installed = self
            .send("Custom::KedaInstall", "Create", "Keda", install.clone(), None, 600)
            .await;
        assert_eq!(installed["Status"], "SUCCESS", "{installed}");
        eprintln!("KEDA installed and ready in {:.1} s", started.elapsed().as_secs_f64());
        install
    }

    /// Waits (3 minutes at most) until the consumer in `namespace` has `replicas`.
    async fn consumer_scales_to(&self, namespace: &str, replicas: i32, what: &str) {
        self.eventually(what, 180, || async {
            (self.replicas(namespace, "consumer").await == replicas).then_some(())
        })
        .await;
    }

    async fn replicas(&self, namespace: &str, name: &str) -> i32 {
        let deployment = self.namespaced::<Deployment>(namespace).get(name).await.unwrap();
        deployment.spec.and_then(|s| s.replicas).unwrap_or_default()
    }
}

/// A namespace name no other test of this run uses.
fn namespace(prefix: &str) -> String {
    unique(prefix).replace('_', "-")
}

fn manifest(namespace: &str, documents: &[&str]) -> Value {
    let mut text = format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {namespace}}}\n");
    for document in documents {
        text.push_str("---\n");
        text.push_str(&document.replace("NAMESPACE", namespace));
    }
    json!({"ClusterName": CLUSTER, "Manifest": text})
}

const SETTINGS: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: NAMESPACE}\ndata: {level: info}\n";
const EXTRA: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra, namespace: NAMESPACE}\ndata: {a: b}\n";
const WEB: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: NAMESPACE}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: web, image: registry.k8s.io/pause:3.10}]}\n";

#[tokio::test]
async fn a_manifest_is_created_waited_for_updated_with_pruning_and_deleted() {
    let rig = rig().await;
    let namespace = namespace("manifest-");
    let created = rig
        .manifest_request("Create", "Web", &namespace, &[SETTINGS, EXTRA, WEB], None)
        .await;
    assert_eq!(created["Status"], "SUCCESS", "{created}");
    assert_eq!(created["Data"]["ObjectCount"], "4");
    // WaitForReady (default): the real Deployment controller and kwok brought both pods up.
    let web = rig.namespaced::<Deployment>(&namespace).get("web").await.unwrap();
    assert_eq!(web.status.unwrap().available_replicas, Some(2));

    let updated = rig
        .manifest_request(
            "Update",
            "Web",
            &namespace,
            &[SETTINGS, WEB],
            Some(&[SETTINGS, EXTRA, WEB]),
        )
        .await;
    assert_eq!(updated["Status"], "SUCCESS", "{updated}");
    let configs = rig.namespaced::<ConfigMap>(&namespace);
    assert!(
        configs.get_opt("extra").await.unwrap().is_none(),
        "pruned: it left the set"
    );
    assert!(configs.get_opt("settings").await.unwrap().is_some());

    let deleted = rig
        .manifest_request("Delete", "Web", &namespace, &[SETTINGS, WEB], None)
        .await;
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
    let namespaces: Api<Namespace> = Api::all(rig.client.clone());
    assert!(
        namespaces.get_opt(&namespace).await.unwrap().is_none(),
        "the namespace and its objects are gone"
    );
}

#[tokio::test]
async fn kedaform_takes_back_a_field_another_manager_changed_and_leaves_objects_it_does_not_own() {
    let rig = rig().await;
    // Someone else's namespace; kedaform manages one ConfigMap in it.
    let namespace = namespace("conflict-");
    let namespaces = rig.their_namespace(&namespace).await;
    let properties = json!({"ClusterName": CLUSTER, "Manifest": SETTINGS.replace("NAMESPACE", &namespace)});
    let send = |kind: &'static str, old: Option<Value>| {
        rig.send(
            "Custom::KubernetesManifest",
            kind,
            "Settings",
            properties.clone(),
            old,
            60,
        )
    };
    let created = send("Create", None).await;
    assert_eq!(created["Status"], "SUCCESS", "{created}");

    // They change kedaform's field with a field manager of their own, and add an object.
    let configs = rig.namespaced::<ConfigMap>(&namespace);
    let theirs =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"level": "debug"}});
    let error = configs
        .patch("settings", &PatchParams::apply("kubectl"), &Patch::Apply(&theirs))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("conflict"),
        "the real server reports the conflict: {error}"
    );
    configs
        .patch(
            "settings",
            &PatchParams::apply("kubectl").force(),
            &Patch::Apply(&theirs),
        )
        .await
        .unwrap();
    let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "theirs"}, "data": {"x": "y"}});
    configs
        .patch("theirs", &PatchParams::apply("kubectl"), &Patch::Apply(&other))
        .await
        .unwrap();

    let updated = send("Update", Some(properties.clone())).await;
    assert_eq!(updated["Status"], "SUCCESS", "{updated}");
    let settings = configs.get("settings").await.unwrap();
    assert_eq!(
        settings.data.unwrap()["level"],
        "info",
        "kedaform's apply forces its own value back"
    );
    let owners: Vec<String> = settings
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter(|f| {
            f.fields_v1
                .as_ref()
                .is_some_and(|v| v.0.to_string().contains("f:level"))
        })
        .filter_map(|f| f.manager)
        .collect();
    assert_eq!(owners, ["kedaform"], "data.level now has one manager");

    let deleted = send("Delete", None).await;
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
    assert!(
        configs.get_opt("settings").await.unwrap().is_none(),
        "its own object is gone"
    );
    assert!(configs.get_opt("theirs").await.unwrap().is_some(), "theirs stays");
    assert!(
        namespaces.get_opt(&namespace).await.unwrap().is_some(),
        "so does their namespace"
    );

    namespaces.delete(&namespace, &DeleteParams::default()).await.unwrap();
}

#[tokio::test]
async fn a_namespace_kedaform_did_not_make_is_refused_then_adopted_and_left_by_delete() {
    let rig = rig().await;
    let namespace = namespace("theirs-");
    let namespaces = rig.their_namespace(&namespace).await;
    let configs = rig.namespaced::<ConfigMap>(&namespace);
    // Their namespace in a manifest: refused, then adopted when allowed, and left by Delete.
    let with_namespace = |adopt: bool| {
        json!({"ClusterName": CLUSTER, "AdoptExisting": adopt.to_string(),
               "Manifest": format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {namespace}, labels: {{tier: web}}}}\n---\n{}",
                                   SETTINGS.replace("NAMESPACE", &namespace))})
    };
    let refused = rig
        .send(
            "Custom::KubernetesManifest",
            "Create",
            "Claim",
            with_namespace(false),
            None,
            60,
        )
        .await;
    assert_eq!(refused["Status"], "FAILED", "{refused}");
    assert!(
        refused["Reason"].as_str().unwrap().starts_with(&format!(
            "Namespace {namespace} already exists and was not created by this resource"
        )),
        "{refused}"
    );
    assert!(
        configs.get_opt("settings").await.unwrap().is_none(),
        "nothing after it was applied"
    );
    let adopted = rig
        .send(
            "Custom::KubernetesManifest",
            "Create",
            "Claim",
            with_namespace(true),
            None,
            60,
        )
        .await;
    assert_eq!(adopted["Status"], "SUCCESS", "{adopted}");
    let theirs = namespaces.get(&namespace).await.unwrap();
    let labels = theirs.metadata.labels.unwrap_or_default();
    assert_eq!(labels.get("tier").map(String::as_str), Some("web"), "applied");
    assert!(!labels.contains_key("kedaform.io/owner"), "not labelled as kedaform's");
    let deleted = rig
        .send(
            "Custom::KubernetesManifest",
            "Delete",
            "Claim",
            with_namespace(true),
            None,
            60,
        )
        .await;
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
    assert!(
        configs.get_opt("settings").await.unwrap().is_none(),
        "its own ConfigMap went"
    );
    let theirs = namespaces.get(&namespace).await.unwrap();
    assert!(
        theirs.metadata.deletion_timestamp.is_none(),
        "the adopted namespace stayed"
    );
    namespaces.delete(&namespace, &DeleteParams::default()).await.unwrap();
}

#[tokio::test]
async fn an_object_the_server_rejects_fails_naming_it_and_the_servers_reason() {
    let rig = rig().await;
    let namespace = namespace("rejected-");
    let bad = WEB.replace("replicas: 2", "replicas: -1");
    let response = rig.manifest_request("Create", "Bad", &namespace, &[&bad], None).await;
    assert_eq!(response["Status"], "FAILED", "{response}");
    let reason = response["Reason"].as_str().unwrap();
    assert_eq!(
        reason,
        format!(
            "Kubernetes apply of Deployment.apps {namespace}/web was refused: Deployment.apps \"web\" is invalid: \
             spec.replicas: Invalid value (value not shown): must be greater than or equal to 0 (422 Invalid)"
        ),
        "names the object and gives the API server's own words, without the value"
    );
    let deleted = rig.manifest_request("Delete", "Bad", &namespace, &[], None).await;
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
}

#[tokio::test]
async fn a_refused_secret_never_reaches_the_stack_event() {
    let rig = rig().await;
    let namespace = namespace("secret-");
    let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: NAMESPACE\nstringData:\n  password: 31337\n  pin: {code: hunter2}\n";
    let response = rig
        .manifest_request("Create", "Secret", &namespace, &[secret], None)
        .await;
    assert_eq!(response["Status"], "FAILED", "{response}");
    let reason = response["Reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!("Kubernetes apply of Secret {namespace}/db was refused: ")),
        "{reason}"
    );
    assert!(
        reason.contains("expected string, got a value of another type"),
        "the server's rule stays: {reason}"
    );
    assert!(!reason.contains("31337") && !reason.contains("hunter2"), "{reason}");
    let deleted = rig.manifest_request("Delete", "Secret", &namespace, &[], None).await;
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
}

#[tokio::test]
async fn an_unknown_kind_fails_naming_its_api_version_and_kind() {
    let rig = rig().await;
    let widget = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: NAMESPACE}\n";
    let namespace = namespace("unknown-");
    let response = rig
        .manifest_request("Create", "Widget", &namespace, &[widget], None)
        .await;
    assert_eq!(response["Status"], "FAILED", "{response}");
    let reason = response["Reason"].as_str().unwrap();
    assert!(reason.contains("does not serve example.com/v1 Widget"), "{reason}");
    let deleted = rig.manifest_request("Delete", "Widget", &namespace, &[], None).await;
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
}

fn fixture() -> Vec<u8> {
    kedaform_tests::keda_release_text("keda-2.20.2.yaml").into_bytes()
}

const CONSUMER: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: consumer, namespace: NAMESPACE}\nspec:\n  replicas: 0\n  selector: {matchLabels: {app: consumer}}\n  template:\n    metadata: {labels: {app: consumer}}\n    spec: {containers: [{name: consumer, image: kedaform/consumer:test}]}\n";

fn scaled_object(namespace: &str, name: &str, queue: &str) -> Value {
    json!({
        "ClusterName": CLUSTER, "Namespace": namespace, "Name": name, "ScaleTargetName": "consumer",
        "QueueUrl": format!("https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/{queue}"),
        "QueueLength": 10, "MinReplicas": 0, "MaxReplicas": 5, "PollingInterval": 5, "CooldownPeriod": 10,
        "RoleArn": CONSUMER_ROLE,
    })
}

/// KEDA from its release manifest, then `ScaledObjects` that the real operator reads and the
/// real HPA controller acts on, then KEDA's removal. One test: each step needs the one before.
#[tokio::test]
#[allow(clippy::too_many_lines)] // one sequence on one cluster: each step needs the one before
async fn keda_installs_scales_a_consumer_on_queue_depth_and_uninstalls() {
    let rig = rig().await;
    let install = rig.install_keda().await;
    let crds: Api<CustomResourceDefinition> = Api::all(rig.client.clone());
    for name in ["scaledobjects.keda.sh", "triggerauthentications.keda.sh"] {
        let crd = crds.get(name).await.unwrap();
        let conditions = crd.status.unwrap().conditions.unwrap_or_default();
        assert!(
            conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True"),
            "{name}"
        );
    }
    for name in ["keda-operator", "keda-metrics-apiserver", "keda-admission"] {
        let deployment = rig.namespaced::<Deployment>("keda").get(name).await.unwrap();
        assert_eq!(deployment.status.unwrap().available_replicas, Some(1), "{name}");
    }
    // Only the operator's pods run as the service account with the AWS role (the IRSA
    // annotation is what EKS's pod identity webhook, and the local pod runner, turn into
    // AWS_ROLE_ARN and a web-identity token).
    let pods = rig
        .namespaced::<Pod>("keda")
        .list(&ListParams::default())
        .await
        .unwrap();
    let accounts = rig.namespaced::<ServiceAccount>("keda");
    let mut roles: Vec<(String, Option<String>)> = Vec::new();
    for pod in pods.items {
        let app = pod.metadata.labels.unwrap_or_default()["app"].clone();
        let account = accounts
            .get(&pod.spec.unwrap().service_account_name.unwrap())
            .await
            .unwrap();
        let role = account
            .metadata
            .annotations
            .unwrap_or_default()
            .remove("eks.amazonaws.com/role-arn");
        roles.push((app, role));
    }
    roles.sort();
    assert_eq!(
        roles,
        [
            ("keda-admission-webhooks".to_owned(), None),
            ("keda-metrics-apiserver".to_owned(), None),
            ("keda-operator".to_owned(), Some(OPERATOR_ROLE.to_owned())),
        ]
    );
    let services: Api<APIService> = Api::all(rig.client.clone());
    let metrics = services.get("v1beta1.external.metrics.k8s.io").await.unwrap();
    let conditions = metrics.status.unwrap().conditions.unwrap_or_default();
    assert!(
        conditions.iter().any(|c| c.type_ == "Available" && c.status == "True"),
        "the aggregation layer reaches KEDA's metrics server: {conditions:?}"
    );

    // The consumer, its queue, and the ScaledObject.
    let namespace = namespace("sales-");
    let (queue, queue_url) = rig.consumer_and_queue(&namespace, "orders-").await;
    let sqs = aws_sdk_sqs::Client::new(&rig.aws);

    let properties = scaled_object(&namespace, "consumer", &queue);
    let ready = rig.create_scaled_object(&properties).await;
    assert_eq!(
        ready["Status"], "SUCCESS",
        "KEDA read the queue through our TriggerAuthentication: {ready}"
    );
    assert_eq!(
        rig.hpa_max_replicas(&namespace).await,
        5,
        "KEDA created the HPA from our ScaledObject"
    );

    // 35 messages at 10 per replica: KEDA activates (0 -> 1), the HPA controller takes it to 4.
    rig.queue_messages(&queue_url, 35).await;
    let scaled_up = Instant::now();
    rig.consumer_scales_to(&namespace, 4, "scale-up to 4 replicas").await;
    eprintln!("0 -> 4 replicas in {:.1} s", scaled_up.elapsed().as_secs_f64());
    sqs.purge_queue().queue_url(&queue_url).send().await.unwrap();
    let scaled_down = Instant::now();
    rig.consumer_scales_to(&namespace, 0, "scale-in to 0 after the cooldown")
        .await;
    eprintln!(
        "4 -> 0 replicas in {:.1} s after the queue emptied",
        scaled_down.elapsed().as_secs_f64()
    );

    // KEDA's admission webhooks, running under their own service account, refuse a second
    // ScaledObject for the same Deployment; the resource fails with their words.
    let second = scaled_object(&namespace, "second", &queue);
    let refused = rig
        .send("Custom::KedaScaledObject", "Create", "Second", second.clone(), None, 60)
        .await;
    assert_eq!(refused["Status"], "FAILED", "{refused}");
    let reason = refused["Reason"].as_str().unwrap();
    assert!(
        reason
            .contains("denied the request: the workload 'consumer' of type 'apps/v1.Deployment' is already managed by"),
        "{reason}"
    );

    // A queue that does not exist: KEDA's scaler fails, and so does the resource, with KEDA's reason.
    // In the consumer's namespace, which is the "Consumer" resource's: no Namespace document.
    let other_manifest = json!({"ClusterName": CLUSTER,
                                "Manifest": CONSUMER.replace("consumer", "other").replace("NAMESPACE", &namespace)});
    let other = rig
        .send(
            "Custom::KubernetesManifest",
            "Create",
            "Other",
            other_manifest.clone(),
            None,
            120,
        )
        .await;
    assert_eq!(other["Status"], "SUCCESS", "{other}");
    let mut wrong = scaled_object(&namespace, "wrong-queue", "no-such-queue");
    wrong["ScaleTargetName"] = json!("other");
    let failed = rig
        .send("Custom::KedaScaledObject", "Create", "Wrong", wrong.clone(), None, 120)
        .await;
    assert_eq!(failed["Status"], "FAILED", "{failed}");
    let reason = failed["Reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("ScaledObject.keda.sh {namespace}/wrong-queue")),
        "names the object: {reason}"
    );
    // KEDA's Ready condition flaps between its scale loop (False, TriggerError) and its
    // controller (True); either way the answer carries the scaler's own error.
    assert!(
        reason.contains("TriggerError") || reason.contains("KEDAScalerFailed"),
        "KEDA's verdict: {reason}"
    );
    assert!(reason.contains("NonExistentQueue"), "KEDA's scaler error: {reason}");
    // KEDA cannot go while its objects remain: without the operator their finalizers would
    // never be removed, and its CRDs would hang deleting. The Delete fails at once, naming them.
    let started = Instant::now();
    let refused = rig
        .send("Custom::KedaInstall", "Delete", "Keda", install.clone(), None, 600)
        .await;
    assert_eq!(refused["Status"], "FAILED", "{refused}");
    let reason = refused["Reason"].as_str().unwrap();
    assert!(
        reason.starts_with("KEDA on cluster local is still in use by ScaledObject.keda.sh "),
        "{reason}"
    );
    assert!(reason.contains(&format!("{namespace}/consumer")), "{reason}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "at once, not at the deadline"
    );
    let operator = rig.namespaced::<Deployment>("keda").get("keda-operator").await.unwrap();
    assert!(operator.metadata.deletion_timestamp.is_none(), "nothing was removed");

    for (logical, properties) in [("Second", second), ("Wrong", wrong), ("ScaledObject", properties)] {
        rig.delete_scaled_object(logical, properties).await;
    }
    let deleted = rig
        .send(
            "Custom::KubernetesManifest",
            "Delete",
            "Other",
            other_manifest,
            None,
            120,
        )
        .await;
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
    rig.remove_consumer_and_keda(&namespace, install).await;
    assert!(crds.get_opt("scaledobjects.keda.sh").await.unwrap().is_none());
    let namespaces: Api<Namespace> = Api::all(rig.client.clone());
    assert!(namespaces.get_opt("keda").await.unwrap().is_none());
}

/// The queue depth of the replay, from each second on (seconds after the ScaledObject's Create).
const TRACE: [(u64, u64); 4] = [(0, 11), (45, 70), (105, 25), (165, 0)];
const TRACE_SECONDS: u64 = 270;

fn depth_at(second: u64) -> u64 {
    TRACE
        .iter()
        .rev()
        .find(|(from, _)| *from <= second)
        .map_or(0, |(_, depth)| *depth)
}

/// The replica count over the trace as `kedaform::sim` predicts it: (second, replicas) at
/// each change.
fn predicted(settings: &kedaform::sim::keda::Settings, version: &str) -> Vec<(u64, u32)> {
    use kedaform::sim::keda::{QueueCounts, Scaler};
    let version = kedaform::sim::hpa::KubernetesVersion::parse(version).unwrap();
    let mut scaler = Scaler::new(settings.clone(), version);
    let (mut replicas, mut changes) = (0, vec![(0, 0)]);
    for second in 0..TRACE_SECONDS {
        let counts = QueueCounts {
            visible: depth_at(second),
            ..QueueCounts::default()
        };
        let next = scaler.tick(second, replicas, counts);
        if next != replicas {
            changes.push((second, next));
            replicas = next;
        }
    }
    changes
}

fn sequence(changes: &[(u64, u32)]) -> Vec<u32> {
    changes.iter().map(|(_, replicas)| *replicas).collect()
}

/// Makes the queue hold `depth` messages: more are sent in concurrent batches of ten (so the
/// change takes milliseconds), fewer received and deleted ten at a time (a purge is allowed
/// once a minute). A sync that falls inside a decrease sees a count between the two, which only
/// matters for a scale-down window's end: within the jitter the replay allows.
async fn set_depth(sqs: &aws_sdk_sqs::Client, queue_url: &str, current: u64, depth: u64) {
    use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, SendMessageBatchRequestEntry};
    let mut surplus = current.saturating_sub(depth);
    while surplus > 0 {
        let received = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(i32::try_from(surplus.min(10)).unwrap())
            .visibility_timeout(600)
            .send()
            .await
            .unwrap();
        let entries: Vec<_> = received
            .messages()
            .iter()
            .enumerate()
            .map(|(i, message)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(format!("d{i}"))
                    .receipt_handle(message.receipt_handle().unwrap())
                    .build()
                    .unwrap()
            })
            .collect();
        surplus -= entries.len() as u64;
        sqs.delete_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .unwrap();
    }
    let batches = (current..depth).collect::<Vec<_>>();
    let sends = batches.chunks(10).map(|chunk| {
        let entries = chunk
            .iter()
            .map(|i| {
                SendMessageBatchRequestEntry::builder()
                    .id(format!("m{i}"))
                    .message_body(format!("{{\"n\": {i}}}"))
                    .build()
                    .unwrap()
            })
            .collect::<Vec<_>>();
        sqs.send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
    });
    for sent in futures_util::future::join_all(sends).await {
        assert!(sent.unwrap().failed().is_empty());
    }
}

/// The planner against the real controllers: one queue-depth trace played into KEDA 2.20.2 and
/// the HPA controller of Kubernetes 1.35.5, and into `kedaform::sim` with the settings decoded
/// from the same `Custom::KedaScaledObject` properties. The trace crosses the tolerance band's
/// edge (11 messages for one replica of queueLength 10: a ratio of exactly 1.1), a rate-limited
/// scale-up, a stabilized scale-down and KEDA's cooldown to zero.
///
/// Jitter allowed: the real HPA syncs every 15 s from when it was created and KEDA polls every
/// 5 s from when it read the ScaledObject, while the model syncs at multiples of 15 s and polls
/// at multiples of 5 s from the trace's start; so each change may come up to 15 + 5 s either
/// side of the predicted one. The sequence of replica counts must be the same.
#[tokio::test]
async fn the_real_keda_and_hpa_scale_as_the_planner_predicts() {
    let rig = rig().await;
    let install = rig.install_keda().await;
    let namespace = namespace("replay-");
    let (queue, queue_url) = rig.consumer_and_queue(&namespace, "replay-").await;
    let sqs = aws_sdk_sqs::Client::new(&rig.aws);
    let mut properties = scaled_object(&namespace, "consumer", &queue);
    properties["MaxReplicas"] = json!(10);
    properties["CooldownPeriod"] = json!(60);
    properties["Behavior"] = json!({"scaleDown": {"stabilizationWindowSeconds": 30}});
    let decoded: kedaform::resources::scaled_object::ScaledObjectProperties =
        kedaform::cfn::decode_properties(&properties, kedaform::cfn::UnknownKeys::Reject).unwrap();
    let settings = kedaform::sim::deploy::settings(&decoded).unwrap();

    set_depth(&sqs, &queue_url, 0, depth_at(0)).await;
    let creating = Instant::now();
    let ready = rig
        .send(
            "Custom::KedaScaledObject",
            "Create",
            "Replay",
            properties.clone(),
            None,
            180,
        )
        .await;
    assert_eq!(ready["Status"], "SUCCESS", "{ready}");
    // The trace's second 0 is when KEDA has read the ScaledObject (the Create waits for that):
    // its first poll, which finds the 11 messages, is the model's first too.
    eprintln!("ScaledObject ready in {:.1} s", creating.elapsed().as_secs_f64());
    let started = Instant::now();
    let mut observed = vec![(0, 0)];
    let mut depth = depth_at(0);
    let mut replicas = 0;
    while started.elapsed() < Duration::from_secs(TRACE_SECONDS) {
        let second = started.elapsed().as_secs();
        if depth_at(second) != depth {
            set_depth(&sqs, &queue_url, depth, depth_at(second)).await;
            depth = depth_at(second);
        }
        let now = u32::try_from(rig.replicas(&namespace, "consumer").await).unwrap();
        if now != replicas {
            observed.push((started.elapsed().as_secs(), now));
            replicas = now;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let expected = predicted(&settings, "1.35");
    eprintln!("real controllers: {observed:?}\nkedaform::sim:    {expected:?}");
    assert_eq!(
        sequence(&observed),
        sequence(&expected),
        "replica counts: real {observed:?}, predicted {expected:?}"
    );
    for ((real, count), (model, _)) in observed.iter().zip(&expected) {
        assert!(
            real.abs_diff(*model) <= 15 + 5,
            "{count} replicas at {real} s, predicted at {model} s: {observed:?} vs {expected:?}"
        );
    }
    // The trace tells the rules apart: under 1.32's tolerance rule the 11 messages would have
    // scaled the consumer to 2, which the real 1.35 controller did not do.
    assert_ne!(sequence(&predicted(&settings, "1.32")), sequence(&observed));

    rig.delete_scaled_object("Replay", properties).await;
    rig.remove_consumer_and_keda(&namespace, install).await;
}

/// The library's `keda_on_any_cluster` example (lib/examples), run as a user's own program
/// would be against the local cluster's kubeconfig: KEDA from a mirror of its release
/// manifest, then a ScaledObject that the real KEDA reports Ready.
#[tokio::test]
async fn the_keda_example_installs_keda_and_a_scaled_object_through_a_kubeconfig() {
    use kedaform::RequestBuilder;
    use kedaform::resources::{KEDA_INSTALL, SCALED_OBJECT};
    let rig = rig().await;
    let manifest_url = rig.mirror_keda().await;
    let namespace = namespace("example-");
    let (queue, _) = rig.consumer_and_queue(&namespace, "example-").await;
    // As the queue is named in AWS: the ScaledObject takes no emulator URL.
    let queue_url = format!("https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/{queue}");

    let output = std::process::Command::new(kedaform_tests::example("keda_on_any_cluster"))
        .args([
            kubeconfig_path().as_str(),
            OPERATOR_ROLE,
            &namespace,
            "consumer",
            &queue_url,
            CONSUMER_ROLE,
            &manifest_url,
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("KEDA ready: \"local/keda\""), "{stdout}");
    assert!(
        stdout.contains(&format!("ScaledObject ready: \"local/{namespace}/consumer\"")),
        "{stdout}"
    );
    assert_eq!(
        rig.hpa_max_replicas(&namespace).await,
        10,
        "KEDA created the HPA the example asked for"
    );

    // Removed as the example's own stack would remove them (same default stack and logical ids).
    let remove = |resource_type: &str, logical: &str, properties: Value| {
        RequestBuilder::create(resource_type, logical, &properties)
            .unwrap()
            .delete("example")
            .build()
    };
    let deadline = || tokio::time::Instant::now() + Duration::from_secs(300);
    let mut scaled = scaled_object(&namespace, "consumer", &queue);
    scaled["MaxReplicas"] = json!(10);
    let deleted = rig
        .runtime
        .respond(remove(SCALED_OBJECT, "ScaledObject", scaled), deadline())
        .await;
    assert!(kedaform::cfn::response::is_success(&deleted), "{deleted:?}");
    let deleted = rig
        .manifest_request("Delete", "Consumer", &namespace, &[CONSUMER], None)
        .await;
    assert_eq!(deleted["Status"], "SUCCESS", "{deleted}");
    let keda = json!({"ClusterName": CLUSTER, "ManifestUrl": manifest_url, "OperatorRoleArn": OPERATOR_ROLE});
    let uninstalled = rig
        .runtime
        .respond(remove(KEDA_INSTALL, "Keda", keda), deadline())
        .await;
    assert!(kedaform::cfn::response::is_success(&uninstalled), "{uninstalled:?}");
    let crds: Api<CustomResourceDefinition> = Api::all(rig.client.clone());
    assert!(crds.get_opt("scaledobjects.keda.sh").await.unwrap().is_none());
}

/// The `kedaform` binary of this build (`make test` builds the workspace first).
fn kedaform_cli() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let binary = exe.parent().and_then(Path::parent).unwrap().join("kedaform");
    assert!(
        binary.exists(),
        "{} is missing: cargo build -p kedaform-cli",
        binary.display()
    );
    binary
}

#[tokio::test]
async fn the_cli_reaches_any_cluster_through_a_kubeconfig_and_only_the_one_it_names() {
    let rig = rig().await;
    let namespace = namespace("cli-");
    let event = |kind: &str, cluster: &str| {
        let mut properties = manifest(&namespace, &[SETTINGS]);
        properties["ClusterName"] = json!(cluster);
        let mut request = cfn_request(
            kind,
            "http://127.0.0.1:9",
            properties,
            (kind == "Delete").then_some("id"),
            None,
        );
        request["ResourceType"] = json!("Custom::KubernetesManifest");
        let path = std::env::temp_dir().join(format!("{namespace}-{kind}-{cluster}.json"));
        std::fs::write(&path, request.to_string()).unwrap();
        path
    };
    let invoke = |path: &Path| {
        let output = std::process::Command::new(kedaform_cli())
            .args(["--kubeconfig", &kubeconfig_path(), "invoke", "--event"])
            .arg(path)
            .output()
            .unwrap();
        let response: Value = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)));
        (output.status.success(), response)
    };

    let (ok, response) = invoke(&event("Create", "production"));
    assert!(!ok);
    assert_eq!(
        response["Reason"],
        format!(
            "property ClusterName: production is not the cluster of kubeconfig {} (its current context names local)",
            kubeconfig_path()
        )
    );
    let namespaces: Api<Namespace> = Api::all(rig.client.clone());
    assert!(
        namespaces.get_opt(&namespace).await.unwrap().is_none(),
        "nothing was applied"
    );

    let (ok, response) = invoke(&event("Create", CLUSTER));
    assert!(ok, "{response}");
    assert_eq!(response["Data"]["ObjectCount"], "2");
    let settings = rig.namespaced::<ConfigMap>(&namespace).get("settings").await.unwrap();
    assert_eq!(settings.data.unwrap()["level"], "info");
    let (ok, response) = invoke(&event("Delete", CLUSTER));
    assert!(ok, "{response}");
    assert!(namespaces.get_opt(&namespace).await.unwrap().is_none());
}

/// What the CLI guide and `--help` promise an air-gapped team: `kedaform keda install --manifest
/// FILE` from a mirror on disk, its digest checked, onto the cluster named by a kubeconfig; then
/// `keda uninstall` with the same flags removes it.
#[tokio::test]
async fn the_cli_installs_keda_from_a_manifest_file_and_uninstalls_it() {
    let rig = rig().await;
    let kubeconfig = kubeconfig_path();
    let manifest = kedaform_tests::keda_release("keda-2.20.2.yaml");
    let kedaform = move |action: &str| {
        let output = std::process::Command::new(kedaform_tests::cli_binary())
            .args(["--kubeconfig", &kubeconfig, "keda", action, "--cluster", CLUSTER])
            .args(["--operator-role", OPERATOR_ROLE, "--manifest"])
            .arg(&manifest)
            .args([
                "--manifest-sha256",
                "9bae123eb64fab8f96c67bbd576bb5819e4794df346c5aaa402a01c68b0557ab",
            ])
            .output()
            .unwrap();
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "keda {action}: {printed}");
        printed
    };
    let (printed, kedaform) = tokio::task::spawn_blocking(move || (kedaform("install"), kedaform))
        .await
        .unwrap();
    assert!(printed.contains("done: local/keda"), "{printed}");
    let deployments: Api<Deployment> = Api::namespaced(rig.client.clone(), "keda");
    let operator = deployments.get("keda-operator").await.unwrap();
    assert_eq!(
        operator.status.and_then(|s| s.ready_replicas),
        Some(1),
        "install returned once the operator was ready"
    );
    let printed = tokio::task::spawn_blocking(move || kedaform("uninstall"))
        .await
        .unwrap();
    assert!(
        printed.contains("deleting 28 objects from cluster local\n"),
        "{printed}"
    );
    assert!(printed.contains("done: local/keda"), "{printed}");
    let crds: Api<CustomResourceDefinition> = Api::all(rig.client.clone());
    assert!(crds.get_opt("scaledobjects.keda.sh").await.unwrap().is_none());
}

/// The local cluster's Pod Identity associations (`scripts/cluster.sh`): AWS's pod identity
/// webhook reads them, as does the credentials endpoint that stands in for the agent.
fn associate(identities: &[(&str, &str, &str)]) {
    let run = std::env::var("KEDAFORM_CLUSTER_DIR").expect("KEDAFORM_CLUSTER_DIR (scripts/cluster.sh exec sets it)");
    let identities: Vec<Value> = identities
        .iter()
        .map(|(namespace, account, role)| json!({"namespace": namespace, "serviceAccount": account, "roleArn": role}))
        .collect();
    let path = format!("{run}/pod-identity/associations.json");
    let staged = format!("{path}.new");
    std::fs::write(&staged, json!({ "identities": identities }).to_string()).unwrap();
    std::fs::rename(&staged, &path).unwrap();
}

/// The stand-in agent's answer to `token`: its status line and body.
async fn pod_identity_credentials(token: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect("127.0.0.1:2703").await.unwrap();
    let request = format!("GET /v1/credentials HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: {token}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    (head.lines().next().unwrap_or_default().to_owned(), body.to_owned())
}

/// A token of `account` in `namespace` for `audience`, as the kubelet projects one.
async fn service_account_token(client: &kube::Client, namespace: &str, account: &str, audience: &str) -> String {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![audience.to_owned()],
            expiration_seconds: Some(600),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let issued = accounts
        .create_token_request(account, &kube::api::PostParams::default(), &request)
        .await
        .unwrap();
    issued.status.unwrap().token
}

/// EKS Pod Identity end to end on the real KEDA: no IRSA annotation, the operator's pod gets
/// the container-credentials settings from AWS's webhook, its AWS SDK fetches the operator
/// role's credentials from the Pod Identity endpoint, and KEDA assumes the consumer role
/// (`provider: aws`, `roleArn`) to read the queue and scale the consumer.
#[tokio::test]
async fn keda_scales_a_consumer_under_pod_identity_credentials() {
    let rig = rig().await;
    associate(&[("keda", "keda-operator", OPERATOR_ROLE)]);
    let install = json!({"ClusterName": CLUSTER, "ManifestUrl": rig.mirror_keda().await,
                         "OperatorRoleArn": OPERATOR_ROLE, "IdentityMode": "pod-identity"});
    let installed = rig
        .send("Custom::KedaInstall", "Create", "Keda", install.clone(), None, 600)
        .await;
    assert_eq!(installed["Status"], "SUCCESS", "{installed}");

    // The operator's pod: container credentials from the webhook, nothing of IRSA.
    let account = rig
        .namespaced::<ServiceAccount>("keda")
        .get("keda-operator")
        .await
        .unwrap();
    assert!(
        !account
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key("eks.amazonaws.com/role-arn"),
        "no IRSA annotation under Pod Identity"
    );
    let pods = rig
        .namespaced::<Pod>("keda")
        .list(&ListParams::default().labels("app=keda-operator"))
        .await
        .unwrap();
    let [pod] = &pods.items[..] else {
        panic!("one operator pod: {:?}", pods.items.len())
    };
    let env: Vec<(String, String)> = pod.spec.as_ref().unwrap().containers[0]
        .env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.name, e.value.unwrap_or_default()))
        .collect();
    let value = |name: &str| env.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    assert_eq!(
        value("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
        Some("http://127.0.0.1:2703/v1/credentials")
    );
    assert!(value("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE").is_some(), "{env:?}");
    assert_eq!(value("AWS_ROLE_ARN"), None, "{env:?}");

    // The endpoint answers a token only for an associated service account and its audience.
    let client = &rig.client;
    let stranger = service_account_token(client, "default", "default", "pods.eks.amazonaws.com").await;
    let (status, body) = pod_identity_credentials(&stranger).await;
    assert!(status.contains(" 403 "), "{status} {body}");
    let wrong_audience = service_account_token(client, "keda", "keda-operator", "sts.amazonaws.com").await;
    let (status, body) = pod_identity_credentials(&wrong_audience).await;
    assert!(status.contains(" 400 "), "{status} {body}");
    assert!(!body.contains("AccessKeyId"), "{body}");

    // KEDA reads the queue through the consumer role and scales the consumer.
    let namespace = namespace("pod-identity-");
    let (queue, queue_url) = rig.consumer_and_queue(&namespace, "orders-").await;
    let mut properties = scaled_object(&namespace, "consumer", &queue);
    properties["IdentityMode"] = json!("pod-identity");
    let ready = rig.create_scaled_object(&properties).await;
    assert_eq!(ready["Status"], "SUCCESS", "{ready}");
    rig.queue_messages(&queue_url, 25).await;
    rig.consumer_scales_to(&namespace, 3, "scale-up to 3 replicas under Pod Identity")
        .await;
    let run = std::env::var("KEDAFORM_CLUSTER_DIR").unwrap();
    let served = std::fs::read_to_string(format!("{run}/pod-identity.log")).unwrap();
    assert!(
        served.contains(&format!("credentials of {OPERATOR_ROLE} for keda/keda-operator")),
        "the operator's credentials came from the Pod Identity endpoint:\n{served}"
    );

    rig.delete_scaled_object("ScaledObject", properties).await;
    rig.remove_consumer_and_keda(&namespace, install).await;
    associate(&[]);
}

/// The `operator.keda.sh` Lease's holder and when it was last renewed.
async fn leader(client: &kube::Client) -> Option<(String, String)> {
    use k8s_openapi::api::coordination::v1::Lease;
    let lease = Api::<Lease>::namespaced(client.clone(), "keda")
        .get_opt("operator.keda.sh")
        .await
        .unwrap()?;
    let spec = lease.spec?;
    Some((spec.holder_identity?, format!("{:?}", spec.renew_time?)))
}

/// Two operator replicas elect one leader; when the leader's pod goes, the other takes over
/// and the ScaledObject keeps scaling. Pods are removed one at a time until the Lease changes
/// hands (the local pod runner gives both replicas one host name, so the Lease's holder does
/// not say which pod leads).
#[tokio::test]
async fn a_second_operator_replica_takes_over_when_the_leader_goes() {
    let rig = rig().await;
    let install = json!({"ClusterName": CLUSTER, "ManifestUrl": rig.mirror_keda().await,
                         "OperatorRoleArn": OPERATOR_ROLE, "OperatorReplicas": 2, "PodDisruptionBudgets": true});
    let installed = rig
        .send("Custom::KedaInstall", "Create", "Keda", install.clone(), None, 600)
        .await;
    assert_eq!(installed["Status"], "SUCCESS", "{installed}");
    let operator = rig.namespaced::<Deployment>("keda").get("keda-operator").await.unwrap();
    assert_eq!(operator.status.unwrap().available_replicas, Some(2));

    let namespace = namespace("ha-");
    let (queue, queue_url) = rig.consumer_and_queue(&namespace, "orders-").await;
    let properties = scaled_object(&namespace, "consumer", &queue);
    let ready = rig.create_scaled_object(&properties).await;
    assert_eq!(ready["Status"], "SUCCESS", "{ready}");
    let first = rig
        .eventually("a leader", 60, || async { leader(&rig.client).await })
        .await;

    let pods = rig.namespaced::<Pod>("keda");
    let mut takeover = None;
    for _ in 0..2 {
        let listed = pods
            .list(&ListParams::default().labels("app=keda-operator"))
            .await
            .unwrap();
        let oldest = listed
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .min_by_key(|p| p.metadata.creation_timestamp.clone().map(|t| t.0))
            .and_then(|p| p.metadata.name.clone())
            .unwrap();
        let removed = Instant::now();
        pods.delete(&oldest, &DeleteParams::default()).await.unwrap();
        // KEDA's lease lasts 15 s: past 45 s unchanged, the pod removed was not the leader.
        while removed.elapsed() < Duration::from_secs(45) {
            if let Some(new) = leader(&rig.client).await.filter(|(holder, _)| *holder != first.0) {
                takeover = Some((new, removed.elapsed()));
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        if takeover.is_some() {
            break;
        }
    }
    let ((holder, _), after) = takeover.expect("the Lease changed hands once the leader's pod was removed");
    eprintln!(
        "leader {} -> {holder} within {:.0} s of its pod's removal",
        first.0,
        after.as_secs_f64()
    );

    // The new leader scales: 25 messages at 10 per replica take the consumer to 3.
    rig.queue_messages(&queue_url, 25).await;
    rig.consumer_scales_to(&namespace, 3, "scale-up to 3 replicas under the new leader")
        .await;

    rig.delete_scaled_object("ScaledObject", properties).await;
    rig.remove_consumer_and_keda(&namespace, install).await;
}

/// Another adapter's `v1beta1.external.metrics.k8s.io` on the real API server: the install
/// fails naming the APIService and the Service behind it, its rollback takes back what it
/// applied, and the other adapter's APIService is left exactly as it was.
#[tokio::test]
async fn keda_leaves_another_adapters_metrics_apiservice_alone() {
    let rig = rig().await;
    let services: Api<APIService> = Api::all(rig.client.clone());
    let theirs: APIService = serde_json::from_value(json!({
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": "v1beta1.external.metrics.k8s.io"},
        "spec": {"service": {"namespace": "monitoring", "name": "prometheus-adapter", "port": 443},
                 "group": "external.metrics.k8s.io", "version": "v1beta1", "insecureSkipTLSVerify": true,
                 "groupPriorityMinimum": 100, "versionPriority": 100}}))
    .unwrap();
    services
        .create(&kube::api::PostParams::default(), &theirs)
        .await
        .unwrap();
    let before = services.get("v1beta1.external.metrics.k8s.io").await.unwrap();

    let install =
        json!({"ClusterName": CLUSTER, "ManifestUrl": rig.mirror_keda().await, "OperatorRoleArn": OPERATOR_ROLE});
    let refused = rig
        .send("Custom::KedaInstall", "Create", "Keda", install.clone(), None, 600)
        .await;
    assert_eq!(refused["Status"], "FAILED", "{refused}");
    let reason = refused["Reason"].as_str().unwrap();
    assert!(
        reason.contains(
            "v1beta1.external.metrics.k8s.io (served by Service monitoring/prometheus-adapter) already exists"
        ),
        "{reason}"
    );
    let after = services.get("v1beta1.external.metrics.k8s.io").await.unwrap();
    assert_eq!(after.spec, before.spec, "untouched");
    assert_eq!(
        (after.metadata.labels, after.metadata.annotations),
        (before.metadata.labels, before.metadata.annotations),
        "no owner label, no adoption"
    );
    // This APIService has no Service behind it, so the namespace controller's discovery fails
    // and no namespace can finish deleting while it exists (a real adapter's answers): it goes
    // first, then the rollback's Delete takes back what the Create applied.
    services
        .delete("v1beta1.external.metrics.k8s.io", &DeleteParams::default())
        .await
        .unwrap();
    let rolled_back = rig
        .send("Custom::KedaInstall", "Delete", "Keda", install, None, 600)
        .await;
    assert_eq!(rolled_back["Status"], "SUCCESS", "{rolled_back}");
    let namespaces: Api<Namespace> = Api::all(rig.client.clone());
    assert!(
        namespaces.get_opt("keda").await.unwrap().is_none(),
        "KEDA's namespace is gone"
    );
}

/// The links `kedaform doctor` finds wrong, by name.
fn wrong_links(report: &kedaform::doctor::Report) -> Vec<&'static str> {
    report
        .findings()
        .filter(|f| f.status == kedaform::doctor::Status::Wrong)
        .map(|f| f.link.name())
        .collect()
}

/// Examines `target` until `link` is among the wrong links (or, with None, every link is ok):
/// the report.
async fn until(
    rig: &Rig,
    doctor: &kedaform::doctor::Doctor,
    target: &kedaform::doctor::Target,
    link: Option<&'static str>,
) -> kedaform::doctor::Report {
    let what = format!("the doctor finding {link:?} wrong (None: every link ok)");
    rig.eventually(&what, 120, || async {
        let report = doctor.examine(&rig.client, CLUSTER, target).await.unwrap();
        let done = match link {
            Some(link) => wrong_links(&report).contains(&link),
            None => report.healthy(),
        };
        done.then_some(report)
    })
    .await
}

/// Sets `deployment`'s replicas in namespace keda.
async fn scale_keda(rig: &Rig, deployment: &str, replicas: i32) {
    rig.namespaced::<Deployment>("keda")
        .patch(
            deployment,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": replicas}})),
        )
        .await
        .unwrap();
}

/// Each fault the issue names, seeded one at a time on the real cluster: the doctor names its
/// link and no other, and a healthy chain is ok in every link (exit code 0 from the CLI).
#[tokio::test]
#[allow(clippy::too_many_lines)] // one cluster, one ScaledObject, six faults in turn
async fn the_doctor_names_the_one_broken_link_of_each_seeded_fault() {
    use kedaform::doctor::{Doctor, Target};
    use kedaform::iam::policy::{self, KedaTrust};

    let rig = rig().await;
    let iam = aws_sdk_iam::Client::new(&rig.aws);
    // The operator's role and a consumer role as scale-eks-with-keda made it, then trust-fixed.
    let _ = iam
        .create_role()
        .role_name("keda-operator")
        .assume_role_policy_document(kedaform_tests::iam::account_wide_trust().to_string())
        .send()
        .await;
    let consumer = kedaform_tests::iam::account_wide_role(&iam, "doctor-consumer-").await;
    let consumer_arn = format!("arn:aws:iam::{ACCOUNT}:role/{consumer}");
    let trust = kedaform::TrustPolicies::new(iam.clone());
    let fix_trust = || async {
        let role = trust.read(&consumer).await.unwrap().unwrap();
        let keda = KedaTrust {
            keda_role_arn: OPERATOR_ROLE.into(),
            external_id: None,
            exclusive: true,
            keda_account_id: None,
        };
        let plan = policy::apply(&role.trust_policy, &keda).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        assert!(trust.write(&consumer, &plan.document, deadline).await.unwrap());
    };
    fix_trust().await;

    let install = rig.install_keda().await;
    let namespace = namespace("doctor-");
    let (queue, _) = rig.consumer_and_queue(&namespace, "doctor-").await;
    let mut properties = scaled_object(&namespace, "consumer", &queue);
    properties["RoleArn"] = json!(consumer_arn);
    properties["MinReplicas"] = json!(1);
    let ready = rig.create_scaled_object(&properties).await;
    assert_eq!(ready["Status"], "SUCCESS", "{ready}");

    let doctor = Doctor::new(&rig.aws);
    let target = Target {
        namespace: Some(namespace.clone()),
        name: Some("consumer".into()),
    };
    // Healthy: every link ok, through the CLI too (JSON, exit code 0).
    let report = until(&rig, &doctor, &target, None).await;
    assert_eq!(report.findings().count(), 11, "{report:#?}");
    let cli = |output: &str| {
        std::process::Command::new(kedaform_cli())
            .args([
                "--kubeconfig",
                &kubeconfig_path(),
                "--output",
                output,
                "doctor",
                "--cluster",
                CLUSTER,
            ])
            .args(["--namespace", &namespace, "consumer"])
            .output()
            .unwrap()
    };
    let output = cli("json");
    let json: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)));
    assert!(output.status.success(), "{json:#}");
    assert_eq!(json["healthy"], true);
    assert_eq!(json["scaledObjects"][0]["findings"][7]["link"], "replicas");

    // 1. The trust fix not applied: the consumer role trusts the whole account.
    iam.update_assume_role_policy()
        .role_name(&consumer)
        .policy_document(kedaform_tests::iam::account_wide_trust().to_string())
        .send()
        .await
        .unwrap();
    let report = until(&rig, &doctor, &target, Some("trust")).await;
    assert_eq!(wrong_links(&report), ["trust"], "{report:#?}");
    let output = cli("text");
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("WRONG    trust") && text.contains(&format!("trusts arn:aws:iam::{ACCOUNT}:root")),
        "{text}"
    );
    assert!(text.contains("fix: run the trust fix"), "{text}");
    fix_trust().await;
    until(&rig, &doctor, &target, None).await;

    // 2. The consumer role missing.
    iam.delete_role().role_name(&consumer).send().await.unwrap();
    let report = until(&rig, &doctor, &target, Some("consumer-role")).await;
    assert_eq!(wrong_links(&report), ["consumer-role"], "{report:#?}");
    iam.create_role()
        .role_name(&consumer)
        .assume_role_policy_document(kedaform_tests::iam::account_wide_trust().to_string())
        .send()
        .await
        .unwrap();
    fix_trust().await;
    until(&rig, &doctor, &target, None).await;

    // 3. The TriggerAuthentication missing.
    let authentication = ApiResource::from_gvk(&GroupVersionKind::gvk("keda.sh", "v1alpha1", "TriggerAuthentication"));
    let authentications: Api<DynamicObject> = Api::namespaced_with(rig.client.clone(), &namespace, &authentication);
    authentications
        .delete("consumer-aws", &DeleteParams::default())
        .await
        .unwrap();
    let report = until(&rig, &doctor, &target, Some("trigger-authentication")).await;
    assert_eq!(wrong_links(&report), ["trigger-authentication"], "{report:#?}");

    let restored = rig.create_scaled_object(&properties).await;
    assert_eq!(restored["Status"], "SUCCESS", "{restored}");
    until(&rig, &doctor, &target, None).await;

    // 4. A wrong queue URL, written by hand over the ScaledObject.
    let scaled_objects = ApiResource::from_gvk(&GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject"));
    let scaled_objects: Api<DynamicObject> = Api::namespaced_with(rig.client.clone(), &namespace, &scaled_objects);
    let mut object = scaled_objects.get("consumer").await.unwrap();
    object.data["spec"]["triggers"][0]["metadata"]["queueURL"] =
        json!(format!("https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/{queue}-gone"));
    scaled_objects
        .replace("consumer", &kube::api::PostParams::default(), &object)
        .await
        .unwrap();
    let report = until(&rig, &doctor, &target, Some("queue")).await;
    assert_eq!(wrong_links(&report), ["queue"], "{report:#?}");
    let queue_finding = report.findings().find(|f| f.link.name() == "queue").unwrap();
    assert!(
        queue_finding.detail.ends_with("-gone does not exist"),
        "{queue_finding:?}"
    );
    // Restored once KEDA has reported the fault, as an Update would come: the Update is not
    // failed by what KEDA said about the spec it corrects.
    rig.eventually("KEDA reporting the missing queue", 60, || async {
        let report = doctor.examine(&rig.client, CLUSTER, &target).await.unwrap();
        let scaler = report.findings().find(|f| f.link.name() == "scaler").unwrap().clone();
        scaler
            .detail
            .starts_with("follows from queue: KEDA cannot read the trigger")
            .then_some(())
    })
    .await;
    let restored = rig.create_scaled_object(&properties).await;
    assert_eq!(restored["Status"], "SUCCESS", "{restored}");

    // 5. KEDA's operator scaled to 0.
    scale_keda(&rig, "keda-operator", 0).await;
    let report = until(&rig, &doctor, &target, Some("keda")).await;
    assert_eq!(wrong_links(&report), ["keda"], "{report:#?}");
    assert!(
        report.cluster[0].detail.contains("keda-operator is scaled to 0"),
        "{report:#?}"
    );
    scale_keda(&rig, "keda-operator", 1).await;

    // 6. The metrics APIService unavailable: its metrics server gone.
    scale_keda(&rig, "keda-metrics-apiserver", 0).await;
    let report = until(&rig, &doctor, &target, Some("metrics-api")).await;
    assert_eq!(wrong_links(&report), ["metrics-api"], "{report:#?}");
    assert!(report.cluster[1].detail.contains("is not Available"), "{report:#?}");
    scale_keda(&rig, "keda-metrics-apiserver", 1).await;
    let apiservices: Api<APIService> = Api::all(rig.client.clone());
    rig.eventually("the metrics APIService available again", 120, || async {
        let apiservice = apiservices.get("v1beta1.external.metrics.k8s.io").await.ok()?;
        let available = apiservice
            .status?
            .conditions?
            .into_iter()
            .any(|c| c.type_ == "Available" && c.status == "True");
        available.then_some(())
    })
    .await;

    rig.delete_scaled_object("ScaledObject", properties).await;
    rig.remove_consumer_and_keda(&namespace, install).await;
    iam.delete_role().role_name(&consumer).send().await.unwrap();
}

/// KEDA's previous release manifest, rendered from its Go module by `scripts/cluster-build.sh`
/// (the recipe reproduces KEDA 2.20.2's published manifest byte for byte), and the images the
/// local cluster runs its binaries for.
fn previous_release() -> Vec<u8> {
    let path = std::env::var("KEDAFORM_KEDA_PREVIOUS").unwrap_or_default();
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "KEDAFORM_KEDA_PREVIOUS={path:?}: {e}. `scripts/cluster-build.sh keda-previous` renders it; \
             `scripts/cluster.sh up` exports it"
        )
    })
}

/// The image and `app.kubernetes.io/version` of a Deployment in namespace keda.
async fn release_of(rig: &Rig, deployment: &str) -> (String, String) {
    let deployment = rig.namespaced::<Deployment>("keda").get(deployment).await.unwrap();
    let version = deployment.metadata.labels.unwrap_or_default()["app.kubernetes.io/version"].clone();
    let image = deployment.spec.unwrap().template.spec.unwrap().containers[0]
        .image
        .clone()
        .unwrap_or_default();
    (image, version)
}

/// Waits until every operator pod's process (run by the pod runner from the binary built for
/// its image) has logged that it is KEDA `version`.
async fn operator_runs(rig: &Rig, version: &str) {
    let run = std::env::var("KEDAFORM_CLUSTER_DIR").unwrap();
    let said = format!("KEDA Version: {version}");
    rig.eventually(&format!("the operator's process saying {said}"), 120, || async {
        let pods = rig
            .namespaced::<Pod>("keda")
            .list(&ListParams::default().labels("app=keda-operator"))
            .await
            .ok()?;
        let all = !pods.items.is_empty()
            && pods.items.iter().all(|pod| {
                let name = pod.metadata.name.clone().unwrap_or_default();
                std::fs::read_to_string(format!("{run}/pods/keda_{name}/log")).is_ok_and(|log| log.contains(&said))
            });
        all.then_some(())
    })
    .await;
}

/// Asserts that the operator's Deployment is of KEDA `version` and waits until its process
/// says so.
async fn runs_release(rig: &Rig, version: &str) {
    assert_eq!(
        release_of(rig, "keda-operator").await,
        (format!("ghcr.io/kedacore/keda:{version}"), version.to_owned())
    );
    operator_runs(rig, version).await;
}

/// The audit log's requests from kedaform, from line `from` on: (verb, resource, name).
fn kedaform_requests(from: usize) -> Vec<(String, String, String)> {
    let run = std::env::var("KEDAFORM_CLUSTER_DIR").unwrap();
    let log = std::fs::read_to_string(format!("{run}/audit.log")).unwrap();
    log.lines()
        .skip(from)
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|entry| entry["userAgent"].as_str().unwrap_or_default().starts_with("kedaform/"))
        .map(|entry| {
            let text = |key: &str| entry["objectRef"][key].as_str().unwrap_or_default().to_owned();
            (
                entry["verb"].as_str().unwrap_or_default().to_owned(),
                text("resource"),
                text("name"),
            )
        })
        .collect()
}

fn audit_lines() -> usize {
    let run = std::env::var("KEDAFORM_CLUSTER_DIR").unwrap();
    std::fs::read_to_string(format!("{run}/audit.log"))
        .unwrap()
        .lines()
        .count()
}

/// KEDA 2.19.0 upgraded in place to 2.20.2 through a `Custom::KedaInstall` Update while a
/// ScaledObject scales on a queue whose depth changes during the upgrade; then CloudFormation's
/// rollback (an Update back to 2.19.0) restores the old release, and a downgrade further back
/// is refused unless allowed.
#[tokio::test]
#[allow(clippy::too_many_lines)] // one sequence: install, scale, upgrade, roll back
async fn keda_upgrades_in_place_while_a_scaled_object_scales_and_rolls_back() {
    let rig = rig().await;
    let s3 = kedaform_common::aws::s3(&rig.aws);
    let bucket = unique("keda-releases-");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    for (key, body) in [
        ("keda-2.19.0.yaml", previous_release()),
        ("keda-2.20.2.yaml", fixture()),
    ] {
        s3.put_object()
            .bucket(&bucket)
            .key(key)
            .body(body.into())
            .send()
            .await
            .unwrap();
    }
    let release = |version: &str| {
        json!({"ClusterName": CLUSTER, "Version": version, "OperatorRoleArn": OPERATOR_ROLE,
               "ManifestUrl": format!("s3://{bucket}/keda-{version}.yaml")})
    };
    let (old, new) = (release("2.19.0"), release("2.20.2"));
    let installed = rig
        .send("Custom::KedaInstall", "Create", "Keda", old.clone(), None, 600)
        .await;
    assert_eq!(installed["Status"], "SUCCESS", "{installed}");
    runs_release(&rig, "2.19.0").await;

    // A ScaledObject that KEDA 2.19.0 scales.
    let namespace = namespace("upgrade-");
    let (queue, queue_url) = rig.consumer_and_queue(&namespace, "upgrade-").await;
    let properties = scaled_object(&namespace, "consumer", &queue);
    let ready = rig.create_scaled_object(&properties).await;
    assert_eq!(ready["Status"], "SUCCESS", "{ready}");
    rig.queue_messages(&queue_url, 25).await;
    rig.consumer_scales_to(&namespace, 3, "KEDA 2.19.0 scaling the consumer to 3")
        .await;
    let scaled_objects = ApiResource::from_gvk(&GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject"));
    let scaled_objects: Api<DynamicObject> = Api::namespaced_with(rig.client.clone(), &namespace, &scaled_objects);
    let identity = |meta: &kube::api::ObjectMeta| (meta.uid.clone(), meta.generation);
    let object_before = identity(&scaled_objects.get("consumer").await.unwrap().metadata);
    let hpas = rig.namespaced::<HorizontalPodAutoscaler>(&namespace);
    let hpa_before = hpas.get("keda-hpa-consumer").await.unwrap().metadata.uid;

    // The upgrade, with the queue growing while it runs.
    let from = audit_lines();
    let started = Instant::now();
    let (upgraded, ()) = tokio::join!(
        rig.send(
            "Custom::KedaInstall",
            "Update",
            "Keda",
            new.clone(),
            Some(old.clone()),
            600
        ),
        async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            rig.queue_messages(&queue_url, 20).await;
        }
    );
    assert_eq!(upgraded["Status"], "SUCCESS", "{upgraded}");
    eprintln!("upgraded 2.19.0 -> 2.20.2 in {:.1} s", started.elapsed().as_secs_f64());
    for deployment in ["keda-operator", "keda-metrics-apiserver", "keda-admission"] {
        let (image, version) = release_of(&rig, deployment).await;
        assert!(
            image.ends_with(":2.20.2") && version == "2.20.2",
            "{deployment}: {image} {version}"
        );
    }
    operator_runs(&rig, "2.20.2").await;
    // CRDs first, every one of them Established (the API server's answer to their apply, or
    // read back until it says so) before the operator's Deployment was applied.
    let requests = kedaform_requests(from);
    let last_crd_patch = requests
        .iter()
        .rposition(|(verb, resource, _)| verb == "patch" && resource == "customresourcedefinitions")
        .expect("the CRDs applied");
    let operator_patch = requests
        .iter()
        .position(|(v, r, n)| v == "patch" && r == "deployments" && n == "keda-operator")
        .expect("the operator applied");
    assert!(last_crd_patch < operator_patch, "{requests:?}");
    let crds: Api<CustomResourceDefinition> = Api::all(rig.client.clone());
    for crd in crds.list(&ListParams::default()).await.unwrap().items {
        let name = crd.metadata.name.clone().unwrap_or_default();
        if name.ends_with("keda.sh") {
            let labels = crd.metadata.labels.unwrap_or_default();
            assert_eq!(labels["app.kubernetes.io/version"], "2.20.2", "{name}");
            let conditions = crd.status.unwrap().conditions.unwrap_or_default();
            assert!(
                conditions
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True"),
                "{name}"
            );
        }
    }
    eprintln!("the upgrade took {} requests", requests.len());
    // The ScaledObject and its HPA untouched, still scaling: 45 messages at 10 → 5.
    assert_eq!(
        identity(&scaled_objects.get("consumer").await.unwrap().metadata),
        object_before
    );
    assert_eq!(hpas.get("keda-hpa-consumer").await.unwrap().metadata.uid, hpa_before);
    rig.consumer_scales_to(&namespace, 5, "KEDA 2.20.2 scaling the consumer to 5")
        .await;
    let apiservices: Api<APIService> = Api::all(rig.client.clone());
    let available = apiservices
        .get("v1beta1.external.metrics.k8s.io")
        .await
        .unwrap()
        .status
        .unwrap();
    assert!(
        available
            .conditions
            .unwrap()
            .iter()
            .any(|c| c.type_ == "Available" && c.status == "True"),
        "the metrics API served after the upgrade"
    );

    // Further back than the release it came from: refused, nothing changed.
    let older = json!({"ClusterName": CLUSTER, "Version": "2.18.0", "OperatorRoleArn": OPERATOR_ROLE,
                       "ManifestUrl": format!("s3://{bucket}/keda-2.19.0.yaml")});
    let refused = rig
        .send("Custom::KedaInstall", "Update", "Keda", older, Some(new.clone()), 120)
        .await;
    assert_eq!(refused["Status"], "FAILED");
    assert!(
        refused["Reason"]
            .as_str()
            .unwrap()
            .starts_with("property Version: 2.18.0 is older than KEDA 2.20.2"),
        "{refused}"
    );
    assert_eq!(release_of(&rig, "keda-operator").await.1, "2.20.2");

    // CloudFormation's rollback: the Update back to the old properties restores 2.19.0.
    let rolled_back = rig
        .send(
            "Custom::KedaInstall",
            "Update",
            "Keda",
            old.clone(),
            Some(new.clone()),
            600,
        )
        .await;
    assert_eq!(rolled_back["Status"], "SUCCESS", "{rolled_back}");
    runs_release(&rig, "2.19.0").await;
    assert_eq!(
        identity(&scaled_objects.get("consumer").await.unwrap().metadata),
        object_before
    );
    assert_eq!(hpas.get("keda-hpa-consumer").await.unwrap().metadata.uid, hpa_before);
    rig.queue_messages(&queue_url, 10).await;
    rig.eventually(
        "KEDA 2.19.0 again, scaling on: 55 messages at 10 → 5 (the maximum)",
        120,
        || async {
            let ready = scaled_objects.get("consumer").await.ok()?;
            let ready = ready.data["status"]["conditions"]
                .as_array()?
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            (ready && rig.replicas(&namespace, "consumer").await == 5).then_some(())
        },
    )
    .await;

    rig.delete_scaled_object("ScaledObject", properties).await;
    rig.remove_consumer_and_keda(&namespace, old).await;
}
