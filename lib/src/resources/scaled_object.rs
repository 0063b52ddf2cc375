//! `Custom::KedaScaledObject`: a TriggerAuthentication that lets KEDA assume the consumer
//! role, and a ScaledObject with an `aws-sqs-queue` trigger. Validation and rendering are pure.

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerBehavior;
use kube::api::DynamicObject;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cfn::Outcome;
use crate::iam::RoleArn;
use crate::keda::install::IdentityMode;
use crate::keda::scaled_object::{
    Advanced, AuthenticationRef, Fallback, HorizontalPodAutoscalerConfig, PodIdentity, ScaleTargetRef, ScaledObject,
    ScaledObjectSpec, Trigger, TriggerAuthentication, TriggerAuthenticationSpec,
};
use crate::{Error, Input};

/// Properties of `Custom::KedaScaledObject`; unset optional values take KEDA's defaults.
/// Serializes back to the same property names (unset options left out), for `kedaform plan`'s
/// output and the CloudFormation requests the CLI builds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScaledObjectProperties {
    /// The cluster: an EKS cluster's name, or the kubeconfig's cluster for the CLI.
    pub cluster_name: String,
    /// The namespace of the ScaledObject and its Deployment.
    pub namespace: String,
    /// The ScaledObject's name (the TriggerAuthentication is `<Name>-aws`).
    pub name: String,
    /// The Deployment (or `StatefulSet`) to scale.
    pub scale_target_name: String,
    #[serde(default = "deployment")]
    /// `Deployment` (default) or `StatefulSet`.
    pub scale_target_kind: String,
    #[serde(rename = "QueueUrl")]
    /// The queue, `https://sqs.<region>.amazonaws.com/<account>/<name>`.
    pub queue_url: String,
    #[serde(default = "five")]
    /// Target visible messages per replica (default 5).
    pub queue_length: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// KEDA wakes the target from zero only above this many messages (KEDA's default 0).
    pub activation_queue_length: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The queue's region; must agree with `QueueUrl` (default: read from it).
    pub aws_region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// `minReplicaCount` (KEDA's default 0).
    pub min_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// `maxReplicaCount` (KEDA's default 100).
    pub max_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// `pollingInterval`, seconds (KEDA's default 30).
    pub polling_interval: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// `cooldownPeriod`, seconds (KEDA's default 300).
    pub cooldown_period: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Whether in-flight messages count (KEDA's default true).
    pub scale_on_in_flight: Option<bool>,
    /// The consumer role KEDA assumes to read the queue; left out (empty) only with
    /// `IdentityOwner: workload`, where KEDA uses the scaled workload's own role instead.
    #[serde(default)]
    pub role_arn: String,
    /// How the KEDA operator gets its own credentials: `irsa` (default) or `pod-identity`.
    /// Both write the same TriggerAuthentication (`provider: aws` with `roleArn`); the mode
    /// decides which combinations are refused.
    #[serde(default = "irsa", skip_serializing_if = "is_irsa")]
    pub identity_mode: IdentityMode,
    /// Whose identity KEDA uses: `keda` (default: KEDA assumes `RoleArn` with its own
    /// credentials) or `workload` (the scaled workload's IRSA role; IRSA only).
    #[serde(default, skip_serializing_if = "IdentityOwner::is_keda")]
    pub identity_owner: IdentityOwner,
    /// The `sts:ExternalId` KEDA passes when it assumes `RoleArn` (a role in another account
    /// whose trust requires one): the TriggerAuthentication's `podIdentity.externalID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// HPA behavior, as in `spec.advanced.horizontalPodAutoscalerConfig.behavior`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<HorizontalPodAutoscalerBehavior>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Replicas to run while the scaler keeps failing.
    pub fallback: Option<Fallback>,
    /// Whether objects that exist and belong to no kedaform resource are taken over (applied,
    /// annotated `kedaform.io/adopted-by`, never deleted by this resource) instead of failing
    /// the request (default false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub adopt_existing: bool,
}

/// `IdentityOwner`: whose identity KEDA uses for the trigger.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdentityOwner {
    /// KEDA's operator assumes `RoleArn`.
    #[default]
    Keda,
    /// KEDA uses the scaled workload's service-account role (IRSA only).
    Workload,
}

