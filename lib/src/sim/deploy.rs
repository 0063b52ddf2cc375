//! From a plan to a deployment and back: the planner's [`Settings`] as the properties of
//! `Custom::KedaScaledObject` (and so as a ScaledObject), and a `Custom::KedaScaledObject` as
//! the settings the planner simulates.

use k8s_openapi::api::autoscaling::v2::{HPAScalingPolicy, HPAScalingRules, HorizontalPodAutoscalerBehavior};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::hpa::{Behavior, Policy, PolicyKind, Rules, Select};
use super::keda::Settings;
use crate::Error;
use crate::resources::scaled_object::ScaledObjectProperties;

/// The settings a `Custom::KedaScaledObject` deploys. What it leaves out takes KEDA's defaults,
/// and a behavior's unset fields Kubernetes' (`GenerateHPAScaleUpRules`,
/// `GenerateHPAScaleDownRules`, and the controller's 300 s downscale window).
pub fn settings(properties: &ScaledObjectProperties) -> Result<Settings, Error> {
    let defaults = Settings::default();
    let count = |property: &str, value: Option<i32>, default: u32| match value {
        None => Ok(default),
        Some(value) => u32::try_from(value).map_err(|_| Error::invalid(property, format!("{value} is negative"))),
    };
    Ok(Settings {
        queue_length: properties.queue_length,
        activation_queue_length: properties.activation_queue_length.unwrap_or(0),
        polling_interval: count("PollingInterval", properties.polling_interval, 30)?.into(),
        cooldown_period: count("CooldownPeriod", properties.cooldown_period, 300)?.into(),
        min_replicas: count("MinReplicas", properties.min_replicas, defaults.min_replicas)?,
        max_replicas: count("MaxReplicas", properties.max_replicas, defaults.max_replicas)?,
        scale_on_in_flight: properties.scale_on_in_flight.unwrap_or(true),
        scale_on_delayed: false,
        behavior: properties.behavior.as_ref().map(behavior).transpose()?,
    })
}

fn behavior(given: &HorizontalPodAutoscalerBehavior) -> Result<Behavior, Error> {
    let defaults = Behavior::default();
    Ok(Behavior {
        scale_up: rules("Behavior.scaleUp", given.scale_up.as_ref(), defaults.scale_up)?,
        scale_down: rules("Behavior.scaleDown", given.scale_down.as_ref(), defaults.scale_down)?,
    })
}

