//! `kedaform`: every custom-resource operation from a laptop. Cluster and trust operations go
//! through the same handlers as the Lambdas, as CloudFormation requests that are answered
//! here instead of to a response URL.
//!
//! Exit codes: 0 done, 1 the operation failed (the reason is printed), 2 bad usage.

// Doc comments here are `--help` text, where Markdown backticks would print as they are.
#![allow(clippy::doc_markdown)]

mod demo;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use aws_credential_types::provider::ProvideCredentials as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use kedaform::cfn::{CustomResource, Runtime};
use kedaform::iam::policy::KedaTrust;
use kedaform::iam::{TrustPolicies, TrustPolicyResource, role_name};
use kedaform::keda::install::{self, IdentityMode, Overlay};
use kedaform::keda::scaled_object::ScaledObjectProperties;
use kedaform::kube::plan::{self, parse_manifest};
use kedaform::kube::resources::{ClusterAccess, KubeResources};
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(
    name = "kedaform",
    version,
    about = "KEDA on EKS with IRSA, without kubectl, helm or the AWS CLI",
    after_help = "Examples:
  kedaform trust plan --role sales-consumer --keda-role arn:aws:iam::111122223333:role/keda-operator
  kedaform keda render --operator-role arn:aws:iam::111122223333:role/keda-operator --helm-values
  kedaform keda install --cluster sales --operator-role arn:aws:iam::111122223333:role/keda-operator
  kedaform scaledobject apply --cluster sales --namespace sales --name consumer --target consumer \\
      --queue-url https://sqs.us-east-1.amazonaws.com/111122223333/reliable_q --role-arn arn:aws:iam::111122223333:role/sales-consumer
  kedaform token --cluster sales          # an ExecCredential, for a kubeconfig exec plugin
  kedaform invoke --event request.json    # replay a CloudFormation request locally"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Output format.
    #[arg(long, value_enum, global = true, default_value = "text")]
    output: Output,
    /// Reach the cluster through this kubeconfig (its current context) instead of EKS; the
    /// `--cluster` given must be that context's cluster.
    #[arg(long, global = true, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The consumer role's trust policy (Custom::KedaTrustPolicy).
    Trust {
        #[command(subcommand)]
        action: TrustAction,
    },
    /// KEDA itself (Custom::KedaInstall).
    Keda {
        #[command(subcommand)]
        action: KedaAction,
    },
    /// The TriggerAuthentication and ScaledObject (Custom::KedaScaledObject).
    Scaledobject {
        #[command(subcommand)]
        action: ScaledObjectAction,
    },
    /// Print an ExecCredential with an EKS token, like `aws eks get-token`.
    Token {
        #[arg(long, value_parser = clap::builder::NonEmptyStringValueParser::new())]
        cluster: String,
    },
    /// Predict how a ScaledObject behaves on given traffic, and search for the cheapest
    /// settings that keep the oldest message under an age.
    Plan(PlanArgs),
    /// The whole system on this machine against an AWS emulator (moto): trust policy, KEDA
    /// render, producer and a consumer fleet scaled by a local stand-in for KEDA + HPA.
    Demo(demo::DemoArgs),
    /// Run a CloudFormation custom-resource request through the matching handler and print
    /// the response it would send.
    Invoke {
        /// The request as CloudFormation sends it (JSON).
        #[arg(long)]
        event: PathBuf,
    },
}

/// The longest `plan` run: a week, one step a second (memory grows with it).
const MAX_PLAN_SECONDS: u64 = 7 * 86_400;

