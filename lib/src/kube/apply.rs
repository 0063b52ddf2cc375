//! Server-side apply of ordered object sets, readiness waits and ordered deletion, through
//! one `kube::Client`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use ::kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use ::kube::core::{GroupVersion, TypeMeta};
use ::kube::discovery::{ApiCapabilities, ApiResource, Scope};
use tokio::time::Instant;

use crate::retry::Backoff;

use super::plan::{self, Adoption, Claim, OWNER_LABEL, ObjectKey};
use super::readiness::{Readiness, readiness, scaler_failure};
use crate::{Error, Input};

/// Field manager of every server-side apply; with force, kedaform owns the fields it sets.
pub const FIELD_MANAGER: &str = "kedaform";

/// Applies and deletes objects; resolves kinds through discovery, cached for its lifetime
/// (one request) and refreshed when a kind is missing, as after its CRD was applied.
///
/// Server-side apply as field manager `kedaform` (forced: a field another manager changed is
/// taken back), every object labelled with its owner so that a delete or a prune only ever
/// removes what that owner applied; an object that exists and is not the owner's is refused
/// unless adoption is allowed (see [`Applier::apply_all`]).
///
/// ```no_run
/// use std::time::Duration;
///
/// use kedaform::kube::Kubeconfig;
/// use kedaform::kube::apply::Applier;
/// use kedaform::kube::plan::{Adoption, parse_manifest};
///
/// # async fn example() -> Result<(), kedaform::Error> {
/// let kubeconfig = Kubeconfig::read(std::path::Path::new("kubeconfig")).await?;
/// let applier = Applier::new(kubeconfig.client(&kubeconfig.cluster_name)?);
/// let objects = parse_manifest("apiVersion: v1\nkind: Namespace\nmetadata: {name: sales}\n")?;
/// let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
/// let applied = applier.apply_all(objects.clone(), "my-stack/Sales", Adoption::Refuse, deadline).await?;
/// applier.wait_ready(&applied, deadline).await?;
/// // Only what "my-stack/Sales" applied goes; an object of the same name it did not apply stays.
/// applier.delete_all(objects, "my-stack/Sales", deadline).await?;
/// # Ok(()) }
/// ```
pub struct Applier {
    client: ::kube::Client,
    resources: Mutex<HashMap<String, Vec<(ApiResource, ApiCapabilities)>>>,
    /// API groups of the CRDs this applier applied: only their kinds are worth waiting for.
    crd_groups: Mutex<Vec<String>>,
    /// Keeps the client's token fresh for as long as the applier lives.
    _token: Option<crate::eks::RefreshingToken>,
}

impl std::fmt::Debug for Applier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applier").finish_non_exhaustive()
    }
}

fn kube_error(action: &'static str, object: &ObjectKey, source: ::kube::Error) -> Error {
    kube_failure(action, object.to_string(), source)
}

/// What a failed call on `object` (as shown in messages) is: refused by the API server (its
/// message, values withheld), unreachable (the network path named), or another failure.
pub(crate) fn kube_failure(action: &'static str, object: String, source: ::kube::Error) -> Error {
    match source {
        ::kube::Error::Api(status) => Error::KubeRefused {
            action,
            object,
            code: status.code,
            reason: status.reason.clone(),
            message: withhold_values(&status.message),
        },
        source if unreachable(&source) => Error::Unreachable {
            action,
            object,
            source: Box::new(source),
        },
        source => Error::Kube {
            action,
            object,
            source: Box::new(source),
        },
    }
}

/// Whether the connection itself failed: refused, no route, reset, or timed out.
fn unreachable(error: &::kube::Error) -> bool {
    use std::io::ErrorKind;
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = next {
        if let Some(io) = current.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                ErrorKind::ConnectionRefused
                    | ErrorKind::NetworkUnreachable
                    | ErrorKind::HostUnreachable
                    | ErrorKind::TimedOut
                    | ErrorKind::ConnectionReset
            )
        {
            return true;
        }
        next = current.source();
    }
    false
}

