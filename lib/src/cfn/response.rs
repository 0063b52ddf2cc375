//! The one response CloudFormation gets for a request: its body, kept under the service's
//! 4096-byte limit, and its delivery to the pre-signed `ResponseURL`.

use std::time::Duration;

use aws_lambda_events::event::cloudformation::{
    CloudFormationCustomResourceResponse as Response, CloudFormationCustomResourceResponseStatus as Status,
};
use tokio::time::Instant;

use crate::retry::Backoff;

/// CloudFormation rejects a response body larger than this.
pub const MAX_BODY_BYTES: usize = 4096;

/// What a shortened `Reason` keeps before `Data` is shortened too.
const REASON_FLOOR: usize = 512;
/// What a shortened `Data` value keeps before it is dropped.
const DATA_FLOOR: usize = 64;

/// Serializes the response, shortening `Reason` (head kept) and then `Data` values until
/// the body fits, with a note of how much was cut.
pub fn body(response: &mut Response) -> Vec<u8> {
    let original_reason = response.reason.clone().unwrap_or_default();
    let mut reason_budget = original_reason.len();
    let mut originals: Vec<(String, String)> = response.data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    // Longest first: they free the most room and the short ones (ids, flags) stay intact.
    originals.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
    let mut data_budgets: Vec<usize> = originals.iter().map(|(_, v)| v.len()).collect();

    loop {
        let bytes = serde_json::to_vec(&*response).expect("a response of strings always serializes");
        let Some(excess) = bytes.len().checked_sub(MAX_BODY_BYTES).filter(|e| *e > 0) else {
            return bytes;
        };
        if reason_budget > REASON_FLOOR {
            reason_budget = reason_budget.saturating_sub(excess).max(REASON_FLOOR);
            response.reason = Some(shorten(&original_reason, reason_budget));
        } else if let Some(index) = data_budgets.iter().position(|budget| *budget > 0) {
            let (key, value) = &originals[index];
            let budget = &mut data_budgets[index];
            *budget = if *budget > DATA_FLOOR {
                budget.saturating_sub(excess).max(DATA_FLOOR)
            } else {
                0
            };
            if *budget == 0 {
                response.data.remove(key);
            } else {
                response.data.insert(key.clone(), shorten(value, *budget));
            }
        } else if reason_budget > 0 {
            reason_budget = reason_budget.saturating_sub(excess);
            response.reason = Some(shorten(&original_reason, reason_budget));
        } else {
            // Only ids are left and they are over the limit: nothing more can be cut.
            return bytes;
        }
    }
}

/// The head of `text` in at most `budget` bytes, the cut marked when anything was cut.
fn shorten(text: &str, budget: usize) -> String {
    if text.len() <= budget {
        return text.to_owned();
    }
    let note = format!(" [{} bytes cut: response limit is {MAX_BODY_BYTES} bytes]", text.len());
    let mut end = budget.saturating_sub(note.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut short = String::with_capacity(end + note.len());
    short.push_str(&text[..end]);
    short.push_str(&note);
    short
}

/// Whether the response is SUCCESS.
pub fn is_success(response: &Response) -> bool {
    matches!(response.status, Status::Success)
}

/// Why the response could not be delivered, for the log line that says so.
#[derive(Debug)]
pub struct Undelivered {
    /// How many PUTs were tried.
    pub attempts: u32,
    /// Why the last one failed.
    pub last_error: String,
}

/// PUTs the body to the pre-signed URL with an empty `Content-Type` (the URL is signed with
/// none). Network errors and 5xx answers are retried with backoff until `deadline`.
pub async fn deliver(
    client: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    deadline: Instant,
) -> Result<u32, Undelivered> {
    let mut attempts = 0;
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2), deadline);
    loop {
        attempts += 1;
        let left = deadline.saturating_duration_since(Instant::now());
        let outcome = client
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, "")
            .timeout(left.min(Duration::from_secs(10)).max(Duration::from_millis(50)))
            .body(body.clone())
            .send()
            .await;
        let last_error = match outcome {
            Ok(answer) if answer.status().is_success() => return Ok(attempts),
            Ok(answer) if !answer.status().is_server_error() => {
                // A 4xx means the URL expired or the body was refused: repeating cannot help.
                let status = answer.status();
                let text = answer.text().await.unwrap_or_default();
                return Err(Undelivered {
                    attempts,
                    last_error: format!("HTTP {status}: {text}"),
                });
            }
            Ok(answer) => format!("HTTP {}", answer.status()),
            Err(error) => crate::error_chain(&error),
        };
        if !backoff.has_time() {
            return Err(Undelivered { attempts, last_error });
        }
        tracing::warn!(attempts, error = %last_error, "response not delivered yet; retrying");
        backoff.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(reason: &str, data: &[(&str, String)]) -> Response {
        let mut response = Response::default();
        response.status = Status::Failed;
        response.reason = Some(reason.to_owned());
        response.physical_resource_id = "role/keda-trust".into();
        response.stack_id = "arn:aws:cloudformation:us-east-1:123456789012:stack/s/1".into();
        response.request_id = "req".into();
        response.logical_resource_id = "Trust".into();
        for (k, v) in data {
            response.data.insert((*k).to_owned(), v.clone());
        }
        response
    }

    #[test]
    fn small_bodies_are_untouched() {
        let mut r = response("boom", &[("A", "b".into())]);
        let body = body(&mut r);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["Reason"], "boom");
        assert_eq!(json["Data"]["A"], "b");
        assert_eq!(json["Status"], "FAILED");
        assert_eq!(json["NoEcho"], false);
    }

    #[test]
    fn long_reason_keeps_its_head_and_says_it_was_cut() {
        let reason = format!("IAM UpdateAssumeRolePolicy failed: {}", "é\"x".repeat(3000));
        let mut r = response(&reason, &[("Id", "keep-me".into())]);
        let body = body(&mut r);
        assert!(body.len() <= MAX_BODY_BYTES, "{}", body.len());
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let short = json["Reason"].as_str().unwrap();
        assert!(short.starts_with("IAM UpdateAssumeRolePolicy failed: é\"x"));
        assert!(short.ends_with(&format!("[{} bytes cut: response limit is 4096 bytes]", reason.len())));
        assert_eq!(json["Data"]["Id"], "keep-me");
    }

    #[test]
    fn oversized_data_is_cut_longest_first() {
        let mut r = response("", &[("Big", "x".repeat(5000)), ("Small", "y".repeat(100))]);
        let body = body(&mut r);
        assert!(body.len() <= MAX_BODY_BYTES);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["Data"]["Small"].as_str().unwrap().len(), 100);
        assert!(json["Data"]["Big"].as_str().unwrap().contains("5000 bytes cut"));
    }

    #[test]
    fn everything_huge_still_fits() {
        let data: Vec<(&str, String)> = vec![
            ("A", "a".repeat(4000)),
            ("B", "\u{1}".repeat(4000)),
            ("C", "c".repeat(70)),
        ];
        let mut r = response(&"\n".repeat(9000), &data);
        assert!(body(&mut r).len() <= MAX_BODY_BYTES);
    }
}
