//! `kedaform doctor`: why a ScaledObject does or does not scale, link by link, through the
//! library's [`kedaform::doctor`]. Reads only.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use kedaform::Input;
use kedaform::doctor::{Doctor, Finding, Report, Status, Target};

use crate::{Context, Output};

#[derive(Debug, Args)]
#[command(
    after_help = "Links: keda, metrics-api, operator-identity (the cluster); scaled-object, \
trigger-authentication, consumer-role, trust, queue, scaler, hpa, replicas (each ScaledObject).
A scaler, hpa or replicas link that only follows from a wrong link before it is reported as unknown.

Exit codes: 0 every link is ok, 1 a link is wrong or unknown (or the cluster cannot be read), 2 bad usage."
)]
pub struct DoctorArgs {
    #[arg(long, value_parser = crate::cluster_flag)]
    cluster: String,
    /// Examine this namespace's ScaledObjects (default: every namespace; with a NAME, `default`).
    #[arg(long)]
    namespace: Option<String>,
    /// One ScaledObject.
    #[arg(value_name = "NAME")]
    name: Option<String>,
}

impl DoctorArgs {
    pub async fn run(self, context: &Context) -> anyhow::Result<ExitCode> {
        let target = Target {
            namespace: self.namespace,
            name: self.name,
        };
        let flags = [(Input::Namespace, "--namespace"), (Input::ScaledObject, "NAME")];
        target.validate().map_err(|e| crate::flag_error(e.into(), &flags))?;
        let aws = context.aws().await;
        let access = crate::invoke::access(context, &aws).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let Some(applier) = access.connect(&self.cluster, deadline).await? else {
            anyhow::bail!("--cluster: EKS cluster {} does not exist", self.cluster);
        };
        let report = Doctor::new(&aws)
            .examine(applier.client(), &self.cluster, &target)
            .await
            .map_err(|e| crate::flag_error(e.into(), &flags))?;
        match context.output {
            Output::Json => {
                let mut json = serde_json::to_value(&report)?;
                json["healthy"] = report.healthy().into();
                println!("{}", serde_json::to_string_pretty(&json)?);
            }
            Output::Text => print!("{}", text(&report, &self.cluster)),
        }
        Ok(if report.healthy() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}

fn status(status: Status) -> &'static str {
    match status {
        Status::Ok => "ok",
        Status::Wrong => "WRONG",
        Status::Unknown => "unknown",
    }
}

fn lines(out: &mut String, findings: &[Finding]) {
    for finding in findings {
        let _ = writeln!(
            out,
            "  {:<8} {:<23} {}",
            status(finding.status),
            finding.link.name(),
            finding.detail
        );
        if let Some(fix) = &finding.fix {
            let _ = writeln!(out, "  {:<8} {:<23} fix: {fix}", "", "");
        }
    }
}

/// The report for people: a section per cluster and ScaledObject, a line per link, the fix
/// under a wrong one, and a count.
fn text(report: &Report, cluster: &str) -> String {
    let mut out = format!("cluster {cluster}\n");
    lines(&mut out, &report.cluster);
    for object in &report.scaled_objects {
        let _ = writeln!(out, "ScaledObject {}/{}", object.namespace, object.name);
        lines(&mut out, &object.findings);
    }
    if report.scaled_objects.is_empty() {
        out.push_str("no ScaledObject to examine\n");
    }
    let count = |wanted: Status| report.findings().filter(|f| f.status == wanted).count();
    let _ = writeln!(
        out,
        "{} wrong, {} unknown, {} ok",
        count(Status::Wrong),
        count(Status::Unknown),
        count(Status::Ok)
    );
    out
}
