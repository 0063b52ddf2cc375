//! Lambda behind `Custom::KedaTrustPolicy`.

use kedaform::{cfn::Runtime, iam::TrustPolicyResource};
use lambda_runtime::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    kedaform::telemetry::init();
    let config = kedaform::aws::load().await;
    let runtime = &Runtime::new(TrustPolicyResource::new(aws_sdk_iam::Client::new(&config)));
    lambda_runtime::run(service_fn(move |event| runtime.invoke(event))).await
}