#[derive(Debug, Args)]
struct PlanArgs {
    /// constant:RATE, steps:SECOND@RATE,…, bursts:SECOND@COUNT,… or csv:FILE (lines of
    /// second,messages); rates up to 100,000/s, bursts up to 100,000,000 messages.
    #[arg(long, default_value = "constant:2", value_parser = parse_traffic)]
    traffic: kedaform::sim::model::Traffic,
    /// Length of the simulated run, in seconds (1 to 604,800: a week).
    #[arg(long, default_value_t = 3_600, value_parser = clap::value_parser!(u64).range(1..=MAX_PLAN_SECONDS))]
    seconds: u64,
    /// The oldest-message age to keep to, in seconds ("60" or "60s"; up to 86,400).
    #[arg(long, default_value = "60s", value_parser = parse_slo)]
    slo_max_age: u64,
    /// MAX_MSGS_PER_BATCH of the consumer (1 to 10).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10))]
    batch_size: u32,
    /// Seconds a batch takes from receive to delete (up to 43,200).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=43_200))]
    work_seconds: u64,
    /// MSG_PROCESS_DELAY of the consumer (up to 86,400).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    process_delay: u64,
    /// MSG_POLL_BACKOFF of the consumer (up to 512).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=512))]
    poll_backoff: u64,
    /// Seconds from scheduling a pod to its first receive (up to 86,400).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    startup_seconds: u64,
    /// The queue's DelaySeconds (0 to 900, as SQS allows).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=900))]
    delay_seconds: u64,
    /// The queue's visibility timeout (0 to 43,200, as SQS allows).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=43_200))]
    visibility_timeout: u64,
    /// Write the chosen settings' time series here (JSON when the name ends in .json, else CSV).
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Write the chosen settings' plot here (SVG).
    #[arg(long)]
    svg: Option<PathBuf>,
    /// The cluster's Kubernetes version (1.30 to 1.37): its HPA controller's rules apply.
    #[arg(long, default_value_t = kedaform::sim::hpa::KubernetesVersion::DEFAULT, value_parser = parse_kubernetes_version)]
    kubernetes_version: kedaform::sim::hpa::KubernetesVersion,
    /// Print the chosen settings ready to deploy (the table then goes to stderr).
    #[arg(long, value_enum)]
    emit: Option<Emit>,
    /// For `--emit scaled-object`: the queue KEDA reads.
    #[arg(long, required_if_eq("emit", "scaled-object"))]
    queue_url: Option<String>,
    /// For `--emit scaled-object`: the consumer role KEDA assumes.
    #[arg(long, required_if_eq("emit", "scaled-object"))]
    role_arn: Option<String>,
    /// For `--emit properties` and `scaled-object`: where the ScaledObject goes.
    #[arg(long, default_value = "consumer")]
    namespace: String,
    /// For `--emit properties` and `scaled-object`: the ScaledObject's name.
    #[arg(long, default_value = "consumer")]
    name: String,
    /// For `--emit properties` and `scaled-object`: the Deployment to scale.
    #[arg(long, default_value = "consumer")]
    target: String,
}

/// What `kedaform plan --emit` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Emit {
    /// The scaling properties of `Custom::KedaScaledObject`, as YAML to paste into a template.
    Properties,
    /// The TriggerAuthentication and ScaledObject, as YAML for `kubectl apply -f -`.
    ScaledObject,
    /// A `sam deploy --parameter-overrides` command for infra/template.yaml.
    Parameters,
}

fn parse_kubernetes_version(text: &str) -> Result<kedaform::sim::hpa::KubernetesVersion, String> {
    kedaform::sim::hpa::KubernetesVersion::parse(text).map_err(|e| e.to_string())
}

/// `--traffic`, checked by clap so that a bad one is a usage error (exit 2).
fn parse_traffic(spec: &str) -> Result<kedaform::sim::model::Traffic, String> {
    use kedaform::sim::model::Traffic;
    let parsed = match spec.strip_prefix("csv:") {
        Some(file) => {
            let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {file}: {e}"))?;
            Traffic::from_csv(&text)
        }
        None => Traffic::parse(spec),
    };
    parsed.map_err(|e| e.to_string())
}

/// `--slo-max-age`: whole seconds, 1 to a day, with or without an `s`.
fn parse_slo(text: &str) -> Result<u64, String> {
    text.trim()
        .trim_end_matches('s')
        .parse::<u64>()
        .ok()
        .filter(|seconds| (1..=86_400).contains(seconds))
        .ok_or_else(|| "expected whole seconds from 1 to 86400, e.g. 60s".to_owned())
}

