//! A Kubernetes API server at the HTTP boundary, the way kube-rs tests its client: discovery,
//! server-side apply, get, delete and event lists over an in-memory store, with every request
//! recorded for the test to assert on. Objects report readiness as the real controllers would,
//! unless the test says a kind never becomes ready.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::{LocalServer, Recorded, Reply};

/// A kind the fake serves: group, version, kind, plural, namespaced.
type Kind = (&'static str, &'static str, &'static str, &'static str, bool);

const KINDS: [Kind; 17] = [
    ("", "v1", "Namespace", "namespaces", false),
    ("", "v1", "ServiceAccount", "serviceaccounts", true),
    ("", "v1", "Service", "services", true),
    ("", "v1", "ConfigMap", "configmaps", true),
    ("", "v1", "Secret", "secrets", true),
    ("", "v1", "Event", "events", true),
    (
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
    ),
    ("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", false),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
    ),
    ("rbac.authorization.k8s.io", "v1", "Role", "roles", true),
    ("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", true),
    ("apps", "v1", "Deployment", "deployments", true),
    ("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", true),
    ("apiregistration.k8s.io", "v1", "APIService", "apiservices", false),
    (
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        false,
    ),
    ("keda.sh", "v1alpha1", "ScaledObject", "scaledobjects", true),
    (
        "keda.sh",
        "v1alpha1",
        "TriggerAuthentication",
        "triggerauthentications",
        true,
    ),
];

/// How the fake's objects behave.
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// Objects of this kind never become ready; their events say why.
    pub never_ready: Option<&'static str>,
    /// A ScaledObject is reported `Ready=False` with this reason and message.
    pub scaled_object_failure: Option<(&'static str, &'static str)>,
}

#[derive(Debug)]
/// A fake Kubernetes API server: it answers as `Behaviour` says and records every request.
pub struct FakeApiServer {
    /// The HTTP server under it.
    pub server: LocalServer,
    store: Arc<Mutex<BTreeMap<String, Value>>>,
}

fn not_found(what: &str) -> Reply {
    Reply::new(
        404,
        "application/json",
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": format!("{what} not found"), "reason": "NotFound", "code": 404})
        .to_string(),
    )
}

/// `/api/v1/...` or `/apis/<group>/<version>/...` split into group, version and the rest.
fn split(path: &str) -> Option<(&str, &str, Vec<&str>)> {
    let path = path.split('?').next().unwrap_or_default();
    if let Some(rest) = path.strip_prefix("/api/v1") {
        return Some(("", "v1", rest.split('/').filter(|s| !s.is_empty()).collect()));
    }
    let rest = path.strip_prefix("/apis/")?;
    let mut parts = rest.split('/').filter(|s| !s.is_empty());
    let (group, version) = (parts.next()?, parts.next()?);
    Some((group, version, parts.collect()))
}

/// The object a path names: (kind, namespace, name); name is None for a list.
fn object_path<'a>(group: &str, version: &str, rest: &[&'a str]) -> Option<(Kind, Option<&'a str>, Option<&'a str>)> {
    let (namespace, plural, name) = match rest {
        ["namespaces", ns, plural, name] => (Some(*ns), *plural, Some(*name)),
        ["namespaces", ns, plural] => (Some(*ns), *plural, None),
        [plural, name] => (None, *plural, Some(*name)),
        [plural] => (None, *plural, None),
        _ => return None,
    };
    let kind = KINDS.iter().find(|k| k.0 == group && k.1 == version && k.3 == plural)?;
    Some((*kind, namespace, name))
}

fn ready_status(kind: &str, object: &Value, behaviour: &Behaviour) -> Value {
    if behaviour.never_ready == Some(kind) {
        return json!({"observedGeneration": 1, "replicas": 1, "unavailableReplicas": 1,
                      "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"}]});
    }
    match kind {
        "CustomResourceDefinition" => json!({"conditions": [{"type": "Established", "status": "True"}]}),
        "APIService" => json!({"conditions": [{"type": "Available", "status": "True"}]}),
        "Deployment" => {
            let replicas = object["spec"]["replicas"].as_i64().unwrap_or(1);
            json!({"observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas,
                   "readyReplicas": replicas, "availableReplicas": replicas})
        }
        "ScaledObject" => match behaviour.scaled_object_failure {
            Some((reason, message)) => {
                json!({"conditions": [{"type": "Ready", "status": "False", "reason": reason, "message": message}]})
            }
            None => json!({"conditions": [{"type": "Ready", "status": "True", "reason": "ScaledObjectReady"},
                                          {"type": "Active", "status": "False", "reason": "ScalerNotActive"}]}),
        },
        _ => Value::Null,
    }
}

impl FakeApiServer {
    /// A server that behaves as `behaviour`.
    pub async fn start(behaviour: Behaviour) -> Self {
        let store: Arc<Mutex<BTreeMap<String, Value>>> = Arc::default();
        let shared = Arc::clone(&store);
        let server = LocalServer::start(move |_, request| respond(&shared, &behaviour, request)).await;
        Self { server, store }
    }

    /// Stored objects by path.
    pub fn objects(&self) -> BTreeMap<String, Value> {
        self.store.lock().unwrap().clone()
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.server.requests()
    }

    /// Stores `object` at `path` as if someone else had created it.
    pub fn insert(&self, path: &str, object: Value) {
        self.store.lock().unwrap().insert(path.to_owned(), object);
    }
}

