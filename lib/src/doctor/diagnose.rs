//! The diagnosis: from what was read to each link's status, detail and fix. Pure: every rule
//! here is unit-tested on objects as the API server, IAM and SQS return them.

use serde_json::Value;

use super::facts::{ClusterFacts, ScaledObjectFacts};
use super::{Finding, Link, Status, shown};
use crate::iam::Role;
use crate::iam::policy;
use crate::keda::install::{IdentityMode, METRICS_API_SERVICE};
use crate::sim::hpa::KubernetesVersion;
use crate::sim::keda::Settings;

const IRSA_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
const TRUST_FIX: &str = "run the trust fix, which keeps only KEDA's operator role (Custom::KedaTrustPolicy, or \
                         `kedaform trust apply --role ROLE --keda-role OPERATOR_ROLE`)";

fn ok(link: Link, detail: impl Into<String>) -> Finding {
    Finding {
        link,
        status: Status::Ok,
        detail: detail.into(),
        fix: None,
    }
}

fn wrong(link: Link, detail: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        link,
        status: Status::Wrong,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

fn unknown(link: Link, detail: impl Into<String>) -> Finding {
    Finding {
        link,
        status: Status::Unknown,
        detail: detail.into(),
        fix: None,
    }
}

fn text<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value.pointer(pointer).and_then(Value::as_str)
}

fn label<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object["metadata"]["labels"][key].as_str()
}

fn name_of(object: &Value) -> String {
    shown(text(object, "/metadata/name").unwrap_or_default())
}

fn namespace_of(object: &Value) -> String {
    shown(text(object, "/metadata/namespace").unwrap_or("default"))
}

fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

fn because(condition: &Value) -> String {
    let reason = condition["reason"].as_str().unwrap_or_default();
    let message = condition["message"].as_str().unwrap_or_default();
    shown(&match (reason.is_empty(), message.is_empty()) {
        (_, true) => reason.to_owned(),
        (true, false) => message.to_owned(),
        (false, false) => format!("{reason}: {message}"),
    })
}

/// The operator's Deployment among KEDA's (KEDA's manifest and its chart both name it so).
fn operator(deployments: &[Value]) -> Option<&Value> {
    deployments
        .iter()
        .find(|d| label(d, "app.kubernetes.io/name") == Some("keda-operator"))
}

fn is_metrics_server(deployment: &Value) -> bool {
    label(deployment, "app.kubernetes.io/name").is_some_and(|n| n.ends_with("metrics-apiserver"))
}

/// The operator's namespace and service account.
pub(crate) fn operator_account(deployments: &[Value]) -> Option<(String, String)> {
    let operator = operator(deployments)?;
    let namespace = text(operator, "/metadata/namespace")?.to_owned();
    let account = text(operator, "/spec/template/spec/serviceAccountName").unwrap_or("default");
    Some((namespace, account.to_owned()))
}

/// The IRSA role a service account is annotated with.
pub(crate) fn irsa_role(account: Option<&Value>) -> Option<String> {
    account?["metadata"]["annotations"][IRSA_ANNOTATION]
        .as_str()
        .map(str::to_owned)
}

/// `ready of wanted` for a Deployment, or None when it has all it wants.
fn short_of(deployment: &Value) -> Option<(i64, i64)> {
    let wanted = deployment["spec"]["replicas"].as_i64().unwrap_or(1);
    let ready = deployment["status"]["readyReplicas"].as_i64().unwrap_or(0);
    (wanted == 0 || ready < wanted).then_some((ready, wanted))
}

/// How the operator gets its AWS identity, as the identity link found it: the `ScaledObject`s'
/// links judge against it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Identity {
    /// IRSA or Pod Identity, when known.
    pub mode: Option<IdentityMode>,
    /// The operator's role, when known.
    pub role: Option<String>,
}

/// The cluster-wide links: KEDA, the metrics API, the operator's identity.
pub(crate) fn cluster(facts: &ClusterFacts) -> (Vec<Finding>, Identity) {
    let Some(operator) = operator(&facts.deployments) else {
        let fix = "install KEDA: Custom::KedaInstall, or `kedaform keda install`";
        return (
            vec![
                wrong(
                    Link::Keda,
                    "KEDA is not installed: no Deployment labelled app.kubernetes.io/name=keda-operator",
                    fix,
                ),
                unknown(Link::MetricsApi, "not examined: KEDA is not installed"),
                unknown(Link::OperatorIdentity, "not examined: KEDA is not installed"),
            ],
            Identity::default(),
        );
    };
    let namespace = namespace_of(operator);
    let (identity_finding, identity) = operator_identity(facts, &namespace);
    (
        vec![
            keda(facts, operator, &namespace),
            metrics_api(facts, &namespace),
            identity_finding,
        ],
        identity,
    )
}

fn keda(facts: &ClusterFacts, operator: &Value, namespace: &str) -> Finding {
    let version = label(operator, "app.kubernetes.io/version").map_or_else(|| "of unknown version".into(), shown);
    let others: Vec<&Value> = facts
        .deployments
        .iter()
        .filter(|d| !std::ptr::eq(*d, operator) && !is_metrics_server(d) && namespace_of(d) == namespace)
        .collect();
    let mut short = Vec::new();
    for deployment in std::iter::once(operator).chain(others.iter().copied()) {
        if let Some((ready, wanted)) = short_of(deployment) {
            short.push(if wanted == 0 {
                format!("{} is scaled to 0", name_of(deployment))
            } else {
                format!("{} has {ready} of {wanted} replicas ready", name_of(deployment))
            });
        }
    }
    if short.is_empty() {
        let names: Vec<String> = std::iter::once(operator).chain(others).map(name_of).collect();
        ok(
            Link::Keda,
            format!("KEDA {version} in namespace {namespace}: {} ready", names.join(", ")),
        )
    } else {
        wrong(
            Link::Keda,
            format!("KEDA {version} in namespace {namespace}: {}", short.join("; ")),
            format!(
                "bring its replicas back: Update the Custom::KedaInstall (OperatorReplicas, WebhookReplicas) or `kubectl \
                 -n {namespace} scale deployment NAME --replicas=1`; if pods exist but are not ready, their events and \
                 logs say why"
            ),
        )
    }
}