#[derive(Debug, Args)]
struct TrustArgs {
    /// The consumer role (name or ARN).
    #[arg(long)]
    role: String,
    /// The KEDA operator's role ARN.
    #[arg(long)]
    keda_role: String,
    #[arg(long)]
    external_id: Option<String>,
    /// Keep other grants of sts:AssumeRole to AWS principals.
    #[arg(long)]
    keep_others: bool,
}

#[derive(Debug, Subcommand)]
enum TrustAction {
    /// Show the trust policy before and after, without changing it.
    Plan(TrustArgs),
    /// Write the new trust policy.
    Apply(TrustArgs),
    /// Remove kedaform's statement.
    Remove {
        #[arg(long)]
        role: String,
    },
}

#[derive(Debug, Args)]
struct KedaArgs {
    #[arg(long)]
    operator_role: String,
    #[arg(long, default_value = install::DEFAULT_VERSION)]
    version: String,
    /// A mirror of the release manifest: https://, s3:// or a local file.
    #[arg(long)]
    manifest: Option<String>,
    #[arg(long)]
    manifest_sha256: Option<String>,
    /// EKS Pod Identity instead of IRSA: no service-account annotation.
    #[arg(long)]
    pod_identity: bool,
    #[arg(long)]
    legacy_fs_group: bool,
}

#[derive(Debug, Subcommand)]
enum KedaAction {
    /// Print the objects with the IRSA overlay (a count per kind and the operator's account).
    Render {
        #[command(flatten)]
        keda: KedaArgs,
        /// Print the equivalent Helm values instead.
        #[arg(long)]
        helm_values: bool,
    },
    /// Install KEDA on a cluster and wait until it is ready.
    Install {
        #[arg(long)]
        cluster: String,
        #[command(flatten)]
        keda: KedaArgs,
    },
    /// Remove what `install` applied.
    Uninstall {
        #[arg(long)]
        cluster: String,
        #[command(flatten)]
        keda: KedaArgs,
    },
}

#[derive(Debug, Args)]
struct ScaledObjectArgs {
    #[arg(long)]
    cluster: String,
    #[arg(long)]
    namespace: String,
    #[arg(long)]
    name: String,
    /// The Deployment to scale.
    #[arg(long)]
    target: String,
    #[arg(long)]
    queue_url: String,
    /// The consumer role KEDA assumes.
    #[arg(long)]
    role_arn: String,
    #[arg(long)]
    queue_length: Option<u32>,
    #[arg(long)]
    min_replicas: Option<i32>,
    #[arg(long)]
    max_replicas: Option<i32>,
    #[arg(long)]
    polling_interval: Option<i32>,
    #[arg(long)]
    cooldown_period: Option<i32>,
}

#[derive(Debug, Subcommand)]
enum ScaledObjectAction {
    /// Print the TriggerAuthentication and ScaledObject as YAML.
    Render(ScaledObjectArgs),
    /// Apply both and wait for Ready.
    Apply(ScaledObjectArgs),
    /// Delete both.
    Delete(ScaledObjectArgs),
}

impl ScaledObjectArgs {
    fn properties(&self) -> Value {
        let mut properties = json!({
            "ClusterName": self.cluster, "Namespace": self.namespace, "Name": self.name,
            "ScaleTargetName": self.target, "QueueUrl": self.queue_url, "RoleArn": self.role_arn,
        });
        for (key, value) in [
            ("QueueLength", self.queue_length.map(i64::from)),
            ("MinReplicas", self.min_replicas.map(i64::from)),
            ("MaxReplicas", self.max_replicas.map(i64::from)),
            ("PollingInterval", self.polling_interval.map(i64::from)),
            ("CooldownPeriod", self.cooldown_period.map(i64::from)),
        ] {
            if let Some(value) = value {
                properties[key] = json!(value);
            }
        }
        properties
    }
}

impl KedaArgs {
    fn overlay(&self) -> Overlay {
        Overlay {
            operator_role_arn: self.operator_role.clone(),
            identity: if self.pod_identity {
                IdentityMode::PodIdentity
            } else {
                IdentityMode::Irsa
            },
            token_expiration: 86_400,
            legacy_fs_group: self.legacy_fs_group,
        }
    }

