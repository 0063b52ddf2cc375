//! The apply engine against a real cluster: run with `KUBECONFIG` pointing at a disposable
//! cluster and `cargo test --test real_cluster -- --ignored`. No cluster can be had on this
//! project's build machines, so these are ignored there.

use std::time::Duration;

use kedaform::kube::apply::Applier;
use kedaform::kube::plan::{owner, parse_manifest};
use tokio::time::Instant;

async fn applier() -> Applier {
    Applier::new(
        kube::Client::try_default()
            .await
            .expect("KUBECONFIG names a reachable cluster"),
    )
}

#[tokio::test]
#[ignore = "needs a cluster: set KUBECONFIG"]
async fn a_namespace_and_a_deployment_are_applied_rolled_out_and_deleted() {
    let applier = applier().await;
    let objects = parse_manifest(
        "Manifest",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: kedaform-e2e}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: pause, namespace: kedaform-e2e}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: pause}}\n  template:\n    metadata: {labels: {app: pause}}\n    spec: {containers: [{name: pause, image: registry.k8s.io/pause:3.10}]}\n",
    )
    .unwrap();
    let owner = owner("real-cluster-test", "Pause");
    let deadline = Instant::now() + Duration::from_secs(300);
    let applied = applier.apply_all(objects.clone(), &owner, deadline).await.unwrap();
    applier.wait_ready(&applied, deadline).await.unwrap();
    applier.delete_all(objects, &owner, deadline).await.unwrap();
}

#[tokio::test]
#[ignore = "needs a cluster: set KUBECONFIG"]
async fn keda_installs_from_its_release_manifest_and_uninstalls() {
    let applier = applier().await;
    let path = format!(
        "{}/../../shared/fixtures/keda/keda-2.20.2.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let objects = parse_manifest("Manifest", &std::fs::read_to_string(path).unwrap()).unwrap();
    let owner = owner("real-cluster-test", "KedaInstall");
    let deadline = Instant::now() + Duration::from_secs(600);
    let applied = applier.apply_all(objects.clone(), &owner, deadline).await.unwrap();
    applier.wait_ready(&applied, deadline).await.unwrap();
    applier.delete_all(objects, &owner, deadline).await.unwrap();
}
