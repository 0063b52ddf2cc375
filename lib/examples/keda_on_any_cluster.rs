//! KEDA and a ScaledObject on any cluster a kubeconfig reaches (kind, k3s, a local control
//! plane, EKS), through the same handlers the Lambdas run: what `helm install` with the IRSA
//! values and `kubectl apply` of a ScaledObject did, with readiness waited for.
//!
//! ```sh
//! cargo run -p kedaform --example keda_on_any_cluster -- ~/.kube/config \
//!     arn:aws:iam::111122223333:role/keda-operator \
//!     sales consumer https://sqs.us-east-1.amazonaws.com/111122223333/sales \
//!     arn:aws:iam::111122223333:role/sales-consumer [MANIFEST_URL]
//! ```
//!
//! The kubeconfig's current context names the cluster; `MANIFEST_URL` (`https://` or
//! `s3://`) is a mirror of KEDA's release manifest (default: the GitHub release).

use std::path::Path;
use std::time::Duration;

use kedaform::cfn::response;
use kedaform::resources::keda_install::KedaInstallProperties;
use kedaform::resources::scaled_object::ScaledObjectProperties;
use kedaform::resources::{KEDA_INSTALL, SCALED_OBJECT};
use kedaform::{ClusterAccess, Kubeconfig, RequestBuilder, Resources, Runtime};

const USAGE: &str = "usage: keda_on_any_cluster <kubeconfig> <KEDA operator role ARN> <namespace> <deployment> \
                     <queue URL> <consumer role ARN> [KEDA manifest URL]";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [
        kubeconfig,
        operator_role,
        namespace,
        deployment,
        queue_url,
        consumer_role,
        rest @ ..,
    ] = &args[..]
    else {
        return Err(USAGE.into());
    };
    let config = kedaform_common::aws::load().await;
    let kubeconfig = Kubeconfig::read(Path::new(kubeconfig)).await?;
    let cluster = kubeconfig.cluster_name.clone();
    let access = ClusterAccess::new(
        &config,
        aws_sdk_eks::Client::new(&config),
        kedaform_common::aws::s3(&config),
    )?
    .with_kubeconfig(kubeconfig);
    let runtime = Runtime::new(Resources::default().with_kubernetes(access));
    let deadline = || tokio::time::Instant::now() + Duration::from_secs(600);

    let keda = KedaInstallProperties {
        manifest_url: rest.first().cloned(),
        ..KedaInstallProperties::new(&cluster, operator_role)
    };
    let installed = runtime
        .respond(RequestBuilder::create(KEDA_INSTALL, "Keda", &keda)?.build(), deadline())
        .await;
    report("KEDA", installed)?;

    let scaled_object = ScaledObjectProperties {
        queue_length: 10,
        min_replicas: Some(0),
        max_replicas: Some(10),
        ..ScaledObjectProperties::new(cluster, namespace, deployment, deployment, queue_url, consumer_role)
    };
    let ready = runtime
        .respond(
            RequestBuilder::create(SCALED_OBJECT, "ScaledObject", &scaled_object)?.build(),
            deadline(),
        )
        .await;
    report("ScaledObject", ready)
}

/// Prints what the handler answered; an error with its reason when it failed.
fn report(what: &str, mut answer: kedaform::cfn::Response) -> Result<(), Box<dyn std::error::Error>> {
    let body: serde_json::Value = serde_json::from_slice(&response::body(&mut answer))?;
    if !response::is_success(&answer) {
        return Err(format!("{what}: {}", body["Reason"]).into());
    }
    println!("{what} ready: {} {}", body["PhysicalResourceId"], body["Data"]);
    Ok(())
}
