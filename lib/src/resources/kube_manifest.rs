//! `Custom::KubernetesManifest`: any YAML, applied server-side in dependency order, pruned on
//! Update, waited for, deleted with the stack.

use kube::api::DynamicObject;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::cfn::Outcome;
use crate::kube::plan::{self, ObjectKey};

/// Properties of `Custom::KubernetesManifest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ManifestProperties {
    /// The cluster: an EKS cluster's name, or the kubeconfig's cluster for the CLI.
    pub cluster_name: String,
    /// One or many YAML documents.
    pub manifest: String,
    /// Whether the answer waits for every object to be ready (default true).
    #[serde(default = "yes")]
    pub wait_for_ready: bool,
    /// Whether objects that exist and belong to no kedaform resource are taken over (applied,
    /// annotated `kedaform.io/adopted-by`, never deleted by this resource) instead of failing
    /// the request (default false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopt_existing: bool,
}

fn yes() -> bool {
    true
}

impl ManifestProperties {
    /// The objects, parsed (no call needed).
    pub fn objects(&self) -> Result<Vec<DynamicObject>, Error> {
        plan::parse_manifest(&self.manifest)
    }

    /// One per stack resource (`owner`): the objects may change, the resource stays.
    pub fn physical_id(&self, owner: &str) -> String {
        format!("{}/{owner}", self.cluster_name)
    }

    /// `Fn::GetAtt` values: the objects, by kind and name.
    pub fn outputs(outcome: Outcome, objects: &[DynamicObject]) -> Outcome {
        outcome.with(
            "Objects",
            objects
                .iter()
                .map(|o| ObjectKey::of(o).to_string())
                .collect::<Vec<_>>()
                .join(", "),
        )
    }
}
