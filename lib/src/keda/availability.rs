//! KEDA without a single point of failure: replicas of the operator, the metrics API server and
//! the admission webhooks, `PodDisruptionBudgets`, topology spread and resources, applied to the
//! release manifest's Deployments. Unset, each keeps KEDA's default (one replica, the manifest's
//! resources, no budget, no spread). Pure: [`Availability::apply`] changes objects, nothing else.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::api::DynamicObject;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::install::{NAMESPACE, is, missing};
use crate::Error;

/// KEDA's three Deployments: (component, Deployment, its pods' `app` label).
const COMPONENTS: [(Component, &str, &str); 3] = [
    (Component::Operator, "keda-operator", "keda-operator"),
    (
        Component::MetricsServer,
        "keda-metrics-apiserver",
        "keda-metrics-apiserver",
    ),
    (Component::Webhooks, "keda-admission", "keda-admission-webhooks"),
];

/// The most replicas a component may be given: more only adds leader-election traffic (the
/// operator) or idle pods.
pub const MAX_REPLICAS: i32 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Component {
    Operator,
    MetricsServer,
    Webhooks,
}

impl Component {
    fn replicas_property(self) -> &'static str {
        match self {
            Self::Operator => "OperatorReplicas",
            Self::MetricsServer => "MetricsServerReplicas",
            Self::Webhooks => "WebhookReplicas",
        }
    }

    /// Its key under the chart's `podDisruptionBudget` and `resources`.
    fn helm_key(self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::MetricsServer => "metricServer",
            Self::Webhooks => "webhooks",
        }
    }

    /// Its section of the chart (`replicaCount`), and its key under `topologySpreadConstraints`.
    fn helm_section(self) -> &'static str {
        match self {
            Self::MetricsServer => "metricsServer",
            other => other.helm_key(),
        }
    }
}

/// Where replicas are spread (`TopologySpread`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TopologySpread {
    /// Across availability zones (`topology.kubernetes.io/zone`).
    Zone,
    /// Across nodes (`kubernetes.io/hostname`).
    Hostname,
}

impl TopologySpread {
    /// The constraint for the pods labelled `app`: at most one more here than elsewhere, never
    /// leaving a pod unscheduled for it.
    fn constraint(self, app: &str) -> Value {
        let key = match self {
            Self::Zone => "topology.kubernetes.io/zone",
            Self::Hostname => "kubernetes.io/hostname",
        };
        json!({"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": "ScheduleAnyway",
               "labelSelector": {"matchLabels": {"app": app}}})
    }
}

/// `Resources`: the containers' requests and limits, per component.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ComponentResources {
    /// The operator's container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<ResourceRequirements>,
    /// The metrics API server's container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_server: Option<ResourceRequirements>,
    /// The admission webhooks' container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhooks: Option<ResourceRequirements>,
}

impl ComponentResources {
    fn of(&self, component: Component) -> Option<&ResourceRequirements> {
        match component {
            Component::Operator => self.operator.as_ref(),
            Component::MetricsServer => self.metrics_server.as_ref(),
            Component::Webhooks => self.webhooks.as_ref(),
        }
    }
}

/// What `Custom::KedaInstall` asks for KEDA's availability; the default changes nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Availability {
    /// Operator replicas; they elect one leader (the manifest runs it with `--leader-elect`).
    pub operator_replicas: Option<i32>,
    /// Metrics API server replicas.
    pub metrics_server_replicas: Option<i32>,
    /// Admission webhook replicas.
    pub webhook_replicas: Option<i32>,
    /// A `PodDisruptionBudget` (`maxUnavailable: 1`) for each component with two replicas or more.
    pub pod_disruption_budgets: bool,
    /// Spread each component's replicas across zones or nodes (`ScheduleAnyway`).
    pub topology_spread: Option<TopologySpread>,
    /// Requests and limits per component.
    pub resources: ComponentResources,
}

impl Availability {
    fn replicas(&self, component: Component) -> Option<i32> {
        match component {
            Component::Operator => self.operator_replicas,
            Component::MetricsServer => self.metrics_server_replicas,
            Component::Webhooks => self.webhook_replicas,
        }
    }

    /// The checks that need no call; errors name the property.
    pub fn validate(&self) -> Result<(), Error> {
        for (component, _, _) in COMPONENTS {
            if let Some(replicas) = self.replicas(component)
                && !(1..=MAX_REPLICAS).contains(&replicas)
            {
                return Err(Error::invalid(
                    component.replicas_property(),
                    format!("{replicas} is outside 1 to {MAX_REPLICAS}"),
                ));
            }
        }
        let protected = COMPONENTS
            .iter()
            .any(|(component, _, _)| self.replicas(*component).unwrap_or(1) >= 2);
        if self.pod_disruption_budgets && !protected {
            return Err(Error::invalid(
                "PodDisruptionBudgets",
                "protects nothing with one replica of each component (a budget would only block node \
                 drains); give OperatorReplicas, MetricsServerReplicas or WebhookReplicas 2 or more",
            ));
        }
        Ok(())
    }

    /// Applies these settings to KEDA's Deployments in `objects` and adds the budgets.
    pub fn apply(&self, objects: &mut Vec<DynamicObject>) -> Result<(), Error> {
        self.validate()?;
        for (component, deployment, app) in COMPONENTS {
            let found = objects
                .iter_mut()
                .find(|o| is(o, "Deployment", deployment))
                .ok_or_else(|| missing(&format!("{deployment} Deployment in namespace keda")))?;
            let spec = &mut found.data["spec"];
            if let Some(replicas) = self.replicas(component) {
                spec["replicas"] = json!(replicas);
            }
            let pod = &mut spec["template"]["spec"];
            if let Some(spread) = self.topology_spread {
                pod["topologySpreadConstraints"] = json!([spread.constraint(app)]);
            }
            if let Some(resources) = self.resources.of(component)
                && let Some(container) = pod["containers"].get_mut(0)
            {
                container["resources"] = serde_json::to_value(resources).unwrap_or_default();
            }
            if self.pod_disruption_budgets && self.replicas(component).unwrap_or(1) >= 2 {
                objects.push(budget(deployment, app));
            }
        }
        Ok(())
    }