impl IdentityOwner {
    #[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
    fn is_keda(&self) -> bool {
        *self == Self::Keda
    }
}

fn irsa() -> IdentityMode {
    IdentityMode::Irsa
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_irsa(mode: &IdentityMode) -> bool {
    *mode == IdentityMode::Irsa
}

fn deployment() -> String {
    "Deployment".into()
}

fn five() -> u32 {
    5
}

/// `https://sqs.<region>.amazonaws.com/<account>/<name>`: the region.
fn queue_region(url: &str) -> Result<String, Error> {
    let bad = |why: &str| {
        Error::invalid(
            "QueueUrl",
            format!("{url:?} {why}; expected https://sqs.<region>.amazonaws.com/<12-digit account>/<queue name>"),
        )
    };
    let rest = url
        .strip_prefix("https://sqs.")
        .ok_or_else(|| bad("does not start with https://sqs."))?;
    let (host, path) = rest.split_once('/').ok_or_else(|| bad("has no path"))?;
    let region = host
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_suffix(".amazonaws.com.cn"))
        .ok_or_else(|| bad("is not an amazonaws.com host"))?;
    let (account, name) = path.split_once('/').ok_or_else(|| bad("has no queue name"))?;
    let valid_region = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let valid_name = (1..=80).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !valid_region {
        return Err(bad("has no valid region"));
    }
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("has no 12-digit account"));
    }
    if !valid_name {
        return Err(bad("has no valid queue name"));
    }
    Ok(region.to_owned())
}

/// The partition of `region`, as `queue_region` reads it from the queue's URL.
fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// `sts:ExternalId`: 2 to 1224 of `A-Z a-z 0-9 + = , . @ : / -` and `_` (STS's rule). The
/// message never repeats it: an external id is a shared secret of sorts.
fn external_id(id: &str) -> Result<(), Error> {
    let valid = (2..=1224).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@:/-_".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(
            "ExternalId",
            "is not an STS external id (2 to 1224 of A-Z a-z 0-9 and + = , . @ : / - _)",
        ))
    }
}

fn dns_label(property: &str, value: &str) -> Result<(), Error> {
    if crate::kube::names::is_label(value) {
        Ok(())
    } else {
        Err(Error::invalid(
            property,
            format!("{value:?} is not a Kubernetes name (lower-case letters, digits, '-', 63 at most)"),
        ))
    }
}

/// A Kubernetes object name (RFC 1123 subdomain): dot-separated labels, 253 characters at most.
fn dns_subdomain(property: &str, value: &str) -> Result<(), Error> {
    if crate::kube::names::is_subdomain(value) {
        Ok(())
    } else {
        Err(Error::invalid(
            property,
            "is not a Kubernetes object name (lower-case letters, digits, '-' and '.', 253 at most)",
        ))
    }
}

impl ScaledObjectProperties {
    /// Every check that needs no call: the reason names the property.
    pub fn validate(&self) -> Result<String, Error> {
        dns_label("Namespace", &self.namespace)?;
        dns_label("Name", &self.name)?;
        dns_subdomain("ScaleTargetName", &self.scale_target_name)?;
        let region = queue_region(&self.queue_url)?;
        if let Some(given) = &self.aws_region
            && *given != region
        {
            return Err(Error::invalid(
                "AwsRegion",
                format!("{given} disagrees with QueueUrl, which is in {region}"),
            ));
        }
        self.validate_identity(partition(&region))?;
        if self.queue_length == 0 {
            return Err(Error::invalid(
                "QueueLength",
                "must be at least 1 (messages per replica)",
            ));
        }
        if let (Some(min), Some(max)) = (self.min_replicas, self.max_replicas)
            && min > max
        {
            return Err(Error::invalid(
                "MinReplicas",
                format!("{min} is above MaxReplicas {max}"),
            ));
        }
        for (property, value, least) in [
            ("MinReplicas", self.min_replicas, 0),
            ("MaxReplicas", self.max_replicas, 1),
            ("PollingInterval", self.polling_interval, 1),
            ("CooldownPeriod", self.cooldown_period, 0),
        ] {
            if let Some(value) = value
                && value < least
            {
                return Err(Error::invalid(property, format!("{value} is below {least}")));
            }
        }
        Ok(region)
    }

