//! kedaform: KEDA on EKS with IAM Roles for Service Accounts, without kubectl, helm or the
//! AWS CLI. The CloudFormation custom-resource Lambdas and the `kedaform` CLI are thin shells
//! over this crate; other Rust programs (infrastructure code of their own, operators) call it directly.
//!
//! # Layers
//!
//! - [`resources`]: the custom-resource types (`Custom::KedaTrustPolicy`,
//!   `Custom::KubernetesManifest`, `Custom::KedaInstall`, `Custom::KedaScaledObject`), each with
//!   typed properties, checks, outputs and a handler, and [`Resources`], the dispatcher.
//! - [`cfn`]: the custom-resource runtime ([`Runtime`], [`CustomResource`]) and
//!   [`RequestBuilder`].
//! - [`kube`] (the apply engine: [`Applier`]), [`keda`] (the manifest pipeline), [`iam`]
//!   (trust-policy planning, [`TrustPolicies`]), [`eks`], [`fetch`]: the engine, which knows
//!   nothing of CloudFormation and reports wrong input as an [`Input`]; its waits are bounded by
//!   the request's deadline.
//! - [`sim`]: the planner (KEDA and the HPA controller per Kubernetes version).
//! - [`doctor`]: why a ScaledObject does or does not scale, link by link (reads only).
//!
//! AWS clients come from one loader, `kedaform_common::aws::load` (the Lambdas and the CLI use
//! it): endpoints only from the standard `AWS_ENDPOINT_URL*` settings.
//!
//! # Example: the trust fix, planned without any call
//!
//! ```
//! use kedaform::iam::policy::{self, KedaTrust};
//!
//! let original = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
//!     "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "sts:AssumeRole"}]});
//! let plan = policy::apply(&original, &KedaTrust {
//!     keda_role_arn: "arn:aws:iam::111122223333:role/keda-operator".into(),
//!     external_id: None,
//!     exclusive: true,
//!     keda_account_id: None,
//! })
//! .unwrap();
//! assert_eq!(plan.removed, ["arn:aws:iam::111122223333:root"]);
//! ```

pub mod cfn;
pub mod doctor;
pub mod eks;
mod error;
pub mod fetch;
pub mod iam;
pub mod keda;
pub mod kube;
mod redact;
pub mod resources;
mod retry;
pub mod sim;
#[cfg(test)]
mod test_data;

pub use cfn::{CustomResource, Invocation, Outcome, RequestBuilder, Runtime};
pub use error::{Error, Input};
pub use iam::TrustPolicies;
use kedaform_common::error_chain;
pub use kube::Kubeconfig;
pub use kube::apply::Applier;
pub use resources::{ClusterAccess, Resources};
