//! `kedaform`: every custom-resource operation from a laptop. Cluster and trust operations go
//! through the same handlers as the Lambdas, as CloudFormation requests that are answered
//! here instead of to a response URL.
//!
//! Exit codes: 0 done, 1 the operation failed (the reason is printed), 2 bad usage.

// Doc comments here are `--help` text, where Markdown backticks would print as they are.
#![allow(clippy::doc_markdown)]

mod demo;
mod invoke;
mod keda;
mod plan;
mod progress;
mod scaled_object;
mod token;
mod trust;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use kedaform::Input;

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

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For people.
    Text,
    /// For programs.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The consumer role's trust policy (Custom::KedaTrustPolicy).
    Trust(trust::TrustCommand),
    /// KEDA itself (Custom::KedaInstall).
    Keda(keda::KedaCommand),
    /// The TriggerAuthentication and ScaledObject (Custom::KedaScaledObject).
    Scaledobject(scaled_object::ScaledObjectCommand),
    /// Print an ExecCredential with an EKS token, like `aws eks get-token`.
    Token(token::TokenCommand),
    /// Predict how a ScaledObject behaves on given traffic, and search for the cheapest
    /// settings that keep the oldest message under an age.
    Plan(plan::PlanArgs),
    /// The whole system on this machine against an AWS emulator (moto): trust policy, KEDA
    /// render, producer and a consumer fleet scaled by a local stand-in for KEDA + HPA.
    Demo(demo::DemoArgs),
    /// Run a CloudFormation custom-resource request through the matching handler and print
    /// the response it would send.
    Invoke(invoke::InvokeCommand),
}

/// What every subcommand may need: the output format, the kubeconfig, AWS settings on demand.
#[derive(Debug)]
pub struct Context {
    /// `--output`.
    pub output: Output,
    /// `--kubeconfig`.
    pub kubeconfig: Option<PathBuf>,
}

impl Context {
    /// Loaded only by the commands that call AWS: the offline ones must not look for a region
    /// or credentials (the instance metadata service among the places searched).
    pub async fn aws(&self) -> aws_config::SdkConfig {
        kedaform::aws::load().await
    }
}

/// An error about an input, named by the flag it came from (`flags`: input → flag).
pub fn flag_error(error: anyhow::Error, flags: &[(Input, &str)]) -> anyhow::Error {
    match error.downcast::<kedaform::Error>() {
        Ok(kedaform::Error::Invalid { input, message }) => match flags.iter().find(|(known, _)| *known == input) {
            Some((_, flag)) => anyhow::anyhow!("{flag}: {message}"),
            None => kedaform::Error::Invalid { input, message }.into(),
        },
        Ok(other) => other.into(),
        Err(error) => error,
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let context = Context {
        output: cli.output,
        kubeconfig: cli.kubeconfig,
    };
    match cli.command {
        Command::Trust(command) => command.run(&context).await,
        Command::Keda(command) => command.run(&context).await,
        Command::Scaledobject(command) => command.run(&context).await,
        Command::Token(command) => command.run(&context).await,
        Command::Plan(args) => args.run(context.output),
        Command::Demo(args) => Box::pin(demo::run(&args, &context)).await,
        Command::Invoke(command) => command.run(&context).await,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let spinner = progress::start();
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
