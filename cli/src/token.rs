//! `kedaform token`: an ExecCredential with an EKS token minted in process, like
//! `aws eks get-token`, for a kubeconfig's exec plugin.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use aws_credential_types::provider::ProvideCredentials as _;
use clap::Args;
use serde_json::json;

use crate::Context;

#[derive(Debug, Args)]
pub struct TokenCommand {
    #[arg(long, value_parser = crate::cluster_flag)]
    cluster: String,
}

impl TokenCommand {
    pub async fn run(self, context: &Context) -> anyhow::Result<ExitCode> {
        exec_credential(&self.cluster, &context.aws().await).await
    }
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
