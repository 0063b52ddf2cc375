//! What the deployer (`kedaform`) and the reference workloads share, kept apart so that the
//! workloads' images build no Kubernetes client, Lambda runtime or EKS and IAM SDK.

pub mod aws;
pub mod queues;
pub mod telemetry;

use std::fmt::Write as _;

/// The error and all its sources on one line, the way a stack event or a log line should show it.
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
