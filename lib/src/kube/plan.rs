//! What to apply and delete, in which order, and how kedaform marks what it owns: pure
//! functions over parsed objects.

use ::kube::api::DynamicObject;
use ::kube::core::TypeMeta;
use serde_json::Value;

use crate::{Error, Input};

/// Label every object kedaform applies carries.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "kedaform";
/// Label naming the custom resource (stack + logical id) that owns the object, so that an
/// Update prunes what left the set and a Delete removes exactly its own objects.
pub const OWNER_LABEL: &str = "kedaform.io/owner";

/// Parses one or many YAML documents; empty documents are skipped. Errors name the document
/// and the field path, never the content: a manifest may hold secrets.
pub fn parse_manifest(yaml: &str) -> Result<Vec<DynamicObject>, Error> {
    let documents = super::yaml::documents(yaml, super::yaml::MAX_NODES)
        .map_err(|(index, e)| Error::input(Input::Manifest, format!("document {index} is not valid YAML: {e}")))?;
    let mut objects = Vec::new();
    for (index, value) in documents.into_iter().enumerate().map(|(i, v)| (i + 1, v)) {
        let kind = match &value {
            Value::Null => continue,
            Value::Object(_) => None,
            Value::String(_) => Some("a string"),
            Value::Array(_) => Some("a list"),
            Value::Bool(_) | Value::Number(_) => Some("a scalar"),
        };
        if let Some(kind) = kind {
            return Err(Error::input(
                Input::Manifest,
                format!(
                    "document {index} is {kind}, not a Kubernetes object (a mapping with apiVersion, kind and metadata.name)"
                ),
            ));
        }
        let object: DynamicObject = serde_path_to_error::deserialize(value).map_err(|e| {
            Error::input(
                Input::Manifest,
                format!(
                    "document {index} is not a Kubernetes object: {}: {}",
                    e.path(),
                    crate::redact::parser_message(&e.inner().to_string(), crate::redact::Stage::Decode)
                ),
            )
        })?;
        if object.types.is_none() || object.metadata.name.is_none() {
            return Err(Error::input(
                Input::Manifest,
                format!("document {index} needs apiVersion, kind and metadata.name"),
            ));
        }
        objects.push(object);
    }
    Ok(objects)
}

/// Apply rank by kind: what others depend on first, custom resources last.
pub fn rank(types: &TypeMeta) -> u8 {
    let group = types.api_version.rsplit_once('/').map_or("", |(group, _)| group);
    match (group, types.kind.as_str()) {
        ("", "Namespace") => 0,
        ("apiextensions.k8s.io", "CustomResourceDefinition") => 1,
        ("", "ServiceAccount") => 2,
        ("rbac.authorization.k8s.io", "ClusterRole" | "Role") => 3,
        ("rbac.authorization.k8s.io", "ClusterRoleBinding" | "RoleBinding") => 4,
        ("", "ConfigMap" | "Secret") => 5,
        ("apps" | "batch", _) | ("", "Pod") => 7,
        ("apiregistration.k8s.io", "APIService") => 8,
        ("admissionregistration.k8s.io", _) => 9,
        // Services and other built-in kinds that nothing above depends on.
        ("" | "policy" | "networking.k8s.io" | "scheduling.k8s.io" | "storage.k8s.io" | "coordination.k8s.io", _) => 6,
        _ => 10,
    }
}

/// Objects in apply order (stable: the manifest's order within a rank).
pub fn apply_order(mut objects: Vec<DynamicObject>) -> Vec<DynamicObject> {
    objects.sort_by_key(|o| o.types.as_ref().map_or(u8::MAX, rank));
    objects
}

/// Objects in delete order: the reverse of apply order.
pub fn delete_order(objects: Vec<DynamicObject>) -> Vec<DynamicObject> {
    let mut objects = apply_order(objects);
    objects.reverse();
    objects
}

