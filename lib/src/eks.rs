//! EKS access without the AWS CLI: the cluster's endpoint and CA from `DescribeCluster`, and
//! the bearer token `aws eks get-token` would print, minted in process.
//!
//! The token is `k8s-aws-v1.` + unpadded base64url of a SigV4-presigned STS
//! `GetCallerIdentity` URL (regional endpoint, `X-Amz-Expires=60`) whose signature covers the
//! header `x-k8s-aws-id: <cluster>`; the API server's authenticator replays it to STS.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sdk_eks::operation::describe_cluster::DescribeClusterError;
use aws_sdk_eks::types::ClusterStatus;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign};
use aws_sigv4::sign::v4;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderValue;
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

/// The longest cluster name: EKS allows 100 characters.
pub const MAX_CLUSTER_NAME: usize = 100;

/// Checks a cluster name before any call: 1 to 100 ASCII letters, digits, `-` and `_` (an EKS
/// cluster), or `.`, `:` and `@` as well (a kubeconfig's cluster, such as eksctl's
/// `name.region.eksctl.io`), starting with a letter or digit. The error does not repeat the
/// name.
pub fn check_cluster_name(name: &str) -> Result<(), Error> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@');
    let why = if name.is_empty() {
        "is empty".to_owned()
    } else if name.chars().count() > MAX_CLUSTER_NAME {
        format!("is {} characters long", name.chars().count())
    } else if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        "does not start with a letter or digit".to_owned()
    } else if let Some(bad) = name.chars().find(|c| !allowed(*c)) {
        format!("has the character U+{:04X}", u32::from(bad))
    } else {
        return Ok(());
    };
    Err(Error::input(
        Input::Cluster,
        format!(
            "the cluster name {why}: expected 1 to {MAX_CLUSTER_NAME} letters, digits, '-' or '_' (an EKS cluster), \
             or '.', ':' or '@' too (a kubeconfig's cluster), starting with a letter or digit"
        ),
    ))
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

/// How a client authenticates: the `Authorization` header every request carries, read at
/// each request from memory. A token is never written to disk.
#[derive(Clone)]
pub struct Bearer(Arc<RwLock<HeaderValue>>);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer(withheld)")
    }
}

impl Bearer {
    /// A fixed token.
    pub fn token(token: &str) -> Result<Self, Error> {
        Ok(Self(Arc::new(RwLock::new(header(token)?))))
    }

    fn set(&self, token: &str) -> Result<(), Error> {
        *self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) = header(token)?;
        Ok(())
    }

    fn current(&self) -> HeaderValue {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// `Bearer <token>`, marked sensitive so that no debug output or log shows it.
fn header(token: &str) -> Result<HeaderValue, Error> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| Error::Token("the token is not a valid header value".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

/// How often a [`RefreshingToken`] re-mints: well inside the 15 minutes EKS accepts a token for.
pub const TOKEN_REFRESH: Duration = Duration::from_secs(5 * 60);

/// An EKS token that stays valid: minted now and every `every` after, in memory, until
/// dropped, when the refresh task stops.
#[derive(Debug)]
pub struct RefreshingToken {
    bearer: Bearer,
    task: tokio::task::JoinHandle<()>,
}

impl RefreshingToken {
    /// Mints a token for `cluster` now and every `every` while it lives.
    pub async fn start(
        credentials: aws_credential_types::provider::SharedCredentialsProvider,
        region: String,
        cluster: String,
        every: Duration,
    ) -> Result<Self, Error> {
        use aws_credential_types::provider::ProvideCredentials;
        let first = credentials
            .provide_credentials()
            .await
            .map_err(|e| Error::Token(crate::error_chain(&e)))?;
        let bearer = Bearer::token(&token(&first, &region, &cluster, SystemTime::now())?)?;
        let shared = bearer.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let minted = match credentials.provide_credentials().await {
                    Ok(fresh) => token(&fresh, &region, &cluster, SystemTime::now()).and_then(|t| shared.set(&t)),
                    Err(error) => Err(Error::Token(crate::error_chain(&error))),
                };
                if let Err(error) = minted {
                    tracing::warn!(%error, "token not refreshed");
                }
            }
        });
        Ok(Self { bearer, task })
    }

    /// The token, as a client's bearer source.
    pub fn bearer(&self) -> Bearer {
        self.bearer.clone()
    }
}

