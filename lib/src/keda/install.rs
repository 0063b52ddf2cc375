//! What `helm install kedacore/keda --set serviceAccount… --set podSecurityContext…` did,
//! as a pure transformation of KEDA's release manifest.

use ::kube::api::DynamicObject;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::availability::Availability;
use crate::{Error, Input};

/// The KEDA release kedaform installs by default and was tested with.
pub const DEFAULT_VERSION: &str = "2.20.2";
/// The namespace of KEDA's release manifest.
pub const NAMESPACE: &str = "keda";
/// The operator's Deployment and ServiceAccount.
pub const OPERATOR: &str = "keda-operator";
/// What KEDA needs before a ScaledObject can work: its three Deployments and the external
/// metrics API.
pub const READY_DEPLOYMENTS: [&str; 3] = ["keda-operator", "keda-metrics-apiserver", "keda-admission"];
/// The APIService that serves external metrics to the HPA controller.
pub const METRICS_API_SERVICE: &str = "v1beta1.external.metrics.k8s.io";
/// Service accounts of their own for the metrics API server and the admission webhooks, as
/// KEDA's Helm chart has them, so that only the operator's pods get the operator's AWS role.
pub const METRICS_SERVER_ACCOUNT: &str = "keda-metrics-server";
/// The admission webhooks' own ServiceAccount (the manifest shares the operator's).
pub const WEBHOOK_ACCOUNT: &str = "keda-webhook";
const METRICS_SERVER: &str = "keda-metrics-apiserver";
const WEBHOOKS: &str = "keda-admission";
/// The manifest binds these to `keda-operator`; they are the metrics API server's.
const METRICS_SERVER_BINDINGS: [(&str, &str); 2] = [
    ("ClusterRoleBinding", "keda-system-auth-delegator"),
    ("RoleBinding", "keda-auth-reader"),
];

/// On the operator's pod template: the identity its pods were created with.
pub const IDENTITY_ANNOTATION: &str = "kedaform.io/identity";

/// How the operator gets AWS credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdentityMode {
    /// IAM Roles for Service Accounts: the role ARN as a service-account annotation.
    Irsa,
    /// EKS Pod Identity: no annotation; the association is a template resource.
    PodIdentity,
}

/// The KEDA-specific changes to the release manifest: the operator's identity, and the
/// service-account split that keeps the role off the other KEDA pods.
#[derive(Debug, Clone, PartialEq)]
pub struct Overlay {
    /// The role the operator assumes.
    pub operator_role_arn: String,
    /// IRSA or Pod Identity.
    pub identity: IdentityMode,
    /// Seconds; the projected token's lifetime (`eks.amazonaws.com/token-expiration`).
    pub token_expiration: u32,
    /// scale-eks-with-keda's `fsGroup/runAsUser/runAsGroup: 1001` pod security context; only clusters
    /// older than Kubernetes 1.19 needed it for the projected token to be readable.
    pub legacy_fs_group: bool,
    /// Replicas, budgets, spread and resources (the default changes nothing).
    pub availability: Availability,
}

/// The kinds KEDA's operator manages through finalizers: while one exists, removing the
/// operator (and then its CRDs) would leave it, and the CRD, stuck deleting.
pub fn managed_kinds() -> [::kube::discovery::ApiResource; 4] {
    let resource = |kind: &str, plural: &str| {
        ::kube::discovery::ApiResource::from_gvk_with_plural(
            &::kube::core::GroupVersionKind::gvk("keda.sh", "v1alpha1", kind),
            plural,
        )
    };
    [
        resource("ScaledObject", "scaledobjects"),
        resource("ScaledJob", "scaledjobs"),
        resource("TriggerAuthentication", "triggerauthentications"),
        resource("ClusterTriggerAuthentication", "clustertriggerauthentications"),
    ]
}

/// `eks.amazonaws.com/token-expiration`'s default: a day, as the Helm chart's IRSA values set.
pub const DEFAULT_TOKEN_EXPIRATION: u32 = 86_400;

impl Overlay {
    /// IRSA for `operator_role_arn` with the chart's defaults: what `helm install --set` carried.
    pub fn irsa(operator_role_arn: impl Into<String>) -> Self {
        Self {
            operator_role_arn: operator_role_arn.into(),
            identity: IdentityMode::Irsa,
            token_expiration: DEFAULT_TOKEN_EXPIRATION,
            legacy_fs_group: false,
            availability: Availability::default(),
        }
    }
}

