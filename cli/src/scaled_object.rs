//! `kedaform scaledobject`: the TriggerAuthentication and ScaledObject, rendered, applied or
//! deleted through the `Custom::KedaScaledObject` handler.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use kedaform::resources::{self, scaled_object::ScaledObjectProperties};
use serde_json::json;

use crate::invoke::{cluster_access, request, respond};
use crate::{Context, Output};

#[derive(Debug, Args)]
pub struct ScaledObjectCommand {
    #[command(subcommand)]
    action: ScaledObjectAction,
}

#[derive(Debug, Args)]
struct ScaledObjectArgs {
    #[arg(long, value_parser = crate::cluster_flag)]
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
    /// Take over a TriggerAuthentication or ScaledObject of these names that exists and that
    /// no kedaform resource made (it is then never deleted by kedaform).
    #[arg(long)]
    adopt_existing: bool,
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
    /// The `Custom::KedaScaledObject` properties these flags stand for.
    fn properties(&self) -> ScaledObjectProperties {
        let defaults = ScaledObjectProperties::new(
            &self.cluster,
            &self.namespace,
            &self.name,
            &self.target,
            &self.queue_url,
            &self.role_arn,
        );
        ScaledObjectProperties {
            queue_length: self.queue_length.unwrap_or(defaults.queue_length),
            min_replicas: self.min_replicas,
            max_replicas: self.max_replicas,
            polling_interval: self.polling_interval,
            cooldown_period: self.cooldown_period,
            adopt_existing: self.adopt_existing,
            ..defaults
        }
    }
}

impl ScaledObjectCommand {
    pub async fn run(self, context: &Context) -> anyhow::Result<ExitCode> {
        match self.action {
            ScaledObjectAction::Render(args) => {
                let (auth, scaled) = args.properties().render()?;
                match context.output {
                    Output::Json => println!("{}", serde_json::to_string_pretty(&json!([auth, scaled]))?),
                    Output::Text => print!(
                        "{}---\n{}",
                        serde_yaml_ng::to_string(&auth)?,
                        serde_yaml_ng::to_string(&scaled)?
                    ),
                }
                Ok(ExitCode::SUCCESS)
            }
            ScaledObjectAction::Apply(args) => apply("Create", &args, context).await,
            ScaledObjectAction::Delete(args) => apply("Delete", &args, context).await,
        }
    }
}

async fn apply(kind: &str, args: &ScaledObjectArgs, context: &Context) -> anyhow::Result<ExitCode> {
    let logical = format!("ScaledObject-{}-{}", args.namespace, args.name);
    let properties = args.properties();
    let request = request(
        kind,
        resources::SCALED_OBJECT,
        &logical,
        &properties.physical_id(),
        &properties,
    )?;
    Ok(respond(cluster_access(context).await?, request, context.output).await)
}
