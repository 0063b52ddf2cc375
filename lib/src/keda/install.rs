//! What `helm install kedacore/keda --set serviceAccount… --set podSecurityContext…` did,
//! as a pure transformation of KEDA's release manifest.

use ::kube::api::DynamicObject;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::Error;

pub const DEFAULT_VERSION: &str = "2.20.2";
pub const NAMESPACE: &str = "keda";
pub const OPERATOR: &str = "keda-operator";
/// What KEDA needs before a ScaledObject can work: its three Deployments and the external
/// metrics API.
pub const READY_DEPLOYMENTS: [&str; 3] = ["keda-operator", "keda-metrics-apiserver", "keda-admission"];
pub const METRICS_API_SERVICE: &str = "v1beta1.external.metrics.k8s.io";

/// How the operator gets AWS credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdentityMode {
    /// IAM Roles for Service Accounts: the role ARN as a service-account annotation.
    Irsa,
    /// EKS Pod Identity: no annotation; the association is a template resource.
    PodIdentity,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlay {
    pub operator_role_arn: String,
    pub identity: IdentityMode,
    /// Seconds; the projected token's lifetime (`eks.amazonaws.com/token-expiration`).
    pub token_expiration: u32,
    /// The seed's `fsGroup/runAsUser/runAsGroup: 1001` pod security context; only clusters
    /// older than Kubernetes 1.19 needed it for the projected token to be readable.
    pub legacy_fs_group: bool,
}

/// KEDA's official release manifest for `version`.
pub fn release_url(version: &str) -> String {
    format!("https://github.com/kedacore/keda/releases/download/v{version}/keda-{version}.yaml")
}

/// Checks the manifest against `ManifestSha256` (hex, case-insensitive).
pub fn verify(manifest: &[u8], expected: &str) -> Result<(), Error> {
    let actual = Sha256::digest(manifest)
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            use std::fmt::Write as _;
            let _ = write!(hex, "{byte:02x}");
            hex
        });
    if actual.eq_ignore_ascii_case(expected.trim()) {
        Ok(())
    } else {
        Err(Error::invalid(
            "ManifestSha256",
            format!("the manifest's SHA-256 is {actual}, not {expected}: wrong file or a changed mirror"),
        ))
    }
}

fn is(object: &DynamicObject, kind: &str, name: &str) -> bool {
    object.types.as_ref().is_some_and(|t| t.kind == kind)
        && object.metadata.name.as_deref() == Some(name)
        && object.metadata.namespace.as_deref() == Some(NAMESPACE)
}

/// Applies the overlay to KEDA's objects: only the `keda-operator` ServiceAccount (and, with
/// `legacy_fs_group`, the `keda-operator` Deployment) change.
pub fn apply_overlay(objects: &mut [DynamicObject], overlay: &Overlay) -> Result<(), Error> {
    let account = objects
        .iter_mut()
        .find(|o| is(o, "ServiceAccount", OPERATOR))
        .ok_or_else(|| {
            Error::invalid(
                "ManifestUrl",
                "the manifest has no keda-operator ServiceAccount in namespace keda: is it KEDA's?",
            )
        })?;
    if overlay.identity == IdentityMode::Irsa {
        let annotations = account.metadata.annotations.get_or_insert_with(Default::default);
        annotations.insert("eks.amazonaws.com/role-arn".into(), overlay.operator_role_arn.clone());
        annotations.insert("eks.amazonaws.com/audience".into(), "sts.amazonaws.com".into());
        annotations.insert("eks.amazonaws.com/sts-regional-endpoints".into(), "true".into());
        annotations.insert(
            "eks.amazonaws.com/token-expiration".into(),
            overlay.token_expiration.to_string(),
        );
    }
    if overlay.legacy_fs_group {
        let deployment = objects
            .iter_mut()
            .find(|o| is(o, "Deployment", OPERATOR))
            .ok_or_else(|| {
                Error::invalid(
                    "ManifestUrl",
                    "the manifest has no keda-operator Deployment in namespace keda",
                )
            })?;
        let pod = &mut deployment.data["spec"]["template"]["spec"];
        for (field, value) in [("fsGroup", 1001), ("runAsUser", 1001), ("runAsGroup", 1001)] {
            pod["securityContext"][field] = json!(value);
        }
    }
    Ok(())
}

/// The same settings as Helm values for chart 2.14 and later, for teams that install KEDA
/// with Helm themselves.
pub fn helm_values(overlay: &Overlay) -> String {
    let mut values = json!({
        "serviceAccount": {"operator": {"create": true, "name": OPERATOR}},
        "podIdentity": {"aws": {"irsa": {"enabled": false}}},
    });
    if overlay.identity == IdentityMode::Irsa {
        // With irsa.enabled the chart annotates the operator's service account itself.
        values["podIdentity"]["aws"]["irsa"] = json!({
            "enabled": true,
            "roleArn": overlay.operator_role_arn,
            "audience": "sts.amazonaws.com",
            "stsRegionalEndpoints": "true",
            "tokenExpiration": overlay.token_expiration,
        });
    }
    if overlay.legacy_fs_group {
        values["podSecurityContext"] = json!({"operator": {"fsGroup": 1001, "runAsUser": 1001, "runAsGroup": 1001}});
    }
    serde_yaml_ng::to_string(&values).unwrap_or_default()
}