/// The one manifest pipeline (the resource, `kedaform keda render` and the demo): the SHA-256
/// checked when one is given, the bytes read as UTF-8 YAML, the objects parsed and overlaid.
pub fn objects(manifest: &[u8], sha256: Option<&str>, overlay: &Overlay) -> Result<Vec<DynamicObject>, Error> {
    if let Some(expected) = sha256 {
        verify(manifest, expected)?;
    }
    let text = std::str::from_utf8(manifest)
        .map_err(|_| Error::input(Input::Manifest, "the manifest is not UTF-8 text, so not YAML"))?;
    let mut objects = crate::kube::plan::parse_manifest(text)?;
    apply_overlay(&mut objects, overlay)?;
    Ok(objects)
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
        Err(Error::input(
            Input::ManifestDigest,
            format!("the manifest's SHA-256 is {actual}, not {expected}: wrong file or a changed mirror"),
        ))
    }
}

/// Whether `object` is KEDA's `kind` `name` in its namespace.
pub(super) fn is(object: &DynamicObject, kind: &str, name: &str) -> bool {
    object.types.as_ref().is_some_and(|t| t.kind == kind)
        && object.metadata.name.as_deref() == Some(name)
        && object.metadata.namespace.as_deref() == Some(NAMESPACE)
}

fn is_named(object: &DynamicObject, kind: &str, name: &str) -> bool {
    object.types.as_ref().is_some_and(|t| t.kind == kind) && object.metadata.name.as_deref() == Some(name)
}

/// A manifest without `what`: not KEDA's release manifest.
pub(super) fn missing(what: &str) -> Error {
    Error::input(
        Input::Manifest,
        format!("the manifest has no {what}: is it KEDA's release manifest (2.10 or later)?"),
    )
}

fn object(value: Value) -> DynamicObject {
    serde_json::from_value(value).unwrap_or_else(|e| unreachable!("a literal object: {e}"))
}

/// What KEDA's Helm chart grants the admission webhooks: reading what they validate against.
fn webhook_rbac() -> [DynamicObject; 2] {
    let rule = |group: &str, resources: &[&str], verbs: &[&str]| json!({"apiGroups": [group], "resources": resources, "verbs": verbs});
    [
        object(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": WEBHOOK_ACCOUNT, "labels": {"app.kubernetes.io/part-of": "keda-operator"}},
            "rules": [
                rule("autoscaling", &["horizontalpodautoscalers"], &["list", "watch"]),
                rule("keda.sh", &["scaledobjects"], &["list", "watch"]),
                rule("apps", &["deployments", "statefulsets"], &["get", "list", "watch"]),
                rule("", &["limitranges"], &["list"]),
                rule("events.k8s.io", &["events"], &["create", "patch"]),
            ],
        })),
        object(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": WEBHOOK_ACCOUNT, "labels": {"app.kubernetes.io/part-of": "keda-operator"}},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": WEBHOOK_ACCOUNT},
            "subjects": [{"kind": "ServiceAccount", "name": WEBHOOK_ACCOUNT, "namespace": NAMESPACE}],
        })),
    ]
}

/// Gives the metrics API server and the admission webhooks service accounts of their own, as
/// KEDA's Helm chart does: the release manifest runs all three Deployments as `keda-operator`,
/// which would hand the operator's AWS role to all of them.
fn separate_accounts(objects: &mut Vec<DynamicObject>) -> Result<(), Error> {
    let template = objects
        .iter()
        .find(|o| is(o, "ServiceAccount", OPERATOR))
        .cloned()
        .ok_or_else(|| missing("keda-operator ServiceAccount in namespace keda"))?;
    for (deployment, account) in [(METRICS_SERVER, METRICS_SERVER_ACCOUNT), (WEBHOOKS, WEBHOOK_ACCOUNT)] {
        let found = objects
            .iter_mut()
            .find(|o| is(o, "Deployment", deployment))
            .ok_or_else(|| missing(&format!("{deployment} Deployment in namespace keda")))?;
        found.data["spec"]["template"]["spec"]["serviceAccountName"] = json!(account);
        let mut created = template.clone();
        created.metadata.name = Some(account.to_owned());
        created.metadata.annotations = None;
        if let Some(labels) = created.metadata.labels.as_mut() {
            labels.insert("app.kubernetes.io/name".into(), account.to_owned());
        }
        objects.push(created);
    }
    for (kind, name) in METRICS_SERVER_BINDINGS {
        let binding = objects
            .iter_mut()
            .find(|o| is_named(o, kind, name))
            .ok_or_else(|| missing(&format!("{kind} {name}")))?;
        binding.data["subjects"] =
            json!([{"kind": "ServiceAccount", "name": METRICS_SERVER_ACCOUNT, "namespace": NAMESPACE}]);
    }
    objects.extend(webhook_rbac());
    Ok(())
}

