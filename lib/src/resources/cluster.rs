//! Reaching a cluster by the name a resource gives: EKS's `DescribeCluster` and a token minted
//! in process, or a kubeconfig's cluster for clusters outside EKS.

use aws_credential_types::provider::SharedCredentialsProvider;
use tokio::time::Instant;

use crate::cfn::Invocation;
use crate::eks;
use crate::fetch::Fetcher;
use crate::kube::Kubeconfig;
use crate::kube::apply::Applier;
use crate::kube::scope::Scope;
use crate::{Error, Input};

/// Reaches clusters by name: `DescribeCluster`, a token minted in process, a client.
pub struct ClusterAccess {
    eks: aws_sdk_eks::Client,
    fetcher: Fetcher,
    credentials: SharedCredentialsProvider,
    region: String,
    kubeconfig: Option<Kubeconfig>,
    scope: Scope,
}

impl std::fmt::Debug for ClusterAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterAccess")
            .field("region", &self.region)
            .field("kubeconfig", &self.kubeconfig)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl ClusterAccess {
    /// From the one AWS configuration; `eks` and `s3` are passed so a caller can point them
    /// elsewhere.
    pub fn new(
        config: &aws_config::SdkConfig,
        eks: aws_sdk_eks::Client,
        s3: aws_sdk_s3::Client,
    ) -> Result<Self, Error> {
        Ok(Self {
            eks,
            fetcher: Fetcher::new(s3),
            credentials: config
                .credentials_provider()
                .ok_or_else(|| Error::Token("no AWS credentials are configured".into()))?,
            region: config
                .region()
                .map(ToString::to_string)
                .ok_or_else(|| Error::Token("no AWS region is configured".into()))?,
            kubeconfig: None,
            scope: Scope::any(),
        })
    }

    /// Any cluster, not only EKS: the cluster of `kubeconfig`'s current context serves the
    /// `ClusterName` that matches it, and no other (local clusters, clusters outside EKS).
    #[must_use]
    pub fn with_kubeconfig(mut self, kubeconfig: Kubeconfig) -> Self {
        self.kubeconfig = Some(kubeconfig);
        self
    }

    /// Only what `scope` allows is applied: every object is checked before the first apply.
    #[must_use]
    pub fn with_scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// What may be applied.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// An applier for the cluster, or None when the cluster does not exist.
    pub async fn applier(&self, invocation: &Invocation, cluster: &str) -> Result<Option<Applier>, Error> {
        invocation.step(match &self.kubeconfig {
            Some(kubeconfig) => format!("connecting to cluster {cluster} of kubeconfig {}", kubeconfig.path),
            None => format!("describing EKS cluster {cluster}"),
        });
        self.connect(cluster, invocation.deadline()).await
    }

    /// A connection to the cluster (through the kubeconfig, or EKS with a token kept fresh
    /// while the applier lives), or None when the EKS cluster does not exist.
    pub async fn connect(&self, cluster: &str, deadline: Instant) -> Result<Option<Applier>, Error> {
        if let Some(kubeconfig) = &self.kubeconfig {
            return Ok(Some(Applier::new(kubeconfig.client(cluster)?)));
        }
        let Some(cluster) = eks::describe(&self.eks, cluster, deadline).await? else {
            return Ok(None);
        };
        let token = eks::RefreshingToken::start(
            self.credentials.clone(),
            self.region.clone(),
            cluster.name.clone(),
            eks::TOKEN_REFRESH,
        )
        .await?;
        let client = eks::kube_client(&cluster, &token.bearer()).await?;
        Ok(Some(Applier::with_token(client, token)))
    }

    /// An applier for the cluster, which must exist.
    pub async fn require(&self, invocation: &Invocation, cluster: &str) -> Result<Applier, Error> {
        self.applier(invocation, cluster).await?.ok_or_else(|| {
            Error::input(
                Input::Cluster,
                format!("EKS cluster {cluster} does not exist in {}", self.region),
            )
        })
    }

    /// Allows plain `http://` manifest URLs (local mirrors, tests): see [`Fetcher::allow_plain_http`].
    #[must_use]
    pub fn allow_plain_http(mut self) -> Self {
        self.fetcher = self.fetcher.allow_plain_http();
        self
    }

    /// Allows `file://` manifest URLs (a mirror on disk): see [`Fetcher::allow_local_files`].
    #[must_use]
    pub fn allow_local_files(mut self) -> Self {
        self.fetcher = self.fetcher.allow_local_files();
        self
    }

    /// The manifest at `url` (`https://…` or `s3://bucket/key`), bounded and checked.
    pub async fn fetch(&self, url: &str) -> Result<Vec<u8>, Error> {
        self.fetcher.fetch(url).await
    }
}
