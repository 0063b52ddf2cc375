//! EKS access without the AWS CLI: the cluster's endpoint and CA from `DescribeCluster`, and
//! the bearer token `aws eks get-token` would print, minted in process.
//!
//! The token is `k8s-aws-v1.` + unpadded base64url of a SigV4-presigned STS
//! `GetCallerIdentity` URL (regional endpoint, `X-Amz-Expires=60`) whose signature covers the
//! header `x-k8s-aws-id: <cluster>`; the API server's authenticator replays it to STS.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sdk_eks::operation::describe_cluster::DescribeClusterError;
use aws_sdk_eks::types::ClusterStatus;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign};
use aws_sigv4::sign::v4;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use tokio::time::Instant;

use crate::retry::Backoff;

use crate::{Error, Input};

/// What every EKS token starts with.
pub const TOKEN_PREFIX: &str = "k8s-aws-v1.";
const CLUSTER_ID_HEADER: &str = "x-k8s-aws-id";
/// What `aws eks get-token` presigns with; the authenticator accepts a token for 15 minutes.
pub const PRESIGN_EXPIRES: Duration = Duration::from_secs(60);

/// RFC 3986 unreserved characters stay; everything else is percent-encoded, as SigV4 does.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// The presigned STS URL inside a token, signed at `at`.
pub fn presigned_url(credentials: &Credentials, region: &str, cluster: &str, at: SystemTime) -> Result<String, Error> {
    let base = format!("https://sts.{region}.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15");
    let identity = credentials.clone().into();
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(PRESIGN_EXPIRES);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(at)
        .settings(settings)
        .build()
        .map_err(|e| Error::Token(e.to_string()))?
        .into();
    let request = SignableRequest::new(
        "GET",
        &base,
        std::iter::once((CLUSTER_ID_HEADER, cluster)),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| Error::Token(e.to_string()))?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| Error::Token(e.to_string()))?
        .into_parts();
    let (_, mut query) = instructions.into_parts();
    // Same order as botocore (`aws eks get-token`): the signature last.
    query.sort_by_key(|(name, _)| *name == "X-Amz-Signature");
    let mut url = base;
    for (name, value) in query {
        url.push('&');
        url.push_str(name);
        url.push('=');
        url.extend(utf8_percent_encode(&value, QUERY_VALUE));
    }
    Ok(url)
}

/// The bearer token for `cluster`, as `aws eks get-token` prints it in `status.token`.
pub fn token(credentials: &Credentials, region: &str, cluster: &str, at: SystemTime) -> Result<String, Error> {
    let url = presigned_url(credentials, region, cluster, at)?;
    Ok(format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(url)))
}

/// What kedaform needs of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// The cluster's name.
    pub name: String,
    /// Its ARN.
    pub arn: String,
    /// The API server's URL.
    pub endpoint: String,
    /// Base64 of the PEM bundle, as EKS returns it (and as kubeconfig takes it).
    pub certificate_authority: String,
    /// The OIDC issuer IRSA trusts, when the cluster has one.
    pub oidc_issuer: Option<String>,
    /// The Kubernetes version, as EKS reports it (`1.35`).
    pub version: String,
}

/// `DescribeCluster`, waiting (with backoff, until `deadline`) while the cluster is being
/// created or updated. `Ok(None)`: no such cluster.
pub async fn describe(eks: &aws_sdk_eks::Client, name: &str, deadline: Instant) -> Result<Option<Cluster>, Error> {
    let mut backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(30), deadline);
    loop {
        let cluster = match eks.describe_cluster().name(name).send().await {
            Ok(output) => output.cluster,
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(DescribeClusterError::is_resource_not_found_exception) =>
            {
                return Ok(None);
            }
            Err(error) => {
                return Err(Error::Eks {
                    action: "DescribeCluster",
                    cluster: name.to_owned(),
                    source: Box::new(error.into()),
                });
            }
        };
        let cluster = cluster
            .ok_or_else(|| Error::input(Input::Cluster, format!("DescribeCluster returned no cluster {name}")))?;
        let status = cluster.status.clone();
        match status {
            Some(ClusterStatus::Active) => {
                let field = |value: Option<String>, what: &str| {
                    value.ok_or_else(|| Error::input(Input::Cluster, format!("cluster {name} has no {what} yet")))
                };
                return Ok(Some(Cluster {
                    name: name.to_owned(),
                    arn: field(cluster.arn, "ARN")?,
                    endpoint: field(cluster.endpoint, "endpoint")?,
                    certificate_authority: field(
                        cluster.certificate_authority.and_then(|ca| ca.data),
                        "certificate authority",
                    )?,
                    oidc_issuer: cluster.identity.and_then(|i| i.oidc).and_then(|o| o.issuer),
                    version: cluster.version.unwrap_or_default(),
                }));
            }
            Some(ClusterStatus::Creating | ClusterStatus::Updating | ClusterStatus::Pending) => {
                if !backoff.has_time() {
                    return Err(Error::DeadlineExceeded(format!(
                        "waiting for cluster {name} to become ACTIVE (it is {status:?})"
                    )));
                }
                tracing::info!(cluster = name, ?status, "waiting for the cluster");
                backoff.wait().await;
            }
            other => {
                return Err(Error::input(
                    Input::Cluster,
                    format!("cluster {name} is {other:?}, not ACTIVE: it cannot take Kubernetes objects"),
                ));
            }
        }
    }
}

/// A Kubernetes client for `cluster`, authenticated by `token`, trusting only the cluster's CA.
/// How a client authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bearer {
    /// A fixed token.
    Token(String),
    /// A file kube re-reads every minute, kept fresh by a [`TokenFile`].
    File(std::path::PathBuf),
}

