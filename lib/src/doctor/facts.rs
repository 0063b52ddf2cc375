//! What the doctor reads: KEDA's objects, the `ScaledObject`s and what they name from the cluster;
//! roles from IAM; queues from SQS; the operator's Pod Identity association from EKS. Reads
//! only: nothing here writes anywhere. A Kubernetes read that fails fails the whole
//! examination (without the cluster there is nothing to say); an AWS read that fails becomes
//! the reason its link is unknown.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ::kube::Api;
use ::kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Event, ServiceAccount};
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use serde_json::Value;

use super::diagnose::{self, SqsTrigger};
use super::{Target, shown};
use crate::iam::{Role, RoleArn, TrustPolicies};
use crate::keda::install::METRICS_API_SERVICE;
use crate::{Error, Input};

/// A read that may have failed; the error is the reason its link is unknown.
pub(crate) type Read<T> = Result<T, String>;

/// The label KEDA's manifest and KEDA's Helm chart put on each of KEDA's Deployments.
pub(crate) const PART_OF_KEDA: &str = "app.kubernetes.io/part-of=keda-operator";
/// The most `ScaledObject`s one examination reads.
pub const MAX_SCALED_OBJECTS: u32 = 200;
/// KEDA's events for an object older than this are history, not its present state.
pub(crate) const RECENT_EVENTS: Duration = Duration::from_secs(10 * 60);

/// What was read about KEDA itself.
#[derive(Debug, Clone, Default)]
pub(crate) struct ClusterFacts {
    /// KEDA's Deployments, in every namespace.
    pub deployments: Vec<Value>,
    /// `v1beta1.external.metrics.k8s.io`.
    pub apiservice: Option<Value>,
    /// The operator's service account.
    pub operator_account: Option<Value>,
    /// The operator's Pod Identity association: its role (None: no association), when looked up.
    pub association: Option<Read<Option<String>>>,
    /// The operator's role as IAM has it (None: no such role), when one is named.
    pub operator_role: Option<Read<Option<Role>>>,
}

/// What was read about one ScaledObject.
#[derive(Debug, Clone, Default)]
pub(crate) struct ScaledObjectFacts {
    /// The ScaledObject.
    pub scaled_object: Value,
    /// The TriggerAuthentication its trigger names, when it exists.
    pub trigger_authentication: Option<Value>,
    /// The role that TriggerAuthentication names (None: no such role), when it names one.
    pub consumer_role: Option<Read<Option<Role>>>,
    /// The queue's counts (None: no such queue), when the trigger names a usable queue.
    pub queue: Option<Read<Option<crate::sim::keda::QueueCounts>>>,
    /// KEDA's recent events about the ScaledObject.
    pub events: Vec<Event>,
    /// The HPA KEDA made for it.
    pub hpa: Option<Value>,
    /// The workload it scales.
    pub target: Option<Value>,
}

/// The AWS clients the doctor reads through.
#[derive(Debug, Clone)]
pub(crate) struct Aws {
    pub config: aws_config::SdkConfig,
    pub iam: TrustPolicies,
    pub eks: aws_sdk_eks::Client,
}

/// A failed read of `what`, as the apply engine reports one (unreachable clusters named).
fn read_error(what: &str, error: ::kube::Error) -> Error {
    crate::kube::apply::kube_failure("read", what.to_owned(), error)
}

fn value<T: serde::Serialize>(object: &T) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

/// KEDA's objects and the operator's identity.
pub(crate) async fn cluster(client: &::kube::Client, aws: &Aws, cluster: &str) -> Result<ClusterFacts, Error> {
    let deployments: Api<Deployment> = Api::all(client.clone());
    let deployments: Vec<Value> = deployments
        .list(&ListParams::default().labels(PART_OF_KEDA).limit(50))
        .await
        .map_err(|e| read_error("Deployments labelled app.kubernetes.io/part-of=keda-operator", e))?
        .items
        .iter()
        .map(value)
        .collect();
    let apiservices: Api<APIService> = Api::all(client.clone());
    let apiservice = apiservices
        .get_opt(METRICS_API_SERVICE)
        .await
        .map_err(|e| read_error(&format!("APIService {METRICS_API_SERVICE}"), e))?
        .map(|a| value(&a));
    let mut facts = ClusterFacts {
        deployments,
        apiservice,
        ..ClusterFacts::default()
    };
    let Some((namespace, account)) = diagnose::operator_account(&facts.deployments) else {
        return Ok(facts);
    };
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &namespace);
    facts.operator_account = accounts
        .get_opt(&account)
        .await
        .map_err(|e| read_error(&format!("ServiceAccount {namespace}/{account}"), e))?
        .map(|a| value(&a));
    let role = if let Some(role) = diagnose::irsa_role(facts.operator_account.as_ref()) {
        Some(role)
    } else {
        let association = bounded(
            AWS_READ_LIMIT,
            "EKS's Pod Identity associations",
            association(&aws.eks, cluster, &namespace, &account),
        )
        .await;
        let role = association.clone().ok().flatten();
        facts.association = Some(association);
        role
    };
    if let Some(role) = role {
        facts.operator_role = read_role(&aws.iam, &role).await;
    }
    Ok(facts)
}

