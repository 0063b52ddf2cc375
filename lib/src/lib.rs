//! kedaform: KEDA on EKS with IAM Roles for Service Accounts, without kubectl, helm or the
//! AWS CLI. The CloudFormation custom-resource Lambdas and the `kedaform` CLI are thin shells
//! over this crate.

pub mod aws;
pub mod cfn;
pub mod eks;
mod error;
pub mod fetch;
pub mod iam;
pub mod keda;
pub mod kube;
pub mod sim;
pub mod telemetry;

pub use error::{Error, error_chain};
