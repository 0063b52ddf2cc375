//! Whether an applied object is ready, kstatus-style, from its own status: a pure function.

use ::kube::api::DynamicObject;
use k8s_openapi::api::core::v1::Event;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
/// Whether an object is ready, judged from what the API server stored.
pub enum Readiness {
    /// Ready for what depends on it.
    Ready,
    /// Not yet; the text says what is missing.
    Pending(String),
    /// Will not become ready by waiting; the text is the object's own reason.
    Failed(String),
}

fn condition<'a>(status: &'a Value, kind: &str) -> Option<&'a Value> {
    status["conditions"].as_array()?.iter().find(|c| c["type"] == kind)
}

fn describe(condition: &Value) -> String {
    let reason = condition["reason"].as_str().unwrap_or_default();
    let message = condition["message"].as_str().unwrap_or_default();
    match (reason.is_empty(), message.is_empty()) {
        (true, true) => String::new(),
        (false, true) => reason.to_owned(),
        (true, false) => message.to_owned(),
        (false, false) => format!("{reason}: {message}"),
    }
}

/// A condition that must be `True`: pending while absent or not `True`.
fn needs(status: &Value, kind: &str) -> Readiness {
    match condition(status, kind) {
        Some(c) if c["status"] == "True" => Readiness::Ready,
        Some(c) => Readiness::Pending(format!(
            "{kind} is {}: {}",
            c["status"].as_str().unwrap_or("unset"),
            describe(c)
        )),
        None => Readiness::Pending(format!("no {kind} condition yet")),
    }
}

/// The object's readiness, by kind: a Deployment rolled out, a CRD established, an APIService
/// available, a KEDA ScaledObject Ready; any other object as soon as it exists.
pub fn readiness(object: &DynamicObject) -> Readiness {
    let Some(types) = &object.types else {
        return Readiness::Ready;
    };
    let status = object.data.get("status").cloned().unwrap_or(Value::Null);
    match (types.api_version.as_str(), types.kind.as_str()) {
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => needs(&status, "Established"),
        ("apiregistration.k8s.io/v1", "APIService") => needs(&status, "Available"),
        ("apps/v1", "Deployment") => deployment(object, &status),
        (api_version, "ScaledObject") if api_version.starts_with("keda.sh/") => scaled_object(object, &status),
        _ => Readiness::Ready,
    }
}

/// KEDA's controller sets `Ready=True` once the HPA exists, before any trigger was read; its
/// scale loop then sets `Active` (True or False) after reading the triggers, or `Ready=False`
/// when they fail. So a ScaledObject is ready once both are known: KEDA read the queue.
fn scaled_object(object: &DynamicObject, status: &Value) -> Readiness {
    match condition(status, "Ready") {
        Some(c) if c["status"] == "False" && judged_before(c, object) => Readiness::Pending(format!(
            "KEDA has not judged the spec written last yet (before it: {})",
            describe(c)
        )),
        Some(c) if c["status"] == "False" => Readiness::Failed(describe(c)),
        Some(c) if c["status"] == "True" => match condition(status, "Active") {
            Some(active) if active["status"] == "True" || active["status"] == "False" => Readiness::Ready,
            _ => Readiness::Pending("KEDA has not read the triggers yet (Active is unknown)".into()),
        },
        _ => Readiness::Pending("KEDA has not reported Ready yet".into()),
    }
}

/// When the object's spec was last written, by the API server's clock: the latest time in its
/// managed fields outside the status subresource (whole seconds). What KEDA reported before it
/// (a condition, an event) judged an older spec: an Update that corrects a trigger is not
/// failed by the error it corrects. An event of that very second may be either, and is not
/// counted: a trigger that still fails reports again at its next poll.
fn spec_written_at(object: &DynamicObject) -> Option<k8s_openapi::jiff::Timestamp> {
    object
        .metadata
        .managed_fields
        .as_ref()?
        .iter()
        .filter(|m| m.subresource.as_deref().is_none_or(str::is_empty))
        .filter_map(|m| m.time.as_ref().map(|t| t.0))
        .max()
}

/// When the status was last written (KEDA's conditions carry no time of their own).
fn status_written_at(object: &DynamicObject) -> Option<k8s_openapi::jiff::Timestamp> {
    object
        .metadata
        .managed_fields
        .as_ref()?
        .iter()
        .filter(|m| m.subresource.as_deref() == Some("status"))
        .filter_map(|m| m.time.as_ref().map(|t| t.0))
        .max()
}

/// Whether a condition may have been set before the spec was written, judged by its own
/// `lastTransitionTime` or else the status's last write. The write's own second may be either
/// and counts as before: the wait goes on, and a trigger that fails reports again.
fn judged_before(condition: &Value, object: &DynamicObject) -> bool {
    let Some(written) = spec_written_at(object) else {
        return false;
    };
    let set = condition["lastTransitionTime"]
        .as_str()
        .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
        .or_else(|| status_written_at(object));
    set.is_some_and(|set| set.as_second() <= written.as_second())
}

