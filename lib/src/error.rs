/// Every failure the library reports. Messages name the input at fault and what to do,
/// because CloudFormation shows them verbatim as the resource's status reason.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A property of the request is wrong.
    #[error("property {property}: {message}")]
    InvalidProperty {
        /// The property, as the resource reference names it (a path for nested ones).
        property: String,
        /// What is wrong, without the value when it could be secret.
        message: String,
    },

    /// Wrong input, as a lower layer sees it: which input, not where it came from. The resource
    /// layer turns it into [`Error::InvalidProperty`] ([`Error::named`]), the CLI names its flag.
    #[error("{message}")]
    Invalid {
        /// Which input.
        input: Input,
        /// What is wrong with it.
        message: String,
    },

    /// Properties the resource type does not have (a typo, most likely).
    #[error(
        "unknown {}: {}; check the spelling against the resource reference (docs/src/reference/custom-resources.md)",
        if .0.len() == 1 { "property" } else { "properties" },
        .0.join(", ")
    )]
    UnknownProperties(Vec<String>),

    /// A role's current trust policy cannot be read as a policy.
    #[error("the trust policy of role {role} is not a valid policy document: {message}")]
    MalformedPolicy {
        /// The role.
        role: String,
        /// What is wrong with its document.
        message: String,
    },

    /// An IAM call failed.
    #[error("IAM {action} on role {role} failed")]
    Iam {
        /// The API action.
        action: &'static str,
        /// The role it was about.
        role: String,
        /// The SDK's error.
        #[source]
        source: Box<aws_sdk_iam::Error>,
    },

    /// An EKS call failed.
    #[error("EKS {action} on cluster {cluster} failed")]
    Eks {
        /// The API action.
        action: &'static str,
        /// The cluster it was about.
        cluster: String,
        /// The SDK's error.
        #[source]
        source: Box<aws_sdk_eks::Error>,
    },

    /// No EKS token could be signed (no credentials or region, say).
    #[error("cannot mint an EKS token: {0}")]
    Token(String),

    /// A Kubernetes call failed before the API server answered.
    #[error("Kubernetes {action} of {object} failed")]
    Kube {
        /// What was being done (apply, get, delete, discovery).
        action: &'static str,
        /// The object, as `Kind[.group] namespace/name`.
        object: String,
        /// The client's error.
        #[source]
        source: Box<::kube::Error>,
    },

    /// The API server could not be reached at all (refused, unreachable, timed out): the
    /// network path from this process to the cluster's endpoint is missing.
    #[error(
        "cannot reach the cluster's API server for the {action} of {object}: the function needs a network path to \
         the cluster endpoint (private endpoint: the function in the cluster's VPC, its subnets routed to it, the \
         cluster security group admitting HTTPS from the function's security groups; public endpoint: its \
         PublicAccessCidrs admitting the function)"
    )]
    Unreachable {
        /// What was being done.
        action: &'static str,
        /// The object.
        object: String,
        /// The client's error.
        #[source]
        source: Box<::kube::Error>,
    },

    /// The API server answered with a Status: its message says it all.
    #[error("Kubernetes {action} of {object} was refused: {message} ({code} {reason})")]
    KubeRefused {
        /// What was being done.
        action: &'static str,
        /// The object.
        object: String,
        /// The HTTP status.
        code: u16,
        /// The Status reason (`Invalid`, `Forbidden`, …).
        reason: String,
        /// The Status message, with the values it quotes withheld.
        message: String,
    },

    /// A kubeconfig cannot be used.
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },

    /// An object exists that the applying resource did not create: kedaform neither changes
    /// nor deletes it.
    #[error(
        "{object} already exists and {}: it was left unchanged. {}",
        match .holder {
            crate::kube::plan::Holder::Unowned => "was not created by this resource".to_owned(),
            crate::kube::plan::Holder::Other(owner) => format!("belongs to another kedaform resource (owner label {owner})"),
        },
        match .holder {
            crate::kube::plan::Holder::Unowned => "Remove or rename it, or allow this resource to adopt it (property AdoptExisting: true, or --adopt-existing; an adopted object is never deleted by the resource)",
            crate::kube::plan::Holder::Other(_) => "Rename it here, or remove it from the other resource first: a resource never takes over another's objects",
        }
    )]
    NotOwned {
        /// The object.
        object: String,
        /// Who holds it.
        holder: crate::kube::plan::Holder,
    },

    /// An object the deployer is not allowed to apply (its kind or namespace allow-list).
    #[error(
        "{object} is outside what this deployer may apply: {rule} (the deployer stack's AllowedKinds and \
         AllowedNamespaces set these); nothing was applied"
    )]
    OutOfScope {
        /// The object.
        object: String,
        /// The rule it breaks.
        rule: String,
    },

    /// An object did not become ready (or failed) before the deadline.
    #[error("{object} is not ready: {reason}")]
    NotReady {
        /// The object.
        object: String,
        /// Its condition or status, and its latest events.
        reason: String,
    },

    /// Something cannot be removed while other objects still depend on it.
    #[error(
        "{what} is still in use by {}{}: delete those first (their stacks, or kubectl delete), then retry; \
         removing it now would leave them stuck on its finalizers",
        .users.join(", "),
        if .users.len() >= 50 { " and more" } else { "" }
    )]
    InUse {
        /// What was to be removed.
        what: String,
        /// What still uses it.
        users: Vec<String>,
    },

    /// An environment variable kedaform reads is unusable.
    #[error("environment variable {variable} {message}")]
    Environment {
        /// The variable.
        variable: String,
        /// What is wrong and what to do, without the value.
        message: String,
    },

    /// A wait ran out of time; says what it was waiting for.
    #[error("the deadline passed while {0}")]
    DeadlineExceeded(String),
}

