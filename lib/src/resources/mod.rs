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

use std::future::Future;
use std::pin::Pin;

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
    trust: Option<Box<dyn Handler>>,
    kubernetes: Option<Box<dyn Handler>>,
}

type Answer<'a, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>>;

/// A family of types behind [`Resources`], as a trait object: a family's code is linked into a
/// binary only when that binary registers it, so the trust-policy Lambda carries no
/// Kubernetes client.
trait Handler: Send + Sync + std::fmt::Debug {
    fn create<'a>(&'a self, invocation: &'a Invocation, properties: Value) -> Answer<'a, Outcome>;
    fn update<'a>(
        &'a self,
        invocation: &'a Invocation,
        physical_id: &'a str,
        properties: Value,
        old: Value,
    ) -> Answer<'a, Outcome>;
    fn delete<'a>(&'a self, invocation: &'a Invocation, physical_id: &'a str, properties: Value) -> Answer<'a, ()>;
    fn deletes_after_failed_create(&self, resource_type: &str) -> bool;
}

impl Handler for TrustPolicy {
    fn create<'a>(&'a self, invocation: &'a Invocation, properties: Value) -> Answer<'a, Outcome> {
        Box::pin(async move {
            let properties = decode_properties(&properties, UnknownKeys::Reject)?;
            CustomResource::create(self, invocation, properties).await
        })
    }

    fn update<'a>(
        &'a self,
        invocation: &'a Invocation,
        physical_id: &'a str,
        properties: Value,
        old: Value,
    ) -> Answer<'a, Outcome> {
        Box::pin(async move {
            let properties = decode_properties(&properties, UnknownKeys::Reject)?;
            let old = decode_properties(&old, UnknownKeys::Ignore)?;
            CustomResource::update(self, invocation, physical_id, properties, old).await
        })
    }

    fn delete<'a>(&'a self, invocation: &'a Invocation, physical_id: &'a str, properties: Value) -> Answer<'a, ()> {
        Box::pin(async move {
            let properties = decode_properties(&properties, UnknownKeys::Ignore)?;
            CustomResource::delete(self, invocation, physical_id, properties).await
        })
    }

    fn deletes_after_failed_create(&self, resource_type: &str) -> bool {
        CustomResource::deletes_after_failed_create(self, resource_type)
    }
}

impl Handler for Kubernetes {
    fn create<'a>(&'a self, invocation: &'a Invocation, properties: Value) -> Answer<'a, Outcome> {
        Box::pin(CustomResource::create(self, invocation, properties))
    }

    fn update<'a>(
        &'a self,
        invocation: &'a Invocation,
        physical_id: &'a str,
        properties: Value,
        old: Value,
    ) -> Answer<'a, Outcome> {
        Box::pin(CustomResource::update(self, invocation, physical_id, properties, old))
    }

    fn delete<'a>(&'a self, invocation: &'a Invocation, physical_id: &'a str, properties: Value) -> Answer<'a, ()> {
        Box::pin(CustomResource::delete(self, invocation, physical_id, properties))
    }

    fn deletes_after_failed_create(&self, resource_type: &str) -> bool {
        CustomResource::deletes_after_failed_create(self, resource_type)
    }
}

impl Resources {
    /// `Custom::KedaTrustPolicy` through `iam`.
    #[must_use]
    pub fn with_trust_policy(mut self, iam: aws_sdk_iam::Client) -> Self {
        self.trust = Some(Box::new(TrustPolicy::new(iam)));
        self
    }

    /// The three Kubernetes types through `access`.
    #[must_use]
    pub fn with_kubernetes(mut self, access: ClusterAccess) -> Self {
        self.kubernetes = Some(Box::new(Kubernetes::new(access)));
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

    /// The handler of `resource_type`, if this function serves it.
    fn handler(&self, resource_type: &str) -> Result<&dyn Handler, Error> {
        let handler = if resource_type == TRUST_POLICY {
            self.trust.as_deref()
        } else {
            self.kubernetes
                .as_deref()
                .filter(|_| KUBERNETES.contains(&resource_type))
        };
        handler.ok_or_else(|| unsupported(resource_type, &self.served()))
    }
}

impl CustomResource for Resources {
    type Properties = Value;

    async fn create(&self, invocation: &Invocation, properties: Value) -> Result<Outcome, Error> {
        self.handler(&invocation.resource_type)?
            .create(invocation, properties)
            .await
    }

    async fn update(
        &self,
        invocation: &Invocation,
        physical_id: &str,
        properties: Value,
        old: Value,
    ) -> Result<Outcome, Error> {
        self.handler(&invocation.resource_type)?
            .update(invocation, physical_id, properties, old)
            .await
    }

    async fn delete(&self, invocation: &Invocation, physical_id: &str, properties: Value) -> Result<(), Error> {
        self.handler(&invocation.resource_type)?
            .delete(invocation, physical_id, properties)
            .await
    }

    fn deletes_after_failed_create(&self, resource_type: &str) -> bool {
        self.handler(resource_type)
            .is_ok_and(|handler| handler.deletes_after_failed_create(resource_type))
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
