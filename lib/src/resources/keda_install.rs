//! `Custom::KedaInstall`: KEDA's release manifest with the IRSA values `helm install --set`
//! used to carry, applied and waited for (operator, metrics API server, webhooks, APIService).

use kube::api::DynamicObject;
use serde::{Deserialize, Serialize};

use super::ClusterAccess;
use crate::cfn::{Invocation, Outcome};
use crate::iam::RoleArn;
use crate::keda::availability::{Availability, ComponentResources, TopologySpread};
use crate::keda::install::{self, DEFAULT_TOKEN_EXPIRATION, IdentityMode, Overlay};
use crate::{Error, Input};

/// Properties of `Custom::KedaInstall`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(clippy::struct_excessive_bools)] // CloudFormation properties: each its own switch on the wire
pub struct KedaInstallProperties {
    /// The cluster: an EKS cluster's name, or the kubeconfig's cluster for the CLI.
    pub cluster_name: String,
    /// KEDA's version, for the release manifest's URL (default [`install::DEFAULT_VERSION`]).
    #[serde(default = "default_version")]
    pub version: String,
    /// A mirror of the release manifest (`https://` or `s3://`) instead of GitHub's.
    #[serde(default, rename = "ManifestUrl", skip_serializing_if = "Option::is_none")]
    pub manifest_url: Option<String>,
    /// The manifest's SHA-256 (hex), checked before anything is applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_sha256: Option<String>,
    /// The role the operator's service account is annotated with.
    pub operator_role_arn: String,
    /// `irsa` (default) or `pod-identity`.
    #[serde(default = "irsa")]
    pub identity_mode: IdentityMode,
    /// The pod security context only clusters older than 1.19 needed.
    #[serde(default)]
    pub legacy_fs_group: bool,
    /// Seconds; the projected token's lifetime (default a day).
    #[serde(default = "one_day")]
    pub token_expiration: u32,
    /// Whether objects that exist and belong to no kedaform resource are taken over (applied,
    /// annotated `kedaform.io/adopted-by`, never deleted by this resource) instead of failing
    /// the request (default false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopt_existing: bool,
    /// Install a release older than the one running (default false). Going back to the release
    /// this install upgraded from (what CloudFormation's rollback does) needs no flag.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_downgrade: bool,
    /// Operator replicas, 1 to 10 (KEDA's default 1); they elect one leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_replicas: Option<i32>,
    /// Metrics API server replicas, 1 to 10 (KEDA's default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_server_replicas: Option<i32>,
    /// Admission webhook replicas, 1 to 10 (KEDA's default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_replicas: Option<i32>,
    /// A `PodDisruptionBudget` (`maxUnavailable: 1`) for each component with 2 replicas or more
    /// (default false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pod_disruption_budgets: bool,
    /// `zone` or `hostname`: spread each component's replicas (default: no constraint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_spread: Option<TopologySpread>,
    /// Requests and limits per component (`Operator`, `MetricsServer`, `Webhooks`; default the
    /// manifest's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ComponentResources>,
}

fn default_version() -> String {
    install::DEFAULT_VERSION.into()
}

fn irsa() -> IdentityMode {
    IdentityMode::Irsa
}

fn one_day() -> u32 {
    DEFAULT_TOKEN_EXPIRATION
}

impl KedaInstallProperties {
    /// IRSA for `operator_role_arn` with every other property at its default.
    pub fn new(cluster_name: impl Into<String>, operator_role_arn: impl Into<String>) -> Self {
        Self {
            cluster_name: cluster_name.into(),
            version: default_version(),
            manifest_url: None,
            manifest_sha256: None,
            operator_role_arn: operator_role_arn.into(),
            identity_mode: IdentityMode::Irsa,
            legacy_fs_group: false,
            token_expiration: DEFAULT_TOKEN_EXPIRATION,
            adopt_existing: false,
            allow_downgrade: false,
            operator_replicas: None,
            metrics_server_replicas: None,
            webhook_replicas: None,
            pod_disruption_budgets: false,
            topology_spread: None,
            resources: None,
        }
    }

    /// Where the manifest comes from: the mirror, or the release of `Version`.
    pub fn url(&self) -> String {
        self.manifest_url
            .clone()
            .unwrap_or_else(|| install::release_url(&self.version))
    }

    /// The changes to the release manifest these properties ask for.
    pub fn overlay(&self) -> Overlay {
        Overlay {
            operator_role_arn: self.operator_role_arn.clone(),
            identity: self.identity_mode,
            token_expiration: self.token_expiration,
            legacy_fs_group: self.legacy_fs_group,
            availability: Availability {
                operator_replicas: self.operator_replicas,
                metrics_server_replicas: self.metrics_server_replicas,
                webhook_replicas: self.webhook_replicas,
                pod_disruption_budgets: self.pod_disruption_budgets,
                topology_spread: self.topology_spread,
                resources: self.resources.clone().unwrap_or_default(),
            },
        }
    }

    /// The checks that need no call.
    pub fn validate(&self) -> Result<(), Error> {
        RoleArn::parse(Input::OperatorRole, &self.operator_role_arn)?;
        self.overlay().availability.validate()
    }

    /// The objects of `manifest` (the bytes at [`Self::url`]) as these properties install them.
    pub fn objects_of(&self, manifest: &[u8]) -> Result<Vec<DynamicObject>, Error> {
        install::objects(manifest, self.manifest_sha256.as_deref(), &self.overlay())
    }

    /// Fetches the manifest and returns its objects.
    pub async fn objects(&self, access: &ClusterAccess, invocation: &Invocation) -> Result<Vec<DynamicObject>, Error> {
        let url = self.url();
        invocation.step(format!("fetching the KEDA manifest {}", crate::fetch::shown(&url)));
        self.objects_of(&access.fetch(&url).await?)
    }

    /// One KEDA per cluster.
    pub fn physical_id(&self) -> String {
        format!("{}/keda", self.cluster_name)
    }

    /// `Fn::GetAtt` values, `HelmValues` among them: what `helm install --set` would have carried.
    pub fn outputs(&self, outcome: Outcome) -> Outcome {
        outcome
            .with("Version", self.version.clone())
            .with("OperatorRoleArn", self.operator_role_arn.clone())
            .with("HelmValues", install::helm_values(&self.overlay()))
    }
}
