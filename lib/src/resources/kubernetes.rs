//! What the three Kubernetes resource types share: one cluster access, and one flow (apply in
//! order, prune what left the set, wait, delete only what the resource owns).

use kube::api::DynamicObject;
use serde_json::Value;

use super::keda_install::KedaInstallProperties;
use super::kube_manifest::ManifestProperties;
use super::scaled_object::ScaledObjectProperties;
use super::{ClusterAccess, KEDA_INSTALL, MANIFEST, SCALED_OBJECT};
use crate::cfn::{CustomResource, FAILED_CREATE_PREFIX, Invocation, Outcome, UnknownKeys, decode_properties};
use crate::keda::install;
use crate::kube::apply::Applier;
use crate::kube::plan::{self, Adoption};
use crate::{Error, Input};

/// A resource's properties, by type.
pub(super) enum Desired {
    Manifest(ManifestProperties),
    Keda(Box<KedaInstallProperties>),
    ScaledObject(Box<ScaledObjectProperties>),
}

impl Desired {
    pub(super) fn decode(resource_type: &str, properties: &Value, unknown: UnknownKeys) -> Result<Self, Error> {
        Ok(match resource_type {
            MANIFEST => Self::Manifest(decode_properties(properties, unknown)?),
            KEDA_INSTALL => Self::Keda(Box::new(decode_properties(properties, unknown)?)),
            SCALED_OBJECT => Self::ScaledObject(Box::new(decode_properties(properties, unknown)?)),
            other => return Err(super::unsupported(other, &super::KUBERNETES)),
        })
    }

    /// What this type calls the inputs the engine judges.
    fn names(&self) -> [(Input, &'static str); 5] {
        let manifest = match self {
            Self::Manifest(_) => "Manifest",
            Self::Keda(_) => "ManifestUrl",
            Self::ScaledObject(_) => "Name",
        };
        [
            (Input::Cluster, "ClusterName"),
            (Input::Manifest, manifest),
            (Input::ManifestUrl, "ManifestUrl"),
            (Input::ManifestDigest, "ManifestSha256"),
            (Input::OperatorRole, "OperatorRoleArn"),
        ]
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
            Self::Manifest(p) => p.physical_id(owner),
            Self::Keda(p) => p.physical_id(),
            Self::ScaledObject(p) => p.physical_id(),
        }
    }

    /// Checks that need no call, so bad input fails before any request.
    pub(super) fn validate(&self) -> Result<(), Error> {
        self.local_objects().map(drop).map_err(|e| e.named(&self.names()))
    }

    /// The objects when the properties alone give them (parsed or rendered once, which is also
    /// their check); `None` for KEDA's, which are fetched, after their own checks.
    fn local_objects(&self) -> Result<Option<Vec<DynamicObject>>, Error> {
        crate::eks::check_cluster_name(self.cluster())?;
        match self {
            Self::Manifest(p) => p.objects().map(Some),
            Self::Keda(p) => p.validate().map(|()| None),
            Self::ScaledObject(p) => p.objects().map(Some),
        }
    }

    async fn objects(&self, access: &ClusterAccess, invocation: &Invocation) -> Result<Vec<DynamicObject>, Error> {
        match self {
            Self::Keda(p) => p.objects(access, invocation).await,
            Self::Manifest(_) | Self::ScaledObject(_) => Ok(self.local_objects()?.unwrap_or_default()),
        }
    }

    fn adoption(&self) -> Adoption {
        let adopt = match self {
            Self::Manifest(p) => p.adopt_existing,
            Self::Keda(p) => p.adopt_existing,
            Self::ScaledObject(p) => p.adopt_existing,
        };
        if adopt { Adoption::Adopt } else { Adoption::Refuse }
    }

    fn wait(&self) -> bool {
        match self {
            Self::Manifest(p) => p.wait_for_ready,
            Self::Keda(_) | Self::ScaledObject(_) => true,
        }
    }

