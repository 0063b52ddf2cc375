//! Lambda behind `Custom::KedaInstall`, `Custom::KedaScaledObject` and `Custom::KubernetesManifest`.

use kedaform::cfn::Runtime;
use kedaform::kube::scope::Scope;
use kedaform::resources::{ClusterAccess, Resources};
use lambda_runtime::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    kedaform_common::telemetry::init();
    let config = kedaform_common::aws::load().await;
    let access = ClusterAccess::new(
        &config,
        aws_sdk_eks::Client::new(&config),
        kedaform_common::aws::s3(&config),
    )?
    .with_scope(Scope::from_env());
    let runtime = &Runtime::new(Resources::default().with_kubernetes(access));
    lambda_runtime::run(service_fn(move |event| runtime.invoke(event))).await
}