/// KEDA's `Ready` flaps on a failing trigger: its scale loop sets `Ready=False`, and its
/// controller sets `Ready=True` again on its next reconcile. The scale loop's
/// `KEDAScalerFailed` warnings for this very object (its uid) are the stable sign: the reason to
/// fail a ScaledObject whose conditions look ready.
pub fn scaler_failure(object: &DynamicObject, events: &[Event]) -> Option<String> {
    let is_scaled_object = object
        .types
        .as_ref()
        .is_some_and(|t| t.kind == "ScaledObject" && t.api_version.starts_with("keda.sh/"));
    let uid = object.metadata.uid.as_deref()?;
    if !is_scaled_object {
        return None;
    }
    let written = spec_written_at(object);
    events
        .iter()
        .filter(|e| e.involved_object.uid.as_deref() == Some(uid))
        .filter(|e| {
            let seen = e
                .last_timestamp
                .as_ref()
                .map(|t| t.0)
                .or_else(|| e.event_time.as_ref().map(|t| t.0));
            written.is_none_or(|written| seen.is_none_or(|seen| seen.as_second() > written.as_second()))
        })
        .find(|e| e.type_.as_deref() == Some("Warning") && e.reason.as_deref() == Some(KEDA_SCALER_FAILED))
        .map(|e| format!("{KEDA_SCALER_FAILED}: {}", e.message.as_deref().unwrap_or_default()))
}

/// The reason of KEDA's event when a trigger cannot be read (`pkg/eventreason`).
const KEDA_SCALER_FAILED: &str = "KEDAScalerFailed";

