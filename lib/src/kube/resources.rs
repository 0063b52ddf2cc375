//! The Kubernetes custom resources: `Custom::KubernetesManifest`, `Custom::KedaInstall` and
//! `Custom::KedaScaledObject`, served by one Lambda (one permission boundary: the EKS access
//! entry, `eks:DescribeCluster`, and `s3:GetObject` for s3:// manifests).

use ::kube::api::DynamicObject;
use aws_credential_types::provider::SharedCredentialsProvider;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::apply::Applier;
use super::plan::{self, ObjectKey};
use crate::Error;
use crate::cfn::{CustomResource, Invocation, Outcome, UnknownKeys, decode_properties};
use crate::eks;
use crate::fetch::Fetcher;
use crate::keda::install::{self, IdentityMode, Overlay};
use crate::keda::scaled_object::ScaledObjectProperties;

/// Reaches clusters by name: `DescribeCluster`, a token minted in process, a client.
pub struct ClusterAccess {
    eks: aws_sdk_eks::Client,
    fetcher: Fetcher,
    credentials: SharedCredentialsProvider,
    region: String,
    kubeconfig: Option<super::Kubeconfig>,
}

impl std::fmt::Debug for ClusterAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterAccess")
            .field("region", &self.region)
            .field("kubeconfig", &self.kubeconfig)
            .finish_non_exhaustive()
    }
}

impl ClusterAccess {
    /// From the one AWS configuration; `eks` and `s3` are passed so a caller can point them
    /// elsewhere.
    pub fn new(
        config: &aws_config::SdkConfig,
        eks: aws_sdk_eks::Client,
        s3: aws_sdk_s3::Client,
    ) -> Result<Self, Error> {
        Ok(Self {
            eks,
            fetcher: Fetcher::new(s3),
            credentials: config
                .credentials_provider()
                .ok_or_else(|| Error::Token("no AWS credentials are configured".into()))?,
            region: config
                .region()
                .map(ToString::to_string)
                .ok_or_else(|| Error::Token("no AWS region is configured".into()))?,
            kubeconfig: None,
        })
    }

    /// Any cluster, not only EKS: the cluster of `kubeconfig`'s current context serves the
    /// `ClusterName` that matches it, and no other (local clusters, clusters outside EKS).
    #[must_use]
    pub fn with_kubeconfig(mut self, kubeconfig: super::Kubeconfig) -> Self {
        self.kubeconfig = Some(kubeconfig);
        self
    }

    /// An applier for the cluster, or None when the cluster does not exist.
    pub async fn applier(&self, invocation: &Invocation, cluster: &str) -> Result<Option<Applier>, Error> {
        if let Some(kubeconfig) = &self.kubeconfig {
            invocation.step(format!(
                "connecting to cluster {cluster} of kubeconfig {}",
                kubeconfig.path
            ));
            return Ok(Some(Applier::new(kubeconfig.client(cluster)?)));
        }
        invocation.step(format!("describing EKS cluster {cluster}"));
        let Some(cluster) = eks::describe(&self.eks, cluster, invocation.deadline()).await? else {
            return Ok(None);
        };
        let token = eks::TokenFile::start(
            self.credentials.clone(),
            self.region.clone(),
            cluster.name.clone(),
            eks::TOKEN_REFRESH,
        )
        .await?;
        let client = eks::kube_client(&cluster, &token.bearer()).await?;
        Ok(Some(Applier::with_token_file(client, token)))
    }

    async fn require(&self, invocation: &Invocation, cluster: &str) -> Result<Applier, Error> {
        self.applier(invocation, cluster).await?.ok_or_else(|| {
            Error::invalid(
                "ClusterName",
                format!("EKS cluster {cluster} does not exist in {}", self.region),
            )
        })
    }

    /// Allows plain `http://` manifest URLs (local mirrors, tests): see [`Fetcher::allow_plain_http`].
    #[must_use]
    pub fn allow_plain_http(mut self) -> Self {
        self.fetcher = self.fetcher.allow_plain_http();
        self
    }

    /// The manifest at `url` (`https://…` or `s3://bucket/key`), bounded and checked.
    pub async fn fetch(&self, url: &str) -> Result<Vec<u8>, Error> {
        self.fetcher.fetch("ManifestUrl", url).await
    }
}

/// Properties of `Custom::KubernetesManifest`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ManifestProperties {
    pub cluster_name: String,
    /// One or many YAML documents.
    pub manifest: String,
    #[serde(default = "yes")]
    pub wait_for_ready: bool,
}

