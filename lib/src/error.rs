use std::fmt::Write as _;

/// Every failure the library reports. Messages name the input at fault and what to do,
/// because CloudFormation shows them verbatim as the resource's status reason.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("property {property}: {message}")]
    InvalidProperty { property: String, message: String },

    #[error(
        "unknown {}: {}; check the spelling against the resource reference in the README",
        if .0.len() == 1 { "property" } else { "properties" },
        .0.join(", ")
    )]
    UnknownProperties(Vec<String>),

    #[error("the trust policy of role {role} is not a valid policy document: {message}")]
    MalformedPolicy { role: String, message: String },

    #[error("IAM {action} on role {role} failed")]
    Iam {
        action: &'static str,
        role: String,
        #[source]
        source: Box<aws_sdk_iam::Error>,
    },

    #[error("EKS {action} on cluster {cluster} failed")]
    Eks {
        action: &'static str,
        cluster: String,
        #[source]
        source: Box<aws_sdk_eks::Error>,
    },

    #[error("cannot mint an EKS token: {0}")]
    Token(String),

    #[error("Kubernetes {action} of {object} failed")]
    Kube {
        action: &'static str,
        object: String,
        #[source]
        source: Box<::kube::Error>,
    },

    /// The API server answered with a Status: its message says it all.
    #[error("Kubernetes {action} of {object} was refused: {message} ({code} {reason})")]
    KubeRefused {
        action: &'static str,
        object: String,
        code: u16,
        reason: String,
        message: String,
    },

    #[error("kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },

    #[error("{object} is not ready: {reason}")]
    NotReady { object: String, reason: String },

    #[error("SQS {action} on {queue} failed")]
    Sqs {
        action: &'static str,
        queue: String,
        #[source]
        source: Box<aws_sdk_sqs::Error>,
    },

    #[error("S3 {action} on bucket {bucket} failed")]
    S3 {
        action: &'static str,
        bucket: String,
        #[source]
        source: Box<aws_sdk_s3::Error>,
    },

    #[error("the deadline passed while {0}")]
    DeadlineExceeded(String),
}

impl Error {
    pub fn invalid(property: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidProperty {
            property: property.into(),
            message: message.into(),
        }
    }
}

/// The error and all its sources on one line, the way a stack event should show it.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            let _ = write!(text, ": {cause_text}");
        }
        source = cause.source();
    }
    text
}
