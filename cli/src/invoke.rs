//! `kedaform invoke`, and what every cluster or trust command shares with it: a request as
//! CloudFormation sends it, run through the Lambdas' dispatcher and answered here.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use kedaform::cfn::{CustomResource, RequestBuilder, Runtime};
use kedaform::resources::{self, ClusterAccess, Resources};
use serde::Serialize;
use serde_json::Value;

use crate::{Context, Output};

#[derive(Debug, Args)]
pub struct InvokeCommand {
    /// The request as CloudFormation sends it (JSON).
    #[arg(long)]
    event: PathBuf,
}

impl InvokeCommand {
    pub async fn run(self, context: &Context) -> anyhow::Result<ExitCode> {
        let event = &self.event;
        let text = std::fs::read_to_string(event).with_context(|| format!("cannot read {}", event.display()))?;
        let request: Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", event.display()))?;
        let resource_type = invocable(&request).with_context(|| format!("{} cannot be invoked", event.display()))?;
        let handler = if resource_type == resources::TRUST_POLICY {
            Resources::default().with_trust_policy(aws_sdk_iam::Client::new(&context.aws().await))
        } else {
            cluster_access(context).await?
        };
        // The response CloudFormation would get, whatever its status: that is this command's output.
        let (success, body) = answer(handler, request).await;
        println!("{}", serde_json::to_string_pretty(&body)?);
        Ok(if success { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    }
}

/// The resource type of a request `invoke` can run, checked before any AWS setting is needed.
fn invocable(request: &Value) -> anyhow::Result<&str> {
    let Some(fields) = request.as_object() else {
        anyhow::bail!("the event is not a JSON object: expected a CloudFormation custom-resource request");
    };
    let resource_type = fields.get("ResourceType").and_then(Value::as_str).unwrap_or_default();
    if !resources::ALL.contains(&resource_type) {
        anyhow::bail!(
            "ResourceType {:?} is not one kedaform serves: expected one of {}",
            resource_type,
            resources::ALL.join(", ")
        );
    }
    Ok(resource_type)
}

/// A Create or Delete as CloudFormation would send it; the CLI's stack and logical ids make the
/// owner label stable across runs, so `uninstall` removes what `install` applied. A Delete
/// carries `physical_id`, the id the Create answered with.
pub fn request(
    kind: &str,
    resource_type: &str,
    logical_id: &str,
    physical_id: &str,
    properties: &impl Serialize,
) -> anyhow::Result<Value> {
    Ok(RequestBuilder::create(resource_type, logical_id, properties)?
        .kind(kind, physical_id)?
        .stack_id("kedaform-cli")
        .request_id(&format!("cli-{}", std::process::id()))
        .build())
}

/// Runs `request` through `handler`: whether it succeeded, and the response body.
async fn answer<H: CustomResource>(handler: H, request: Value) -> (bool, Value) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15 * 60);
    let mut response = Runtime::new(handler).respond(request, deadline).await;
    let body: Value = serde_json::from_slice(&kedaform::cfn::response::body(&mut response)).unwrap_or_default();
    (kedaform::cfn::response::is_success(&response), body)
}

/// Runs `request` through `handler` and prints the outcome: the physical id and outputs, or
/// the reason (with `--output json`, the response, or an error object with the response in
/// it); 1 when it failed.
pub async fn respond<H: CustomResource>(handler: H, request: Value, output: Output) -> ExitCode {
    let (success, body) = answer(handler, request).await;
    let reason = body["Reason"].as_str().unwrap_or_default();
    match output {
        Output::Json if success => println!("{}", serde_json::to_string_pretty(&body).unwrap_or_default()),
        Output::Json => {
            let input = reason
                .strip_prefix("property ")
                .and_then(|rest| rest.split_once(": "))
                .map(|(property, _)| property);
            let error =
                serde_json::json!({"error": {"message": reason, "input": input, "exitCode": 1}, "response": body});
            println!("{}", serde_json::to_string_pretty(&error).unwrap_or_default());
        }
        Output::Text if success => {
            println!("done: {}", body["PhysicalResourceId"].as_str().unwrap_or_default());
            if let Some(data) = body["Data"].as_object() {
                for (key, value) in data {
                    println!("{key}: {}", value.as_str().unwrap_or_default());
                }
            }
        }
        Output::Text => eprintln!("failed: {reason}"),
    }
    if success { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// The Lambdas' Kubernetes handler, but for one rule: the user typed the manifest URL, so plain
/// http:// and file:// (local mirrors) are fetched too. Templates reach only the Lambdas, which
/// never allow either.
pub async fn cluster_access(context: &Context) -> anyhow::Result<Resources> {
    let aws = context.aws().await;
    Ok(Resources::default().with_kubernetes(access(context, &aws).await?))
}

/// The clusters the CLI reaches: by EKS name, or the `--kubeconfig` one.
pub async fn access(context: &Context, aws: &aws_config::SdkConfig) -> anyhow::Result<ClusterAccess> {
    let mut access = ClusterAccess::new(aws, aws_sdk_eks::Client::new(aws), kedaform_common::aws::s3(aws))?
        .allow_plain_http()
        .allow_local_files();
    if let Some(path) = &context.kubeconfig {
        access = access.with_kubeconfig(kedaform::kube::Kubeconfig::read(path).await?);
    }
    Ok(access)
}