/// Applies the overlay to KEDA's objects: the metrics API server and the webhooks get service
/// accounts of their own, the `keda-operator` ServiceAccount gets the IRSA annotations (and,
/// with `legacy_fs_group`, the `keda-operator` Deployment its pod security context).
pub fn apply_overlay(objects: &mut Vec<DynamicObject>, overlay: &Overlay) -> Result<(), Error> {
    separate_accounts(objects)?;
    overlay.availability.apply(objects)?;
    let account = objects
        .iter_mut()
        .find(|o| is(o, "ServiceAccount", OPERATOR))
        .ok_or_else(|| missing("keda-operator ServiceAccount in namespace keda"))?;
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
    // The webhook gives a pod its credentials settings when it is created: a change of identity
    // must replace the operator's pods, so it is written into their template.
    let identity = match overlay.identity {
        IdentityMode::Irsa => format!("irsa {}", overlay.operator_role_arn),
        IdentityMode::PodIdentity => "pod-identity".to_owned(),
    };
    let operator = objects
        .iter_mut()
        .find(|o| is(o, "Deployment", OPERATOR))
        .ok_or_else(|| missing("keda-operator Deployment in namespace keda"))?;
    operator.data["spec"]["template"]["metadata"]["annotations"][IDENTITY_ANNOTATION] = json!(identity);
    if overlay.legacy_fs_group {
        let deployment = objects
            .iter_mut()
            .find(|o| is(o, "Deployment", OPERATOR))
            .ok_or_else(|| missing("keda-operator Deployment in namespace keda"))?;
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
        "serviceAccount": {
            "operator": {"create": true, "name": OPERATOR},
            "metricServer": {"create": true, "name": METRICS_SERVER_ACCOUNT},
            "webhooks": {"create": true, "name": WEBHOOK_ACCOUNT},
        },
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
    overlay.availability.helm_values(&mut values);
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

/// The `keda-operator` Deployment, which removes the finalizers of KEDA's objects.
pub fn operator_deployment(objects: &[DynamicObject]) -> Option<&DynamicObject> {
    objects.iter().find(|o| is(o, "Deployment", OPERATOR))
}

/// On the operator's Deployment: the release an Update of this install came from, so that the
/// way back (CloudFormation's rollback, or the user's) is never refused as a downgrade.
pub const PREVIOUS_VERSION_ANNOTATION: &str = "kedaform.io/previous-version";

/// Records on the operator's Deployment that these objects replace release `previous`.
pub fn record_previous(objects: &mut [DynamicObject], previous: &str) {
    if let Some(operator) = objects.iter_mut().find(|o| is(o, "Deployment", OPERATOR)) {
        operator
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(PREVIOUS_VERSION_ANNOTATION.into(), previous.into());
    }
}

/// `2.20.2` (or `v2.20.2`, a pre-release suffix ignored) as numbers to compare.
fn release(version: &str) -> Option<(u32, u32, u32)> {
    let core = version.trim().trim_start_matches('v');
    let core = core.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u32>().ok());
    let release = (parts.next()??, parts.next()??, parts.next().flatten().unwrap_or(0));
    parts.next().is_none().then_some(release)
}

/// Whether an install of `requested` may replace the KEDA running (`running`, the operator
/// Deployment's `app.kubernetes.io/version`; `previous`, its [`PREVIOUS_VERSION_ANNOTATION`]).
///
/// An older release than the one running is refused: its CRDs would drop the fields of
/// objects written for the newer one, and its operator does not know them. It is allowed when
/// `allowed` (`AllowDowngrade`), and always when it is the release the running one replaced:
/// that is what CloudFormation's rollback of an upgrade asks for, and a request cannot tell a
/// rollback from a user going back. Versions that do not parse are not judged.
pub fn check_downgrade(
    requested: &str,
    running: Option<&str>,
    previous: Option<&str>,
    allowed: bool,
) -> Result<(), Error> {
    let (Some(wanted), Some(current)) = (release(requested), running.and_then(release)) else {
        return Ok(());
    };
    if wanted >= current || allowed || previous.and_then(release) == Some(wanted) {
        return Ok(());
    }
    let running = running.unwrap_or_default();
    Err(Error::invalid(
        "Version",
        format!(
            "{requested} is older than KEDA {running}, which runs on the cluster: a downgrade can drop fields of \
             ScaledObjects written for {running} and leave an operator that does not know them. Set AllowDowngrade: \
             true to downgrade anyway (going back to the release this install upgraded from, as a rollback does, \
             needs no flag)"
        ),
    ))
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
        let text = crate::test_data::keda_manifest();
        let objects = parse_manifest(&text).unwrap();
        (text, objects)
    }

    fn overlay(legacy_fs_group: bool) -> Overlay {
        Overlay {
            operator_role_arn: "arn:aws:iam::123456789012:role/keda-operator".into(),
            identity: IdentityMode::Irsa,
            token_expiration: 86_400,
            legacy_fs_group,
            availability: Availability::default(),
        }
    }

    fn kind_and_name(object: &DynamicObject) -> String {
        format!(
            "{}/{}",
            object.types.as_ref().unwrap().kind,
            object.metadata.name.as_deref().unwrap()
        )
    }

    #[test]
    fn the_overlay_changes_accounts_bindings_and_the_operators_identity_only() {
        let (_, original) = keda();
        let mut objects = original.clone();
        apply_overlay(&mut objects, &overlay(false)).unwrap();
        let changed: Vec<String> = objects
            .iter()
            .zip(&original)
            .filter(|(a, b)| serde_json::to_value(a).unwrap() != serde_json::to_value(b).unwrap())
            .map(|(a, _)| kind_and_name(a))
            .collect();
        assert_eq!(
            changed,
            [
                "ServiceAccount/keda-operator",
                "RoleBinding/keda-auth-reader",
                "ClusterRoleBinding/keda-system-auth-delegator",
                "Deployment/keda-admission",
                "Deployment/keda-metrics-apiserver",
                // its pod template's identity annotation
                "Deployment/keda-operator",
            ]
        );
        let added: Vec<String> = objects[original.len()..].iter().map(kind_and_name).collect();
        assert_eq!(
            added,
            [
                "ServiceAccount/keda-metrics-server",
                "ServiceAccount/keda-webhook",
                "ClusterRole/keda-webhook",
                "ClusterRoleBinding/keda-webhook",
            ]
        );
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
    fn only_the_operator_pods_run_as_the_account_with_the_role() {
        let (_, mut objects) = keda();
        apply_overlay(&mut objects, &overlay(false)).unwrap();
        let accounts: Vec<(String, String)> = objects
            .iter()
            .filter(|o| o.types.as_ref().unwrap().kind == "Deployment")
            .map(|o| {
                (
                    o.metadata.name.clone().unwrap(),
                    o.data["spec"]["template"]["spec"]["serviceAccountName"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                )
            })
            .collect();
        assert_eq!(
            accounts,
            [
                ("keda-admission".to_owned(), WEBHOOK_ACCOUNT.to_owned()),
                ("keda-metrics-apiserver".to_owned(), METRICS_SERVER_ACCOUNT.to_owned()),
                ("keda-operator".to_owned(), OPERATOR.to_owned()),
            ]
        );
        for account in [METRICS_SERVER_ACCOUNT, WEBHOOK_ACCOUNT] {
            let found = objects.iter().find(|o| is(o, "ServiceAccount", account)).unwrap();
            assert!(found.metadata.annotations.is_none(), "{account} carries no role");
        }
        for (kind, name) in METRICS_SERVER_BINDINGS {
            let binding = objects.iter().find(|o| is_named(o, kind, name)).unwrap();
            assert_eq!(binding.data["subjects"][0]["name"], METRICS_SERVER_ACCOUNT, "{name}");
        }
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
    fn a_change_of_identity_replaces_the_operators_pods() {
        let template = |overlay: &Overlay| {
            let (_, mut objects) = keda();
            apply_overlay(&mut objects, overlay).unwrap();
            operator_deployment(&objects).unwrap().data["spec"]["template"].clone()
        };
        let irsa = template(&overlay(false));
        assert_eq!(
            irsa["metadata"]["annotations"][IDENTITY_ANNOTATION],
            "irsa arn:aws:iam::123456789012:role/keda-operator"
        );
        let pod_identity = template(&Overlay {
            identity: IdentityMode::PodIdentity,
            ..overlay(false)
        });
        let other_role = template(&Overlay {
            operator_role_arn: "arn:aws:iam::123456789012:role/keda-2".into(),
            ..overlay(false)
        });
        assert_ne!(irsa, pod_identity, "a new pod template: Kubernetes rolls the operator");
        assert_ne!(irsa, other_role);
        assert_eq!(irsa, template(&overlay(false)), "the same identity changes nothing");
    }

    #[test]
    fn pod_identity_leaves_the_service_account_alone() {
        let (_, mut objects) = keda();
        apply_overlay(
            &mut objects,
            &Overlay {
                identity: IdentityMode::PodIdentity,
                ..overlay(false)
            },
        )
        .unwrap();
        assert_eq!(operator_annotations(&objects), Value::Null);
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
        let mut objects = parse_manifest("apiVersion: v1\nkind: Namespace\nmetadata: {name: keda}").unwrap();
        let error = apply_overlay(&mut objects, &overlay(false)).unwrap_err();
        assert!(
            matches!(
                error,
                Error::Invalid {
                    input: Input::Manifest,
                    ..
                }
            ),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .starts_with("the manifest has no keda-operator ServiceAccount"),
            "{error}"
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
        let error = verify(text.as_bytes(), "00").unwrap_err();
        assert!(
            matches!(
                error,
                Error::Invalid {
                    input: Input::ManifestDigest,
                    ..
                }
            ),
            "{error}"
        );
        assert!(
            error.to_string().starts_with("the manifest's SHA-256 is 9bae123e"),
            "{error}"
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

    #[test]
    fn a_downgrade_is_refused_unless_allowed_or_the_way_back() {
        assert!(
            check_downgrade("2.20.2", Some("2.19.0"), None, false).is_ok(),
            "an upgrade"
        );
        assert!(
            check_downgrade("2.20.2", Some("2.20.2"), None, false).is_ok(),
            "the same"
        );
        assert!(check_downgrade("2.19.0", None, None, false).is_ok(), "nothing running");
        assert!(check_downgrade("2.19.0", Some("not a version"), None, false).is_ok());
        let refused = check_downgrade("2.18.1", Some("2.20.2"), Some("2.19.0"), false).unwrap_err();
        assert!(
            refused
                .to_string()
                .starts_with("property Version: 2.18.1 is older than KEDA 2.20.2, which runs on the cluster"),
            "{refused}"
        );
        assert!(refused.to_string().contains("AllowDowngrade: true"));
        assert!(
            check_downgrade("2.18.1", Some("2.20.2"), Some("2.19.0"), true).is_ok(),
            "allowed"
        );
        assert!(
            check_downgrade("v2.19.0", Some("2.20.2"), Some("2.19.0"), false).is_ok(),
            "the way back"
        );
        assert!(
            check_downgrade("2.19", Some("2.20.2"), Some("2.19.0"), false).is_ok(),
            "2.19 is 2.19.0"
        );
        assert!(
            check_downgrade("2.9.0", Some("2.20.2-rc1"), None, false).is_err(),
            "numbers, not text"
        );
    }

    #[test]
    fn the_previous_release_is_recorded_on_the_operator_only() {
        let (text, _) = keda();
        let mut objects = crate::kube::plan::parse_manifest(&text).unwrap();
        record_previous(&mut objects, "2.19.0");
        let marked: Vec<String> = objects
            .iter()
            .filter(|o| {
                o.metadata
                    .annotations
                    .as_ref()
                    .is_some_and(|a| a.get(PREVIOUS_VERSION_ANNOTATION).map(String::as_str) == Some("2.19.0"))
            })
            .map(|o| o.metadata.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(marked, ["keda-operator"]);
    }
}