    /// `RoleArn`, `IdentityMode`, `IdentityOwner` and `ExternalId` together.
    fn validate_identity(&self, queue_partition: &str) -> Result<(), Error> {
        match self.identity_owner {
            IdentityOwner::Workload => {
                if self.identity_mode == IdentityMode::PodIdentity {
                    return Err(Error::invalid(
                        "IdentityOwner",
                        "workload does not work with IdentityMode pod-identity: KEDA then looks for the \
                         workload's IRSA role, which Pod Identity never sets (kedacore/keda issue 6418); leave \
                         IdentityOwner out so that KEDA assumes RoleArn with the operator's credentials",
                    ));
                }
                if !self.role_arn.is_empty() {
                    return Err(Error::invalid(
                        "RoleArn",
                        "must be left out with IdentityOwner workload (KEDA takes one or the other)",
                    ));
                }
                if self.external_id.is_some() {
                    return Err(Error::invalid(
                        "ExternalId",
                        "applies only when KEDA assumes RoleArn; leave it out with IdentityOwner workload",
                    ));
                }
                Ok(())
            }
            IdentityOwner::Keda => {
                if self.role_arn.is_empty() {
                    return Err(Error::invalid(
                        "RoleArn",
                        "is required: the role KEDA assumes to read the queue (or set IdentityOwner workload)",
                    ));
                }
                let role =
                    RoleArn::parse(Input::Role, &self.role_arn).map_err(|e| e.named(&[(Input::Role, "RoleArn")]))?;
                if role.partition != queue_partition {
                    return Err(Error::invalid(
                        "RoleArn",
                        format!(
                            "is a role of partition {}, but the queue is in partition {queue_partition}; \
                             a role can read queues of its own partition only",
                            role.partition
                        ),
                    ));
                }
                if let Some(id) = &self.external_id {
                    external_id(id)?;
                }
                Ok(())
            }
        }
    }

    /// The TriggerAuthentication's name: `<Name>-aws`.
    pub fn trigger_authentication_name(&self) -> String {
        format!("{}-aws", self.name)
    }

    /// The TriggerAuthentication and the ScaledObject, after [`Self::validate`].
    pub fn render(&self) -> Result<(TriggerAuthentication, ScaledObject), Error> {
        let region = self.validate()?;
        let mut auth = TriggerAuthentication::new(
            &self.trigger_authentication_name(),
            TriggerAuthenticationSpec {
                pod_identity: match self.identity_owner {
                    IdentityOwner::Keda => PodIdentity {
                        provider: "aws".into(),
                        role_arn: Some(self.role_arn.clone()),
                        identity_owner: None,
                        external_id: self.external_id.clone(),
                    },
                    IdentityOwner::Workload => PodIdentity {
                        provider: "aws".into(),
                        role_arn: None,
                        identity_owner: Some("workload".into()),
                        external_id: None,
                    },
                },
            },
        );
        auth.metadata.namespace = Some(self.namespace.clone());

        let mut metadata = BTreeMap::from([
            ("queueURL".to_owned(), self.queue_url.clone()),
            ("queueLength".to_owned(), self.queue_length.to_string()),
            ("awsRegion".to_owned(), region),
        ]);
        if let Some(activation) = self.activation_queue_length {
            metadata.insert("activationQueueLength".into(), activation.to_string());
        }
        if let Some(in_flight) = self.scale_on_in_flight {
            metadata.insert("scaleOnInFlight".into(), in_flight.to_string());
        }
        let api_version = match self.scale_target_kind.as_str() {
            "Deployment" | "StatefulSet" => "apps/v1".to_owned(),
            other => {
                return Err(Error::invalid(
                    "ScaleTargetKind",
                    format!("{other} is not Deployment or StatefulSet"),
                ));
            }
        };
        let mut scaled = ScaledObject::new(
            &self.name,
            ScaledObjectSpec {
                scale_target_ref: ScaleTargetRef {
                    api_version,
                    kind: self.scale_target_kind.clone(),
                    name: self.scale_target_name.clone(),
                },
                polling_interval: self.polling_interval,
                cooldown_period: self.cooldown_period,
                min_replica_count: self.min_replicas,
                max_replica_count: self.max_replicas,
                advanced: self.behavior.clone().map(|behavior| Advanced {
                    horizontal_pod_autoscaler_config: HorizontalPodAutoscalerConfig { behavior },
                }),
                fallback: self.fallback.clone(),
                triggers: vec![Trigger {
                    kind: "aws-sqs-queue".into(),
                    metadata,
                    authentication_ref: AuthenticationRef {
                        name: self.trigger_authentication_name(),
                    },
                }],
            },
        );
        scaled.metadata.namespace = Some(self.namespace.clone());
        Ok((auth, scaled))
    }
}

