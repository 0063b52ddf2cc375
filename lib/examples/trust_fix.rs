//! The trust fix from your own Rust program: let exactly the KEDA operator role assume the
//! consumer role (and drop scale-eks-with-keda's "whole account" grant).
//!
//! ```sh
//! cargo run -p kedaform --example trust_fix -- sales-consumer arn:aws:iam::111122223333:role/keda-operator
//! ```
//!
//! AWS settings come from the standard chain (`AWS_PROFILE`, `AWS_REGION`, …;
//! `AWS_ENDPOINT_URL` for an emulator, as the tests use).

use std::time::Duration;

use kedaform::TrustPolicies;
use kedaform::iam::policy::KedaTrust;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(role), Some(keda_role)) = (args.next(), args.next()) else {
        return Err("usage: trust_fix <consumer role name or ARN> <KEDA operator role ARN>".into());
    };
    let config = kedaform_common::aws::load().await;
    let policies = TrustPolicies::new(aws_sdk_iam::Client::new(&config));
    let trust = KedaTrust {
        keda_role_arn: keda_role,
        external_id: None,
        exclusive: true,
        keda_account_id: None,
    };
    // Plan first (a pure diff of the current document), then write only when it changes.
    let (current, plan) = policies.plan_apply(&role, &trust).await?;
    println!("before: {}", current.trust_policy);
    println!("after:  {}", plan.document);
    println!("removed grants to: {:?}", plan.removed);
    if plan.changed {
        let name = kedaform::iam::role_name(&role)?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        policies.write(&name, &plan.document, deadline).await?;
        println!("written");
    } else {
        println!("no change");
    }
    Ok(())
}
