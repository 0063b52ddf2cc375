//! What a deployer may apply: the kinds and namespaces a platform team allows it, checked
//! before anything is applied. An empty list allows everything of its sort.

use ::kube::api::DynamicObject;

use super::plan::ObjectKey;
use crate::Error;

/// The environment variable listing the kinds a deployer may apply (`Deployment`,
/// `ScaledObject.keda.sh`, …), comma-separated.
pub const ALLOWED_KINDS_VARIABLE: &str = "KEDAFORM_ALLOWED_KINDS";
/// The environment variable listing the namespaces a deployer may apply to, comma-separated.
pub const ALLOWED_NAMESPACES_VARIABLE: &str = "KEDAFORM_ALLOWED_NAMESPACES";

/// Kinds and namespaces an apply may touch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    kinds: Vec<String>,
    namespaces: Vec<String>,
}

fn list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Scope {
    /// Anything, anywhere (the default).
    pub fn any() -> Self {
        Self::default()
    }

    /// Only `kinds` (each `Kind` for the core group or `Kind.group`, as `ScaledObject.keda.sh`)
    /// and only in `namespaces`; an empty list does not limit.
    pub fn new(kinds: &str, namespaces: &str) -> Self {
        Self {
            kinds: list(kinds),
            namespaces: list(namespaces),
        }
    }

    /// From [`ALLOWED_KINDS_VARIABLE`] and [`ALLOWED_NAMESPACES_VARIABLE`]; unset or empty
    /// variables do not limit.
    pub fn from_env() -> Self {
        let read = |name| std::env::var(name).unwrap_or_default();
        Self::new(&read(ALLOWED_KINDS_VARIABLE), &read(ALLOWED_NAMESPACES_VARIABLE))
    }

    /// Checks every object before any is applied; the error names the first one outside and
    /// the rule it breaks.
    ///
    /// With namespaces listed, a namespaced object must name one of them and a `Namespace`
    /// must be one of them; an object naming no namespace (a cluster-wide one such as a
    /// `ClusterRoleBinding`, or one left to the `default` namespace) is refused.
    pub fn check(&self, objects: &[DynamicObject]) -> Result<(), Error> {
        for object in objects {
            let key = ObjectKey::of(object);
            let qualified = if key.group.is_empty() {
                key.kind.clone()
            } else {
                format!("{}.{}", key.kind, key.group)
            };
            let refuse = |rule: String| Error::OutOfScope {
                object: key.to_string(),
                rule,
            };
            if !self.kinds.is_empty() && !self.kinds.contains(&qualified) {
                return Err(refuse(format!("kind {qualified} is not in {ALLOWED_KINDS_VARIABLE}")));
            }
            if self.namespaces.is_empty() {
                continue;
            }
            let namespace = match (key.group.as_str(), key.kind.as_str(), &key.namespace) {
                ("", "Namespace", _) => Some(&key.name),
                (_, _, namespace) => namespace.as_ref(),
            };
            match namespace {
                Some(namespace) if self.namespaces.contains(namespace) => {}
                Some(namespace) => {
                    return Err(refuse(format!(
                        "namespace {namespace} is not in {ALLOWED_NAMESPACES_VARIABLE}"
                    )));
                }
                None => {
                    return Err(refuse(format!(
                        "it names no namespace, and with {ALLOWED_NAMESPACES_VARIABLE} set every object must name one \
                         of them (cluster-wide objects are refused)"
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::plan::parse_manifest;

    const MANIFEST: &str = "apiVersion: v1\nkind: Namespace\nmetadata: {name: sales}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: c, namespace: sales}\n---\napiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: c, namespace: sales}\n";

    fn verdict(scope: &Scope, yaml: &str) -> Result<(), String> {
        scope.check(&parse_manifest(yaml).unwrap()).map_err(|e| e.to_string())
    }

    #[test]
    fn no_list_allows_everything() {
        let admin = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: x}\n";
        assert_eq!(verdict(&Scope::any(), admin), Ok(()));
        assert_eq!(verdict(&Scope::new(" , ", ""), MANIFEST), Ok(()));
    }

    #[test]
    fn kinds_and_namespaces_are_checked_before_anything_is_applied() {
        let scope = Scope::new("Namespace, Deployment.apps, ScaledObject.keda.sh", "sales,orders");
        assert_eq!(verdict(&scope, MANIFEST), Ok(()));
        let admin = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: x}\n";
        assert_eq!(
            verdict(&scope, admin).unwrap_err(),
            "ClusterRoleBinding.rbac.authorization.k8s.io x is outside what this deployer may apply: kind \
             ClusterRoleBinding.rbac.authorization.k8s.io is not in KEDAFORM_ALLOWED_KINDS (the deployer stack's \
             AllowedKinds and AllowedNamespaces set these); nothing was applied"
        );
        let elsewhere = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: c, namespace: kube-system}\n";
        assert!(
            verdict(&scope, elsewhere)
                .unwrap_err()
                .contains("namespace kube-system is not in KEDAFORM_ALLOWED_NAMESPACES")
        );
        let other_namespace = "apiVersion: v1\nkind: Namespace\nmetadata: {name: kube-system}\n";
        assert!(verdict(&scope, other_namespace).is_err());
        let unnamed = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: c}\n";
        assert!(
            verdict(&Scope::new("", "sales"), unnamed)
                .unwrap_err()
                .contains("names no namespace")
        );
        let cluster_role = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: x}\n";
        assert!(verdict(&Scope::new("", "sales"), cluster_role).is_err());
    }
}