/// The inputs lower layers judge; each resource type (and the CLI) knows what it calls them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The cluster a resource targets.
    Cluster,
    /// The Kubernetes objects, as YAML.
    Manifest,
    /// Where a manifest is downloaded from.
    ManifestUrl,
    /// The SHA-256 a downloaded manifest must have.
    ManifestDigest,
    /// The consumer role whose trust policy changes.
    Role,
    /// The KEDA operator's role.
    OperatorRole,
    /// The account a KEDA role of another account may be in.
    OperatorAccount,
    /// A planner traffic description.
    Traffic,
    /// A Kubernetes version for the planner.
    KubernetesVersion,
    /// A namespace to examine.
    Namespace,
    /// A ScaledObject to examine.
    ScaledObject,
}

impl Error {
    /// Wrong input in the property `property`.
    pub fn invalid(property: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidProperty {
            property: property.into(),
            message: message.into(),
        }
    }

    /// Wrong input, judged below the layer that knows its name.
    pub fn input(input: Input, message: impl Into<String>) -> Self {
        Self::Invalid {
            input,
            message: message.into(),
        }
    }

    /// Names the input of an [`Error::Invalid`] by `names` (input → property or flag); other
    /// errors, and inputs `names` does not list, pass through.
    #[must_use]
    pub fn named(self, names: &[(Input, &str)]) -> Self {
        match self {
            Self::Invalid { input, message } => match names.iter().find(|(known, _)| *known == input) {
                Some((_, name)) => Self::invalid(*name, message),
                None => Self::Invalid { input, message },
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outer_layer_names_the_input() {
        let error = Error::input(Input::Cluster, "cluster x is DELETING");
        assert_eq!(error.to_string(), "cluster x is DELETING");
        let named = error.named(&[(Input::Manifest, "Manifest"), (Input::Cluster, "ClusterName")]);
        assert_eq!(named.to_string(), "property ClusterName: cluster x is DELETING");
        let unnamed = Error::input(Input::Role, "no such role").named(&[(Input::Cluster, "ClusterName")]);
        assert!(matches!(unnamed, Error::Invalid { input: Input::Role, .. }));
    }
}