/// Properties of `Custom::KedaInstall`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KedaInstallProperties {
    pub cluster_name: String,
    #[serde(default = "default_version")]
    pub version: String,
    #[serde(default, rename = "ManifestUrl")]
    pub manifest_url: Option<String>,
    #[serde(default)]
    pub manifest_sha256: Option<String>,
    pub operator_role_arn: String,
    #[serde(default = "irsa")]
    pub identity_mode: IdentityMode,
    #[serde(default)]
    pub legacy_fs_group: bool,
    #[serde(default = "one_day")]
    pub token_expiration: u32,
}

fn yes() -> bool {
    true
}

fn default_version() -> String {
    install::DEFAULT_VERSION.into()
}

fn irsa() -> IdentityMode {
    IdentityMode::Irsa
}

fn one_day() -> u32 {
    86_400
}

impl KedaInstallProperties {
    fn url(&self) -> String {
        self.manifest_url
            .clone()
            .unwrap_or_else(|| install::release_url(&self.version))
    }

    fn overlay(&self) -> Overlay {
        Overlay {
            operator_role_arn: self.operator_role_arn.clone(),
            identity: self.identity_mode,
            token_expiration: self.token_expiration,
            legacy_fs_group: self.legacy_fs_group,
        }
    }
}

/// Serves the three resource types of this module, dispatching on `ResourceType`.
#[derive(Debug)]
pub struct KubeResources {
    access: ClusterAccess,
}

pub const MANIFEST: &str = "Custom::KubernetesManifest";
pub const KEDA_INSTALL: &str = "Custom::KedaInstall";
pub const SCALED_OBJECT: &str = "Custom::KedaScaledObject";

fn decode<P: DeserializeOwned>(properties: &Value, unknown: UnknownKeys) -> Result<P, Error> {
    decode_properties(properties, unknown)
}

fn unsupported(resource_type: &str) -> Error {
    Error::invalid(
        "ResourceType",
        format!("{resource_type} is not served by this function: use {MANIFEST}, {KEDA_INSTALL} or {SCALED_OBJECT}"),
    )
}

/// The checks a Create makes before any call (decoding with unknown properties rejected,
/// manifest parsing, ScaledObject rendering), for tools that check a template's properties.
pub fn check_properties(resource_type: &str, properties: &Value) -> Result<(), Error> {
    Desired::decode(resource_type, properties, UnknownKeys::Reject)?.validate()
}

/// What a resource's objects are, for apply, prune and delete.
enum Desired {
    Manifest(ManifestProperties),
    Keda(KedaInstallProperties),
    ScaledObject(Box<ScaledObjectProperties>),
}

impl Desired {
    fn decode(resource_type: &str, properties: &Value, unknown: UnknownKeys) -> Result<Self, Error> {
        Ok(match resource_type {
            MANIFEST => Self::Manifest(decode(properties, unknown)?),
            KEDA_INSTALL => Self::Keda(decode(properties, unknown)?),
            SCALED_OBJECT => Self::ScaledObject(Box::new(decode(properties, unknown)?)),
            other => return Err(unsupported(other)),
        })
    }

    fn cluster(&self) -> &str {
        match self {
            Self::Manifest(p) => &p.cluster_name,
            Self::Keda(p) => &p.cluster_name,
            Self::ScaledObject(p) => &p.cluster_name,
        }
    }

    /// Stable per thing managed; a change means replacement.
    fn physical_id(&self, owner: &str) -> String {
        match self {
            Self::Manifest(p) => format!("{}/{owner}", p.cluster_name),
            Self::Keda(p) => format!("{}/keda", p.cluster_name),
            Self::ScaledObject(p) => format!("{}/{}/{}", p.cluster_name, p.namespace, p.name),
        }
    }

    /// Checks that need no call, so bad input fails before any request.
    fn validate(&self) -> Result<(), Error> {
        match self {
            Self::Manifest(p) => plan::parse_manifest("Manifest", &p.manifest).map(|_| ()),
            Self::Keda(p) => crate::iam::RoleArn::parse("OperatorRoleArn", &p.operator_role_arn).map(|_| ()),
            Self::ScaledObject(p) => p.render().map(|_| ()),
        }
    }

    async fn objects(&self, access: &ClusterAccess, invocation: &Invocation) -> Result<Vec<DynamicObject>, Error> {
        match self {
            Self::Manifest(p) => plan::parse_manifest("Manifest", &p.manifest),
            Self::Keda(p) => {
                let url = p.url();
                invocation.step(format!("fetching the KEDA manifest {url}"));
                let manifest = access.fetch(&url).await?;
                if let Some(expected) = &p.manifest_sha256 {
                    install::verify(&manifest, expected)?;
                }
                let text = String::from_utf8(manifest)
                    .map_err(|_| Error::invalid("ManifestUrl", format!("{url} is not UTF-8 YAML")))?;
                let mut objects = plan::parse_manifest("ManifestUrl", &text)?;
                install::apply_overlay(&mut objects, &p.overlay())?;
                Ok(objects)
            }
            Self::ScaledObject(p) => {
                let (auth, scaled) = p.render()?;
                let to_dynamic = |value: Value| {
                    serde_json::from_value::<DynamicObject>(value).map_err(|e| Error::invalid("Name", e.to_string()))
                };
                Ok(vec![
                    to_dynamic(serde_json::to_value(auth).unwrap_or_default())?,
                    to_dynamic(serde_json::to_value(scaled).unwrap_or_default())?,
                ])
            }
        }
    }