/// The operator's annotations as applied, for reports.
pub fn operator_annotations(objects: &[DynamicObject]) -> Value {
    operator_account(objects)
        .and_then(|o| o.metadata.annotations.clone())
        .map_or(Value::Null, |a| json!(a))
}

/// The `keda-operator` ServiceAccount, the one object the IRSA overlay changes.
pub fn operator_account(objects: &[DynamicObject]) -> Option<&DynamicObject> {
    objects.iter().find(|o| is(o, "ServiceAccount", OPERATOR))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::plan::parse_manifest;

    fn keda() -> (String, Vec<DynamicObject>) {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/fixtures/keda/keda-2.20.2.yaml"
        );
        let text = std::fs::read_to_string(path).expect("the KEDA fixture is at ../shared/fixtures/keda");
        let objects = parse_manifest("Manifest", &text).unwrap();
        (text, objects)
    }

    fn overlay(legacy_fs_group: bool) -> Overlay {
        Overlay {
            operator_role_arn: "arn:aws:iam::123456789012:role/keda-operator".into(),
            identity: IdentityMode::Irsa,
            token_expiration: 86_400,
            legacy_fs_group,
        }
    }

    #[test]
    fn only_the_operator_service_account_changes() {
        let (_, original) = keda();
        let mut objects = original.clone();
        apply_overlay(&mut objects, &overlay(false)).unwrap();
        let changed: Vec<String> = objects
            .iter()
            .zip(&original)
            .filter(|(a, b)| serde_json::to_value(a).unwrap() != serde_json::to_value(b).unwrap())
            .map(|(a, _)| {
                format!(
                    "{}/{}",
                    a.types.as_ref().unwrap().kind,
                    a.metadata.name.as_deref().unwrap()
                )
            })
            .collect();
        assert_eq!(changed, ["ServiceAccount/keda-operator"]);
        assert_eq!(
            operator_annotations(&objects),
            json!({
                "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/keda-operator",
                "eks.amazonaws.com/audience": "sts.amazonaws.com",
                "eks.amazonaws.com/sts-regional-endpoints": "true",
                "eks.amazonaws.com/token-expiration": "86400",
            })
        );
    }

    #[test]
    fn legacy_fs_group_sets_the_operator_pod_security_context_only() {
        let (_, mut objects) = keda();
        apply_overlay(&mut objects, &overlay(true)).unwrap();
        let operator = objects.iter().find(|o| is(o, "Deployment", OPERATOR)).unwrap();
        let context = &operator.data["spec"]["template"]["spec"]["securityContext"];
        assert_eq!(
            (
                context["fsGroup"].clone(),
                context["runAsUser"].clone(),
                context["runAsGroup"].clone()
            ),
            (json!(1001), json!(1001), json!(1001))
        );
        let metrics = objects
            .iter()
            .find(|o| is(o, "Deployment", "keda-metrics-apiserver"))
            .unwrap();
        assert!(metrics.data["spec"]["template"]["spec"]["securityContext"]["fsGroup"].is_null());
    }

    #[test]
    fn pod_identity_leaves_the_service_account_alone() {
        let (_, original) = keda();
        let mut objects = original.clone();
        apply_overlay(
            &mut objects,
            &Overlay {
                identity: IdentityMode::PodIdentity,
                ..overlay(false)
            },
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&objects).unwrap(),
            serde_json::to_value(&original).unwrap()
        );
        assert!(
            helm_values(&Overlay {
                identity: IdentityMode::PodIdentity,
                ..overlay(false)
            })
            .contains("enabled: false")
        );
    }

    #[test]
    fn a_manifest_without_the_operator_is_refused() {
        let mut objects =
            parse_manifest("Manifest", "apiVersion: v1\nkind: Namespace\nmetadata: {name: keda}").unwrap();
        let message = apply_overlay(&mut objects, &overlay(false)).unwrap_err().to_string();
        assert!(
            message.starts_with("property ManifestUrl: the manifest has no keda-operator ServiceAccount"),
            "{message}"
        );
    }

    #[test]
    fn sha256_is_checked() {
        let (text, _) = keda();
        verify(
            text.as_bytes(),
            "9BAE123EB64FAB8F96C67BBD576BB5819E4794DF346C5AAA402A01C68B0557AB",
        )
        .unwrap();
        let message = verify(text.as_bytes(), "00").unwrap_err().to_string();
        assert!(
            message.starts_with("property ManifestSha256: the manifest's SHA-256 is 9bae123e"),
            "{message}"
        );
    }

    #[test]
    fn helm_values_carry_the_same_settings() {
        let values: Value = serde_yaml_ng::from_str(&helm_values(&overlay(true))).unwrap();
        assert_eq!(values["serviceAccount"]["operator"]["name"], "keda-operator");
        assert_eq!(values["podIdentity"]["aws"]["irsa"]["enabled"], true);
        assert_eq!(
            values["podIdentity"]["aws"]["irsa"]["roleArn"],
            "arn:aws:iam::123456789012:role/keda-operator"
        );
        assert_eq!(values["podSecurityContext"]["operator"]["fsGroup"], 1001);
        assert_eq!(
            release_url("2.20.2"),
            "https://github.com/kedacore/keda/releases/download/v2.20.2/keda-2.20.2.yaml"
        );
    }
}