    /// The same settings as values of KEDA's Helm chart (2.14 and later).
    pub fn helm_values(&self, values: &mut Value) {
        for (component, _, app) in COMPONENTS {
            let protected = self.replicas(component).unwrap_or(1) >= 2;
            if let Some(replicas) = self.replicas(component) {
                values[component.helm_section()]["replicaCount"] = json!(replicas);
            }
            if self.pod_disruption_budgets && protected {
                values["podDisruptionBudget"][component.helm_key()] = json!({"maxUnavailable": 1});
            }
            if let Some(resources) = self.resources.of(component) {
                values["resources"][component.helm_key()] = serde_json::to_value(resources).unwrap_or_default();
            }
            if let Some(spread) = self.topology_spread {
                values["topologySpreadConstraints"][component.helm_section()] = json!([spread.constraint(app)]);
            }
        }
    }
}

fn budget(deployment: &str, app: &str) -> DynamicObject {
    let labels = BTreeMap::from([("app.kubernetes.io/part-of", "keda-operator")]);
    serde_json::from_value(json!({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": deployment, "namespace": NAMESPACE, "labels": labels},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": app}}},
    }))
    .unwrap_or_else(|e| unreachable!("a literal object: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::plan::parse_manifest;

    fn keda() -> Vec<DynamicObject> {
        parse_manifest(&crate::test_data::keda_manifest()).unwrap()
    }

    fn deployment<'a>(objects: &'a [DynamicObject], name: &str) -> &'a Value {
        &objects
            .iter()
            .find(|o| o.metadata.name.as_deref() == Some(name) && o.types.as_ref().unwrap().kind == "Deployment")
            .unwrap()
            .data
    }

    #[test]
    fn the_default_changes_nothing() {
        let mut objects = keda();
        let before = objects.clone();
        Availability::default().apply(&mut objects).unwrap();
        assert_eq!(objects, before);
        let mut values = json!({});
        Availability::default().helm_values(&mut values);
        assert_eq!(values, json!({}));
    }

    #[test]
    fn replicas_budgets_spread_and_resources_reach_each_deployment() {
        let resources: ResourceRequirements = serde_json::from_value(
            json!({"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}}),
        )
        .unwrap();
        let availability = Availability {
            operator_replicas: Some(2),
            metrics_server_replicas: Some(3),
            webhook_replicas: None,
            pod_disruption_budgets: true,
            topology_spread: Some(TopologySpread::Zone),
            resources: ComponentResources {
                operator: Some(resources.clone()),
                ..ComponentResources::default()
            },
        };
        let mut objects = keda();
        let count = objects.len();
        availability.apply(&mut objects).unwrap();
        let operator = deployment(&objects, "keda-operator");
        assert_eq!(operator["spec"]["replicas"], 2);
        assert_eq!(
            operator["spec"]["template"]["spec"]["containers"][0]["resources"],
            serde_json::to_value(&resources).unwrap()
        );
        assert_eq!(
            operator["spec"]["template"]["spec"]["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"]["app"],
            "keda-operator"
        );
        assert_eq!(deployment(&objects, "keda-metrics-apiserver")["spec"]["replicas"], 3);
        let webhooks = deployment(&objects, "keda-admission");
        assert_eq!(webhooks["spec"]["replicas"], 1, "KEDA's default kept");
        assert_eq!(
            webhooks["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"], "100m",
            "the manifest's resources kept"
        );
        // Budgets for the two components with replicas to protect, none for the single webhook.
        let budgets: Vec<(String, Value)> = objects[count..]
            .iter()
            .map(|o| (o.metadata.name.clone().unwrap(), o.data["spec"].clone()))
            .collect();
        assert_eq!(
            budgets,
            [
                (
                    "keda-operator".to_owned(),
                    json!({"maxUnavailable": 1, "selector": {"matchLabels": {"app": "keda-operator"}}})
                ),
                (
                    "keda-metrics-apiserver".to_owned(),
                    json!({"maxUnavailable": 1, "selector": {"matchLabels": {"app": "keda-metrics-apiserver"}}})
                ),
            ]
        );
        let mut values = json!({});
        availability.helm_values(&mut values);
        assert_eq!(values["operator"]["replicaCount"], 2);
        assert_eq!(values["metricsServer"]["replicaCount"], 3);
        assert_eq!(values["podDisruptionBudget"]["operator"], json!({"maxUnavailable": 1}));
        assert!(values["podDisruptionBudget"].get("webhooks").is_none());
    }

    #[test]
    fn settings_that_cannot_help_are_refused_naming_the_property() {
        let cases = [
            (
                Availability {
                    operator_replicas: Some(0),
                    ..Availability::default()
                },
                "property OperatorReplicas: 0 is outside 1 to 10",
            ),
            (
                Availability {
                    webhook_replicas: Some(10_000),
                    ..Availability::default()
                },
                "property WebhookReplicas: 10000 is outside 1 to 10",
            ),
            (
                Availability {
                    pod_disruption_budgets: true,
                    ..Availability::default()
                },
                "property PodDisruptionBudgets: protects nothing with one replica of each component",
            ),
        ];
        for (availability, expected) in cases {
            let error = availability.apply(&mut keda()).unwrap_err().to_string();
            assert!(error.starts_with(expected), "{error}");
        }
    }
}
