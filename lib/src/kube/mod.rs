//! The Kubernetes side: a server-side-apply engine with ordering, ownership labels, pruning,
//! readiness waits and ordered deletion.

pub mod apply;
pub mod names;
pub mod plan;
pub mod proxy;
pub mod readiness;
pub mod scope;
mod yaml;

use std::path::Path;

use crate::{Error, Input};

/// Names kedaform in every request's User-Agent, so that a cluster's audit log tells its
/// requests apart.
pub fn identify(config: &mut ::kube::Config) {
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(concat!("kedaform/", env!("CARGO_PKG_VERSION"))),
    ));
}

/// The largest kubeconfig read.
pub const MAX_KUBECONFIG_BYTES: usize = 4 * 1024 * 1024;

/// What kube says failed (`failed to load client key`), without the detail after it, which
/// may quote the file's data.
fn what_failed(error: &dyn std::fmt::Display) -> String {
    let text = error.to_string();
    let what = text.split(": ").next().unwrap_or_default();
    format!("{what} (the detail is withheld: it may quote credentials)")
}

/// A cluster reached through a kubeconfig file rather than by EKS cluster name.
#[derive(Clone)]
pub struct Kubeconfig {
    /// The client configuration of the current context.
    pub config: ::kube::Config,
    /// The name of the current context's cluster entry (for an EKS kubeconfig, the name in
    /// its `arn:…:cluster/<name>`), which a `ClusterName` must match.
    pub cluster_name: String,
    /// The file, as shown in messages.
    pub path: String,
}

impl std::fmt::Debug for Kubeconfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubeconfig")
            .field("path", &self.path)
            .field("cluster_name", &self.cluster_name)
            .finish_non_exhaustive()
    }
}

impl Kubeconfig {
    /// Reads `path` (4 MiB at most, one YAML document) and resolves its current context.
    ///
    /// A kubeconfig holds credentials, so no error quotes it: a malformed file is named with
    /// the line and column (YAML) or the field path (a field of the wrong form) and what is
    /// wrong. A kubeconfig may name an `exec` credential plugin: that program runs when the
    /// client first needs a token, as kubectl runs it.
    pub async fn read(path: &Path) -> Result<Self, Error> {
        let shown = path.display().to_string();
        let failed = |message: String| Error::Kubeconfig {
            path: shown.clone(),
            message,
        };
        let bytes = crate::fetch::read_bounded(path, MAX_KUBECONFIG_BYTES).map_err(failed)?;
        let text =
            std::str::from_utf8(&bytes).map_err(|e| failed(format!("is not UTF-8 text (byte {})", e.valid_up_to())))?;
        let mut documents = yaml::documents(text, yaml::MAX_NODES)
            .map_err(|(_, message)| failed(format!("is not valid YAML: {message}")))?
            .into_iter()
            .filter(|document| !document.is_null());
        let (Some(document), None) = (documents.next(), documents.next()) else {
            return Err(failed("must hold exactly one YAML document".into()));
        };
        let file: ::kube::config::Kubeconfig = serde_path_to_error::deserialize(document).map_err(|e| {
            failed(format!(
                "{}: {}",
                e.path(),
                crate::redact::parser_message(&e.inner().to_string(), crate::redact::Stage::Decode)
            ))
        })?;
        let context = file
            .current_context
            .as_deref()
            .and_then(|name| file.contexts.iter().find(|c| c.name == name))
            .and_then(|c| c.context.as_ref())
            .ok_or_else(|| failed("has no current context: set current-context".into()))?;
        let cluster = context.cluster.clone();
        let own_proxy = file
            .clusters
            .iter()
            .find(|c| c.name == cluster)
            .and_then(|c| c.cluster.as_ref())
            .and_then(|c| c.proxy_url.as_deref())
            .map(|url| {
                url.parse::<http::Uri>()
                    .map_err(|_| failed(format!("cluster {cluster}: proxy-url is not a URL")))
            })
            .transpose()?;
        let cluster_name = cluster
            .rsplit_once(":cluster/")
            .map_or(cluster.as_str(), |(_, name)| name)
            .to_owned();
        // kube reads HTTPS_PROXY too, and would blame the kubeconfig for a malformed one.
        proxy::from_env()?;
        let mut config = ::kube::Config::from_custom_kubeconfig(file, &::kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| failed(what_failed(&e)))?;
        proxy::route(&mut config, own_proxy)?;
        identify(&mut config);
        Ok(Self {
            config,
            cluster_name,
            path: shown,
        })
    }

    /// A client for `cluster`, which must be the kubeconfig's: kedaform never applies to a
    /// cluster other than the one a resource names.
    pub fn client(&self, cluster: &str) -> Result<::kube::Client, Error> {
        if cluster != self.cluster_name {
            return Err(Error::input(
                Input::Cluster,
                format!(
                    "{cluster} is not the cluster of kubeconfig {} (its current context names {})",
                    self.path, self.cluster_name
                ),
            ));
        }
        ::kube::Client::try_from(self.config.clone()).map_err(|e| Error::Kubeconfig {
            path: self.path.clone(),
            message: what_failed(&e),
        })
    }
}
