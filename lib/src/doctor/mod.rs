//! `kedaform doctor`: why a ScaledObject does (or does not) scale, link by link.
//!
//! # The chain
//!
//! KEDA scales an SQS consumer only when every link holds; the doctor reads each and says
//! `ok`, `wrong` (with the fix) or `unknown` (it could not tell, and why):
//!
//! | link | what is read |
//! |---|---|
//! | `keda` | KEDA's Deployments (`app.kubernetes.io/part-of=keda-operator`): version, replicas ready |
//! | `metrics-api` | `v1beta1.external.metrics.k8s.io`: served by KEDA's metrics server, `Available` |
//! | `operator-identity` | the operator's IRSA annotation or Pod Identity association (EKS), and that its role exists (IAM) |
//! | `scaled-object` | the ScaledObject's `aws-sqs-queue` trigger and the Deployment it scales |
//! | `trigger-authentication` | the TriggerAuthentication it names: exists, provider `aws`, fits the identity mode |
//! | `consumer-role` | the role it names exists (IAM) |
//! | `trust` | that role's trust policy lets KEDA's operator role in, and no other AWS principal |
//! | `queue` | the queue exists; its depth (SQS) |
//! | `scaler` | KEDA's `KEDAScalerFailed` events of the last 10 minutes, the `Ready` condition |
//! | `hpa` | the HPA KEDA made: `AbleToScale`, `ScalingActive`, `ScalingLimited` |
//! | `replicas` | the replicas the planner ([`crate::sim`]) predicts for the depth, against those set |
//!
//! The last three are symptoms: when a link before them is wrong, they are reported as
//! `unknown`, "follows from" that link, so that one fault names one link.
//!
//! # Guarantees
//!
//! - Reads only: no object, role or queue is changed.
//! - Bounded: at most [`MAX_SCALED_OBJECTS`] `ScaledObject`s and 100 events each are read;
//!   every text taken from the cluster or AWS is cut to [`MAX_SHOWN`] characters with control
//!   characters replaced, so a hostile object cannot flood or rewrite a terminal. An AWS read
//!   that has not answered within 20 s makes its link `unknown`.
//!
//! # Errors
//!
//! [`Doctor::examine`] fails only when the cluster itself cannot be read (unreachable,
//! forbidden) or a named ScaledObject does not exist ([`Input::ScaledObject`]). IAM, SQS and
//! EKS failures make their links `unknown`, with the reason.

mod diagnose;
mod facts;

pub use facts::MAX_SCALED_OBJECTS;
use serde::Serialize;

use crate::iam::TrustPolicies;
use crate::{Error, Input};

/// The longest text the report quotes from the cluster or AWS.
pub const MAX_SHOWN: usize = 300;

/// `text` as a report may quote it: control characters replaced, cut to [`MAX_SHOWN`].
fn shown(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(MAX_SHOWN)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect();
    if text.chars().nth(MAX_SHOWN).is_some() {
        out.push('…');
    }
    out
}

/// What a link was found to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// It holds.
    Ok,
    /// It does not: the finding's fix says what to do.
    Wrong,
    /// It could not be told: the detail says why.
    Unknown,
}

/// One link of the chain (see the module's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[allow(missing_docs)] // each is described by the module's table
pub enum Link {
    Keda,
    MetricsApi,
    OperatorIdentity,
    ScaledObject,
    TriggerAuthentication,
    ConsumerRole,
    Trust,
    Queue,
    Scaler,
    Hpa,
    Replicas,
}

impl Link {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Keda => "keda",
            Self::MetricsApi => "metrics-api",
            Self::OperatorIdentity => "operator-identity",
            Self::ScaledObject => "scaled-object",
            Self::TriggerAuthentication => "trigger-authentication",
            Self::ConsumerRole => "consumer-role",
            Self::Trust => "trust",
            Self::Queue => "queue",
            Self::Scaler => "scaler",
            Self::Hpa => "hpa",
            Self::Replicas => "replicas",
        }
    }

    /// Whether it shows the effect of the links before it rather than a cause of its own.
    fn is_symptom(self) -> bool {
        matches!(self, Self::Scaler | Self::Hpa | Self::Replicas)
    }
}

/// What the doctor found about one link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The link.
    pub link: Link,
    /// What it was found to be.
    pub status: Status,
    /// What was seen.
    pub detail: String,
    /// What to do, when it is wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// The links of one ScaledObject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScaledObjectReport {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its links, in chain order.
    pub findings: Vec<Finding>,
}

/// Everything the doctor found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The cluster-wide links: `keda`, `metrics-api`, `operator-identity`.
    pub cluster: Vec<Finding>,
    /// Each ScaledObject examined.
    pub scaled_objects: Vec<ScaledObjectReport>,
}

impl Report {
    /// Every finding, the cluster's first.
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.cluster
            .iter()
            .chain(self.scaled_objects.iter().flat_map(|s| s.findings.iter()))
    }

    /// Whether every link is ok (the CLI's exit code 0).
    pub fn healthy(&self) -> bool {
        self.findings().all(|f| f.status == Status::Ok)
    }
}