fn metrics_api(facts: &ClusterFacts, namespace: &str) -> Finding {
    let Some(apiservice) = &facts.apiservice else {
        return wrong(
            Link::MetricsApi,
            format!("APIService {METRICS_API_SERVICE} does not exist: the HPA cannot read KEDA's metrics"),
            "re-apply KEDA (an Update of the Custom::KedaInstall restores it)",
        );
    };
    let service_namespace = text(apiservice, "/spec/service/namespace").map(shown);
    let service_name = text(apiservice, "/spec/service/name").map(shown);
    let (Some(service_namespace), Some(service_name)) = (service_namespace, service_name) else {
        return wrong(
            Link::MetricsApi,
            format!("APIService {METRICS_API_SERVICE} is served locally, not by KEDA's metrics server"),
            "re-apply KEDA (Custom::KedaInstall with AdoptExisting, or remove the APIService and Update it)",
        );
    };
    let served_by = format!("Service {service_namespace}/{service_name}");
    if service_namespace != namespace {
        return wrong(
            Link::MetricsApi,
            format!(
                "APIService {METRICS_API_SERVICE} is served by {served_by}, not by KEDA's metrics server in {namespace}: \
                 the HPA gets another adapter's metrics"
            ),
            "one adapter serves external metrics per cluster: remove the other adapter's APIService, or let KEDA take \
             it over (Custom::KedaInstall AdoptExisting: true)",
        );
    }
    match condition(apiservice, "Available") {
        Some(c) if c["status"] == "True" => ok(
            Link::MetricsApi,
            format!("APIService {METRICS_API_SERVICE} is Available, served by {served_by}"),
        ),
        Some(c) => wrong(
            Link::MetricsApi,
            format!(
                "APIService {METRICS_API_SERVICE} is not Available ({}): the HPA cannot read KEDA's metrics",
                because(c)
            ),
            format!(
                "KEDA's metrics server behind {served_by} must run: check its Deployment's replicas and its pods' \
                 events and logs"
            ),
        ),
        None => unknown(
            Link::MetricsApi,
            format!("APIService {METRICS_API_SERVICE} has no Available condition yet"),
        ),
    }
}

fn operator_identity(facts: &ClusterFacts, namespace: &str) -> (Finding, Identity) {
    let account = text(
        facts.operator_account.as_ref().unwrap_or(&Value::Null),
        "/metadata/name",
    )
    .map_or_else(|| "keda-operator".into(), shown);
    let account = format!("{namespace}/{account}");
    if facts.operator_account.is_none() {
        return (
            wrong(
                Link::OperatorIdentity,
                format!("the operator's service account {account} does not exist"),
                "re-apply KEDA (an Update of the Custom::KedaInstall restores it)",
            ),
            Identity::default(),
        );
    }
    let (mode, role, how) = if let Some(role) = irsa_role(facts.operator_account.as_ref()) {
        (IdentityMode::Irsa, role, format!("IRSA: service account {account}"))
    } else {
        match &facts.association {
            Some(Ok(Some(role))) => (
                IdentityMode::PodIdentity,
                role.clone(),
                format!("Pod Identity: the association of {account}"),
            ),
            Some(Ok(None)) | None => {
                return (
                    wrong(
                        Link::OperatorIdentity,
                        format!(
                            "the operator has no AWS identity: service account {account} has no {IRSA_ANNOTATION} \
                             annotation and no Pod Identity association"
                        ),
                        "give KEDA its role: Custom::KedaInstall OperatorRoleArn with IdentityMode irsa, or an \
                         AWS::EKS::PodIdentityAssociation for it with IdentityMode pod-identity",
                    ),
                    Identity::default(),
                );
            }
            Some(Err(reason)) => {
                return (
                    unknown(
                        Link::OperatorIdentity,
                        format!(
                            "service account {account} has no {IRSA_ANNOTATION} annotation, and its Pod Identity \
                             association could not be read: {}",
                            shown(reason)
                        ),
                    ),
                    Identity {
                        mode: Some(IdentityMode::PodIdentity),
                        role: None,
                    },
                );
            }
        }
    };
    let role_shown = shown(&role);
    let identity = Identity {
        mode: Some(mode),
        role: Some(role.clone()),
    };
    let finding = match &facts.operator_role {
        None => wrong(
            Link::OperatorIdentity,
            format!("{how} names {role_shown}, which is not an IAM role ARN"),
            "give KEDA a role ARN (Custom::KedaInstall OperatorRoleArn)",
        ),
        Some(Ok(Some(_))) => ok(
            Link::OperatorIdentity,
            format!("{how} → role {role_shown}, which exists"),
        ),
        Some(Ok(None)) => wrong(
            Link::OperatorIdentity,
            format!("{how} → role {role_shown}, which does not exist in IAM"),
            "create the role, or give KEDA the role that exists (Custom::KedaInstall OperatorRoleArn)",
        ),
        Some(Err(reason)) => unknown(
            Link::OperatorIdentity,
            format!("{how} → role {role_shown}; IAM could not be read: {}", shown(reason)),
        ),
    };
    (finding, identity)
}