fn deployment(object: &DynamicObject, status: &Value) -> Readiness {
    let generation = object.metadata.generation.unwrap_or(0);
    let observed = status["observedGeneration"].as_i64().unwrap_or(0);
    if observed < generation {
        return Readiness::Pending(format!("the controller has seen generation {observed} of {generation}"));
    }
    if let Some(c) = condition(status, "Progressing")
        && c["reason"] == "ProgressDeadlineExceeded"
    {
        return Readiness::Failed(describe(c));
    }
    let wanted = object.data["spec"]["replicas"].as_i64().unwrap_or(1);
    let count = |field: &str| status[field].as_i64().unwrap_or(0);
    let (updated, available) = (count("updatedReplicas"), count("availableReplicas"));
    if updated < wanted || available < wanted {
        Readiness::Pending(format!("{updated} of {wanted} replicas updated, {available} available"))
    } else {
        Readiness::Ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> DynamicObject {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn crds_and_apiservices_wait_for_their_condition() {
        let crd = |status| {
            object(
                json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "x"}, "status": status}),
            )
        };
        assert_eq!(
            readiness(&crd(json!({}))),
            Readiness::Pending("no Established condition yet".into())
        );
        assert_eq!(
            readiness(&crd(
                json!({"conditions": [{"type": "Established", "status": "False", "reason": "Installing"}]})
            )),
            Readiness::Pending("Established is False: Installing".into())
        );
        assert_eq!(
            readiness(&crd(json!({"conditions": [{"type": "Established", "status": "True"}]}))),
            Readiness::Ready
        );
        let api = object(
            json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": "v1beta1.external.metrics.k8s.io"},
            "status": {"conditions": [{"type": "Available", "status": "False", "reason": "MissingEndpoints", "message": "endpoints for service/keda-metrics-apiserver in \"keda\" have no addresses"}]}}),
        );
        assert!(
            matches!(readiness(&api), Readiness::Pending(text) if text.starts_with("Available is False: MissingEndpoints: endpoints"))
        );
    }

    #[test]
    fn deployments_are_ready_when_rolled_out() {
        let deployment = |generation: i64, status: Value| {
            object(
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "generation": generation}, "spec": {"replicas": 2}, "status": status}),
            )
        };
        assert_eq!(
            readiness(&deployment(
                2,
                json!({"observedGeneration": 1, "updatedReplicas": 2, "availableReplicas": 2})
            )),
            Readiness::Pending("the controller has seen generation 1 of 2".into())
        );
        assert_eq!(
            readiness(&deployment(
                2,
                json!({"observedGeneration": 2, "updatedReplicas": 2, "availableReplicas": 1})
            )),
            Readiness::Pending("2 of 2 replicas updated, 1 available".into())
        );
        assert_eq!(
            readiness(&deployment(
                2,
                json!({"observedGeneration": 2, "updatedReplicas": 2, "availableReplicas": 2})
            )),
            Readiness::Ready
        );
        let stuck = deployment(
            1,
            json!({"observedGeneration": 1, "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet \"d-1\" has timed out progressing."}]}),
        );
        assert_eq!(
            readiness(&stuck),
            Readiness::Failed("ProgressDeadlineExceeded: ReplicaSet \"d-1\" has timed out progressing.".into())
        );
    }

    #[test]
    fn scaled_objects_report_keda_reasons() {
        let so = |conditions: Value| {
            object(
                json!({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "s", "namespace": "n"}, "status": {"conditions": conditions}}),
            )
        };
        assert_eq!(
            readiness(&so(json!([]))),
            Readiness::Pending("KEDA has not reported Ready yet".into())
        );
        assert_eq!(
            readiness(&so(
                json!([{"type": "Ready", "status": "False", "reason": "ScaledObjectCheckFailed", "message": "ScaledObject doesn't have correct scaleTargetRef specification"}])
            )),
            Readiness::Failed(
                "ScaledObjectCheckFailed: ScaledObject doesn't have correct scaleTargetRef specification".into()
            )
        );
        assert_eq!(
            readiness(&so(
                json!([{"type": "Ready", "status": "True"}, {"type": "Active", "status": "Unknown"}])
            )),
            Readiness::Pending("KEDA has not read the triggers yet (Active is unknown)".into())
        );
        for active in ["True", "False"] {
            assert_eq!(
                readiness(&so(
                    json!([{"type": "Ready", "status": "True"}, {"type": "Active", "status": active}])
                )),
                Readiness::Ready
            );
        }
        let namespace = object(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}));
        assert_eq!(readiness(&namespace), Readiness::Ready);
    }

    #[test]
    fn a_scaler_failure_event_of_the_same_object_fails_it_whatever_its_conditions() {
        let so = object(
            json!({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "s", "namespace": "n", "uid": "u-1"}}),
        );
        let event = |uid: &str, kind: &str, reason: &str| -> Event {
            serde_json::from_value(json!({"metadata": {"name": "e"}, "involvedObject": {"uid": uid},
                "type": kind, "reason": reason, "message": "NonExistentQueue"}))
            .unwrap()
        };
        assert_eq!(scaler_failure(&so, &[]), None);
        assert_eq!(
            scaler_failure(
                &so,
                &[
                    event("u-1", "Normal", "KEDAScalersStarted"),
                    event("u-0", "Warning", "KEDAScalerFailed")
                ]
            ),
            None,
            "another object's, or not a failure"
        );
        assert_eq!(
            scaler_failure(&so, &[event("u-1", "Warning", "KEDAScalerFailed")]),
            Some("KEDAScalerFailed: NonExistentQueue".into())
        );
        let namespace =
            object(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n", "uid": "u-1"}}));
        assert_eq!(
            scaler_failure(&namespace, &[event("u-1", "Warning", "KEDAScalerFailed")]),
            None
        );
    }

    #[test]
    fn what_keda_reported_before_the_spec_was_written_does_not_judge_it() {
        // The spec written at 10:00:05 (by kedaform; KEDA's status writes do not count).
        let so = |ready: Value| {
            object(json!({"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
                "metadata": {"name": "s", "namespace": "n", "uid": "u-1", "managedFields": [
                    {"manager": "kubectl", "operation": "Update", "time": "2026-12-06T09:00:00Z"},
                    {"manager": "kedaform", "operation": "Apply", "time": "2026-12-06T10:00:05Z"},
                    {"manager": "keda", "operation": "Update", "subresource": "status", "time": "2026-12-06T10:00:09Z"}]},
                "status": {"conditions": [ready]}}))
        };
        let failed =
            |at: &str| json!({"type": "Ready", "status": "False", "reason": "TriggerError", "lastTransitionTime": at});
        let stale =
            Readiness::Pending("KEDA has not judged the spec written last yet (before it: TriggerError)".into());
        for at in ["2026-12-06T10:00:04Z", "2026-12-06T10:00:05Z"] {
            assert_eq!(readiness(&so(failed(at))), stale, "{at}");
        }
        assert_eq!(
            readiness(&so(failed("2026-12-06T10:00:06Z"))),
            Readiness::Failed("TriggerError".into())
        );
        // KEDA's own conditions have no time: the status's last write (10:00:09) tells.
        let untimed = json!({"type": "Ready", "status": "False", "reason": "TriggerError"});
        assert_eq!(
            readiness(&so(untimed.clone())),
            Readiness::Failed("TriggerError".into())
        );
        let mut before = so(untimed);
        before.metadata.managed_fields.as_mut().unwrap()[2].time =
            Some(serde_json::from_value(json!("2026-12-06T10:00:03Z")).unwrap());
        assert_eq!(readiness(&before), stale);
        let event = |at: &str| -> Event {
            serde_json::from_value(json!({"metadata": {"name": "e"}, "involvedObject": {"uid": "u-1"},
                "type": "Warning", "reason": "KEDAScalerFailed", "message": "NonExistentQueue", "lastTimestamp": at}))
            .unwrap()
        };
        let object = so(json!({"type": "Ready", "status": "True"}));
        assert_eq!(
            scaler_failure(&object, &[event("2026-12-06T10:00:01Z")]),
            None,
            "about the spec before"
        );
        assert_eq!(
            scaler_failure(&object, &[event("2026-12-06T10:00:05.9Z")]),
            None,
            "the write's own second"
        );
        assert_eq!(
            scaler_failure(&object, &[event("2026-12-06T10:00:01Z"), event("2026-12-06T10:00:07Z")]),
            Some("KEDAScalerFailed: NonExistentQueue".into())
        );
    }
}