/// The owner label value for a custom resource: a label value (63 characters at most) that
/// is stable for the stack and logical id.
pub fn owner(stack_id: &str, logical_id: &str) -> String {
    // FNV-1a: stable across Rust versions, unlike the standard hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in stack_id.bytes().chain(std::iter::once(b'/')).chain(logical_id.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let readable: String = logical_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(40)
        .collect::<String>()
        .to_ascii_lowercase();
    format!("{readable}-{hash:016x}")
}

/// Annotation on an object a resource adopted (it existed before, and the resource was allowed
/// to take it over): names that owner. An adopted object carries no owner label, so no Delete
/// and no prune ever removes it.
pub const ADOPTED_BY_ANNOTATION: &str = "kedaform.io/adopted-by";

/// Whether an apply may take over an object that exists and is not the applying owner's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Adoption {
    /// Such an object fails the apply, naming it; nothing of it changes (the default).
    #[default]
    Refuse,
    /// Such an object is applied and annotated as adopted; it is never deleted. An object of
    /// another kedaform owner is refused all the same.
    Adopt,
}

/// How an apply may treat one object, judged from the object the cluster holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Absent, or labelled as this owner's: applied with the owner label, deleted with the owner.
    Owned,
    /// Existing and not any owner's, taken over with [`Adoption::Adopt`]: applied with
    /// [`ADOPTED_BY_ANNOTATION`], never deleted.
    Adopted,
}

/// Why an existing object may not be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// It existed before and no kedaform resource owns it.
    Unowned,
    /// Another kedaform resource owns (or adopted) it: the owner label value.
    Other(String),
}

/// Why an object is still there after its Delete: the conditions that say so (a Namespace's
/// `NamespaceDeletionDiscoveryFailure` when an aggregated API does not answer, its content or
/// finalizers remaining), else its finalizers.
pub fn deletion_blocked_by(object: &DynamicObject) -> String {
    let blocking: Vec<String> = object.data["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["status"] == "True")
        .map(|c| {
            format!(
                "{}: {}",
                c["type"].as_str().unwrap_or_default(),
                c["message"].as_str().unwrap_or_default()
            )
        })
        .collect();
    if !blocking.is_empty() {
        return format!("still being deleted: {}", blocking.join("; "));
    }
    match object.metadata.finalizers.as_deref() {
        Some(finalizers) if !finalizers.is_empty() => {
            format!("still being deleted, held by finalizers {}", finalizers.join(", "))
        }
        _ => "still being deleted".to_owned(),
    }
}

/// `key` as an error names an object that exists: an APIService with the Service that serves
/// it, since two metrics adapters fight over `v1beta1.external.metrics.k8s.io` (KEDA's and,
/// say, prometheus-adapter's) and the user must know which one holds it.
pub fn described(key: &ObjectKey, existing: Option<&DynamicObject>) -> String {
    let service = existing
        .filter(|_| key.kind == "APIService")
        .map(|object| &object.data["spec"]["service"]);
    match service {
        Some(service) if service.is_object() => format!(
            "{key} (served by Service {}/{})",
            service["namespace"].as_str().unwrap_or_default(),
            service["name"].as_str().unwrap_or_default()
        ),
        Some(_) => format!("{key} (served by the API server itself)"),
        None => key.to_string(),
    }
}

/// What an apply as `owner` may do with an object whose current metadata is `existing` (`None`:
/// the object does not exist).
pub fn claim(existing: Option<&::kube::api::ObjectMeta>, owner: &str, adoption: Adoption) -> Result<Claim, Holder> {
    let Some(existing) = existing else {
        return Ok(Claim::Owned);
    };
    let label = existing.labels.as_ref().and_then(|l| l.get(OWNER_LABEL));
    let adopter = existing.annotations.as_ref().and_then(|a| a.get(ADOPTED_BY_ANNOTATION));
    match (label, adopter) {
        (Some(label), _) if label == owner => Ok(Claim::Owned),
        (Some(other), _) | (None, Some(other)) if other != owner => Err(Holder::Other(other.clone())),
        (None, Some(_)) => Ok(Claim::Adopted),
        _ if adoption == Adoption::Adopt => Ok(Claim::Adopted),
        _ => Err(Holder::Unowned),
    }
}

/// Marks `object` as `claim` says: the owner and managed-by labels on an owned object, the
/// adopted-by annotation (and no owner label) on an adopted one.
pub fn mark(object: &mut DynamicObject, owner: &str, claim: &Claim) {
    match claim {
        Claim::Owned => {
            let labels = object.metadata.labels.get_or_insert_with(Default::default);
            labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
            labels.insert(OWNER_LABEL.into(), owner.into());
        }
        Claim::Adopted => {
            if let Some(labels) = object.metadata.labels.as_mut() {
                labels.remove(OWNER_LABEL);
            }
            object
                .metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(ADOPTED_BY_ANNOTATION.into(), owner.into());
        }
    }
}

/// How many objects of each kind, in the order the kinds first appear.
pub fn count_by_kind(objects: &[DynamicObject]) -> Vec<(String, usize)> {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for object in objects {
        let kind = object.types.as_ref().map(|t| t.kind.clone()).unwrap_or_default();
        match counts.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => counts.push((kind, 1)),
        }
    }
    counts
}