/// The API server's message without the values it quotes from the object: a refused Secret's
/// message would otherwise carry the secret into a stack event. Field paths and the rule
/// broken stay.
pub fn withhold_values(message: &str) -> String {
    const UNSTRUCTURED: &str = "&value.valueUnstructured{Value:";
    const FIELD_ERRORS: [&str; 4] = [
        "Invalid value: ",
        "Unsupported value: ",
        "Duplicate value: ",
        "Not found: ",
    ];
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    loop {
        let next = FIELD_ERRORS
            .iter()
            .chain(std::iter::once(&UNSTRUCTURED))
            .filter_map(|marker| rest.find(marker).map(|at| (at, *marker)))
            .min();
        let Some((at, marker)) = next else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..at]);
        let after = &rest[at + marker.len()..];
        if marker == UNSTRUCTURED {
            out.push_str("a value of another type");
            rest = skip_balanced(after, '{', '}');
        } else {
            out.push_str(marker.trim_end_matches(": "));
            out.push_str(" (value not shown)");
            // The value ends where the detail starts (": ") or the message does.
            let value_end = skip_value(after);
            rest = &after[value_end..];
        }
    }
}

/// Past a Go-formatted value: a quoted string with escapes, or text up to ": " / ", " / end.
fn skip_value(text: &str) -> usize {
    let bytes = text.as_bytes();
    if bytes.first() == Some(&b'"') {
        let mut i = 1;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b'"' => return i + 1,
                _ => i += 1,
            }
        }
        return bytes.len();
    }
    let open = bytes.first().and_then(|b| match b {
        b'{' => Some(('{', '}')),
        b'[' => Some(('[', ']')),
        _ => None,
    });
    if let Some((open, close)) = open {
        return text.len() - skip_balanced(&text[1..], open, close).len();
    }
    [": ", ", ", "; "]
        .iter()
        .filter_map(|end| text.find(end))
        .min()
        .unwrap_or(text.len())
}

/// The text after the `close` that balances an already opened `open`, quotes respected.
fn skip_balanced(text: &str, open: char, close: char) -> &str {
    let mut depth = 1usize;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if quoted {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => quoted = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            c if c == open => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return &text[i + 1..];
                }
            }
            _ => {}
        }
    }
    ""
}

/// A 404 by code: an API server answers an unknown group's discovery with a plain-text 404
/// that is no Status object.
fn is_not_found(error: &::kube::Error) -> bool {
    matches!(error, ::kube::Error::Api(status) if status.code == 404)
}

impl Applier {
    /// An applier through `client`.
    pub fn new(client: ::kube::Client) -> Self {
        Self {
            client,
            resources: Mutex::new(HashMap::new()),
            crd_groups: Mutex::new(Vec::new()),
            _token: None,
        }
    }

    /// An applier whose client sends `token`'s bearer, kept fresh while the applier lives.
    pub fn with_token(client: ::kube::Client, token: crate::eks::RefreshingToken) -> Self {
        Self {
            _token: Some(token),
            ..Self::new(client)
        }
    }

    fn cached(&self, types: &TypeMeta) -> Option<(ApiResource, ApiCapabilities)> {
        let resources = self.resources.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        resources
            .get(&types.api_version)?
            .iter()
            .find(|(resource, _)| resource.kind == types.kind)
            .cloned()
    }

