//! KEDA's `ScaledObject` and `TriggerAuthentication` (`keda.sh/v1alpha1`), typed as far as
//! kedaform writes them; `resources::scaled_object` renders them from its properties.

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerBehavior;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "keda.sh",
    version = "v1alpha1",
    kind = "ScaledObject",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
/// `spec` of a ScaledObject: what to scale, how often to look, the bounds, the trigger.
pub struct ScaledObjectSpec {
    /// The Deployment (or `StatefulSet`) to scale.
    pub scale_target_ref: ScaleTargetRef,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Seconds between KEDA's checks of the trigger (KEDA's default 30).
    pub polling_interval: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Seconds without activity before scaling to `minReplicaCount` when that is 0 (default 300).
    pub cooldown_period: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The fewest replicas (default 0: KEDA scales to zero).
    pub min_replica_count: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The most replicas (default 100).
    pub max_replica_count: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The HPA's behavior, passed through to the HPA KEDA creates.
    pub advanced: Option<Advanced>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Replicas to run while the scaler fails.
    pub fallback: Option<Fallback>,
    /// What to scale on: here one `aws-sqs-queue` trigger.
    pub triggers: Vec<Trigger>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
/// `scaleTargetRef`.
pub struct ScaleTargetRef {
    /// `apps/v1`.
    pub api_version: String,
    /// `Deployment` or `StatefulSet`.
    pub kind: String,
    /// The workload's name, in the ScaledObject's namespace.
    pub name: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
/// `spec.advanced`.
pub struct Advanced {
    /// What KEDA copies into the HPA it creates.
    pub horizontal_pod_autoscaler_config: HorizontalPodAutoscalerConfig,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
/// `spec.advanced.horizontalPodAutoscalerConfig`.
pub struct HorizontalPodAutoscalerConfig {
    /// The HPA's `spec.behavior`.
    pub behavior: HorizontalPodAutoscalerBehavior,
}

/// Replicas to run while the scaler fails `failureThreshold` times in a row.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Fallback {
    /// Failures in a row before the fallback applies.
    pub failure_threshold: i32,
    /// Replicas while it applies.
    pub replicas: i32,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
/// One trigger.
pub struct Trigger {
    #[serde(rename = "type")]
    /// The scaler (`aws-sqs-queue`).
    pub kind: String,
    /// The scaler's settings, as strings (queueURL, queueLength, awsRegion, …).
    pub metadata: BTreeMap<String, String>,
    /// The TriggerAuthentication holding its identity.
    pub authentication_ref: AuthenticationRef,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
/// A TriggerAuthentication by name, in the ScaledObject's namespace.
pub struct AuthenticationRef {
    /// Its name.
    pub name: String,
}

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "keda.sh",
    version = "v1alpha1",
    kind = "TriggerAuthentication",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
/// `spec` of a TriggerAuthentication: the AWS identity KEDA uses for the trigger.
pub struct TriggerAuthenticationSpec {
    /// The pod identity: the role the operator assumes.
    pub pod_identity: PodIdentity,
}

/// `provider: aws` (the current provider; `aws-eks` is deprecated) with the role to assume,
/// or `identityOwner: workload` (KEDA takes one or the other).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodIdentity {
    /// `aws`.
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The role the operator assumes for this trigger.
    pub role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// `workload`: the scaled workload's own (IRSA) role instead of `roleArn`.
    pub identity_owner: Option<String>,
    #[serde(default, rename = "externalID", skip_serializing_if = "Option::is_none")]
    /// The `sts:ExternalId` KEDA passes when it assumes `roleArn`.
    pub external_id: Option<String>,
}
