//! The apply engine against a fake API server at the HTTP boundary: KEDA's real release
//! manifest applied in order with server-side apply, readiness, timeouts with events, and
//! ordered, owner-scoped deletion.

use std::time::Duration;

use kedaform::eks::{Bearer, Cluster, kube_client};
use kedaform::kube::apply::Applier;
use kedaform::kube::plan::{Adoption, apply_order, owner, parse_manifest};
use kedaform_tests::Recorded;
use kedaform_tests::apiserver::{Behaviour, FakeApiServer};
use serde_json::Value;
use tokio::time::Instant;

const TOKEN: &str = "k8s-aws-v1.dGVzdA";

fn fixture(name: &str) -> String {
    kedaform_tests::keda_release_text(name)
}

async fn applier(fake: &FakeApiServer) -> Applier {
    let cluster = Cluster {
        name: "test".into(),
        arn: "arn:aws:eks:us-east-1:123456789012:cluster/test".into(),
        endpoint: fake.server.url.clone(),
        certificate_authority: String::new(),
        oidc_issuer: None,
        version: "1.33".into(),
    };
    Applier::new(
        kube_client(&cluster, &Bearer::token(TOKEN).unwrap())
            .await
            .expect("a client for the fake"),
    )
}

fn soon(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

fn patches(requests: &[Recorded]) -> Vec<&Recorded> {
    requests.iter().filter(|r| r.method == "PATCH").collect()
}

fn is_discovery(request: &Recorded) -> bool {
    let path = request.path_and_query.split('?').next().unwrap_or_default();
    request.method == "GET" && (path == "/api/v1" || (path.starts_with("/apis/") && path.matches('/').count() == 3))
}

#[tokio::test]
async fn the_keda_manifest_is_applied_in_order_by_server_side_apply_then_deleted_in_reverse() {
    let fake = FakeApiServer::start(Behaviour::default()).await;
    let applier = applier(&fake).await;
    let objects = parse_manifest(&fixture("keda-2.20.2.yaml")).unwrap();
    let owner = owner("arn:aws:cloudformation:us-east-1:123456789012:stack/s/1", "KedaInstall");
    let applied = applier
        .apply_all(objects.clone(), &owner, Adoption::Refuse, soon(30))
        .await
        .unwrap();
    applier.wait_ready(&applied, soon(30)).await.unwrap();

    let requests = fake.requests();
    let sent = patches(&requests);
    assert_eq!(sent.len(), 24, "one server-side apply per object");
    let expected_order: Vec<String> = apply_order(objects.clone())
        .iter()
        .map(|o| o.metadata.name.clone().unwrap())
        .collect();
    let sent_order: Vec<String> = sent
        .iter()
        .map(|r| r.json()["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sent_order, expected_order);
    for request in &sent {
        let query = request
            .path_and_query
            .split_once('?')
            .map(|(_, q)| q)
            .unwrap_or_default();
        assert!(
            query.contains("fieldManager=kedaform") && query.contains("force=true"),
            "{}",
            request.path_and_query
        );
        assert_eq!(request.header("content-type"), Some("application/apply-patch+yaml"));
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        assert_eq!(
            request.header("user-agent"),
            Some("kedaform/0.1.0"),
            "named in audit logs"
        );
        let labels = &request.json()["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/managed-by"], "kedaform");
        assert_eq!(labels["kedaform.io/owner"], owner.as_str());
    }
    assert_eq!(
        sent[0].path_and_query.split('?').next(),
        Some("/api/v1/namespaces/keda")
    );
    assert!(sent.iter().any(|r| {
        r.path_and_query
            .starts_with("/apis/apps/v1/namespaces/keda/deployments/keda-operator?")
    }));
    assert_eq!(
        requests.iter().filter(|r| is_discovery(r)).count(),
        6,
        "discovery once per group version"
    );
    assert_eq!(fake.objects().len(), 24);

    applier.delete_all(objects.clone(), &owner, soon(30)).await.unwrap();
    let requests = fake.requests();
    let deleted: Vec<String> = requests
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| {
            r.path_and_query
                .split('?')
                .next()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    let mut reversed = expected_order.clone();
    reversed.reverse();
    assert_eq!(deleted, reversed);
    assert!(fake.objects().is_empty());

    applier
        .delete_all(objects, &owner, soon(30))
        .await
        .expect("already gone is success");
}

#[tokio::test]
async fn a_custom_resource_is_discovered_once_its_crd_is_applied() {
    let fake = FakeApiServer::start(Behaviour::default()).await;
    let applier = applier(&fake).await;
    let manifest = format!(
        "{}\n---\napiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {{name: consumer, namespace: sales}}\nspec: {{scaleTargetRef: {{name: consumer}}}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: sales}}\n",
        fixture("keda.sh_scaledobjects.yaml")
    );
    let objects = parse_manifest(&manifest).unwrap();
    let applied = applier
        .apply_all(objects, "o", Adoption::Refuse, soon(30))
        .await
        .unwrap();
    applier.wait_ready(&applied, soon(30)).await.unwrap();
    let requests = fake.requests();
    let crd = requests
        .iter()
        .position(|r| r.method == "PATCH" && r.path_and_query.contains("customresourcedefinitions"))
        .unwrap();
    let keda_discovery = requests
        .iter()
        .position(|r| r.path_and_query == "/apis/keda.sh/v1alpha1")
        .unwrap();
    assert!(crd < keda_discovery, "the CRD is applied before its kind is looked up");
    assert!(
        fake.objects()
            .contains_key("/apis/keda.sh/v1alpha1/namespaces/sales/scaledobjects/consumer")
    );
}

#[tokio::test]
async fn a_deployment_that_never_becomes_available_times_out_naming_it_and_its_events() {
    let fake = FakeApiServer::start(Behaviour {
        never_ready: Some("Deployment"),
        ..Behaviour::default()
    })
    .await;
    let applier = applier(&fake).await;
    let objects = parse_manifest("apiVersion: v1\nkind: Namespace\nmetadata: {name: keda}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: keda-operator, namespace: keda}\nspec: {replicas: 1}",
    )
    .unwrap();
    let applied = applier
        .apply_all(objects, "o", Adoption::Refuse, soon(30))
        .await
        .unwrap();
    let started = Instant::now();
    let error = applier.wait_ready(&applied, soon(3)).await.unwrap_err().to_string();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(
        error,
        "Deployment.apps keda/keda-operator is not ready: 0 of 1 replicas updated, 0 available; \
         events: FailedCreate: pods \"keda-operator-1\" is forbidden: exceeded quota"
    );
}

#[tokio::test]
async fn a_failing_scaled_object_reports_kedas_reason_at_once() {
    let failure = (
        "ScaledObjectCheckFailed",
        "ScaledObject doesn't have correct triggers specification",
    );
    let fake = FakeApiServer::start(Behaviour {
        scaled_object_failure: Some(failure),
        ..Behaviour::default()
    })
    .await;
    let applier = applier(&fake).await;
    let manifest = format!(
        "{}\n---\napiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {{name: consumer, namespace: sales}}\n",
        fixture("keda.sh_scaledobjects.yaml")
    );
    let applied = applier
        .apply_all(parse_manifest(&manifest).unwrap(), "o", Adoption::Refuse, soon(30))
        .await
        .unwrap();
    let started = Instant::now();
    let error = applier.wait_ready(&applied, soon(30)).await.unwrap_err().to_string();
    assert!(started.elapsed() < Duration::from_secs(5), "no waiting for a verdict");
    assert_eq!(
        error,
        "ScaledObject.keda.sh sales/consumer is not ready: ScaledObjectCheckFailed: ScaledObject doesn't have correct triggers specification"
    );
}

#[tokio::test]
async fn delete_leaves_objects_of_other_owners_alone() {
    let fake = FakeApiServer::start(Behaviour::default()).await;
    let applier = applier(&fake).await;
    let objects = parse_manifest("apiVersion: v1\nkind: Namespace\nmetadata: {name: shared}").unwrap();
    applier
        .apply_all(objects.clone(), "stack-a", Adoption::Refuse, soon(30))
        .await
        .unwrap();
    applier.delete_all(objects.clone(), "stack-b", soon(30)).await.unwrap();
    let stored: Vec<Value> = fake.objects().into_values().collect();
    assert_eq!(stored.len(), 1, "another owner's Delete must not remove it");
    applier.delete_all(objects, "stack-a", soon(30)).await.unwrap();
    assert!(fake.objects().is_empty());
}
