//! `Custom::KedaScaledObject`: a TriggerAuthentication that lets KEDA assume the consumer
//! role, and a ScaledObject with an `aws-sqs-queue` trigger. Validation and rendering are pure.

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerBehavior;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::iam::RoleArn;

/// Properties of `Custom::KedaScaledObject`; unset optional values take KEDA's defaults.
/// Serializes back to the same property names (unset options left out), for `kedaform plan`'s
/// output and the CloudFormation requests the CLI builds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScaledObjectProperties {
    pub cluster_name: String,
    pub namespace: String,
    pub name: String,
    pub scale_target_name: String,
    #[serde(default = "deployment")]
    pub scale_target_kind: String,
    #[serde(rename = "QueueUrl")]
    pub queue_url: String,
    #[serde(default = "five")]
    pub queue_length: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation_queue_length: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polling_interval: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown_period: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_on_in_flight: Option<bool>,
    /// The consumer role KEDA assumes to read the queue.
    pub role_arn: String,
    /// HPA behavior, as in `spec.advanced.horizontalPodAutoscalerConfig.behavior`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<HorizontalPodAutoscalerBehavior>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
}

fn deployment() -> String {
    "Deployment".into()
}

fn five() -> u32 {
    5
}

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "keda.sh",
    version = "v1alpha1",
    kind = "ScaledObject",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct ScaledObjectSpec {
    pub scale_target_ref: ScaleTargetRef,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub polling_interval: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cooldown_period: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_replica_count: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_replica_count: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advanced: Option<Advanced>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
    pub triggers: Vec<Trigger>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScaleTargetRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Advanced {
    pub horizontal_pod_autoscaler_config: HorizontalPodAutoscalerConfig,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct HorizontalPodAutoscalerConfig {
    pub behavior: HorizontalPodAutoscalerBehavior,
}

/// Replicas to run while the scaler fails `failureThreshold` times in a row.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Fallback {
    pub failure_threshold: i32,
    pub replicas: i32,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Trigger {
    #[serde(rename = "type")]
    pub kind: String,
    pub metadata: BTreeMap<String, String>,
    pub authentication_ref: AuthenticationRef,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AuthenticationRef {
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
pub struct TriggerAuthenticationSpec {
    pub pod_identity: PodIdentity,
}

/// `provider: aws` (the current provider; `aws-eks` is deprecated) with the role to assume.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodIdentity {
    pub provider: String,
    pub role_arn: String,
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

fn dns_label(property: &str, value: &str) -> Result<(), Error> {
    let valid = (1..=63).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(
            property,
            format!("{value:?} is not a Kubernetes name (lower-case letters, digits, '-', 63 at most)"),
        ))
    }
}

impl ScaledObjectProperties {
    /// Every check that needs no call: the reason names the property.
    pub fn validate(&self) -> Result<String, Error> {
        dns_label("Namespace", &self.namespace)?;
        dns_label("Name", &self.name)?;
        let region = queue_region(&self.queue_url)?;
        if let Some(given) = &self.aws_region
            && *given != region
        {
            return Err(Error::invalid(
                "AwsRegion",
                format!("{given} disagrees with QueueUrl, which is in {region}"),
            ));
        }
        RoleArn::parse("RoleArn", &self.role_arn)?;
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

    pub fn trigger_authentication_name(&self) -> String {
        format!("{}-aws", self.name)
    }

    /// The TriggerAuthentication and the ScaledObject, after [`Self::validate`].
    pub fn render(&self) -> Result<(TriggerAuthentication, ScaledObject), Error> {
        let region = self.validate()?;
        let mut auth = TriggerAuthentication::new(
            &self.trigger_authentication_name(),
            TriggerAuthenticationSpec {
                pod_identity: PodIdentity {
                    provider: "aws".into(),
                    role_arn: self.role_arn.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cfn::{UnknownKeys, decode_properties};
    use serde_json::json;

    /// The seed's settings, as CloudFormation sends them (every scalar a string).
    fn seed_request() -> serde_json::Value {
        json!({
            "ClusterName": "kedaform", "Namespace": "sales", "Name": "consumer", "ScaleTargetName": "consumer",
            "QueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/reliable_q",
            "QueueLength": "10", "MinReplicas": "1", "MaxReplicas": "50", "PollingInterval": "10", "CooldownPeriod": "500",
            "RoleArn": "arn:aws:iam::123456789012:role/consumer",
            "Behavior": {"scaleDown": {"stabilizationWindowSeconds": "60", "policies": [{"type": "Percent", "value": "50", "periodSeconds": "15"}]}},
            "Fallback": {"failureThreshold": "3", "replicas": "2"}
        })
    }

    fn properties(overrides: &serde_json::Value) -> ScaledObjectProperties {
        let mut request = seed_request();
        for (key, value) in overrides.as_object().unwrap() {
            if value.is_null() {
                request.as_object_mut().unwrap().remove(key);
            } else {
                request[key] = value.clone();
            }
        }
        decode_properties(&request, UnknownKeys::Reject).unwrap()
    }

    #[test]
    fn the_seed_settings_render_a_trigger_authentication_and_a_scaled_object() {
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
    fn bad_properties_are_refused_naming_them() {
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
                json!({"ScaleTargetKind": "Job"}),
                "property ScaleTargetKind: Job is not Deployment or StatefulSet",
            ),
        ];
        for (overrides, expected) in cases {
            let message = properties(&overrides).render().unwrap_err().to_string();
            assert!(message.starts_with(expected), "{overrides}: {message}");
        }
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
        let mut request = seed_request();
        request["Behavior"]["scaleDwn"] = json!({});
        let error = decode_properties::<ScaledObjectProperties>(&request, UnknownKeys::Reject).unwrap_err();
        assert_eq!(
            error.to_string().split(';').next().unwrap(),
            "unknown property: Behavior.scaleDwn"
        );
    }
}
