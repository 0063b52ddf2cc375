//! The CloudFormation custom-resource types, one module each (typed properties, the checks
//! that need no call, outputs, handler), and [`Resources`], the one dispatcher that both
//! Lambdas, `kedaform invoke` and the tests run.
//!
//! Below this layer nothing speaks CloudFormation: the engine reports which input is wrong
//! ([`crate::Input`]) and each resource type names the property it came from.

mod cluster;
pub mod keda_install;
pub mod kube_manifest;
mod kubernetes;
pub mod scaled_object;
pub mod trust_policy;

use serde_json::Value;

pub use cluster::ClusterAccess;
pub use kubernetes::Kubernetes;
pub use trust_policy::TrustPolicy;

use crate::Error;
use crate::cfn::{CustomResource, Invocation, Outcome, UnknownKeys, decode_properties};

/// `Custom::KedaTrustPolicy` (the trust-policy Lambda).
pub const TRUST_POLICY: &str = "Custom::KedaTrustPolicy";
/// `Custom::KubernetesManifest` (the Kubernetes Lambda).
pub const MANIFEST: &str = "Custom::KubernetesManifest";
/// `Custom::KedaInstall` (the Kubernetes Lambda).
pub const KEDA_INSTALL: &str = "Custom::KedaInstall";
/// `Custom::KedaScaledObject` (the Kubernetes Lambda).
pub const SCALED_OBJECT: &str = "Custom::KedaScaledObject";
/// Every type kedaform serves.
pub const ALL: [&str; 4] = [TRUST_POLICY, MANIFEST, KEDA_INSTALL, SCALED_OBJECT];
/// The types the Kubernetes Lambda serves.
pub const KUBERNETES: [&str; 3] = [MANIFEST, KEDA_INSTALL, SCALED_OBJECT];

fn unsupported(resource_type: &str, served: &[&str]) -> Error {
    let list = match served {
        [] => String::from("nothing"),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    };
    Error::invalid(
        "ResourceType",
        format!("{resource_type} is not served by this function: use {list}"),
    )
}

/// The checks a Create makes before any call (decoding with unknown properties rejected,
/// role ARNs, manifest parsing, ScaledObject rendering), for tools that check a template.
pub fn check_properties(resource_type: &str, properties: &Value) -> Result<(), Error> {
    match resource_type {
        TRUST_POLICY => {
            decode_properties::<trust_policy::TrustPolicyProperties>(properties, UnknownKeys::Reject)?.validate()
        }
        other => kubernetes::Desired::decode(other, properties, UnknownKeys::Reject)?.validate(),
    }
}

/// Serves the resource types whose clients it was given, dispatching on `ResourceType`: the
/// trust-policy Lambda has IAM only, the Kubernetes Lambda cluster access only, the CLI both.
#[derive(Debug, Default)]
pub struct Resources {
    trust: Option<TrustPolicy>,
    kubernetes: Option<Kubernetes>,
}

impl Resources {
    /// `Custom::KedaTrustPolicy` through `iam`.
    #[must_use]
    pub fn with_trust_policy(mut self, iam: aws_sdk_iam::Client) -> Self {
        self.trust = Some(TrustPolicy::new(iam));
        self
    }

    /// The three Kubernetes types through `access`.
    #[must_use]
    pub fn with_kubernetes(mut self, access: ClusterAccess) -> Self {
        self.kubernetes = Some(Kubernetes::new(access));
        self
    }

    fn served(&self) -> Vec<&'static str> {
        ALL.into_iter()
            .filter(|t| {
                if *t == TRUST_POLICY {
                    self.trust.is_some()
                } else {
                    self.kubernetes.is_some()
                }
            })
            .collect()
    }

    fn trust(&self, resource_type: &str) -> Result<&TrustPolicy, Error> {
        self.trust
            .as_ref()
            .ok_or_else(|| unsupported(resource_type, &self.served()))
    }

    fn kubernetes(&self, resource_type: &str) -> Result<&Kubernetes, Error> {
        self.kubernetes
            .as_ref()
            .filter(|_| KUBERNETES.contains(&resource_type))
            .ok_or_else(|| unsupported(resource_type, &self.served()))
    }
}

impl CustomResource for Resources {
    type Properties = Value;

    async fn create(&self, invocation: &Invocation, properties: Value) -> Result<Outcome, Error> {
        let resource_type = invocation.resource_type.as_str();
        if resource_type == TRUST_POLICY {
            let properties = decode_properties(&properties, UnknownKeys::Reject)?;
            return self.trust(resource_type)?.create(invocation, properties).await;
        }
        self.kubernetes(resource_type)?.create(invocation, properties).await
    }

    async fn update(
        &self,
        invocation: &Invocation,
        physical_id: &str,
        properties: Value,
        old: Value,
    ) -> Result<Outcome, Error> {
        let resource_type = invocation.resource_type.as_str();
        if resource_type == TRUST_POLICY {
            let properties = decode_properties(&properties, UnknownKeys::Reject)?;
            let old = decode_properties(&old, UnknownKeys::Ignore)?;
            return self
                .trust(resource_type)?
                .update(invocation, physical_id, properties, old)
                .await;
        }
        self.kubernetes(resource_type)?
            .update(invocation, physical_id, properties, old)
            .await
    }

    async fn delete(&self, invocation: &Invocation, physical_id: &str, properties: Value) -> Result<(), Error> {
        let resource_type = invocation.resource_type.as_str();
        if resource_type == TRUST_POLICY {
            let properties = decode_properties(&properties, UnknownKeys::Ignore)?;
            return self
                .trust(resource_type)?
                .delete(invocation, physical_id, properties)
                .await;
        }
        self.kubernetes(resource_type)?
            .delete(invocation, physical_id, properties)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unserved_type_names_what_is_served() {
        assert_eq!(
            unsupported("Custom::Other", &[MANIFEST, KEDA_INSTALL, SCALED_OBJECT]).to_string(),
            "property ResourceType: Custom::Other is not served by this function: use \
             Custom::KubernetesManifest, Custom::KedaInstall or Custom::KedaScaledObject"
        );
        assert!(
            unsupported(MANIFEST, &[TRUST_POLICY])
                .to_string()
                .ends_with("use Custom::KedaTrustPolicy")
        );
    }
}