    fn properties(&self, cluster: &str) -> Value {
        let mut properties = json!({
            "ClusterName": cluster, "OperatorRoleArn": self.operator_role, "Version": self.version,
            "IdentityMode": if self.pod_identity { "pod-identity" } else { "irsa" },
            "LegacyFsGroup": self.legacy_fs_group,
        });
        if let Some(url) = &self.manifest {
            properties["ManifestUrl"] = json!(url);
        }
        if let Some(sha) = &self.manifest_sha256 {
            properties["ManifestSha256"] = json!(sha);
        }
        properties
    }
}

/// A Create or Delete as CloudFormation would send it; the CLI's stack and logical ids make the
/// owner label stable across runs, so `uninstall` removes what `install` applied.
fn request(kind: &str, resource_type: &str, logical_id: &str, properties: &Value) -> Value {
    let mut request = json!({
        "RequestType": kind, "ResponseURL": "kedaform-cli:", "StackId": "kedaform-cli",
        "RequestId": format!("cli-{}", std::process::id()), "ResourceType": resource_type,
        "LogicalResourceId": logical_id, "ResourceProperties": properties,
    });
    if kind != "Create" {
        request["PhysicalResourceId"] = json!(format!("kedaform-cli/{logical_id}"));
    }
    request
}

/// Runs `request` through `handler`; prints the response; 1 when it failed.
async fn respond<H: CustomResource>(handler: H, request: Value, output: Output) -> ExitCode {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15 * 60);
    let mut response = Runtime::new(handler).respond(request, deadline).await;
    let body: Value = serde_json::from_slice(&kedaform::cfn::response::body(&mut response)).unwrap_or_default();
    let success = kedaform::cfn::response::is_success(&response);
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&body).unwrap_or_default()),
        Output::Text if success => {
            println!("done: {}", body["PhysicalResourceId"].as_str().unwrap_or_default());
            if let Some(data) = body["Data"].as_object() {
                for (key, value) in data {
                    println!("{key}: {}", value.as_str().unwrap_or_default());
                }
            }
        }
        Output::Text => eprintln!("failed: {}", body["Reason"].as_str().unwrap_or_default()),
    }
    if success { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// The Lambda's handler, but for one rule: the user typed the manifest URL, so plain http://
/// (a local mirror) is fetched too. Templates reach only the Lambdas, which never allow it.
async fn cluster_access(aws: &aws_config::SdkConfig, kubeconfig: Option<&Path>) -> anyhow::Result<KubeResources> {
    let mut access = ClusterAccess::new(aws, aws_sdk_eks::Client::new(aws), kedaform::aws::s3(aws))?.allow_plain_http();
    if let Some(path) = kubeconfig {
        access = access.with_kubeconfig(kedaform::kube::Kubeconfig::read(path).await?);
    }
    Ok(KubeResources::new(access))
}

async fn trust(action: TrustAction, aws: &aws_config::SdkConfig, output: Output) -> anyhow::Result<ExitCode> {
    let policies = TrustPolicies::new(aws_sdk_iam::Client::new(aws));
    let (role, plan, write) = match &action {
        TrustAction::Plan(args) | TrustAction::Apply(args) => {
            let role = role_name(&args.role)?;
            let trust = KedaTrust {
                keda_role_arn: args.keda_role.clone(),
                external_id: args.external_id.clone(),
                exclusive: !args.keep_others,
            };
            let (current, plan) = policies.plan_apply(&args.role, &trust).await?;
            (
                role,
                (current.trust_policy, plan),
                matches!(action, TrustAction::Apply(_)),
            )
        }
        TrustAction::Remove { role: role_input } => {
            let role = role_name(role_input)?;
            let Some((current, plan)) = policies.plan_remove(role_input).await? else {
                println!("role {role} does not exist in this account: nothing to remove");
                return Ok(ExitCode::SUCCESS);
            };
            (role, (current.trust_policy, plan), true)
        }
    };
    let (before, plan) = plan;
    if write && plan.changed {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        policies.write(&role, &plan.document, deadline).await?;
    }
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json!({"role": role, "before": before, "after": plan.document,
                "removed": plan.removed, "changed": plan.changed, "written": write && plan.changed}))?
        ),
        Output::Text => {
            println!(
                "trust policy of role {role}, before:\n{}",
                serde_json::to_string_pretty(&before)?
            );
            println!("after:\n{}", serde_json::to_string_pretty(&plan.document)?);
            if !plan.removed.is_empty() {
                println!("removed grants of sts:AssumeRole to: {}", plan.removed.join(", "));
            }
            println!(
                "{}",
                if !plan.changed {
                    "no change"
                } else if write {
                    "written"
                } else {
                    "not written (plan)"
                }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// KEDA's manifest from a URL (https://, s3://, and, because the user typed it, http://) or a
/// local file.
/// Only an s3:// location loads the AWS settings.
async fn read_manifest(location: &str) -> anyhow::Result<Vec<u8>> {
    if location.contains("://") {
        let fetcher = if location.starts_with("s3://") {
            kedaform::fetch::Fetcher::new(kedaform::aws::s3(&kedaform::aws::load().await))
        } else {
            kedaform::fetch::Fetcher::without_s3()
        }
        .allow_plain_http();
        Ok(fetcher.fetch("--manifest", location).await?)
    } else {
        std::fs::read(location).with_context(|| format!("cannot read {location}"))
    }
}

async fn keda_render(keda: &KedaArgs, helm_values: bool, output: Output) -> anyhow::Result<ExitCode> {
    if helm_values {
        let values = install::helm_values(&keda.overlay());
        match output {
            Output::Text => print!("{values}"),
            Output::Json => {
                let values: Value = serde_yaml_ng::from_str(&values)?;
                println!("{}", serde_json::to_string_pretty(&values)?);
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let location = keda
        .manifest
        .clone()
        .unwrap_or_else(|| install::release_url(&keda.version));
    let bytes = read_manifest(&location).await?;
    if let Some(expected) = &keda.manifest_sha256 {
        install::verify(&bytes, expected)?;
    }
    let mut objects = parse_manifest("ManifestUrl", &String::from_utf8(bytes)?)?;
    install::apply_overlay(&mut objects, &keda.overlay())?;
    let objects = plan::apply_order(objects);
    let counts = plan::count_by_kind(&objects);
    let account = install::operator_account(&objects);
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&json!({"objects": objects}))?),
        Output::Text => {
            println!("{} objects, in apply order:", objects.len());
            for (kind, n) in &counts {
                println!("  {n:>2} {kind}");
            }
            println!("---\n{}", serde_yaml_ng::to_string(&account)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn exec_credential(cluster: &str, aws: &aws_config::SdkConfig) -> anyhow::Result<ExitCode> {
    let provider = aws
        .credentials_provider()
        .context("no AWS credentials are configured")?;
    let credentials = provider.provide_credentials().await?;
    let region = aws.region().context("no AWS region is configured")?.to_string();
    let now = SystemTime::now();
    let token = kedaform::eks::token(&credentials, &region, cluster, now)?;
    // As `aws eks get-token`: valid 15 minutes, reported as 14 so clients renew in time.
    let expiry = time::OffsetDateTime::from(now + Duration::from_secs(14 * 60))
        .replace_nanosecond(0)?
        .format(&time::format_description::well_known::Rfc3339)?;
    let credential = json!({"kind": "ExecCredential", "apiVersion": "client.authentication.k8s.io/v1beta1", "spec": {},
                            "status": {"expirationTimestamp": expiry, "token": token}});
    println!("{}", serde_json::to_string(&credential)?);
    Ok(ExitCode::SUCCESS)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let output = cli.output;
    let kubeconfig = cli.kubeconfig.as_deref();
    // Loaded only by the commands that call AWS: the offline ones must not look for a region or
    // credentials (the instance metadata service among the places searched).
    let aws = || kedaform::aws::load();
    match cli.command {
        Command::Trust { action } => trust(action, &aws().await, output).await,
        Command::Keda { action } => match action {
            KedaAction::Render { keda, helm_values } => keda_render(&keda, helm_values, output).await,
            KedaAction::Install { cluster, keda } => {
                keda_install("Create", &cluster, &keda, &aws().await, kubeconfig, output).await
            }
            KedaAction::Uninstall { cluster, keda } => {
                keda_install("Delete", &cluster, &keda, &aws().await, kubeconfig, output).await
            }
        },
        Command::Scaledobject { action } => match action {
            ScaledObjectAction::Render(args) => {
                let properties: ScaledObjectProperties =
                    kedaform::cfn::decode_properties(&args.properties(), kedaform::cfn::UnknownKeys::Reject)?;
                let (auth, scaled) = properties.render()?;
                match output {
                    Output::Json => println!("{}", serde_json::to_string_pretty(&json!([auth, scaled]))?),
                    Output::Text => print!(
                        "{}---\n{}",
                        serde_yaml_ng::to_string(&auth)?,
                        serde_yaml_ng::to_string(&scaled)?
                    ),
                }
                Ok(ExitCode::SUCCESS)
            }
            ScaledObjectAction::Apply(args) => scaled_object("Create", &args, &aws().await, kubeconfig, output).await,
            ScaledObjectAction::Delete(args) => scaled_object("Delete", &args, &aws().await, kubeconfig, output).await,
        },
        Command::Token { cluster } => exec_credential(&cluster, &aws().await).await,
        Command::Plan(args) => plan(&args, output),
        Command::Demo(args) => Box::pin(demo::run(&args, &aws().await, kubeconfig)).await,
        Command::Invoke { event } => {
            let text = std::fs::read_to_string(&event).with_context(|| format!("cannot read {}", event.display()))?;
            let request: Value =
                serde_json::from_str(&text).with_context(|| format!("{} is not JSON", event.display()))?;
            let resource_type =
                invocable(&request).with_context(|| format!("{} cannot be invoked", event.display()))?;
            let code = if resource_type == kedaform::iam::TRUST_POLICY {
                respond(
                    TrustPolicyResource::new(aws_sdk_iam::Client::new(&aws().await)),
                    request,
                    Output::Json,
                )
                .await
            } else {
                respond(cluster_access(&aws().await, kubeconfig).await?, request, Output::Json).await
            };
            Ok(code)
        }
    }
}

/// The resource type of a request `invoke` can run, checked before any AWS setting is needed.
fn invocable(request: &Value) -> anyhow::Result<&str> {
    use kedaform::kube::resources::{KEDA_INSTALL, MANIFEST, SCALED_OBJECT};
    const TYPES: [&str; 4] = [kedaform::iam::TRUST_POLICY, MANIFEST, KEDA_INSTALL, SCALED_OBJECT];
    let Some(fields) = request.as_object() else {
        anyhow::bail!("the event is not a JSON object: expected a CloudFormation custom-resource request");
    };
    let resource_type = fields.get("ResourceType").and_then(Value::as_str).unwrap_or_default();
    if !TYPES.contains(&resource_type) {
        anyhow::bail!(
            "ResourceType {:?} is not one kedaform serves: expected one of {}",
            resource_type,
            TYPES.join(", ")
        );
    }
    Ok(resource_type)
}

async fn keda_install(
    kind: &str,
    cluster: &str,
    keda: &KedaArgs,
    aws: &aws_config::SdkConfig,
    kubeconfig: Option<&Path>,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let request = request(kind, "Custom::KedaInstall", "KedaInstall", &keda.properties(cluster));
    Ok(respond(cluster_access(aws, kubeconfig).await?, request, output).await)
}

async fn scaled_object(
    kind: &str,
    args: &ScaledObjectArgs,
    aws: &aws_config::SdkConfig,
    kubeconfig: Option<&Path>,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let logical = format!("ScaledObject-{}-{}", args.namespace, args.name);
    let request = request(kind, "Custom::KedaScaledObject", &logical, &args.properties());
    Ok(respond(cluster_access(aws, kubeconfig).await?, request, output).await)
}

fn plan(args: &PlanArgs, output: Output) -> anyhow::Result<ExitCode> {
    use kedaform::sim::model::{Consumer, Scenario, simulate};
    use kedaform::sim::plan::search;
    let slo = args.slo_max_age;
    let base = Scenario {
        seconds: args.seconds,
        traffic: args.traffic.clone(),
        delay_seconds: args.delay_seconds,
        visibility_timeout: args.visibility_timeout,
        consumer: Consumer {
            batch_size: args.batch_size,
            work_seconds: args.work_seconds,
            process_delay: args.process_delay,
            poll_backoff: args.poll_backoff,
            startup_seconds: args.startup_seconds,
        },
        keda: kedaform::sim::keda::Settings::default(),
        initial_replicas: 0,
        kills: vec![],
        kubernetes: args.kubernetes_version,
    };
    let (best, defaults, seed) = search(&base, slo);
    let table = comparison(args, output, best.as_ref(), &defaults, &seed)?;
    // With --emit, stdout carries only what deploys; the comparison goes to stderr.
    if args.emit.is_some() {
        eprint!("{table}");
    } else {
        print!("{table}");
    }
    let chosen = best.as_ref().unwrap_or(&seed);
    if args.csv.is_some() || args.svg.is_some() {
        let run = simulate(&Scenario {
            keda: chosen.settings.clone(),
            initial_replicas: chosen.settings.min_replicas,
            ..base
        });
        if let Some(path) = &args.csv {
            let series = if path.extension().is_some_and(|e| e == "json") {
                serde_json::to_string_pretty(&run.samples)?
            } else {
                run.to_csv()
            };
            std::fs::write(path, series).with_context(|| format!("cannot write {}", path.display()))?;
        }
        if let Some(path) = &args.svg {
            std::fs::write(path, kedaform::sim::svg::plot(&run, &chosen.name))
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    if let Some(emit) = args.emit {
        let Some(best) = &best else {
            anyhow::bail!("nothing to emit: none of the settings searched meets the SLO");
        };
        print!("{}", emitted(emit, args, best)?);
    }
    Ok(if best.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The table `kedaform plan` prints: the cheapest settings beside KEDA's defaults and the seed's.
fn comparison(
    args: &PlanArgs,
    output: Output,
    best: Option<&kedaform::sim::plan::Evaluation>,
    defaults: &kedaform::sim::plan::Evaluation,
    seed: &kedaform::sim::plan::Evaluation,
) -> anyhow::Result<String> {
    use kedaform::sim::plan::Evaluation;
    let slo = args.slo_max_age;
    let describe = |e: &Evaluation| {
        json!({"settings": e.name, "meets_slo": e.meets_slo, "summary": e.summary,
               "queue_length": e.settings.queue_length, "polling_interval": e.settings.polling_interval,
               "min_replicas": e.settings.min_replicas, "max_replicas": e.settings.max_replicas})
    };
    Ok(match output {
        Output::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(
                &json!({"slo_max_age": slo, "kubernetes_version": args.kubernetes_version.to_string(),
                "cheapest": best.map(describe), "keda_defaults": describe(defaults), "seed": describe(seed)})
            )?
        ),
        Output::Text => {
            let row = |label: &str, e: &Evaluation| {
                let s = e.summary;
                format!(
                    "{label:<12} {:>10} {:>6} {:>16} {:>7} {:>5}  {}\n",
                    s.pod_seconds,
                    s.peak_backlog,
                    format!("{}/{}/{} s", s.age_p50, s.age_p95, s.age_max),
                    s.scale_events,
                    if e.meets_slo { "yes" } else { "NO" },
                    e.name
                )
            };
            let cheapest = match best {
                Some(best) => row("cheapest", best),
                None => format!(
                    "cheapest     none of the {} settings searched meets the SLO\n",
                    kedaform::sim::plan::candidates().len()
                ),
            };
            format!(
                "traffic {}, {} s, Kubernetes {}; SLO: no message older than {slo} s\n\
                 {:<12} {:>10} {:>6} {:>16} {:>7} {:>5}  settings\n{cheapest}{}{}",
                args.traffic,
                args.seconds,
                args.kubernetes_version,
                "",
                "pod-s",
                "peak",
                "age p50/p95/max",
                "scales",
                "SLO",
                row("KEDA default", defaults),
                row("seed", seed)
            )
        }
    })
}

/// The chosen settings in the form `--emit` names.
fn emitted(emit: Emit, args: &PlanArgs, chosen: &kedaform::sim::plan::Evaluation) -> anyhow::Result<String> {
    use kedaform::sim::deploy;
    let header = format!(
        "# kedaform plan: {} (traffic {}, {} s, Kubernetes {}, no message older than {} s)\n",
        chosen.name, args.traffic, args.seconds, args.kubernetes_version, args.slo_max_age
    );
    let identity = ScaledObjectProperties {
        cluster_name: String::new(),
        namespace: args.namespace.clone(),
        name: args.name.clone(),
        scale_target_name: args.target.clone(),
        scale_target_kind: "Deployment".into(),
        queue_url: args.queue_url.clone().unwrap_or_default(),
        queue_length: 0,
        activation_queue_length: None,
        aws_region: None,
        min_replicas: None,
        max_replicas: None,
        polling_interval: None,
        cooldown_period: None,
        scale_on_in_flight: None,
        role_arn: args.role_arn.clone().unwrap_or_default(),
        behavior: None,
        fallback: None,
    };
    let planned = deploy::apply(&chosen.settings, &identity)?;
    Ok(match emit {
        Emit::Properties => {
            // Only what the plan decides: the resource's identity stays as the template has it.
            let base = serde_json::to_value(&identity)?;
            let mut scaling = serde_json::to_value(&planned)?;
            if let (Some(scaling), Some(base)) = (scaling.as_object_mut(), base.as_object()) {
                scaling.retain(|key, value| base.get(key) != Some(value));
            }
            format!("{header}{}", serde_yaml_ng::to_string(&scaling)?)
        }
        Emit::ScaledObject => {
            let (auth, scaled) = planned.render()?;
            format!(
                "{header}{}---\n{}",
                serde_yaml_ng::to_string(&auth)?,
                serde_yaml_ng::to_string(&scaled)?
            )
        }
        Emit::Parameters => {
            let overrides = deploy::parameter_overrides(&chosen.settings)?;
            // SAM reads `Name=""` as an empty value (a bare `Name=` is dropped); the values are
            // digits or empty, so single quotes around the whole list are enough for a shell.
            let pairs: Vec<String> = overrides
                .iter()
                .map(|(name, value)| format!("{name}={}", if value.is_empty() { "\"\"" } else { value }))
                .collect();
            format!(
                "{header}# sam deploy replaces samconfig.toml's parameter_overrides with these: add your image\n\
                 # parameters to the list, or copy the pairs into samconfig.toml instead.\n\
                 sam deploy --parameter-overrides '{}'\n",
                pairs.join(" ")
            )
        }
    })
}

/// Shows what a handler is doing: on a terminal a spinner with the current step, otherwise
/// plain log lines; both on stderr, so stdout stays the command's output.
fn progress() -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if !std::io::stderr().is_terminal() {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(filter)
            .with_target(false)
            .without_time()
            .compact()
            .init();
        return None;
    }
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.enable_steady_tick(Duration::from_millis(120));
    tracing_subscriber::registry()
        .with(filter)
        .with(Steps(spinner.clone()))
        .init();
    Some(spinner)
}

/// Puts each `step` the handlers record into the spinner's message.
struct Steps(indicatif::ProgressBar);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Steps {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Step(Option<String>);
        impl tracing::field::Visit for Step {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "step" {
                    self.0 = Some(format!("{value:?}"));
                }
            }
        }
        let mut step = Step(None);
        event.record(&mut step);
        if let Some(step) = step.0 {
            self.0.set_message(step);
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let spinner = progress();
    let result = Box::pin(run(cli)).await;
    if let Some(spinner) = spinner {
        spinner.finish_and_clear();
    }
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {}", kedaform::error_chain(error.as_ref()));
            ExitCode::FAILURE
        }
    }
}