fn respond(store: &Mutex<BTreeMap<String, Value>>, behaviour: &Behaviour, request: &Recorded) -> Reply {
    let path = request.path_and_query.split('?').next().unwrap_or_default().to_owned();
    let Some((group, version, rest)) = split(&path) else {
        return not_found(&path);
    };
    if rest.is_empty() && request.method == "GET" {
        return discovery(store, group, version);
    }
    let Some((kind, namespace, name)) = object_path(group, version, &rest) else {
        return not_found(&path);
    };
    let mut store = store.lock().unwrap();
    match (request.method.as_str(), name) {
        ("PATCH", Some(name)) => {
            let mut object: Value = serde_json::from_slice(&request.body).unwrap_or_default();
            let existing = store.get(&path).cloned();
            object["metadata"]["uid"] = json!(format!("uid-{name}"));
            object["metadata"]["generation"] = json!(1);
            object["metadata"]["resourceVersion"] = json!("1");
            if let Some(ns) = namespace {
                object["metadata"]["namespace"] = json!(ns);
            }
            let status = ready_status(kind.2, &object, behaviour);
            if !status.is_null() {
                object["status"] = status;
            }
            store.insert(path, object.clone());
            Reply::new(
                if existing.is_some() { 200 } else { 201 },
                "application/json",
                object.to_string(),
            )
        }
        ("GET", Some(_)) => match store.get(&path) {
            Some(object) => Reply::new(200, "application/json", object.to_string()),
            None => not_found(&path),
        },
        ("DELETE", Some(_)) => match store.remove(&path) {
            Some(_) => Reply::new(
                200,
                "application/json",
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 200})
                    .to_string(),
            ),
            None => not_found(&path),
        },
        ("GET", None) if kind.2 == "Event" => {
            let items: Vec<Value> = match behaviour.never_ready {
                Some(never) => vec![json!({
                    "metadata": {"name": "e1", "namespace": namespace.unwrap_or("default")},
                    "involvedObject": {"kind": never},
                    "reason": "FailedCreate",
                    "message": "pods \"keda-operator-1\" is forbidden: exceeded quota",
                    "lastTimestamp": "2026-11-28T10:00:00Z"
                })],
                None => Vec::new(),
            };
            Reply::new(
                200,
                "application/json",
                json!({"kind": "EventList", "apiVersion": "v1", "metadata": {}, "items": items}).to_string(),
            )
        }
        ("GET", None) => {
            // A list, as the API server gives one: every stored object of the kind (in the
            // namespace, when the path names one).
            let api_version = if group.is_empty() {
                version.to_owned()
            } else {
                format!("{group}/{version}")
            };
            let items: Vec<Value> = store
                .values()
                .filter(|o| o["kind"] == kind.2 && o["apiVersion"] == api_version.as_str())
                .filter(|o| namespace.is_none_or(|ns| o["metadata"]["namespace"] == ns))
                .cloned()
                .collect();
            Reply::new(
                200,
                "application/json",
                json!({"kind": format!("{}List", kind.2), "apiVersion": api_version, "metadata": {}, "items": items})
                    .to_string(),
            )
        }
        _ => Reply::new(
            405,
            "application/json",
            json!({"kind": "Status", "code": 405}).to_string(),
        ),
    }
}

/// `APIResourceList` for a group version; custom groups only once a CRD of theirs is stored.
fn discovery(store: &Mutex<BTreeMap<String, Value>>, group: &str, version: &str) -> Reply {
    let builtin = [
        "",
        "apiextensions.k8s.io",
        "rbac.authorization.k8s.io",
        "apps",
        "policy",
        "apiregistration.k8s.io",
        "admissionregistration.k8s.io",
    ];
    let installed = store
        .lock()
        .unwrap()
        .values()
        .any(|o| o["kind"] == "CustomResourceDefinition" && o["spec"]["group"] == group);
    if !builtin.contains(&group) && !installed {
        return not_found(&format!("{group}/{version}"));
    }
    let resources: Vec<Value> = KINDS
        .iter()
        .filter(|k| k.0 == group && k.1 == version)
        .map(|k| {
            json!({"name": k.3, "singularName": k.2.to_lowercase(), "namespaced": k.4, "kind": k.2,
                   "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]})
        })
        .collect();
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Reply::new(
        200,
        "application/json",
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
            .to_string(),
    )
}

/// EKS's `DescribeCluster` (REST-JSON) for one ACTIVE cluster whose endpoint is `api_server`
/// (plain HTTP, no CA); any other name answers `ResourceNotFoundException`.
pub async fn fake_eks(cluster: &'static str, api_server: &str) -> LocalServer {
    let endpoint = api_server.to_owned();
    LocalServer::start(move |_, request| {
        if request.path_and_query == format!("/clusters/{cluster}") {
            Reply::new(
                200,
                "application/json",
                json!({"cluster": {"name": cluster, "arn": format!("arn:aws:eks:us-east-1:123456789012:cluster/{cluster}"),
                    "endpoint": endpoint, "status": "ACTIVE", "version": "1.33", "certificateAuthority": {"data": ""},
                    "identity": {"oidc": {"issuer": "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE"}}}})
                .to_string(),
            )
        } else {
            Reply::new(404, "application/json", json!({"message": "No cluster found."}).to_string())
                .header("x-amzn-errortype", "ResourceNotFoundException")
        }
    })
    .await
}