impl Drop for RefreshingToken {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A client for `cluster`, trusting only the cluster's CA, sending `bearer`'s current token
/// with every request.
pub async fn kube_client(cluster: &Cluster, bearer: &Bearer) -> Result<::kube::Client, Error> {
    let mut server = serde_json::json!({"server": cluster.endpoint});
    if !cluster.certificate_authority.is_empty() {
        server["certificate-authority-data"] = cluster.certificate_authority.clone().into();
    }
    let kubeconfig: ::kube::config::Kubeconfig = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster.name, "cluster": server}],
        "users": [{"name": "kedaform", "user": {}}],
        "contexts": [{"name": "kedaform", "context": {"cluster": cluster.name, "user": "kedaform"}}],
        "current-context": "kedaform",
    }))
    .map_err(|e| Error::Token(format!("in-memory kubeconfig: {e}")))?;
    // kube reads HTTPS_PROXY too, and would blame the cluster for a malformed one.
    crate::kube::proxy::from_env()?;
    let options = ::kube::config::KubeConfigOptions::default();
    let mut config = ::kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| {
            Error::input(
                Input::Cluster,
                format!("cluster {} endpoint or CA unusable: {e}", cluster.name),
            )
        })?;
    crate::kube::proxy::route(&mut config, None)?;
    crate::kube::identify(&mut config);
    let builder = ::kube::client::ClientBuilder::try_from(config).map_err(|e| {
        Error::input(
            Input::Cluster,
            format!("cannot build a client for cluster {}: {e}", cluster.name),
        )
    })?;
    let bearer = bearer.clone();
    let authorize = tower::util::MapRequestLayer::new(move |mut request: http::Request<::kube::client::Body>| {
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, bearer.current());
        request
    });
    Ok(builder.with_layer(&authorize).build())
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
    async fn a_token_is_reminted_in_memory_until_dropped() {
        let provider = aws_credential_types::provider::SharedCredentialsProvider::new(credentials(None));
        let token = RefreshingToken::start(provider, "us-east-1".into(), "sales".into(), Duration::from_millis(400))
            .await
            .unwrap();
        let bearer = token.bearer();
        let first = bearer.current();
        assert!(first.is_sensitive(), "never shown by a debug print");
        assert!(first.to_str().unwrap().starts_with("Bearer k8s-aws-v1."));
        assert_eq!(format!("{bearer:?} {token:?}").matches("k8s-aws").count(), 0);
        tokio::time::sleep(Duration::from_millis(1_300)).await;
        assert_ne!(first, bearer.current(), "re-minted with a later X-Amz-Date");
        drop(token);
        let last = bearer.current();
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert_eq!(last, bearer.current(), "no refresh once dropped");
    }

    #[test]
    fn cluster_names_are_checked_without_being_repeated() {
        for good in [
            "sales",
            "Sales_2-prod",
            "sales.us-east-1.eksctl.io",
            "admin@kind-kind",
            &"a".repeat(100),
        ] {
            check_cluster_name(good).unwrap();
        }
        for (bad, why) in [
            ("", "is empty"),
            (&"a".repeat(101), "is 101 characters long"),
            ("../etc", "does not start with a letter or digit"),
            ("sales prod", "has the character U+0020"),
            ("sales\u{202e}x", "has the character U+202E"),
            ("sales\n", "has the character U+000A"),
            ("a/b", "has the character U+002F"),
        ] {
            let message = check_cluster_name(bad).unwrap_err().to_string();
            assert!(
                message.starts_with(&format!("the cluster name {why}:")),
                "{bad:?}: {message}"
            );
        }
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