/// Which `ScaledObject`s to examine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// Their namespace; every namespace when None and no name is given, `default` with a name.
    pub namespace: Option<String>,
    /// One ScaledObject by name.
    pub name: Option<String>,
}

impl Target {
    /// Checks the names before any call: both must be Kubernetes names.
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(namespace) = &self.namespace
            && !crate::kube::names::is_label(namespace)
        {
            return Err(Error::input(
                Input::Namespace,
                "is not a Kubernetes namespace name (lower-case letters, digits, '-', 63 at most)",
            ));
        }
        if let Some(name) = &self.name
            && !crate::kube::names::is_subdomain(name)
        {
            return Err(Error::input(
                Input::ScaledObject,
                "is not a Kubernetes object name (lower-case letters, digits, '-' and '.', 253 at most)",
            ));
        }
        Ok(())
    }
}

/// Reads the chain of a cluster: Kubernetes through the client it is given, AWS (IAM, SQS,
/// EKS) through clients of one configuration.
///
/// ```no_run
/// # async fn run(client: kube::Client) -> Result<(), kedaform::Error> {
/// use kedaform::doctor::{Doctor, Target};
///
/// let aws = kedaform_common::aws::load().await;
/// let target = Target { namespace: Some("sales".into()), name: Some("consumer".into()) };
/// let report = Doctor::new(&aws).examine(&client, "sales-cluster", &target).await?;
/// for finding in report.findings() {
///     println!("{:?} {}: {}", finding.status, finding.link.name(), finding.detail);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Doctor {
    aws: facts::Aws,
}

impl Doctor {
    /// With AWS clients made from `config` (the SQS client takes each queue's region).
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self {
            aws: facts::Aws {
                config: config.clone(),
                iam: TrustPolicies::new(aws_sdk_iam::Client::new(config)),
                eks: aws_sdk_eks::Client::new(config),
            },
        }
    }

    /// Examines KEDA and the `ScaledObject`s `target` names on `cluster` (its EKS name, used for
    /// the Pod Identity association). See the module documentation for what is read and what
    /// is guaranteed.
    pub async fn examine(&self, client: &::kube::Client, cluster: &str, target: &Target) -> Result<Report, Error> {
        target.validate()?;
        let cluster_facts = facts::cluster(client, &self.aws, cluster).await?;
        let (cluster_findings, identity) = diagnose::cluster(&cluster_facts);
        let mut scaled_objects = Vec::new();
        for object in facts::scaled_objects(client, target).await? {
            let namespace = object["metadata"]["namespace"].as_str().unwrap_or("default").to_owned();
            let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
            let object_facts = facts::scaled_object(client, &self.aws, object).await?;
            scaled_objects.push(ScaledObjectReport {
                findings: diagnose::scaled_object(&object_facts, &identity, &cluster_findings),
                namespace,
                name,
            });
        }
        Ok(Report {
            cluster: cluster_findings,
            scaled_objects,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_text_is_bounded_and_has_no_control_characters() {
        assert_eq!(shown("a\u{1b}[2Jb\n"), "a\u{fffd}[2Jb\u{fffd}");
        let long = shown(&"é".repeat(1000));
        assert_eq!(long.chars().count(), MAX_SHOWN + 1);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn a_target_must_be_kubernetes_names() {
        let target = |namespace: &str, name: &str| Target {
            namespace: Some(namespace.into()),
            name: Some(name.into()),
        };
        assert!(target("sales", "consumer.v2").validate().is_ok());
        assert!(matches!(
            target("Sales", "consumer").validate(),
            Err(Error::Invalid {
                input: Input::Namespace,
                ..
            })
        ));
        assert!(matches!(
            target("a.b", "consumer").validate(),
            Err(Error::Invalid {
                input: Input::Namespace,
                ..
            })
        ));
        assert!(matches!(
            target("sales", &"x".repeat(254)).validate(),
            Err(Error::Invalid {
                input: Input::ScaledObject,
                ..
            })
        ));
        assert!(Target::default().validate().is_ok());
    }

    #[test]
    fn the_report_is_healthy_only_when_every_link_is_ok() {
        let finding = |status| Finding {
            link: Link::Queue,
            status,
            detail: String::new(),
            fix: None,
        };
        let report = |status| Report {
            cluster: vec![finding(Status::Ok)],
            scaled_objects: vec![ScaledObjectReport {
                namespace: "n".into(),
                name: "s".into(),
                findings: vec![finding(status)],
            }],
        };
        assert!(report(Status::Ok).healthy());
        assert!(!report(Status::Unknown).healthy());
        assert!(!report(Status::Wrong).healthy());
        let json = serde_json::to_value(report(Status::Wrong)).unwrap();
        assert_eq!(json["scaledObjects"][0]["findings"][0]["status"], "wrong");
        assert_eq!(json["scaledObjects"][0]["findings"][0]["link"], "queue");
    }
}