/// How often a [`TokenFile`] re-mints: well inside the 15 minutes EKS accepts a token for.
pub const TOKEN_REFRESH: Duration = Duration::from_secs(5 * 60);

/// A token file that stays valid: re-minted every `every` until dropped, when the task stops
/// and the file is removed.
#[derive(Debug)]
pub struct TokenFile {
    path: std::path::PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl TokenFile {
    /// Writes a fresh token now and every `every` while the file lives.
    pub async fn start(
        credentials: aws_credential_types::provider::SharedCredentialsProvider,
        region: String,
        cluster: String,
        every: Duration,
    ) -> Result<Self, Error> {
        use aws_credential_types::provider::ProvideCredentials;
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let unique = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("kedaform-token-{}-{unique}", std::process::id()));
        let mint = {
            let path = path.clone();
            move |credentials: Credentials| -> Result<(), Error> {
                let token = token(&credentials, &region, &cluster, SystemTime::now())?;
                write_private(&path, &token).map_err(|e| Error::Token(format!("cannot write {}: {e}", path.display())))
            }
        };
        let first = credentials
            .provide_credentials()
            .await
            .map_err(|e| Error::Token(crate::error_chain(&e)))?;
        mint(first)?;
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match credentials.provide_credentials().await {
                    Ok(fresh) => {
                        if let Err(error) = mint(fresh) {
                            tracing::warn!(%error, "token not refreshed");
                        }
                    }
                    Err(error) => {
                        tracing::warn!(error = %crate::error_chain(&error), "no credentials to refresh the token");
                    }
                }
            }
        });
        Ok(Self { path, task })
    }

    /// The token file, as a client's bearer source.
    pub fn bearer(&self) -> Bearer {
        Bearer::File(self.path.clone())
    }
}

impl Drop for TokenFile {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Writes `text` readable by this user only, atomically (kube may read at any moment).
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let partial = path.with_extension("partial");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)?;
    file.write_all(text.as_bytes())?;
    std::fs::rename(partial, path)
}

/// A client for `cluster`, trusting only the cluster's CA.
pub async fn kube_client(cluster: &Cluster, bearer: &Bearer) -> Result<::kube::Client, Error> {
    let mut server = serde_json::json!({"server": cluster.endpoint});
    if !cluster.certificate_authority.is_empty() {
        server["certificate-authority-data"] = cluster.certificate_authority.clone().into();
    }
    let kubeconfig: ::kube::config::Kubeconfig = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster.name, "cluster": server}],
        "users": [{"name": "kedaform", "user": match bearer {
            Bearer::Token(token) => serde_json::json!({"token": token}),
            Bearer::File(path) => serde_json::json!({"tokenFile": path}),
        }}],
        "contexts": [{"name": "kedaform", "context": {"cluster": cluster.name, "user": "kedaform"}}],
        "current-context": "kedaform",
    }))
    .map_err(|e| Error::Token(format!("in-memory kubeconfig: {e}")))?;
    let options = ::kube::config::KubeConfigOptions::default();
    let mut config = ::kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| {
            Error::input(
                Input::Cluster,
                format!("cluster {} endpoint or CA unusable: {e}", cluster.name),
            )
        })?;
    crate::kube::identify(&mut config);
    ::kube::Client::try_from(config).map_err(|e| {
        Error::input(
            Input::Cluster,
            format!("cannot build a client for cluster {}: {e}", cluster.name),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials(session: Option<&str>) -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            session.map(str::to_owned),
            None,
            "test",
        )
    }

    #[test]
    fn a_token_is_the_prefixed_unpadded_base64url_of_the_presigned_url() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
        let token = token(&credentials(None), "eu-west-1", "sales", at).unwrap();
        let encoded = token.strip_prefix(TOKEN_PREFIX).unwrap();
        assert!(!encoded.contains('=') && !encoded.contains('+') && !encoded.contains('/'));
        let url = String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).unwrap()).unwrap();
        assert!(url.starts_with("https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&"));
        for part in [
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "X-Amz-Credential=AKIDEXAMPLE%2F20260921%2Feu-west-1%2Fsts%2Faws4_request",
            "X-Amz-Date=20260921T141320Z",
            "X-Amz-Expires=60",
            "X-Amz-SignedHeaders=host%3Bx-k8s-aws-id",
        ] {
            assert!(url.contains(part), "{part} not in {url}");
        }
        assert!(!url.contains("X-Amz-Security-Token"));
    }

    #[tokio::test]
    async fn a_token_file_is_reminted_until_dropped() {
        use std::os::unix::fs::PermissionsExt as _;
        let provider = aws_credential_types::provider::SharedCredentialsProvider::new(credentials(None));
        let file = TokenFile::start(provider, "us-east-1".into(), "sales".into(), Duration::from_millis(400))
            .await
            .unwrap();
        let Bearer::File(path) = file.bearer() else {
            panic!("a file")
        };
        let first = std::fs::read_to_string(&path).unwrap();
        assert!(first.starts_with(TOKEN_PREFIX));
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        tokio::time::sleep(Duration::from_millis(1_300)).await;
        let later = std::fs::read_to_string(&path).unwrap();
        assert_ne!(first, later, "re-minted with a later X-Amz-Date");
        drop(file);
        assert!(!path.exists(), "removed when dropped");
    }

    #[test]
    fn the_signature_covers_the_cluster_and_the_session_token_is_carried() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
        let a = presigned_url(&credentials(Some("FwoGZX+/=")), "us-east-1", "a", at).unwrap();
        let b = presigned_url(&credentials(Some("FwoGZX+/=")), "us-east-1", "b", at).unwrap();
        assert_ne!(a, b, "another cluster, another signature");
        assert!(a.contains("X-Amz-Security-Token=FwoGZX%2B%2F%3D"), "{a}");
    }
}
