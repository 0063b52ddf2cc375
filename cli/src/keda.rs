//! `kedaform keda`: KEDA's release manifest rendered with the IRSA overlay, installed or
//! removed through the `Custom::KedaInstall` handler.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use kedaform::keda::install::{self, IdentityMode};
use kedaform::kube::plan;
use kedaform::resources::keda_install::KedaInstallProperties;
use kedaform::{Input, resources};
use serde_json::{Value, json};

use crate::invoke::{cluster_access, request, respond};
use crate::{Context, Output, flag_error};

/// What the flags of these commands are called, for errors about them.
const FLAGS: [(Input, &str); 4] = [
    (Input::Manifest, "--manifest"),
    (Input::ManifestUrl, "--manifest"),
    (Input::ManifestDigest, "--manifest-sha256"),
    (Input::OperatorRole, "--operator-role"),
];

#[derive(Debug, Args)]
pub struct KedaCommand {
    #[command(subcommand)]
    action: KedaAction,
}

#[derive(Debug, Args)]
#[allow(clippy::struct_excessive_bools)] // flags: each its own switch
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
    /// Take over KEDA objects that exist and that no kedaform resource made (a KEDA installed
    /// by hand or by Helm): they are applied, and never deleted by kedaform.
    #[arg(long)]
    adopt_existing: bool,
    /// Install a release older than the one running on the cluster.
    #[arg(long)]
    allow_downgrade: bool,
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
        #[arg(long, value_parser = crate::cluster_flag)]
        cluster: String,
        #[command(flatten)]
        keda: KedaArgs,
    },
    /// Remove what `install` applied.
    Uninstall {
        #[arg(long, value_parser = crate::cluster_flag)]
        cluster: String,
        #[command(flatten)]
        keda: KedaArgs,
    },
}

impl KedaArgs {
    /// The `Custom::KedaInstall` properties these flags stand for; a local `--manifest` becomes
    /// the `file://` URL that only the CLI's fetcher reads.
    fn properties(&self, cluster: &str) -> anyhow::Result<KedaInstallProperties> {
        Ok(KedaInstallProperties {
            version: self.version.clone(),
            manifest_url: self.manifest.as_deref().map(manifest_url).transpose()?,
            manifest_sha256: self.manifest_sha256.clone(),
            identity_mode: if self.pod_identity {
                IdentityMode::PodIdentity
            } else {
                IdentityMode::Irsa
            },
            legacy_fs_group: self.legacy_fs_group,
            adopt_existing: self.adopt_existing,
            allow_downgrade: self.allow_downgrade,
            ..KedaInstallProperties::new(cluster, &self.operator_role)
        })
    }
}

/// `--manifest` as a URL: https://, s3:// and http:// as typed, anything else a local path.
pub fn manifest_url(location: &str) -> anyhow::Result<String> {
    if location.contains("://") {
        return Ok(location.to_owned());
    }
    let path = std::path::absolute(location).map_err(|e| anyhow::anyhow!("{location} cannot be read: {e}"))?;
    let url = kedaform::fetch::file_url(&path).ok_or_else(|| anyhow::anyhow!("{location} is not a file path"))?;
    Ok(url)
}

impl KedaCommand {
    pub async fn run(self, context: &Context) -> anyhow::Result<ExitCode> {
        match self.action {
            KedaAction::Render { keda, helm_values } => render(&keda, helm_values, context.output).await,
            KedaAction::Install { cluster, keda } => install("Create", &cluster, &keda, context).await,
            KedaAction::Uninstall { cluster, keda } => install("Delete", &cluster, &keda, context).await,
        }
        .map_err(|e| flag_error(e, &FLAGS))
    }
}

async fn install(kind: &str, cluster: &str, keda: &KedaArgs, context: &Context) -> anyhow::Result<ExitCode> {
    let properties = keda.properties(cluster)?;
    let request = request(
        kind,
        resources::KEDA_INSTALL,
        "KedaInstall",
        &properties.physical_id(),
        &properties,
    )?;
    Ok(respond(cluster_access(context).await?, request, context.output).await)
}

/// KEDA's manifest from a URL: https://, s3:// and, because the user typed it, http:// and
/// file://. Only an s3:// location loads the AWS settings.
pub async fn read_manifest(url: &str) -> anyhow::Result<Vec<u8>> {
    let fetcher = if url.starts_with("s3://") {
        kedaform::fetch::Fetcher::new(kedaform_common::aws::s3(&kedaform_common::aws::load().await))
    } else {
        kedaform::fetch::Fetcher::without_s3()
    };
    Ok(fetcher.allow_plain_http().allow_local_files().fetch(url).await?)
}

async fn render(keda: &KedaArgs, helm_values: bool, output: Output) -> anyhow::Result<ExitCode> {
    let properties = keda.properties("")?;
    // The same checks as `install`: what renders here installs there.
    properties.validate()?;
    if helm_values {
        let values = install::helm_values(&properties.overlay());
        match output {
            Output::Text => print!("{values}"),
            Output::Json => {
                let values: Value = serde_yaml_ng::from_str(&values)?;
                println!("{}", serde_json::to_string_pretty(&values)?);
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let objects = plan::apply_order(properties.objects_of(&read_manifest(&properties.url()).await?)?);
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