/// Identity of an object across apply and prune: apiVersion's group, kind, namespace, name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// The API group (empty for the core group).
    pub group: String,
    /// The kind.
    pub kind: String,
    /// The namespace, for namespaced objects that give one.
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
}

impl ObjectKey {
    /// The key of `object`.
    pub fn of(object: &DynamicObject) -> Self {
        let types = object.types.clone().unwrap_or_default();
        Self {
            group: types.api_version.rsplit_once('/').map_or("", |(g, _)| g).to_owned(),
            kind: types.kind,
            namespace: object.metadata.namespace.clone(),
            name: object.metadata.name.clone().unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.group.is_empty() {
            String::new()
        } else {
            format!(".{}", self.group)
        };
        match &self.namespace {
            Some(ns) => write!(f, "{}{group} {ns}/{}", self.kind, self.name),
            None => write!(f, "{}{group} {}", self.kind, self.name),
        }
    }
}

/// What an Update must delete: objects the previous set had that the new one does not.
pub fn pruned(previous: &[DynamicObject], desired: &[DynamicObject]) -> Vec<DynamicObject> {
    let keep: std::collections::HashSet<ObjectKey> = desired.iter().map(ObjectKey::of).collect();
    delete_order(
        previous
            .iter()
            .filter(|o| !keep.contains(&ObjectKey::of(o)))
            .cloned()
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_left_after_its_delete_says_what_holds_it() {
        let object = |yaml: &str| parse_manifest(yaml).unwrap().remove(0);
        let stuck: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "keda"},
            "status": {"phase": "Terminating", "conditions": [
                {"type": "NamespaceDeletionDiscoveryFailure", "status": "True",
                 "message": "Discovery failed for some groups, 1 failing: external.metrics.k8s.io/v1beta1"},
                {"type": "NamespaceContentRemaining", "status": "False", "message": "All content removed"}]}}))
        .unwrap();
        assert_eq!(
            deletion_blocked_by(&stuck),
            "still being deleted: NamespaceDeletionDiscoveryFailure: Discovery failed for some groups, 1 failing: external.metrics.k8s.io/v1beta1"
        );
        let held = object(
            "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: c, namespace: s, finalizers: [finalizer.keda.sh]}",
        );
        assert_eq!(
            deletion_blocked_by(&held),
            "still being deleted, held by finalizers finalizer.keda.sh"
        );
        let plain = object("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: s}");
        assert_eq!(deletion_blocked_by(&plain), "still being deleted");
    }

    #[test]
    fn an_existing_apiservice_is_named_with_the_service_that_serves_it() {
        let object = |yaml: &str| parse_manifest(yaml).unwrap().remove(0);
        let theirs = object(
            "apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata: {name: v1beta1.external.metrics.k8s.io}\n\
             spec: {service: {namespace: monitoring, name: prometheus-adapter}, group: external.metrics.k8s.io, version: v1beta1}",
        );
        let key = ObjectKey::of(&theirs);
        assert_eq!(
            described(&key, Some(&theirs)),
            "APIService.apiregistration.k8s.io v1beta1.external.metrics.k8s.io (served by Service monitoring/prometheus-adapter)"
        );
        let local = object(
            "apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata: {name: v1.apps}\nspec: {group: apps, version: v1}",
        );
        assert!(described(&ObjectKey::of(&local), Some(&local)).ends_with("(served by the API server itself)"));
        // Other kinds, and an object that does not exist, are named as they are.
        let namespace = object("apiVersion: v1\nkind: Namespace\nmetadata: {name: sales}");
        assert_eq!(
            described(&ObjectKey::of(&namespace), Some(&namespace)),
            "Namespace sales"
        );
        assert_eq!(described(&key, None), key.to_string());
    }

    fn keda() -> Vec<DynamicObject> {
        let text = crate::test_data::keda_manifest();
        parse_manifest(&text).unwrap()
    }

    fn kinds(objects: &[DynamicObject]) -> Vec<String> {
        objects.iter().map(|o| o.types.as_ref().unwrap().kind.clone()).collect()
    }

    #[test]
    fn the_keda_release_manifest_is_ordered_dependencies_first() {
        let objects = keda();
        assert_eq!(objects.len(), 24);
        let counts = count_by_kind(&apply_order(objects.clone()));
        assert_eq!(
            counts[..2],
            [("Namespace".into(), 1), ("CustomResourceDefinition".into(), 6)]
        );
        assert_eq!(counts.iter().map(|(_, n)| n).sum::<usize>(), 24);
        let ordered = kinds(&apply_order(objects.clone()));
        let mut expected = vec!["Namespace"];
        expected.extend(["CustomResourceDefinition"; 6]);
        expected.push("ServiceAccount");
        expected.extend(["Role", "ClusterRole", "ClusterRole"]);
        expected.extend([
            "RoleBinding",
            "RoleBinding",
            "ClusterRoleBinding",
            "ClusterRoleBinding",
            "ClusterRoleBinding",
        ]);
        expected.extend(["Service"; 3]);
        expected.extend(["Deployment"; 3]);
        expected.push("APIService");
        expected.push("ValidatingWebhookConfiguration");
        assert_eq!(ordered, expected);
        let mut reversed = expected.clone();
        reversed.reverse();
        assert_eq!(kinds(&delete_order(objects)), reversed);
    }

    #[test]
    fn custom_resources_come_last_and_order_is_stable() {
        let yaml = "
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: consumer, namespace: sales}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: consumer, namespace: sales}
---
---
apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata: {name: aws, namespace: sales}
---
apiVersion: v1
kind: Namespace
metadata: {name: sales}
";
        let ordered = apply_order(parse_manifest(yaml).unwrap());
        assert_eq!(
            kinds(&ordered),
            ["Namespace", "Deployment", "ScaledObject", "TriggerAuthentication"]
        );
    }

    #[test]
    fn malformed_documents_name_the_property_and_document() {
        let message = |yaml: &str| {
            parse_manifest(yaml)
                .unwrap_err()
                .named(&[(crate::Input::Manifest, "Manifest")])
                .to_string()
        };
        assert!(message("kind: [").starts_with("property Manifest: document 1 is not valid YAML"));
        assert_eq!(
            message("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\nkind: Namespace\nmetadata: {name: b}"),
            "property Manifest: document 2 needs apiVersion, kind and metadata.name"
        );
        assert_eq!(
            message("- 1\n- 2"),
            "property Manifest: document 1 is a list, not a Kubernetes object (a mapping with apiVersion, kind and metadata.name)"
        );
    }

    #[test]
    fn errors_never_quote_the_manifest() {
        let message = |yaml: &str| {
            parse_manifest(yaml)
                .unwrap_err()
                .named(&[(crate::Input::Manifest, "Manifest")])
                .to_string()
        };
        assert_eq!(
            message("hunter2-password"),
            "property Manifest: document 1 is a string, not a Kubernetes object (a mapping with apiVersion, kind and metadata.name)"
        );
        let html = "<!DOCTYPE html><html><body>Sign in: hunter2-password</body></html>";
        assert_eq!(
            message(html),
            "property Manifest: document 1 needs apiVersion, kind and metadata.name"
        );
        let wrong_type = message("apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  labels: hunter2-password\n");
        assert_eq!(
            wrong_type,
            "property Manifest: document 1 is not a Kubernetes object: metadata.labels: expected a map, found a string"
        );
        let wrong_name = message("apiVersion: v1\nkind: Secret\nmetadata:\n  name: [hunter2-password]\n");
        assert_eq!(
            wrong_name,
            "property Manifest: document 1 is not a Kubernetes object: metadata.name: expected a string, found a list"
        );
    }

    /// Malformed documents with a secret in a value, in each form a parser reports differently:
    /// YAML syntax, YAML tags, typed fields with their own parsers (timestamps, integers).
    const MALFORMED: [&str; 18] = [
        "metadata:\n  name: s\n  creationTimestamp: 2024-01-01T00:00:00ZSECRET\n",
        "metadata:\n  name: s\n  managedFields:\n  - time: 2024-01-01T00:00:00Z SECRET\n",
        "metadata: {name: s, deletionTimestamp: SECRET}\n",
        "metadata: {name: s, generation: SECRET}\n",
        "metadata: {name: s, labels: {a: [SECRET]}}\n",
        "metadata: {name: s}\nstringData:\n  password: !!int SECRET\n",
        "metadata: {name: s}\nstringData:\n  password: !!float SECRET\n",
        "metadata: {name: s}\nstringData:\n  password: !!bool SECRET\n",
        "metadata: {name: s}\nstringData:\n  password: !!null SECRET\n",
        "metadata: {name: s}\nstringData:\n  password: !custom SECRET\n",
        "metadata: {name: s}\nstringData:\n  password: \"SECRET\n",
        "metadata: {name: s}\nstringData:\n  password: SECRET: x: y\n",
        "metadata: {name: s}\nstringData:\n  password: SECRET\n\tq: 1\n",
        "metadata: {name: s}\nstringData:\n  password: SECRET\n  - x\n",
        "metadata: {name: s}\ndata: {p: \"\\qSECRET\"}\n",
        "metadata: {name: s}\ndata: {p: !!int 99999999999999999999SECRET}\n",
        "metadata: {name: s}\ndata: {p: SECRET, q: [}\n",
        "metadata: {name: s, uid: {SECRET: 1}, resourceVersion: [SECRET]}\n",
    ];

    proptest::proptest! {
        #[test]
        fn no_parser_error_quotes_a_value(secret in "[A-Z][a-z0-9]{11,24}", form in 0..MALFORMED.len(), secret_in_second in proptest::bool::ANY) {
            let document = format!("apiVersion: v1\nkind: Secret\n{}", MALFORMED[form].replace("SECRET", &secret));
            let manifest = if secret_in_second {
                format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: a}}\n---\n{document}")
            } else {
                document
            };
            let message = parse_manifest(&manifest).unwrap_err().to_string();
            proptest::prop_assert!(!message.contains(&secret[..6]), "{message}");
        }
    }

    #[test]
    fn a_wide_alias_bomb_fails_quickly() {
        use std::fmt::Write as _;
        let mut bomb = String::from(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n  a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n",
        );
        for level in 1..10 {
            let previous = format!("*a{}", level - 1);
            let _ = writeln!(bomb, "  a{level}: &a{level} [{}]", vec![previous; 10].join(", "));
        }
        assert!(bomb.len() < 4096, "a few KB: {}", bomb.len());
        let started = std::time::Instant::now();
        let message = parse_manifest(&bomb)
            .unwrap_err()
            .named(&[(crate::Input::Manifest, "Manifest")])
            .to_string();
        assert!(
            message.starts_with("property Manifest: document 1 is not valid YAML"),
            "{message}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn owner_labels_are_stable_valid_label_values() {
        let a = owner("arn:aws:cloudformation:us-east-1:1:stack/s/1", "KedaInstall");
        assert_eq!(a, owner("arn:aws:cloudformation:us-east-1:1:stack/s/1", "KedaInstall"));
        assert_ne!(a, owner("arn:aws:cloudformation:us-east-1:1:stack/s/2", "KedaInstall"));
        assert!(a.starts_with("kedainstall-") && a.len() <= 63, "{a}");
        let long = owner("s", &"L".repeat(200));
        assert!(long.len() <= 63 && long.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }

    fn meta(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> ::kube::api::ObjectMeta {
        let map =
            |pairs: &[(&str, &str)]| Some(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect());
        ::kube::api::ObjectMeta {
            labels: map(labels),
            annotations: map(annotations),
            ..Default::default()
        }
    }

    #[test]
    fn an_object_is_claimed_only_when_absent_ours_or_explicitly_adoptable() {
        use Adoption::{Adopt, Refuse};
        let ours = meta(&[(OWNER_LABEL, "me")], &[]);
        let theirs = meta(&[(OWNER_LABEL, "keda-1234")], &[]);
        let plain = meta(&[("app", "x")], &[]);
        let adopted_by_us = meta(&[], &[(ADOPTED_BY_ANNOTATION, "me")]);
        let adopted_by_them = meta(&[], &[(ADOPTED_BY_ANNOTATION, "other")]);
        assert_eq!(claim(None, "me", Refuse), Ok(Claim::Owned));
        assert_eq!(claim(Some(&ours), "me", Refuse), Ok(Claim::Owned));
        for adoption in [Refuse, Adopt] {
            assert_eq!(
                claim(Some(&theirs), "me", adoption),
                Err(Holder::Other("keda-1234".into())),
                "another owner's object is never taken over"
            );
            assert_eq!(
                claim(Some(&adopted_by_them), "me", adoption),
                Err(Holder::Other("other".into()))
            );
            assert_eq!(claim(Some(&adopted_by_us), "me", adoption), Ok(Claim::Adopted));
        }
        assert_eq!(claim(Some(&plain), "me", Refuse), Err(Holder::Unowned));
        assert_eq!(claim(Some(&plain), "me", Adopt), Ok(Claim::Adopted));
    }

    #[test]
    fn an_adopted_object_carries_no_owner_label() {
        let mut objects =
            parse_manifest("apiVersion: v1\nkind: Namespace\nmetadata: {name: a, labels: {kedaform.io/owner: x}}")
                .unwrap();
        mark(&mut objects[0], "me", &Claim::Adopted);
        assert_eq!(objects[0].metadata.labels.as_ref().unwrap().get(OWNER_LABEL), None);
        assert_eq!(
            objects[0].metadata.annotations.as_ref().unwrap()[ADOPTED_BY_ANNOTATION],
            "me"
        );
        mark(&mut objects[0], "me", &Claim::Owned);
        assert_eq!(objects[0].metadata.labels.as_ref().unwrap()[OWNER_LABEL], "me");
    }

    #[test]
    fn prune_keeps_what_is_still_wanted() {
        let previous = parse_manifest("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: a}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: a}",
        )
        .unwrap();
        let desired = parse_manifest("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}").unwrap();
        let keys: Vec<String> = pruned(&previous, &desired)
            .iter()
            .map(|o| ObjectKey::of(o).to_string())
            .collect();
        assert_eq!(keys, ["Deployment.apps a/d", "Service a/s"]);
    }
}