/// The `aws-sqs-queue` trigger of a ScaledObject, as far as the doctor reads it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SqsTrigger {
    /// `queueURL`.
    pub queue_url: String,
    /// `awsRegion`.
    pub region: Option<String>,
    /// `authenticationRef.name`.
    pub authentication: Option<String>,
    /// `authenticationRef.kind` (`TriggerAuthentication` by default).
    pub authentication_kind: String,
    /// The scaler's settings the planner needs.
    pub settings: Settings,
}

impl SqsTrigger {
    /// The region to read the queue in, when it is one.
    pub(crate) fn usable_region(&self) -> Option<String> {
        let region = self.region.as_deref()?;
        let valid = (1..=32).contains(&region.len())
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        (valid && !self.queue_url.is_empty() && self.queue_url.len() <= 1024).then(|| region.to_owned())
    }
}

fn number<T: std::str::FromStr>(value: &Value) -> Option<T> {
    match value {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.to_string().parse().ok(),
        _ => None,
    }
}

/// The first `aws-sqs-queue` trigger, with the settings KEDA applies to it.
pub(crate) fn sqs_trigger(scaled_object: &Value) -> Option<SqsTrigger> {
    let trigger = scaled_object["spec"]["triggers"]
        .as_array()?
        .iter()
        .find(|t| t["type"] == "aws-sqs-queue")?;
    let metadata = &trigger["metadata"];
    let spec = &scaled_object["spec"];
    let defaults = Settings::default();
    let flag = |key: &str, default: bool| metadata[key].as_str().map_or(default, |v| v.trim() == "true");
    let settings = Settings {
        queue_length: number(&metadata["queueLength"]).unwrap_or(defaults.queue_length).max(1),
        activation_queue_length: number(&metadata["activationQueueLength"]).unwrap_or(0),
        polling_interval: number(&spec["pollingInterval"]).unwrap_or(defaults.polling_interval),
        cooldown_period: number(&spec["cooldownPeriod"]).unwrap_or(defaults.cooldown_period),
        min_replicas: number(&spec["minReplicaCount"]).unwrap_or(defaults.min_replicas),
        max_replicas: number(&spec["maxReplicaCount"]).unwrap_or(defaults.max_replicas),
        scale_on_in_flight: flag("scaleOnInFlight", true),
        scale_on_delayed: flag("scaleOnDelayed", false),
        behavior: None,
    };
    Some(SqsTrigger {
        queue_url: metadata["queueURL"].as_str().unwrap_or_default().to_owned(),
        region: metadata["awsRegion"].as_str().map(str::to_owned),
        authentication: trigger["authenticationRef"]["name"].as_str().map(str::to_owned),
        authentication_kind: trigger["authenticationRef"]["kind"]
            .as_str()
            .filter(|k| *k == "ClusterTriggerAuthentication")
            .unwrap_or("TriggerAuthentication")
            .to_owned(),
        settings,
    })
}

/// The HPA KEDA made for the ScaledObject: its status names it; KEDA's default otherwise.
pub(crate) fn hpa_name(scaled_object: &Value, name: &str) -> String {
    text(scaled_object, "/status/hpaName")
        .or_else(|| text(scaled_object, "/spec/advanced/horizontalPodAutoscalerConfig/name"))
        .map_or_else(|| format!("keda-hpa-{name}"), str::to_owned)
}

/// The Deployment the ScaledObject scales, when it scales one.
pub(crate) fn target_deployment(scaled_object: &Value) -> Option<String> {
    let target = &scaled_object["spec"]["scaleTargetRef"];
    let kind = target["kind"].as_str().unwrap_or("Deployment");
    (kind == "Deployment").then(|| target["name"].as_str().map(str::to_owned))?
}

/// The role KEDA assumes for the trigger, when the TriggerAuthentication names one.
pub(crate) fn consumer_role_arn(trigger_authentication: Option<&Value>) -> Option<String> {
    text(trigger_authentication?, "/spec/podIdentity/roleArn").map(str::to_owned)
}

/// One ScaledObject's links, symptoms of a wrong cause made unknown (see [`explain`]).
pub(crate) fn scaled_object(facts: &ScaledObjectFacts, identity: &Identity, cluster: &[Finding]) -> Vec<Finding> {
    let object = &facts.scaled_object;
    let Some(trigger) = sqs_trigger(object) else {
        return vec![unknown(
            Link::ScaledObject,
            "has no aws-sqs-queue trigger: the doctor examines SQS scaling only",
        )];
    };
    let mut findings = vec![scaled_object_link(object, &trigger, facts.target.as_ref())];
    let (authentication, uses_role) = trigger_authentication(facts, &trigger, identity);
    let usable = authentication.status == Status::Ok;
    findings.push(authentication);
    findings.extend(roles(facts, identity, usable, uses_role));
    findings.push(queue(facts, &trigger));
    findings.push(scaler(facts));
    findings.push(hpa(facts));
    findings.push(replicas(facts, &trigger));
    explain(cluster, findings)
}