/// The role of the Pod Identity association of `namespace/account` on `cluster`, if any.
async fn association(eks: &aws_sdk_eks::Client, cluster: &str, namespace: &str, account: &str) -> Read<Option<String>> {
    let listed = eks
        .list_pod_identity_associations()
        .cluster_name(cluster)
        .namespace(namespace)
        .service_account(account)
        .send()
        .await
        .map_err(|e| {
            format!(
                "EKS ListPodIdentityAssociations on cluster {cluster} failed: {}",
                kedaform_common::error_chain(&e)
            )
        })?;
    let Some(id) = listed
        .associations
        .unwrap_or_default()
        .into_iter()
        .find_map(|a| a.association_id)
    else {
        return Ok(None);
    };
    let described = eks
        .describe_pod_identity_association()
        .cluster_name(cluster)
        .association_id(&id)
        .send()
        .await
        .map_err(|e| {
            format!(
                "EKS DescribePodIdentityAssociation on cluster {cluster} failed: {}",
                kedaform_common::error_chain(&e)
            )
        })?;
    Ok(described.association.and_then(|a| a.role_arn))
}

/// The role `arn` names, as IAM has it; None (not read) when `arn` is not a role ARN, which
/// the diagnosis reports itself.
async fn read_role(iam: &TrustPolicies, arn: &str) -> Option<Read<Option<Role>>> {
    let parsed = RoleArn::parse(Input::Role, arn).ok()?;
    let read = async {
        iam.read(&parsed.name)
            .await
            .map(|role| role.filter(|r| r.arn == arn))
            .map_err(|e| kedaform_common::error_chain(&e))
    };
    Some(bounded(AWS_READ_LIMIT, "IAM GetRole", read).await)
}

/// How long one AWS read may take: the SDK bounds connecting, not answering.
const AWS_READ_LIMIT: Duration = Duration::from_secs(20);

/// `read`, or the reason it is unknown when it has not answered within `limit`: a service that
/// hangs makes its link unknown instead of holding the whole examination.
async fn bounded<T>(limit: Duration, what: &str, read: impl Future<Output = Read<T>>) -> Read<T> {
    tokio::time::timeout(limit, read)
        .await
        .unwrap_or_else(|_| Err(format!("{what} did not answer within {} s", limit.as_secs_f64())))
}

/// The `ScaledObject`s `target` names: one by name, or every one in a namespace or the cluster.
pub(crate) async fn scaled_objects(client: &::kube::Client, target: &Target) -> Result<Vec<Value>, Error> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("keda.sh", "v1alpha1", "ScaledObject"));
    let what = |namespace: &str| format!("ScaledObjects.keda.sh in {namespace}");
    match (&target.namespace, &target.name) {
        (namespace, Some(name)) => {
            let namespace = namespace.as_deref().unwrap_or("default");
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
            let found = api.get_opt(name).await.map_err(|e| read_error(&what(namespace), e))?;
            found.map(|o| vec![value(&o)]).ok_or_else(|| {
                Error::input(
                    Input::ScaledObject,
                    format!(
                        "no ScaledObject {name} in namespace {namespace}: check the name and --namespace (without a \
                         name, every ScaledObject is examined)"
                    ),
                )
            })
        }
        (Some(namespace), None) => {
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
            list(&api, &what(namespace)).await
        }
        (None, None) => {
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
            list(&api, "ScaledObjects.keda.sh in every namespace").await
        }
    }
}

async fn list(api: &Api<DynamicObject>, what: &str) -> Result<Vec<Value>, Error> {
    match api.list(&ListParams::default().limit(MAX_SCALED_OBJECTS)).await {
        Ok(list) => Ok(list.items.iter().map(value).collect()),
        // No ScaledObject CRD: no KEDA, which the keda link reports.
        Err(::kube::Error::Api(status)) if status.code == 404 => Ok(Vec::new()),
        Err(error) => Err(read_error(what, error)),
    }
}