impl ScaledObjectProperties {
    /// A ScaledObject for the Deployment `target`, every optional property unset (KEDA's
    /// defaults, queueLength 5).
    pub fn new(
        cluster_name: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
        target: impl Into<String>,
        queue_url: impl Into<String>,
        role_arn: impl Into<String>,
    ) -> Self {
        Self {
            cluster_name: cluster_name.into(),
            namespace: namespace.into(),
            name: name.into(),
            scale_target_name: target.into(),
            scale_target_kind: deployment(),
            queue_url: queue_url.into(),
            queue_length: five(),
            activation_queue_length: None,
            aws_region: None,
            min_replicas: None,
            max_replicas: None,
            polling_interval: None,
            cooldown_period: None,
            scale_on_in_flight: None,
            role_arn: role_arn.into(),
            identity_mode: IdentityMode::Irsa,
            identity_owner: IdentityOwner::Keda,
            external_id: None,
            behavior: None,
            fallback: None,
            adopt_existing: false,
        }
    }

    /// The TriggerAuthentication and the ScaledObject as the objects to apply.
    pub fn objects(&self) -> Result<Vec<DynamicObject>, Error> {
        let (auth, scaled) = self.render()?;
        let to_dynamic = |value: Value| {
            serde_json::from_value::<DynamicObject>(value).map_err(|e| Error::invalid("Name", e.to_string()))
        };
        Ok(vec![
            to_dynamic(serde_json::to_value(auth).unwrap_or_default())?,
            to_dynamic(serde_json::to_value(scaled).unwrap_or_default())?,
        ])
    }

    /// One per ScaledObject: another cluster, namespace or name is a replacement.
    pub fn physical_id(&self) -> String {
        format!("{}/{}/{}", self.cluster_name, self.namespace, self.name)
    }