    fn wait(&self) -> bool {
        match self {
            Self::Manifest(p) => p.wait_for_ready,
            Self::Keda(_) | Self::ScaledObject(_) => true,
        }
    }

    fn data(&self, outcome: Outcome, objects: &[DynamicObject]) -> Outcome {
        let outcome = outcome.with("ObjectCount", objects.len().to_string());
        match self {
            Self::Manifest(_) => outcome.with(
                "Objects",
                objects
                    .iter()
                    .map(|o| ObjectKey::of(o).to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            Self::Keda(p) => outcome
                .with("Version", p.version.clone())
                .with("OperatorRoleArn", p.operator_role_arn.clone())
                .with("HelmValues", install::helm_values(&p.overlay())),
            Self::ScaledObject(p) => outcome
                .with("ScaledObjectName", p.name.clone())
                .with("TriggerAuthenticationName", p.trigger_authentication_name()),
        }
    }
}

impl KubeResources {
    pub fn new(access: ClusterAccess) -> Self {
        Self { access }
    }

    /// Applies `desired`, prunes what `previous` had that it no longer has, waits if asked.
    async fn apply(
        &self,
        invocation: &Invocation,
        desired: Desired,
        previous: Option<Desired>,
    ) -> Result<Outcome, Error> {
        desired.validate()?;
        let owner = plan::owner(&invocation.stack_id, &invocation.logical_resource_id);
        let applier = self.access.require(invocation, desired.cluster()).await?;
        let objects = desired.objects(&self.access, invocation).await?;
        invocation.step(format!(
            "applying {} objects to cluster {}",
            objects.len(),
            desired.cluster()
        ));
        let applied = applier
            .apply_all(objects.clone(), &owner, invocation.deadline())
            .await?;
        // The same KEDA manifest yields the same objects: nothing to prune, nothing to fetch again.
        let unchanged_source =
            |p: &Desired| matches!((p, &desired), (Desired::Keda(old), Desired::Keda(new)) if old.url() == new.url());
        if let Some(previous) = previous.filter(|p| p.cluster() == desired.cluster() && !unchanged_source(p)) {
            let before = previous.objects(&self.access, invocation).await?;
            let gone = plan::pruned(&before, &objects);
            if !gone.is_empty() {
                invocation.step(format!("pruning {} objects that left the set", gone.len()));
                applier.delete_all(gone, &owner, invocation.deadline()).await?;
            }
        }
        if desired.wait() {
            invocation.step(format!("waiting for {} objects to be ready", applied.len()));
            applier.wait_ready(&applied, invocation.deadline()).await?;
        }
        Ok(desired.data(Outcome::new(desired.physical_id(&owner)), &objects))
    }
}

impl CustomResource for KubeResources {
    type Properties = Value;

    async fn create(&self, invocation: &Invocation, properties: Value) -> Result<Outcome, Error> {
        let desired = Desired::decode(&invocation.resource_type, &properties, UnknownKeys::Reject)?;
        self.apply(invocation, desired, None).await
    }

    async fn update(
        &self,
        invocation: &Invocation,
        _physical_id: &str,
        properties: Value,
        old: Value,
    ) -> Result<Outcome, Error> {
        let desired = Desired::decode(&invocation.resource_type, &properties, UnknownKeys::Reject)?;
        let previous = Desired::decode(&invocation.resource_type, &old, UnknownKeys::Ignore).ok();
        self.apply(invocation, desired, previous).await
    }

    async fn delete(&self, invocation: &Invocation, _physical_id: &str, properties: Value) -> Result<(), Error> {
        let desired = Desired::decode(&invocation.resource_type, &properties, UnknownKeys::Ignore)?;
        let Some(applier) = self.access.applier(invocation, desired.cluster()).await? else {
            tracing::info!(
                cluster = desired.cluster(),
                "the cluster is gone, and its objects with it"
            );
            return Ok(());
        };
        let owner = plan::owner(&invocation.stack_id, &invocation.logical_resource_id);
        let objects = desired.objects(&self.access, invocation).await?;
        invocation.step(format!(
            "deleting {} objects from cluster {}",
            objects.len(),
            desired.cluster()
        ));
        applier.delete_all(objects, &owner, invocation.deadline()).await
    }
}
