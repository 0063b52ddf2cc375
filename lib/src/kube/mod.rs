//! The Kubernetes side: a server-side-apply engine with ordering, ownership labels, pruning,
//! readiness waits and ordered deletion.

pub mod apply;
pub mod plan;
pub mod readiness;
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
    /// Reads `path` and resolves its current context.
    pub async fn read(path: &Path) -> Result<Self, Error> {
        let shown = path.display().to_string();
        let failed = |message: String| Error::Kubeconfig {
            path: shown.clone(),
            message,
        };
        let file = ::kube::config::Kubeconfig::read_from(path).map_err(|e| failed(e.to_string()))?;
        let context = file
            .current_context
            .as_deref()
            .and_then(|name| file.contexts.iter().find(|c| c.name == name))
            .and_then(|c| c.context.as_ref())
            .ok_or_else(|| failed("has no current context: set current-context".into()))?;
        let cluster = context.cluster.clone();
        let cluster_name = cluster
            .rsplit_once(":cluster/")
            .map_or(cluster.as_str(), |(_, name)| name)
            .to_owned();
        let mut config = ::kube::Config::from_custom_kubeconfig(file, &::kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| failed(e.to_string()))?;
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
            message: e.to_string(),
        })
    }
}
