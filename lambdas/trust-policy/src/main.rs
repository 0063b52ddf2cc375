//! Lambda behind `Custom::KedaTrustPolicy`.

use kedaform::cfn::Runtime;
use kedaform::resources::Resources;
use lambda_runtime::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    kedaform_common::telemetry::init();
    let config = kedaform_common::aws::load().await;
    let runtime = &Runtime::new(Resources::default().with_trust_policy(aws_sdk_iam::Client::new(&config)));
    lambda_runtime::run(service_fn(move |event| runtime.invoke(event))).await
}