/// Everything one ScaledObject names.
pub(crate) async fn scaled_object(
    client: &::kube::Client,
    aws: &Aws,
    scaled_object: Value,
) -> Result<ScaledObjectFacts, Error> {
    let namespace = scaled_object["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_owned();
    let name = scaled_object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let trigger = diagnose::sqs_trigger(&scaled_object);
    let mut facts = ScaledObjectFacts {
        events: events(client, &namespace, scaled_object["metadata"]["uid"].as_str()).await?,
        hpa: get::<HorizontalPodAutoscaler>(client, &namespace, &diagnose::hpa_name(&scaled_object, &name)).await?,
        target: match diagnose::target_deployment(&scaled_object) {
            Some(target) => get::<Deployment>(client, &namespace, &target).await?,
            None => None,
        },
        scaled_object,
        ..ScaledObjectFacts::default()
    };
    let Some(trigger) = trigger else {
        return Ok(facts);
    };
    facts.trigger_authentication = trigger_authentication(client, &namespace, &trigger).await?;
    if let Some(role) = diagnose::consumer_role_arn(facts.trigger_authentication.as_ref()) {
        facts.consumer_role = read_role(&aws.iam, &role).await;
    }
    if let Some(region) = trigger.usable_region() {
        let sqs = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(&aws.config)
                .region(aws_sdk_sqs::config::Region::new(region))
                .build(),
        );
        facts.queue = Some(
            bounded(
                AWS_READ_LIMIT,
                "SQS GetQueueAttributes",
                queue(&sqs, &trigger.queue_url),
            )
            .await,
        );
    }
    Ok(facts)
}

async fn queue(sqs: &aws_sdk_sqs::Client, url: &str) -> Read<Option<crate::sim::keda::QueueCounts>> {
    match kedaform_common::queues::queue_counts(sqs, url).await {
        Ok(counts) => Ok(Some(counts)),
        Err(kedaform_common::queues::Error::Sqs { source, .. })
            if matches!(*source, aws_sdk_sqs::Error::QueueDoesNotExist(_)) =>
        {
            Ok(None)
        }
        Err(error) => Err(format!(
            "SQS GetQueueAttributes on {} failed: {}",
            shown(url),
            kedaform_common::error_chain(&error)
        )),
    }
}

async fn get<K>(client: &::kube::Client, namespace: &str, name: &str) -> Result<Option<Value>, Error>
where
    K: ::kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    <K as ::kube::Resource>::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let kind = K::kind(&Default::default()).to_string();
    api.get_opt(name)
        .await
        .map(|found| found.map(|o| value(&o)))
        .map_err(|e| read_error(&format!("{kind} {namespace}/{}", shown(name)), e))
}

async fn trigger_authentication(
    client: &::kube::Client,
    namespace: &str,
    trigger: &SqsTrigger,
) -> Result<Option<Value>, Error> {
    let Some(name) = &trigger.authentication else {
        return Ok(None);
    };
    let cluster_wide = trigger.authentication_kind == "ClusterTriggerAuthentication";
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "keda.sh",
        "v1alpha1",
        &trigger.authentication_kind,
    ));
    let api: Api<DynamicObject> = if cluster_wide {
        Api::all_with(client.clone(), &resource)
    } else {
        Api::namespaced_with(client.clone(), namespace, &resource)
    };
    match api.get_opt(name).await {
        Ok(found) => Ok(found.map(|o| value(&o))),
        Err(::kube::Error::Api(status)) if status.code == 404 => Ok(None),
        Err(error) => Err(read_error(
            &format!("{} {}", trigger.authentication_kind, shown(name)),
            error,
        )),
    }
}

/// KEDA's events about the object of `uid` seen in the last [`RECENT_EVENTS`].
async fn events(client: &::kube::Client, namespace: &str, uid: Option<&str>) -> Result<Vec<Event>, Error> {
    let Some(uid) = uid else {
        return Ok(Vec::new());
    };
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    let selector = format!("involvedObject.uid={uid}");
    let listed = api
        .list(&ListParams::default().fields(&selector).limit(100))
        .await
        .map_err(|e| read_error(&format!("Events in {namespace}"), e))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let recent = i64::try_from(RECENT_EVENTS.as_secs()).unwrap_or(i64::MAX);
    Ok(listed
        .items
        .into_iter()
        .filter(|event| {
            let seen = event
                .last_timestamp
                .as_ref()
                .map(|t| t.0.as_second())
                .or_else(|| event.event_time.as_ref().map(|t| t.0.as_second()));
            seen.is_some_and(|at| now - at <= recent)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_read_that_never_answers_becomes_a_reason() {
        let hung = bounded::<()>(
            Duration::from_millis(20),
            "SQS GetQueueAttributes",
            std::future::pending(),
        )
        .await;
        assert_eq!(hung, Err("SQS GetQueueAttributes did not answer within 0.02 s".into()));
        assert_eq!(bounded(Duration::from_secs(1), "x", async { Ok(7) }).await, Ok(7));
    }
}