fn scaled_object_link(object: &Value, trigger: &SqsTrigger, target: Option<&Value>) -> Finding {
    let Some(target_name) = target_deployment(object) else {
        return unknown(
            Link::ScaledObject,
            "scales something other than a Deployment: the doctor compares replicas of Deployments only",
        );
    };
    let target_name = shown(&target_name);
    if target.is_none() {
        return wrong(
            Link::ScaledObject,
            format!("scales Deployment {target_name}, which does not exist"),
            "create the Deployment, or point ScaleTargetName at the one that exists",
        );
    }
    if trigger.authentication.is_none() {
        return wrong(
            Link::ScaledObject,
            "its aws-sqs-queue trigger names no TriggerAuthentication: KEDA would read the queue with its own role",
            "name the TriggerAuthentication in the trigger's authenticationRef (Custom::KedaScaledObject writes both)",
        );
    }
    ok(
        Link::ScaledObject,
        format!(
            "scales Deployment {target_name} on queue {} ({} messages per replica, {} to {} replicas)",
            shown(&trigger.queue_url),
            trigger.settings.queue_length,
            trigger.settings.min_replicas,
            trigger.settings.max_replicas
        ),
    )
}

/// The TriggerAuthentication's link, and whether KEDA assumes a role of its naming.
fn trigger_authentication(facts: &ScaledObjectFacts, trigger: &SqsTrigger, identity: &Identity) -> (Finding, bool) {
    let kind = &trigger.authentication_kind;
    let Some(name) = &trigger.authentication else {
        return (unknown(Link::TriggerAuthentication, "the trigger names none"), false);
    };
    let named = format!("{kind} {}", shown(name));
    let Some(authentication) = &facts.trigger_authentication else {
        return (
            wrong(
                Link::TriggerAuthentication,
                format!("{named}, which the trigger names, does not exist: KEDA cannot read the queue"),
                format!(
                    "create {named} (Custom::KedaScaledObject creates it with the ScaledObject: Update it to restore it)"
                ),
            ),
            false,
        );
    };
    let pod_identity = &authentication["spec"]["podIdentity"];
    let provider = pod_identity["provider"].as_str().unwrap_or_default();
    if provider != "aws" {
        let fix = "set spec.podIdentity.provider: aws (aws-eks is deprecated; Custom::KedaScaledObject writes aws)";
        let found = if provider.is_empty() {
            "none".to_owned()
        } else {
            shown(provider)
        };
        return (
            wrong(
                Link::TriggerAuthentication,
                format!("{named} has podIdentity provider {found}, not aws"),
                fix,
            ),
            false,
        );
    }
    let workload = pod_identity["identityOwner"] == "workload";
    if workload && identity.mode == Some(IdentityMode::PodIdentity) {
        return (
            wrong(
                Link::TriggerAuthentication,
                format!(
                    "{named} has identityOwner workload, which KEDA does not support under EKS Pod Identity \
                     (kedacore/keda 6418)"
                ),
                "name the consumer role in roleArn (Custom::KedaScaledObject IdentityOwner: keda with RoleArn)",
            ),
            false,
        );
    }
    let how = match (workload, consumer_role_arn(Some(authentication))) {
        (true, _) => "KEDA uses the scaled workload's own role (identityOwner workload)".to_owned(),
        (false, Some(role)) => format!("KEDA assumes {}", shown(&role)),
        (false, None) => "KEDA uses its own role (no roleArn)".to_owned(),
    };
    (
        ok(Link::TriggerAuthentication, format!("{named}: provider aws; {how}")),
        !workload && pod_identity["roleArn"].is_string(),
    )
}

/// The consumer role's link and its trust's.
fn roles(facts: &ScaledObjectFacts, identity: &Identity, usable: bool, uses_role: bool) -> [Finding; 2] {
    if !usable {
        return [
            unknown(Link::ConsumerRole, "not examined: see trigger-authentication"),
            unknown(Link::Trust, "not examined: see trigger-authentication"),
        ];
    }
    if !uses_role {
        return [
            ok(
                Link::ConsumerRole,
                "no role to assume: the TriggerAuthentication names none",
            ),
            ok(Link::Trust, "no trust to check: KEDA assumes no role for this trigger"),
        ];
    }
    let arn = consumer_role_arn(facts.trigger_authentication.as_ref()).unwrap_or_default();
    let arn_shown = shown(&arn);
    let role: &Role = match &facts.consumer_role {
        None => {
            return [
                wrong(
                    Link::ConsumerRole,
                    format!("roleArn {arn_shown} is not an IAM role ARN"),
                    "set RoleArn to the consumer role's ARN",
                ),
                unknown(Link::Trust, "not examined: no consumer role"),
            ];
        }
        Some(Ok(None)) => {
            return [
                wrong(
                    Link::ConsumerRole,
                    format!("role {arn_shown}, which KEDA assumes, does not exist in IAM"),
                    "create the role, or set RoleArn to the role that exists",
                ),
                unknown(Link::Trust, "not examined: the consumer role does not exist"),
            ];
        }
        Some(Err(reason)) => {
            return [
                unknown(
                    Link::ConsumerRole,
                    format!("role {arn_shown}: IAM could not be read: {}", shown(reason)),
                ),
                unknown(Link::Trust, "not examined: the consumer role could not be read"),
            ];
        }
        Some(Ok(Some(role))) => role,
    };
    [
        ok(Link::ConsumerRole, format!("role {arn_shown} exists")),
        trust(role, identity),
    ]
}