    fn outputs(&self, outcome: Outcome, objects: &[DynamicObject]) -> Outcome {
        let outcome = outcome.with("ObjectCount", objects.len().to_string());
        match self {
            Self::Manifest(_) => ManifestProperties::outputs(outcome, objects),
            Self::Keda(p) => p.outputs(outcome),
            Self::ScaledObject(p) => p.outputs(outcome),
        }
    }

    /// The same KEDA manifest yields the same objects: nothing to prune, nothing to fetch again.
    fn same_source(&self, previous: &Self) -> bool {
        matches!((previous, self), (Self::Keda(old), Self::Keda(new)) if old.url() == new.url())
    }
}

/// The handler of `Custom::KubernetesManifest`, `Custom::KedaInstall` and
/// `Custom::KedaScaledObject`, dispatching on `ResourceType`.
#[derive(Debug)]
pub struct Kubernetes {
    access: ClusterAccess,
}

impl Kubernetes {
    /// Reaching clusters through `access`.
    pub fn new(access: ClusterAccess) -> Self {
        Self { access }
    }

    /// Applies `desired`, prunes what `previous` had that it no longer has, waits if asked.
    async fn apply(
        &self,
        invocation: &Invocation,
        desired: &Desired,
        previous: Option<Desired>,
    ) -> Result<Outcome, Error> {
        // Checked (and, but for KEDA's, parsed) before any request: a 16 MiB manifest once.
        let local = desired.local_objects()?;
        if let Some(objects) = &local {
            self.access.scope().check(objects)?;
        }
        let owner = plan::owner(&invocation.stack_id, &invocation.logical_resource_id);
        let applier = self.access.require(invocation, desired.cluster()).await?;
        let mut objects = if let Some(objects) = local {
            objects
        } else {
            let objects = desired.objects(&self.access, invocation).await?;
            self.access.scope().check(&objects)?;
            objects
        };
        if let Desired::Keda(keda) = desired {
            release_change(&applier, keda, previous.as_ref(), &mut objects, invocation).await?;
        }
        invocation.step(format!(
            "applying {} objects to cluster {}",
            objects.len(),
            desired.cluster()
        ));
        let applied = applier
            .apply_all(objects.clone(), &owner, desired.adoption(), invocation.deadline())
            .await?;
        // A replacement (another physical id) prunes nothing: CloudFormation's Delete of the old
        // physical id removes the old objects once the update succeeded, and a rollback needs
        // them until then.
        let physical_id = desired.physical_id(&owner);
        if let Some(previous) = previous.filter(|p| p.physical_id(&owner) == physical_id && !desired.same_source(p)) {
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
        Ok(desired.outputs(Outcome::new(physical_id), &objects))
    }

    async fn remove(&self, invocation: &Invocation, desired: &Desired) -> Result<(), Error> {
        if crate::eks::check_cluster_name(desired.cluster()).is_err() {
            // Its Create failed on this name before any call: nothing was made anywhere.
            tracing::info!("the cluster name is not one; nothing was ever applied");
            return Ok(());
        }
        let Some(applier) = self.access.applier(invocation, desired.cluster()).await? else {
            tracing::info!(
                cluster = desired.cluster(),
                "the cluster is gone, and its objects with it"
            );
            return Ok(());
        };
        let owner = plan::owner(&invocation.stack_id, &invocation.logical_resource_id);
        let objects = desired.objects(&self.access, invocation).await?;
        if let Desired::Keda(_) = desired {
            keda_unused(&applier, desired.cluster(), &objects, &owner, invocation).await?;
        }
        invocation.step(format!(
            "deleting {} objects from cluster {}",
            objects.len(),
            desired.cluster()
        ));
        applier.delete_all(objects, &owner, invocation.deadline()).await
    }
}

/// A change of KEDA's release: refused when it is a downgrade not allowed
/// ([`install::check_downgrade`], judged against the operator running), and recorded on the
/// operator's Deployment when the Version changes, so that the way back is known.
async fn release_change(
    applier: &Applier,
    keda: &KedaInstallProperties,
    previous: Option<&Desired>,
    objects: &mut [DynamicObject],
    invocation: &Invocation,
) -> Result<(), Error> {
    if let Some(operator) = install::operator_deployment(objects) {
        invocation.step("reading the KEDA release running on the cluster");
        if let Some(running) = applier.current(operator, invocation.deadline()).await? {
            let label = |key: &str| {
                running
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(key))
                    .map(String::as_str)
            };
            let recorded = running
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(install::PREVIOUS_VERSION_ANNOTATION))
                .map(String::as_str);
            install::check_downgrade(
                &keda.version,
                label("app.kubernetes.io/version"),
                recorded,
                keda.allow_downgrade,
            )?;
        }
    }
    if let Some(Desired::Keda(old)) = previous
        && old.version != keda.version
    {
        install::record_previous(objects, &old.version);
    }
    Ok(())
}