    /// The resource serving `types`, waiting (until `deadline`) for a kind a CRD just added.
    async fn resource(
        &self,
        key: &ObjectKey,
        types: &TypeMeta,
        deadline: Instant,
    ) -> Result<(ApiResource, ApiCapabilities), Error> {
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(4), deadline);
        loop {
            if let Some(found) = self.cached(types) {
                return Ok(found);
            }
            let group_version: GroupVersion = types.api_version.parse().map_err(|_| {
                Error::input(
                    Input::Manifest,
                    format!("{key}: apiVersion {} is malformed", types.api_version),
                )
            })?;
            match ::kube::discovery::pinned_group(&self.client, &group_version).await {
                Ok(group) => {
                    let resources = group.versioned_resources(&group_version.version);
                    self.resources
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(types.api_version.clone(), resources);
                    if let Some(found) = self.cached(types) {
                        return Ok(found);
                    }
                }
                Err(error) if is_not_found(&error) => {}
                Err(error) => return Err(kube_error("discovery", key, error)),
            }
            let just_applied = self
                .crd_groups
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .contains(&group_version.group);
            if !just_applied || !backoff.has_time() {
                return Err(Error::NotReady {
                    object: key.to_string(),
                    reason: format!(
                        "the API server does not serve {} {}: is its CRD installed?",
                        types.api_version, types.kind
                    ),
                });
            }
            backoff.wait().await;
        }
    }

    async fn api(&self, object: &DynamicObject, deadline: Instant) -> Result<(Api<DynamicObject>, ObjectKey), Error> {
        let key = ObjectKey::of(object);
        let types = object.types.clone().unwrap_or_default();
        let (resource, capabilities) = self.resource(&key, &types, deadline).await?;
        let api = match (capabilities.scope, object.metadata.namespace.as_deref()) {
            (Scope::Cluster, _) => Api::all_with(self.client.clone(), &resource),
            (Scope::Namespaced, Some(namespace)) => Api::namespaced_with(self.client.clone(), namespace, &resource),
            (Scope::Namespaced, None) => Api::default_namespaced_with(self.client.clone(), &resource),
        };
        Ok((api, key))
    }

    /// The client it works through, for reads of its own (the doctor's).
    pub fn client(&self) -> &::kube::Client {
        &self.client
    }

    /// Applies `objects` in order as `owner`; returns them as the API server stored them. The
    /// CRDs among them are Established before anything after them is applied: an upgrade's
    /// new schema is served before the operator that relies on it rolls.
    ///
    /// Each object is read first and judged by [`plan::claim`]: one that does not exist, or
    /// carries `owner`'s label, is applied with that label; one that exists and is nobody's is
    /// refused ([`Error::NotOwned`]) unless `adoption` is [`Adoption::Adopt`], when it is applied
    /// and annotated as adopted (no Delete or prune ever removes it); one of another kedaform
    /// owner is always refused, and its label is never rewritten. A refusal stops the apply
    /// before that object: the objects before it in apply order are applied, none after it.
    pub async fn apply_all(
        &self,
        objects: Vec<DynamicObject>,
        owner: &str,
        adoption: Adoption,
        deadline: Instant,
    ) -> Result<Vec<DynamicObject>, Error> {
        let mut applied: Vec<DynamicObject> = Vec::with_capacity(objects.len());
        // CRDs applied in this call, until they are Established: nothing after them (an
        // operator that watches their kinds, a custom resource) is applied before that.
        let mut crds: Vec<DynamicObject> = Vec::new();
        for mut object in plan::apply_order(objects) {
            let is_crd = object
                .types
                .as_ref()
                .is_some_and(|t| t.kind == "CustomResourceDefinition");
            if !is_crd && !crds.is_empty() {
                self.wait_ready(&std::mem::take(&mut crds), deadline).await?;
            }
            let (api, key) = self.api(&object, deadline).await?;
            let name = key.name.clone();
            let current = api.get_opt(&name).await.map_err(|e| kube_error("get", &key, e))?;
            let claim = plan::claim(current.as_ref().map(|c| &c.metadata), owner, adoption).map_err(|holder| {
                Error::NotOwned {
                    object: plan::described(&key, current.as_ref()),
                    holder,
                }
            })?;
            plan::mark(&mut object, owner, &claim);
            let stored = api
                .patch(
                    &name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&object),
                )
                .await
                .map_err(|e| kube_error("apply", &key, e))?;
            tracing::info!(object = %key, adopted = claim == Claim::Adopted, "applied");
            if is_crd {
                if let Some(group) = object.data["spec"]["group"].as_str() {
                    self.crd_groups
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(group.to_owned());
                }
                crds.push(stored.clone());
            }
            applied.push(stored);
        }
        self.wait_ready(&crds, deadline).await?;
        Ok(applied)
    }

    /// Waits, in order, for each object to be ready. On timeout the error names the first
    /// object not ready, why, and its latest events.
    ///
    /// An object not ready as given (what its apply returned) is read back at once, then every
    /// 250 ms doubling to 1 s: a wait ends within a second of the object being ready.
    pub async fn wait_ready(&self, objects: &[DynamicObject], deadline: Instant) -> Result<(), Error> {
        for object in objects {
            let (api, key) = self.api(object, deadline).await?;
            let mut current = object.clone();
            // Whether `current` is still the copy given, not yet read back.
            let mut given = true;
            let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(1), deadline);
            // A ready-looking object is looked at once more, a second later, with its events:
            // KEDA's conditions flap on a failing trigger and its events come asynchronously.
            let mut confirmed = false;
            loop {
                let wait = match readiness(&current) {
                    Readiness::Ready if key.kind != "ScaledObject" || confirmed => break,
                    Readiness::Ready => {
                        let events = self.event_list(&key).await;
                        if let Some(reason) = scaler_failure(&current, &events) {
                            return Err(Error::NotReady {
                                object: key.to_string(),
                                reason: format!("{reason}{}", describe_events(events)),
                            });
                        }
                        backoff.set_next(Duration::from_secs(1));
                        if !backoff.has_time() {
                            break;
                        }
                        confirmed = true;
                        true
                    }
                    // What the apply returned may predate it: read it back before judging.
                    Readiness::Failed(_) if given => false,
                    Readiness::Failed(reason) => {
                        let events = self.events(&key).await;
                        return Err(Error::NotReady {
                            object: key.to_string(),
                            reason: format!("{reason}{events}"),
                        });
                    }
                    Readiness::Pending(reason) => {
                        // A ScaledObject whose trigger fails may stay not Ready without a new
                        // condition; its failure events say so sooner.
                        if key.kind == "ScaledObject" {
                            let events = self.event_list(&key).await;
                            if let Some(failure) = scaler_failure(&current, &events) {
                                return Err(Error::NotReady {
                                    object: key.to_string(),
                                    reason: format!("{failure}{}", describe_events(events)),
                                });
                            }
                        }
                        if !backoff.has_time() {
                            let events = self.events(&key).await;
                            return Err(Error::NotReady {
                                object: key.to_string(),
                                reason: format!("{reason}{events}"),
                            });
                        }
                        !given
                    }
                };
                if wait {
                    backoff.wait().await;
                }
                given = false;
                current = api.get(&key.name).await.map_err(|e| kube_error("get", &key, e))?;
            }
        }
        Ok(())
    }

    /// `object` as the cluster has it now, or None.
    pub async fn current(&self, object: &DynamicObject, deadline: Instant) -> Result<Option<DynamicObject>, Error> {
        let (api, key) = self.api(object, deadline).await?;
        api.get_opt(&key.name).await.map_err(|e| kube_error("get", &key, e))
    }

    /// Whether `object` exists and carries `owner`'s label: only such objects are deleted.
    pub async fn owned(&self, object: &DynamicObject, owner: &str, deadline: Instant) -> Result<bool, Error> {
        let (api, key) = self.api(object, deadline).await?;
        self.owns(&api, &key, owner).await
    }

    async fn owns(&self, api: &Api<DynamicObject>, key: &ObjectKey, owner: &str) -> Result<bool, Error> {
        let current = api.get_opt(&key.name).await.map_err(|e| kube_error("get", key, e))?;
        Ok(current.is_some_and(|object| {
            object
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(OWNER_LABEL))
                .is_some_and(|o| o == owner)
        }))
    }

    /// The objects of `resource` in every namespace (at most 50, by name); none when the
    /// cluster does not serve it (its CRD is not installed).
    pub async fn list_all(&self, resource: &ApiResource) -> Result<Vec<ObjectKey>, Error> {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), resource);
        match api.list(&ListParams::default().limit(50)).await {
            Ok(list) => Ok(list
                .items
                .iter()
                .map(|object| ObjectKey {
                    group: resource.group.clone(),
                    kind: resource.kind.clone(),
                    namespace: object.metadata.namespace.clone(),
                    name: object.metadata.name.clone().unwrap_or_default(),
                })
                .collect()),
            Err(error) if is_not_found(&error) => Ok(Vec::new()),
            Err(error) => Err(kube_error(
                "list",
                &ObjectKey {
                    group: resource.group.clone(),
                    kind: resource.kind.clone(),
                    namespace: None,
                    name: "(all)".into(),
                },
                error,
            )),
        }
    }

    /// Events about the object (by name and kind), as listed; none when they cannot be read.
    async fn event_list(&self, key: &ObjectKey) -> Vec<k8s_openapi::api::core::v1::Event> {
        let api: Api<k8s_openapi::api::core::v1::Event> = match &key.namespace {
            Some(namespace) => Api::namespaced(self.client.clone(), namespace),
            None => Api::default_namespaced(self.client.clone()),
        };
        let selector = format!("involvedObject.name={},involvedObject.kind={}", key.name, key.kind);
        api.list(&ListParams::default().fields(&selector).limit(20))
            .await
            .map(|list| list.items)
            .unwrap_or_default()
    }

    /// The object's latest events, as `; events: …`, or nothing.
    async fn events(&self, key: &ObjectKey) -> String {
        describe_events(self.event_list(key).await)
    }

    /// Deletes `objects` in reverse apply order, only those labelled as owned by `owner`;
    /// already gone is success. Waits, until `deadline`, for each to disappear (finalizers).
    pub async fn delete_all(&self, objects: Vec<DynamicObject>, owner: &str, deadline: Instant) -> Result<(), Error> {
        for object in plan::delete_order(objects) {
            let (api, key) = self.api(&object, deadline).await?;
            if !self.owns(&api, &key, owner).await? {
                tracing::info!(object = %key, "absent, or not ours (owner label differs): left in place");
                continue;
            }
            match api.delete(&key.name, &DeleteParams::background()).await {
                Ok(_) => tracing::info!(object = %key, "deleted"),
                Err(error) if is_not_found(&error) => continue,
                Err(error) => return Err(kube_error("delete", &key, error)),
            }
            let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(4), deadline);
            while let Some(left) = api.get_opt(&key.name).await.map_err(|e| kube_error("get", &key, e))? {
                if !backoff.wait().await {
                    return Err(Error::NotReady {
                        object: key.to_string(),
                        reason: plan::deletion_blocked_by(&left),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Events as `; events: <reason>: <message> | …`, the latest three, or nothing.
fn describe_events(mut events: Vec<k8s_openapi::api::core::v1::Event>) -> String {
    events.sort_by_key(|e| e.last_timestamp.clone().map(|t| t.0));
    let latest: Vec<String> = events
        .iter()
        .rev()
        .take(3)
        .map(|e| {
            format!(
                "{}: {}",
                e.reason.as_deref().unwrap_or(""),
                e.message.as_deref().unwrap_or("")
            )
        })
        .collect();
    if latest.is_empty() {
        String::new()
    } else {
        format!("; events: {}", latest.join(" | "))
    }
}

#[cfg(test)]
mod tests {
    use super::withhold_values;

    #[test]
    fn server_messages_keep_paths_and_rules_but_not_values() {
        // As kube-apiserver 1.35 words them for a server-side apply.
        let cases = [
            (
                r"failed to create typed patch object (/s1; /v1, Kind=Secret): .stringData.password: expected string, got &value.valueUnstructured{Value:12345}",
                "failed to create typed patch object (/s1; /v1, Kind=Secret): .stringData.password: expected string, got a value of another type",
            ),
            (
                r#"failed to create typed patch object (/s1; /v1, Kind=Secret): .stringData.password: expected string, got &value.valueUnstructured{Value:map[string]interface {}{"x":"hunter2 } {"}}"#,
                "failed to create typed patch object (/s1; /v1, Kind=Secret): .stringData.password: expected string, got a value of another type",
            ),
            (
                r#"Deployment.apps "c" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"#,
                r#"Deployment.apps "c" is invalid: spec.replicas: Invalid value (value not shown): must be greater than or equal to 0"#,
            ),
            (
                r#"Secret "s" is invalid: [type: Invalid value: "hunter2\" : x": field is immutable, data[k]: Unsupported value: "hunter2": supported values: "a", "b"]"#,
                r#"Secret "s" is invalid: [type: Invalid value (value not shown): field is immutable, data[k]: Unsupported value (value not shown): supported values: "a", "b"]"#,
            ),
            (
                r#"Secret "s1" is invalid: data[tls.key]: Required value"#,
                r#"Secret "s1" is invalid: data[tls.key]: Required value"#,
            ),
        ];
        for (message, expected) in cases {
            assert_eq!(withhold_values(message), expected);
            assert!(!withhold_values(message).contains("hunter2"));
        }
    }
}