fn trust(role: &Role, identity: &Identity) -> Finding {
    let Some(operator) = &identity.role else {
        return unknown(
            Link::Trust,
            "not examined: the operator's role is not known (see operator-identity)",
        );
    };
    let operator_shown = shown(operator);
    let role_shown = shown(&role.arn);
    let admission = match policy::admission(&role.trust_policy, operator) {
        Ok(admission) => admission,
        Err(policy::MalformedPolicy(reason)) => {
            return wrong(
                Link::Trust,
                format!(
                    "the trust policy of {role_shown} cannot be read as a policy: {}",
                    shown(&reason)
                ),
                TRUST_FIX,
            );
        }
    };
    let others = admission.others.iter().map(|o| shown(o)).collect::<Vec<_>>().join(", ");
    match (admission.admitted, admission.others.is_empty()) {
        (true, true) => ok(
            Link::Trust,
            format!("{role_shown} trusts KEDA's operator role {operator_shown} and no other AWS principal"),
        ),
        (true, false) => wrong(
            Link::Trust,
            format!(
                "{role_shown} trusts KEDA's operator role but also {others}: anyone there allowed sts:AssumeRole can \
                 read the queue as this role"
            ),
            TRUST_FIX,
        ),
        (false, true) => wrong(
            Link::Trust,
            format!("{role_shown} does not trust KEDA's operator role {operator_shown}: KEDA cannot assume it"),
            TRUST_FIX,
        ),
        (false, false) => wrong(
            Link::Trust,
            format!(
                "{role_shown} trusts {others}, not KEDA's operator role {operator_shown}: the trust fix was not \
                 applied"
            ),
            TRUST_FIX,
        ),
    }
}

fn queue(facts: &ScaledObjectFacts, trigger: &SqsTrigger) -> Finding {
    let url = shown(&trigger.queue_url);
    match &facts.queue {
        None if trigger.queue_url.is_empty() => wrong(
            Link::Queue,
            "the trigger has no queueURL",
            "set QueueUrl (Custom::KedaScaledObject)",
        ),
        None => wrong(
            Link::Queue,
            "the trigger's awsRegion is missing or not a region: KEDA cannot read the queue",
            "set awsRegion to the queue's region (Custom::KedaScaledObject derives it from QueueUrl)",
        ),
        Some(Ok(Some(counts))) => ok(
            Link::Queue,
            format!(
                "queue {url}: {} visible, {} in flight, {} delayed",
                counts.visible, counts.in_flight, counts.delayed
            ),
        ),
        Some(Ok(None)) => wrong(
            Link::Queue,
            format!("queue {url} does not exist"),
            "set QueueUrl to the queue the producer sends to",
        ),
        Some(Err(reason)) => unknown(Link::Queue, format!("queue {url} could not be read: {}", shown(reason))),
    }
}

fn scaler(facts: &ScaledObjectFacts) -> Finding {
    let object: ::kube::api::DynamicObject = match serde_json::from_value(facts.scaled_object.clone()) {
        Ok(object) => object,
        Err(_) => return unknown(Link::Scaler, "the ScaledObject could not be read as an object"),
    };
    if let Some(failure) = crate::kube::readiness::scaler_failure(&object, &facts.events) {
        return wrong(
            Link::Scaler,
            format!("KEDA cannot read the trigger: {}", shown(&failure)),
            "the scaler's error names what to fix: the role, its trust, or the queue",
        );
    }
    match condition(&facts.scaled_object, "Ready") {
        Some(c) if c["status"] == "True" => ok(
            Link::Scaler,
            "Ready, and no KEDAScalerFailed in KEDA's events of the last 10 minutes",
        ),
        Some(c) => wrong(
            Link::Scaler,
            format!("not Ready: {}", because(c)),
            "the reason names what to fix",
        ),
        None => unknown(Link::Scaler, "KEDA has not reported on it yet"),
    }
}

fn hpa(facts: &ScaledObjectFacts) -> Finding {
    let Some(hpa) = &facts.hpa else {
        return wrong(
            Link::Hpa,
            "KEDA has made no HorizontalPodAutoscaler for it",
            "KEDA makes it when the ScaledObject is valid: see the scaler link and KEDA's events",
        );
    };
    let name = name_of(hpa);
    let mut wrongs = Vec::new();
    for kind in ["AbleToScale", "ScalingActive"] {
        match condition(hpa, kind) {
            Some(c) if c["status"] == "True" => {}
            Some(c) => wrongs.push(format!(
                "{kind} is {}: {}",
                shown(c["status"].as_str().unwrap_or("")),
                because(c)
            )),
            None => return unknown(Link::Hpa, format!("HPA {name} has no {kind} condition yet")),
        }
    }
    let limited = condition(hpa, "ScalingLimited").filter(|c| c["status"] == "True");
    if let Some(c) = limited.filter(|c| c["reason"] == "TooManyReplicas") {
        wrongs.push(format!("ScalingLimited: {}", because(c)));
    }
    if wrongs.is_empty() {
        let note = limited
            .map(|c| format!("; ScalingLimited: {}", because(c)))
            .unwrap_or_default();
        ok(Link::Hpa, format!("HPA {name}: AbleToScale, ScalingActive{note}"))
    } else {
        wrong(
            Link::Hpa,
            format!("HPA {name}: {}", wrongs.join("; ")),
            "FailedGetExternalMetric: KEDA's metrics do not reach the HPA (see metrics-api and keda); \
             TooManyReplicas: raise MaxReplicas",
        )
    }
}