/// Refuses to remove the KEDA operator this resource owns while KEDA's objects remain:
/// without it their finalizers never go, and KEDA's CRDs hang deleting. An operator another
/// owner applied is not removed anyway (`delete_all` leaves it), so nothing is refused then.
async fn keda_unused(
    applier: &Applier,
    cluster: &str,
    objects: &[DynamicObject],
    owner: &str,
    invocation: &Invocation,
) -> Result<(), Error> {
    let Some(operator) = crate::keda::install::operator_deployment(objects) else {
        return Ok(());
    };
    if !applier.owned(operator, owner, invocation.deadline()).await? {
        return Ok(());
    }
    invocation.step("looking for KEDA objects still on the cluster");
    let mut users = Vec::new();
    for resource in crate::keda::install::managed_kinds() {
        users.extend(applier.list_all(&resource).await?.iter().map(ToString::to_string));
    }
    if users.is_empty() {
        return Ok(());
    }
    Err(Error::InUse {
        what: format!("KEDA on cluster {cluster}"),
        users,
    })
}

impl CustomResource for Kubernetes {
    type Properties = Value;

    async fn create(&self, invocation: &Invocation, properties: Value) -> Result<Outcome, Error> {
        let desired = Desired::decode(&invocation.resource_type, &properties, UnknownKeys::Reject)?;
        self.apply(invocation, &desired, None)
            .await
            .map_err(|e| e.named(&desired.names()))
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
        self.apply(invocation, &desired, previous)
            .await
            .map_err(|e| e.named(&desired.names()))
    }

    async fn delete(&self, invocation: &Invocation, physical_id: &str, properties: Value) -> Result<(), Error> {
        // A failed Create checked its properties (and KEDA's manifest) before applying anything:
        // if they do not pass now, it applied nothing.
        let failed_create = physical_id.starts_with(FAILED_CREATE_PREFIX);
        let refused = |error: &Error| {
            failed_create
                && matches!(
                    error,
                    Error::InvalidProperty { .. } | Error::Invalid { .. } | Error::UnknownProperties(_)
                )
        };
        let desired = match Desired::decode(&invocation.resource_type, &properties, UnknownKeys::Ignore) {
            Err(error) if refused(&error) => {
                tracing::info!("its Create failed on its properties: nothing was applied");
                return Ok(());
            }
            decoded => decoded?,
        };
        match self.remove(invocation, &desired).await {
            Err(error) if refused(&error) => {
                tracing::info!("its Create failed on its properties: nothing was applied");
                Ok(())
            }
            removed => removed.map_err(|e| e.named(&desired.names())),
        }
    }

    /// A Create that applied objects and then failed (a readiness wait, an expired token, its
    /// deadline) leaves them labelled with this resource's owner; the rollback's Delete removes
    /// those and only those.
    fn deletes_after_failed_create(&self, _resource_type: &str) -> bool {
        true
    }
}