    /// `Fn::GetAtt` values.
    pub fn outputs(&self, outcome: Outcome) -> Outcome {
        outcome
            .with("ScaledObjectName", self.name.clone())
            .with("TriggerAuthenticationName", self.trigger_authentication_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cfn::{UnknownKeys, decode_properties};
    use serde_json::json;

    /// scale-eks-with-keda's settings, as CloudFormation sends them (every scalar a string).
    fn original_request() -> serde_json::Value {
        json!({
            "ClusterName": "kedaform", "Namespace": "sales", "Name": "consumer", "ScaleTargetName": "consumer",
            "QueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/reliable_q",
            "QueueLength": "10", "MinReplicas": "1", "MaxReplicas": "50", "PollingInterval": "10", "CooldownPeriod": "500",
            "RoleArn": "arn:aws:iam::123456789012:role/consumer",
            "Behavior": {"scaleDown": {"stabilizationWindowSeconds": "60", "policies": [{"type": "Percent", "value": "50", "periodSeconds": "15"}]}},
            "Fallback": {"failureThreshold": "3", "replicas": "2"}
        })
    }

    /// The original request with `overrides` (a null removes the property).
    fn request(overrides: &serde_json::Value) -> serde_json::Value {
        let mut request = original_request();
        for (key, value) in overrides.as_object().unwrap() {
            if value.is_null() {
                request.as_object_mut().unwrap().remove(key);
            } else {
                request[key] = value.clone();
            }
        }
        request
    }

    fn properties(overrides: &serde_json::Value) -> ScaledObjectProperties {
        decode_properties(&request(overrides), UnknownKeys::Reject).unwrap()
    }

    #[test]
    fn the_original_settings_render_a_trigger_authentication_and_a_scaled_object() {
        let (auth, scaled) = properties(&json!({})).render().unwrap();
        assert_eq!(
            serde_json::to_value(&auth).unwrap(),
            json!({"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
                   "metadata": {"name": "consumer-aws", "namespace": "sales"},
                   "spec": {"podIdentity": {"provider": "aws", "roleArn": "arn:aws:iam::123456789012:role/consumer"}}})
        );
        assert_eq!(
            serde_json::to_value(&scaled).unwrap(),
            json!({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
                   "metadata": {"name": "consumer", "namespace": "sales"},
                   "spec": {
                       "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "consumer"},
                       "pollingInterval": 10, "cooldownPeriod": 500, "minReplicaCount": 1, "maxReplicaCount": 50,
                       "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": {
                           "stabilizationWindowSeconds": 60, "policies": [{"type": "Percent", "value": 50, "periodSeconds": 15}]}}}},
                       "fallback": {"failureThreshold": 3, "replicas": 2},
                       "triggers": [{"type": "aws-sqs-queue", "authenticationRef": {"name": "consumer-aws"},
                                     "metadata": {"queueURL": "https://sqs.us-east-1.amazonaws.com/123456789012/reliable_q",
                                                  "queueLength": "10", "awsRegion": "us-east-1"}}]}})
        );
    }

    #[test]
    #[allow(clippy::too_many_lines)] // a table of cases
    fn bad_properties_are_refused_naming_them() {
        let secret = "hunter2\u{0}\u{202e}";
        let cases = [
            (
                json!({"QueueUrl": "https://sqs.us-east-1.amazonaws.com/reliable_q"}),
                "property QueueUrl:",
            ),
            (
                json!({"QueueUrl": "http://localhost/123456789012/q"}),
                "property QueueUrl:",
            ),
            (
                json!({"AwsRegion": "eu-west-1"}),
                "property AwsRegion: eu-west-1 disagrees with QueueUrl, which is in us-east-1",
            ),
            (
                json!({"MinReplicas": "60"}),
                "property MinReplicas: 60 is above MaxReplicas 50",
            ),
            (
                json!({"PollingInterval": "0"}),
                "property PollingInterval: 0 is below 1",
            ),
            (
                json!({"CooldownPeriod": "-1"}),
                "property CooldownPeriod: -1 is below 0",
            ),
            (json!({"QueueLength": "0"}), "property QueueLength: must be at least 1"),
            (json!({"RoleArn": "consumer"}), "property RoleArn:"),
            (
                json!({"Name": "Consumer_1"}),
                "property Name: \"Consumer_1\" is not a Kubernetes name",
            ),
            (
                json!({"ScaleTargetName": "../consumer"}),
                "property ScaleTargetName: is not a Kubernetes object name",
            ),
            (
                json!({"ScaleTargetName": format!("a b\u{202e}{}", "c".repeat(300))}),
                "property ScaleTargetName: is not a Kubernetes object name",
            ),
            (
                json!({"ScaleTargetKind": "Job"}),
                "property ScaleTargetKind: Job is not Deployment or StatefulSet",
            ),
            // Identity combinations KEDA cannot use, wrong ARN kinds, and external ids.
            (
                json!({"IdentityMode": "pod-identity", "IdentityOwner": "workload", "RoleArn": null}),
                "property IdentityOwner: workload does not work with IdentityMode pod-identity",
            ),
            (
                json!({"IdentityOwner": "workload"}),
                "property RoleArn: must be left out with IdentityOwner workload",
            ),
            (
                json!({"IdentityOwner": "workload", "RoleArn": null, "ExternalId": "abc"}),
                "property ExternalId: applies only when KEDA assumes RoleArn",
            ),
            (json!({"RoleArn": null}), "property RoleArn: is required"),
            (json!({"RoleArn": ""}), "property RoleArn: is required"),
            (
                json!({"ExternalId": secret}),
                "property ExternalId: is not an STS external id",
            ),
            (
                json!({"ExternalId": "x"}),
                "property ExternalId: is not an STS external id",
            ),
            (
                json!({"ExternalId": "a".repeat(1225)}),
                "property ExternalId: is not an STS external id",
            ),
            // Wrong ARN kinds: a user, a policy, an OIDC provider, an STS session.
            (
                json!({"RoleArn": "arn:aws:iam::123456789012:user/consumer"}),
                "property RoleArn:",
            ),
            (
                json!({"RoleArn": "arn:aws:iam::aws:policy/AdministratorAccess"}),
                "property RoleArn:",
            ),
            (
                json!({"RoleArn": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/X"}),
                "property RoleArn:",
            ),
            (
                json!({"RoleArn": "arn:aws:sts::123456789012:assumed-role/consumer/session"}),
                "property RoleArn:",
            ),
            // A role of another partition cannot read this partition's queue.
            (
                json!({"RoleArn": "arn:aws-cn:iam::123456789012:role/consumer"}),
                "property RoleArn: is a role of partition aws-cn, but the queue is in partition aws",
            ),
            (
                json!({"IdentityMode": "eks-pod-identity"}),
                "property IdentityMode: expected one of irsa, pod-identity",
            ),
            (
                json!({"IdentityOwner": "operator"}),
                "property IdentityOwner: expected one of keda, workload",
            ),
        ];
        for (overrides, expected) in cases {
            let message = match decode_properties::<ScaledObjectProperties>(&request(&overrides), UnknownKeys::Reject) {
                Ok(props) => props.render().unwrap_err().to_string(),
                Err(error) => error.to_string(),
            };
            assert!(message.starts_with(expected), "{overrides}: {message}");
            assert!(!message.contains("hunter2"), "the external id leaked: {message}");
        }
        // A China-region queue takes an aws-cn role.
        let props = properties(
            &json!({"QueueUrl": "https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q",
                                       "RoleArn": "arn:aws-cn:iam::123456789012:role/consumer"}),
        );
        assert!(props.render().is_ok());
    }

    #[test]
    fn identity_modes_owners_and_external_ids_render_what_keda_reads() {
        let auth = |overrides: serde_json::Value| {
            let (auth, _) = properties(&overrides).render().unwrap();
            serde_json::to_value(&auth).unwrap()["spec"]["podIdentity"].clone()
        };
        let role = "arn:aws:iam::123456789012:role/consumer";
        // Pod Identity: the operator's credentials come from the agent, the trigger is the same.
        assert_eq!(
            auth(json!({"IdentityMode": "pod-identity"})),
            json!({"provider": "aws", "roleArn": role})
        );
        // A role of another account whose trust asks for an external id.
        assert_eq!(
            auth(json!({"RoleArn": "arn:aws:iam::444455556666:role/consumer", "ExternalId": "kedaform-sales"})),
            json!({"provider": "aws", "roleArn": "arn:aws:iam::444455556666:role/consumer", "externalID": "kedaform-sales"})
        );
        assert_eq!(
            auth(json!({"IdentityOwner": "workload", "RoleArn": null})),
            json!({"provider": "aws", "identityOwner": "workload"})
        );
        // The properties serialize back as they came (defaults left out).
        let props = properties(&json!({"IdentityMode": "pod-identity", "ExternalId": "kedaform-sales"}));
        let value = serde_json::to_value(&props).unwrap();
        assert_eq!(
            (value["IdentityMode"].as_str(), value["ExternalId"].as_str()),
            (Some("pod-identity"), Some("kedaform-sales"))
        );
        assert!(value.get("IdentityOwner").is_none());
    }

    #[test]
    fn defaults_and_unknown_nested_keys() {
        let props = properties(
            &json!({"QueueLength": null, "ScaleTargetKind": null, "MinReplicas": null, "Behavior": null, "Fallback": null}),
        );
        assert_eq!(
            (props.queue_length, props.scale_target_kind.as_str(), props.min_replicas),
            (5, "Deployment", None)
        );
        let mut request = original_request();
        request["Behavior"]["scaleDwn"] = json!({});
        let error = decode_properties::<ScaledObjectProperties>(&request, UnknownKeys::Reject).unwrap_err();
        assert_eq!(
            error.to_string().split(';').next().unwrap(),
            "unknown property: Behavior.scaleDwn"
        );
    }
}