fn replicas(facts: &ScaledObjectFacts, trigger: &SqsTrigger) -> Finding {
    let Some(target) = &facts.target else {
        return unknown(Link::Replicas, "not examined: no Deployment to compare");
    };
    let Some(Ok(Some(counts))) = &facts.queue else {
        return unknown(Link::Replicas, "not examined: the queue's depth is not known");
    };
    let running = u32::try_from(target["spec"]["replicas"].as_i64().unwrap_or(1)).unwrap_or(0);
    let predicted = crate::sim::keda::settle(&trigger.settings, KubernetesVersion::DEFAULT, running, *counts);
    let metric = trigger.settings.metric(*counts);
    let desired = facts
        .hpa
        .as_ref()
        .and_then(|h| h["status"]["desiredReplicas"].as_i64())
        .and_then(|d| u32::try_from(d).ok());
    let said = format!("{metric} messages count; the planner predicts {predicted} replicas, {running} are set");
    match running.cmp(&predicted) {
        std::cmp::Ordering::Equal => ok(Link::Replicas, said),
        std::cmp::Ordering::Greater => ok(
            Link::Replicas,
            format!("{said}: the scale-down waits for KEDA's cooldown and the HPA's stabilization window"),
        ),
        std::cmp::Ordering::Less if desired.is_some_and(|d| d >= predicted) => {
            ok(Link::Replicas, format!("{said}: the HPA is scaling up"))
        }
        std::cmp::Ordering::Less => wrong(
            Link::Replicas,
            format!("{said}: fewer than the queue needs"),
            format!(
                "if it lasts beyond pollingInterval + 15 s ({} s), the links above say why KEDA or the HPA does not act",
                trigger.settings.polling_interval + 15
            ),
        ),
    }
}

