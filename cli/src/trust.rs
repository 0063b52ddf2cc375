//! `kedaform trust`: the consumer role's trust policy, planned, applied or removed through
//! the same IAM code as `Custom::KedaTrustPolicy`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use kedaform::Input;
use kedaform::iam::policy::KedaTrust;
use kedaform::iam::{TrustPolicies, role_name};
use serde_json::json;

use crate::{Context, Output, flag_error};

/// What the flags of these commands are called, for errors about them.
const FLAGS: [(Input, &str); 3] = [
    (Input::Role, "--role"),
    (Input::OperatorRole, "--keda-role"),
    (Input::OperatorAccount, "--keda-account-id"),
];

#[derive(Debug, Args)]
pub struct TrustCommand {
    #[command(subcommand)]
    action: TrustAction,
}

#[derive(Debug, Args)]
struct TrustArgs {
    /// The consumer role (name or ARN).
    #[arg(long)]
    role: String,
    /// The KEDA operator's role ARN.
    #[arg(long)]
    keda_role: String,
    /// An sts:ExternalId condition on the KEDA statement.
    #[arg(long)]
    external_id: Option<String>,
    /// The account of --keda-role when it is not the consumer role's account (required then).
    #[arg(long)]
    keda_account_id: Option<String>,
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

impl TrustCommand {
    pub async fn run(self, context: &Context) -> anyhow::Result<ExitCode> {
        trust(self.action, &context.aws().await, context.output)
            .await
            .map_err(|e| flag_error(e, &FLAGS))
    }
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
                keda_account_id: args.keda_account_id.clone(),
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