fn rules(path: &str, given: Option<&HPAScalingRules>, default: Rules) -> Result<Rules, Error> {
    let Some(given) = given else {
        return Ok(default);
    };
    let non_negative = |field: &str, value: i32| {
        u32::try_from(value).map_err(|_| Error::invalid(format!("{path}.{field}"), format!("{value} is negative")))
    };
    let select = match given.select_policy.as_deref() {
        None => default.select,
        Some("Max") => Select::Max,
        Some("Min") => Select::Min,
        Some("Disabled") => Select::Disabled,
        Some(_) => {
            return Err(Error::invalid(
                format!("{path}.selectPolicy"),
                "expected Max, Min or Disabled",
            ));
        }
    };
    let policies = match &given.policies {
        None => default.policies,
        Some(policies) => policies
            .iter()
            .map(|policy| {
                let kind = match policy.type_.as_str() {
                    "Pods" => PolicyKind::Pods,
                    "Percent" => PolicyKind::Percent,
                    _ => {
                        return Err(Error::invalid(
                            format!("{path}.policies.type"),
                            "expected Pods or Percent",
                        ));
                    }
                };
                Ok(Policy {
                    kind,
                    value: non_negative("policies.value", policy.value)?,
                    period_seconds: non_negative("policies.periodSeconds", policy.period_seconds)?.into(),
                })
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(Rules {
        stabilization_seconds: match given.stabilization_window_seconds {
            None => default.stabilization_seconds,
            Some(seconds) => non_negative("stabilizationWindowSeconds", seconds)?.into(),
        },
        select,
        policies,
        tolerance: given
            .tolerance
            .as_ref()
            .map(|quantity| tolerance(&format!("{path}.tolerance"), quantity))
            .transpose()?,
    })
}

/// A tolerance quantity: a plain decimal (`0.05`) or milli (`50m`), as people write them.
fn tolerance(path: &str, quantity: &Quantity) -> Result<f64, Error> {
    let text = quantity.0.trim();
    let value = match text.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().map(|v| v / 1000.0),
        None => text.parse::<f64>(),
    };
    value
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| Error::invalid(path, "expected a non-negative decimal such as 0.05 or 50m"))
}

/// `properties` with the scaling settings replaced by the planner's, every one explicit.
pub fn apply(settings: &Settings, properties: &ScaledObjectProperties) -> Result<ScaledObjectProperties, Error> {
    let int = |property: &str, value: u64| {
        i32::try_from(value).map_err(|_| Error::invalid(property, format!("{value} is too large")))
    };
    Ok(ScaledObjectProperties {
        queue_length: settings.queue_length,
        activation_queue_length: Some(settings.activation_queue_length),
        min_replicas: Some(int("MinReplicas", settings.min_replicas.into())?),
        max_replicas: Some(int("MaxReplicas", settings.max_replicas.into())?),
        polling_interval: Some(int("PollingInterval", settings.polling_interval)?),
        cooldown_period: Some(int("CooldownPeriod", settings.cooldown_period)?),
        scale_on_in_flight: Some(settings.scale_on_in_flight),
        behavior: settings.behavior.as_ref().map(kubernetes_behavior).transpose()?,
        ..properties.clone()
    })
}

fn kubernetes_behavior(behavior: &Behavior) -> Result<HorizontalPodAutoscalerBehavior, Error> {
    let rules = |path: &str, rules: &Rules| -> Result<HPAScalingRules, Error> {
        let int = |value: u64| {
            i32::try_from(value)
                .map_err(|_| Error::invalid(format!("Behavior.{path}"), format!("{value} is too large")))
        };
        Ok(HPAScalingRules {
            policies: Some(
                rules
                    .policies
                    .iter()
                    .map(|policy| {
                        Ok(HPAScalingPolicy {
                            type_: match policy.kind {
                                PolicyKind::Pods => "Pods",
                                PolicyKind::Percent => "Percent",
                            }
                            .into(),
                            value: int(policy.value.into())?,
                            period_seconds: int(policy.period_seconds)?,
                        })
                    })
                    .collect::<Result<_, Error>>()?,
            ),
            select_policy: Some(
                match rules.select {
                    Select::Max => "Max",
                    Select::Min => "Min",
                    Select::Disabled => "Disabled",
                }
                .into(),
            ),
            stabilization_window_seconds: Some(int(rules.stabilization_seconds)?),
            tolerance: rules.tolerance.map(|t| Quantity(t.to_string())),
        })
    };
    Ok(HorizontalPodAutoscalerBehavior {
        scale_up: Some(rules("scaleUp", &behavior.scale_up)?),
        scale_down: Some(rules("scaleDown", &behavior.scale_down)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn identity() -> ScaledObjectProperties {
        serde_json::from_value(json!({
            "ClusterName": "sales", "Namespace": "consumer", "Name": "consumer", "ScaleTargetName": "consumer",
            "QueueUrl": "https://sqs.eu-west-1.amazonaws.com/111122223333/sales",
            "RoleArn": "arn:aws:iam::111122223333:role/consumer",
        }))
        .unwrap()
    }

    #[test]
    fn unset_properties_take_kedas_defaults() {
        assert_eq!(settings(&identity()).unwrap(), Settings::default());
    }

    #[test]
    fn a_behavior_with_one_field_gets_kubernetes_defaults_for_the_rest() {
        let mut properties = identity();
        properties.behavior = Some(
            serde_json::from_value(json!({"scaleDown": {"stabilizationWindowSeconds": 60},
                                          "scaleUp": {"tolerance": "50m"}}))
            .unwrap(),
        );
        let behavior = settings(&properties).unwrap().behavior.unwrap();
        let mut expected = Behavior::default();
        expected.scale_down.stabilization_seconds = 60;
        expected.scale_up.tolerance = Some(0.05);
        assert_eq!(behavior, expected);
    }

    #[test]
    fn settings_survive_the_trip_through_properties() {
        let mut planned = crate::sim::plan::original_settings();
        let mut behavior = Behavior::default();
        behavior.scale_down.stabilization_seconds = 60;
        behavior.scale_up.select = Select::Min;
        planned.behavior = Some(behavior);
        let properties = apply(&planned, &identity()).unwrap();
        assert_eq!(properties.namespace, "consumer", "identity kept");
        assert_eq!(settings(&properties).unwrap(), planned);
        properties.render().expect("a valid ScaledObject");
    }

    #[test]
    fn bad_behaviors_are_named_by_path() {
        let mut properties = identity();
        properties.behavior = Some(
            serde_json::from_value(
                json!({"scaleUp": {"policies": [{"type": "Lots", "value": 1, "periodSeconds": 15}]}}),
            )
            .unwrap(),
        );
        let error = settings(&properties).unwrap_err().to_string();
        assert!(error.contains("Behavior.scaleUp.policies.type"), "{error}");
        properties.behavior =
            Some(serde_json::from_value(json!({"scaleDown": {"stabilizationWindowSeconds": -1}})).unwrap());
        let error = settings(&properties).unwrap_err().to_string();
        assert!(
            error.contains("Behavior.scaleDown.stabilizationWindowSeconds"),
            "{error}"
        );
    }
}