/// A symptom (the scaler, the HPA, the replicas) of a cause found wrong is not a finding of
/// its own: it becomes unknown, naming the cause, so that a report points at one link.
fn explain(cluster: &[Finding], findings: Vec<Finding>) -> Vec<Finding> {
    let cause = cluster
        .iter()
        .chain(&findings)
        .find(|f| f.status == Status::Wrong && !f.link.is_symptom())
        .map(|f| f.link);
    let Some(cause) = cause else {
        return findings;
    };
    findings
        .into_iter()
        .map(|f| {
            if f.link.is_symptom() && f.status == Status::Wrong {
                Finding {
                    status: Status::Unknown,
                    detail: format!("follows from {}: {}", cause.name(), f.detail),
                    fix: None,
                    ..f
                }
            } else {
                f
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const OPERATOR: &str = "arn:aws:iam::111122223333:role/keda-operator";
    const CONSUMER: &str = "arn:aws:iam::111122223333:role/consumer";

    fn deployment(name: &str, app: &str, wanted: i64, ready: i64) -> Value {
        json!({"metadata": {"name": name, "namespace": "keda",
                "labels": {"app.kubernetes.io/name": app, "app.kubernetes.io/part-of": "keda-operator",
                           "app.kubernetes.io/version": "2.20.2"}},
               "spec": {"replicas": wanted, "template": {"spec": {"serviceAccountName": "keda-operator"}}},
               "status": {"readyReplicas": ready}})
    }

    fn healthy_cluster() -> ClusterFacts {
        ClusterFacts {
            deployments: vec![
                deployment("keda-operator", "keda-operator", 1, 1),
                deployment("keda-metrics-apiserver", "keda-metrics-apiserver", 1, 1),
                deployment("keda-admission", "admission-webhooks", 1, 1),
            ],
            apiservice: Some(json!({"metadata": {"name": METRICS_API_SERVICE},
                "spec": {"service": {"namespace": "keda", "name": "keda-metrics-apiserver"}},
                "status": {"conditions": [{"type": "Available", "status": "True", "reason": "Passed"}]}})),
            operator_account: Some(json!({"metadata": {"name": "keda-operator", "namespace": "keda",
                "annotations": {IRSA_ANNOTATION: OPERATOR}}})),
            association: None,
            operator_role: Some(Ok(Some(role(OPERATOR, json!({"Statement": []}))))),
        }
    }

    /// A queue with `visible` messages, as read.
    fn counts(visible: u64) -> crate::sim::keda::QueueCounts {
        crate::sim::keda::QueueCounts {
            visible,
            in_flight: 0,
            delayed: 0,
        }
    }

    fn role(arn: &str, trust: Value) -> Role {
        Role {
            arn: arn.into(),
            trust_policy: trust,
        }
    }

    fn trusting(principal: &str) -> Value {
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": principal},
               "Action": "sts:AssumeRole"}]})
    }

    fn healthy_scaled_object() -> ScaledObjectFacts {
        ScaledObjectFacts {
            scaled_object: json!({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
                "metadata": {"name": "consumer", "namespace": "sales", "uid": "u-1"},
                "spec": {"scaleTargetRef": {"name": "consumer"}, "minReplicaCount": 1, "maxReplicaCount": 10,
                         "triggers": [{"type": "aws-sqs-queue", "authenticationRef": {"name": "consumer-auth"},
                           "metadata": {"queueURL": "https://sqs.us-east-1.amazonaws.com/111122223333/q",
                                        "queueLength": "5", "awsRegion": "us-east-1"}}]},
                "status": {"hpaName": "keda-hpa-consumer",
                           "conditions": [{"type": "Ready", "status": "True"}]}}),
            trigger_authentication: Some(json!({"metadata": {"name": "consumer-auth"},
                "spec": {"podIdentity": {"provider": "aws", "roleArn": CONSUMER}}})),
            consumer_role: Some(Ok(Some(role(CONSUMER, trusting(OPERATOR))))),
            queue: Some(Ok(Some(counts(10)))),
            events: Vec::new(),
            hpa: Some(json!({"metadata": {"name": "keda-hpa-consumer"},
                "status": {"desiredReplicas": 2, "conditions": [
                    {"type": "AbleToScale", "status": "True"}, {"type": "ScalingActive", "status": "True"},
                    {"type": "ScalingLimited", "status": "False"}]}})),
            target: Some(json!({"metadata": {"name": "consumer"}, "spec": {"replicas": 2}})),
        }
    }

    fn diagnose(cluster_facts: &ClusterFacts, object: &ScaledObjectFacts) -> Vec<Finding> {
        let (mut findings, identity) = cluster(cluster_facts);
        let more = scaled_object(object, &identity, &findings);
        findings.extend(more);
        findings
    }

    /// The links not ok, as `link status`.
    fn not_ok(findings: &[Finding]) -> Vec<String> {
        findings
            .iter()
            .filter(|f| f.status != Status::Ok)
            .map(|f| format!("{} {:?}", f.link.name(), f.status))
            .collect()
    }

    fn finding(findings: &[Finding], link: Link) -> &Finding {
        findings.iter().find(|f| f.link == link).unwrap()
    }

    #[test]
    fn a_healthy_chain_is_ok_in_every_link() {
        let findings = diagnose(&healthy_cluster(), &healthy_scaled_object());
        assert_eq!(not_ok(&findings), Vec::<String>::new(), "{findings:#?}");
        assert_eq!(findings.len(), 11);
        assert!(
            finding(&findings, Link::Keda)
                .detail
                .contains("KEDA 2.20.2 in namespace keda")
        );
        assert!(
            finding(&findings, Link::Replicas)
                .detail
                .contains("the planner predicts 2 replicas, 2 are set")
        );
    }

    #[test]
    fn each_cause_names_its_link_alone() {
        let mut scaled_to_zero = healthy_cluster();
        scaled_to_zero.deployments[0] = deployment("keda-operator", "keda-operator", 0, 0);
        let mut unavailable = healthy_cluster();
        unavailable.apiservice.as_mut().unwrap()["status"]["conditions"][0] =
            json!({"type": "Available", "status": "False", "reason": "MissingEndpoints", "message": "no endpoints"});
        let mut no_operator_role = healthy_cluster();
        no_operator_role.operator_role = Some(Ok(None));
        for (cluster_facts, link) in [
            (scaled_to_zero, "keda"),
            (unavailable, "metrics-api"),
            (no_operator_role, "operator-identity"),
        ] {
            let mut object = healthy_scaled_object();
            // The symptoms a cluster fault brings: explained, not reported.
            object.hpa.as_mut().unwrap()["status"]["conditions"][1] =
                json!({"type": "ScalingActive", "status": "False", "reason": "FailedGetExternalMetric"});
            let findings = diagnose(&cluster_facts, &object);
            assert_eq!(
                not_ok(&findings),
                [format!("{link} Wrong"), "hpa Unknown".into()],
                "{findings:#?}"
            );
            assert!(
                finding(&findings, Link::Hpa)
                    .detail
                    .starts_with(&format!("follows from {link}: "))
            );
        }
        assert!(
            diagnose(
                &{
                    let mut c = healthy_cluster();
                    c.deployments[0] = deployment("keda-operator", "keda-operator", 0, 0);
                    c
                },
                &healthy_scaled_object()
            )[0]
            .detail
            .contains("keda-operator is scaled to 0")
        );

        let failing = |mut object: ScaledObjectFacts| {
            object.events = vec![
                serde_json::from_value(json!({"metadata": {"name": "e"},
                "involvedObject": {"uid": "u-1"}, "type": "Warning", "reason": "KEDAScalerFailed",
                "message": "AWS.SimpleQueueService.NonExistentQueue"}))
                .unwrap(),
            ];
            object
        };
        let mut no_queue = failing(healthy_scaled_object());
        no_queue.queue = Some(Ok(None));
        assert_eq!(
            not_ok(&diagnose(&healthy_cluster(), &no_queue)),
            ["queue Wrong", "scaler Unknown", "replicas Unknown"]
        );

        let mut no_auth = failing(healthy_scaled_object());
        no_auth.trigger_authentication = None;
        no_auth.consumer_role = None;
        assert_eq!(
            not_ok(&diagnose(&healthy_cluster(), &no_auth)),
            [
                "trigger-authentication Wrong",
                "consumer-role Unknown",
                "trust Unknown",
                "scaler Unknown"
            ]
        );

        let mut no_role = healthy_scaled_object();
        no_role.consumer_role = Some(Ok(None));
        let findings = diagnose(&healthy_cluster(), &no_role);
        assert_eq!(not_ok(&findings), ["consumer-role Wrong", "trust Unknown"]);
        assert!(
            finding(&findings, Link::ConsumerRole)
                .detail
                .contains("does not exist in IAM")
        );

        let mut unpatched = healthy_scaled_object();
        unpatched.consumer_role = Some(Ok(Some(role(CONSUMER, trusting("arn:aws:iam::111122223333:root")))));
        let findings = diagnose(&healthy_cluster(), &unpatched);
        assert_eq!(not_ok(&findings), ["trust Wrong"]);
        let trust = finding(&findings, Link::Trust);
        assert!(
            trust
                .detail
                .contains("trusts arn:aws:iam::111122223333:root, not KEDA's operator role"),
            "{trust:?}"
        );
        assert!(trust.fix.as_deref().unwrap().contains("kedaform trust apply"));
    }

    #[test]
    fn a_symptom_without_a_cause_is_wrong_itself() {
        let mut object = healthy_scaled_object();
        object.events = vec![
            serde_json::from_value(json!({"metadata": {"name": "e"},
            "involvedObject": {"uid": "u-1"}, "type": "Warning", "reason": "KEDAScalerFailed",
            "message": "AccessDenied"}))
            .unwrap(),
        ];
        let findings = diagnose(&healthy_cluster(), &object);
        assert_eq!(not_ok(&findings), ["scaler Wrong"]);
        assert!(
            finding(&findings, Link::Scaler)
                .detail
                .contains("KEDAScalerFailed: AccessDenied")
        );

        let mut behind = healthy_scaled_object();
        behind.queue = Some(Ok(Some(counts(40))));
        let findings = diagnose(&healthy_cluster(), &behind);
        assert_eq!(not_ok(&findings), ["replicas Wrong"], "the HPA wants 2 of the 8 needed");
        behind.hpa.as_mut().unwrap()["status"]["desiredReplicas"] = json!(8);
        assert_eq!(not_ok(&diagnose(&healthy_cluster(), &behind)), Vec::<String>::new());

        let mut at_max = healthy_scaled_object();
        at_max.hpa.as_mut().unwrap()["status"]["conditions"][2] =
            json!({"type": "ScalingLimited", "status": "True", "reason": "TooManyReplicas"});
        assert_eq!(not_ok(&diagnose(&healthy_cluster(), &at_max)), ["hpa Wrong"]);
    }

    #[test]
    fn identity_modes_and_their_refusals() {
        let mut pod_identity = healthy_cluster();
        pod_identity.operator_account = Some(json!({"metadata": {"name": "keda-operator"}}));
        pod_identity.association = Some(Ok(Some(OPERATOR.into())));
        let findings = diagnose(&pod_identity, &healthy_scaled_object());
        assert_eq!(not_ok(&findings), Vec::<String>::new());
        assert!(
            finding(&findings, Link::OperatorIdentity)
                .detail
                .starts_with("Pod Identity: the association of keda/keda-operator")
        );

        let mut workload = healthy_scaled_object();
        workload.trigger_authentication =
            Some(json!({"spec": {"podIdentity": {"provider": "aws", "identityOwner": "workload"}}}));
        assert_eq!(
            not_ok(&diagnose(&pod_identity, &workload)),
            ["trigger-authentication Wrong", "consumer-role Unknown", "trust Unknown"]
        );
        assert_eq!(
            not_ok(&diagnose(&healthy_cluster(), &workload)),
            Vec::<String>::new(),
            "fine under IRSA"
        );

        let mut none = healthy_cluster();
        none.operator_account = Some(json!({"metadata": {"name": "keda-operator"}}));
        none.association = Some(Ok(None));
        none.operator_role = None;
        assert_eq!(
            not_ok(&diagnose(&none, &healthy_scaled_object())),
            ["operator-identity Wrong", "trust Unknown"]
        );
        let mut unreadable = none.clone();
        unreadable.association = Some(Err("AccessDenied".into()));
        assert_eq!(
            not_ok(&diagnose(&unreadable, &healthy_scaled_object())),
            ["operator-identity Unknown", "trust Unknown"]
        );
    }

    #[test]
    fn no_keda_and_another_adapter() {
        let findings = diagnose(&ClusterFacts::default(), &healthy_scaled_object());
        assert_eq!(
            not_ok(&findings),
            [
                "keda Wrong",
                "metrics-api Unknown",
                "operator-identity Unknown",
                "trust Unknown"
            ]
        );
        let mut other = healthy_cluster();
        other.apiservice.as_mut().unwrap()["spec"]["service"] =
            json!({"namespace": "monitoring", "name": "prometheus-adapter"});
        let findings = diagnose(&other, &healthy_scaled_object());
        assert_eq!(not_ok(&findings), ["metrics-api Wrong"]);
        assert!(
            finding(&findings, Link::MetricsApi)
                .detail
                .contains("served by Service monitoring/prometheus-adapter")
        );
    }

    #[test]
    fn hostile_values_are_bounded_and_never_break_the_diagnosis() {
        let mut object = healthy_scaled_object();
        let huge = "x".repeat(100_000);
        object.scaled_object["spec"]["triggers"][0]["metadata"]["queueURL"] = json!(format!("{huge}\u{1b}[2J"));
        object.scaled_object["spec"]["triggers"][0]["metadata"]["queueLength"] = json!("-7");
        object.scaled_object["spec"]["triggers"][0]["authenticationRef"]["name"] = json!(huge.clone());
        object.trigger_authentication = None;
        let findings = diagnose(&healthy_cluster(), &object);
        for f in &findings {
            assert!(f.detail.len() < 2_000, "{}", f.detail.len());
            assert!(!f.detail.contains('\u{1b}'));
        }
        assert!(sqs_trigger(&json!({"spec": {"triggers": "no"}})).is_none());
        let no_region = SqsTrigger {
            queue_url: "u".into(),
            region: Some("us-east-1; rm".into()),
            ..SqsTrigger::default()
        };
        assert_eq!(no_region.usable_region(), None);
        let other_trigger = ScaledObjectFacts {
            scaled_object: json!({"spec": {"triggers": [{"type": "cron"}]}}),
            ..ScaledObjectFacts::default()
        };
        assert_eq!(
            not_ok(&scaled_object(&other_trigger, &Identity::default(), &[])),
            ["scaled-object Unknown"]
        );
    }
}
