//! `kedaform`: every custom-resource operation from a laptop. Cluster and trust operations go
//! through the same handlers as the Lambdas, as CloudFormation requests that are answered
//! here instead of to a response URL.
//!
//! Exit codes: 0 done, 1 the operation failed (the reason is printed), 2 bad usage.

// Doc comments here are `--help` text, where Markdown backticks would print as they are.
#![allow(clippy::doc_markdown)]

mod demo;
mod doctor;
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
  kedaform invoke --event request.json    # replay a CloudFormation request locally
  kedaform doctor --cluster sales --namespace sales consumer   # why it does not scale"
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
    /// Why a ScaledObject does or does not scale: KEDA, the metrics API, the operator's
    /// identity, the TriggerAuthentication, the consumer role and its trust, the queue, KEDA's
    /// events, the HPA and the replicas, each ok, wrong (with the fix) or unknown. Reads only.
    Doctor(doctor::DoctorArgs),
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
        kedaform_common::aws::load().await
    }
}

/// `--cluster`, checked by clap so that a bad name is a usage error (exit 2) naming the flag.
pub fn cluster_flag(name: &str) -> Result<String, String> {
    kedaform::eks::check_cluster_name(name)
        .map(|()| name.to_owned())
        .map_err(|e| e.to_string())
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
        Command::Doctor(args) => args.run(&context).await,
    }
}

/// SIGINT or SIGTERM, by name; never returns when signals cannot be watched.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    }
}

/// What an interrupted command leaves, and how to finish or undo it.
fn interruption(signal: &str, record: &progress::Record) -> String {
    let during = record
        .step
        .as_ref()
        .map(|step| format!(" while {step}"))
        .unwrap_or_default();
    if record.changes.is_empty() {
        return format!("interrupted by {signal}{during}: nothing was applied or deleted.");
    }
    format!(
        "interrupted by {signal}{during}. Done before the interruption ({}): {}. Nothing else was changed. To \
         finish, run the same command again (an apply takes up where it stopped); to undo an install or apply, \
         run its uninstall or delete with the same flags (it removes only what kedaform applied).",
        record.changes.len(),
        record.changes.join(", ")
    )
}

/// The flag or property a message names first (`--cluster: …`, `property Manifest: …`).
fn input_at_fault(message: &str) -> Option<&str> {
    let (head, _) = message.split_once(": ")?;
    let name = head.strip_prefix("property ").unwrap_or(head);
    (name.starts_with("--") || head.starts_with("property ")).then_some(name)
}

/// A failure: on stderr as text, or on stdout as one JSON object with `--output json`.
fn fail(output: Output, message: &str, input: Option<&str>, code: u8) -> ExitCode {
    match output {
        Output::Json => println!(
            "{}",
            serde_json::json!({"error": {"message": message, "input": input, "exitCode": code}})
        ),
        Output::Text => eprintln!("error: {message}"),
    }
    ExitCode::from(code)
}

/// `--output json` as the arguments give it, for errors before the arguments are parsed.
fn json_asked() -> bool {
    let arguments: Vec<String> = std::env::args().collect();
    arguments.windows(2).any(|w| w[0] == "--output" && w[1] == "json") || arguments.iter().any(|a| a == "--output=json")
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if error.use_stderr() && json_asked() => {
            let rendered = error.to_string();
            // clap's text without its usage and help lines, on one line.
            let head = rendered.split("\n\nUsage:").next().unwrap_or_default();
            let message = head
                .trim_start_matches("error: ")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            let flag = error
                .get(clap::error::ContextKind::InvalidArg)
                .map(|f| f.to_string().split_whitespace().next().unwrap_or_default().to_owned());
            return fail(Output::Json, &message, flag.as_deref(), 2);
        }
        Err(error) => error.exit(),
    };
    let output = cli.output;
    let spinner = progress::start();
    let result = tokio::select! {
        result = Box::pin(run(cli)) => result,
        signal = interrupted() => {
            if let Some(spinner) = &spinner {
                spinner.finish_and_clear();
            }
            let message = interruption(signal, &progress::record());
            fail(output, &message, None, 130);
            // At once: returning would drop the runtime, which waits for a blocking read that may
            // never end (a FIFO with no writer named by --manifest).
            std::process::exit(130);
        }
    };
    if let Some(spinner) = spinner {
        spinner.finish_and_clear();
    }
    match result {
        Ok(code) => code,
        Err(error) => {
            let message = kedaform_common::error_chain(error.as_ref());
            fail(output, &message, input_at_fault(&message), 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_input_at_fault_is_the_flag_or_property_named_first() {
        assert_eq!(input_at_fault("--cluster: sales is not the cluster"), Some("--cluster"));
        assert_eq!(input_at_fault("property Manifest: document 1"), Some("Manifest"));
        assert_eq!(input_at_fault("IAM GetRole on role x failed: AccessDenied"), None);
        assert_eq!(input_at_fault("no colon"), None);
    }

    #[test]
    fn an_interruption_says_what_was_done_and_how_to_finish_or_undo() {
        let record = progress::Record {
            step: Some("applying 24 objects to cluster sales".into()),
            changes: vec![
                "applied Namespace keda".into(),
                "applied CustomResourceDefinition.apiextensions.k8s.io scaledobjects.keda.sh".into(),
            ],
        };
        let message = interruption("SIGINT", &record);
        assert!(message.starts_with("interrupted by SIGINT while applying 24 objects to cluster sales. Done before the interruption (2): applied Namespace keda, applied"), "{message}");
        assert!(
            message.contains("run the same command again") && message.contains("uninstall or delete"),
            "{message}"
        );
        assert_eq!(
            interruption("SIGTERM", &progress::Record::default()),
            "interrupted by SIGTERM: nothing was applied or deleted."
        );
    }
}
