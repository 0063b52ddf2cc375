//! Fetching a manifest by URL: which URLs may be fetched, where redirects may lead, and how
//! many bytes are read.
//!
//! A template author chooses the URL and the Lambda runs inside the customer's network with
//! credentials, so the URL must not reach the instance metadata service, the Lambda Runtime
//! API or anything else on loopback or link-local addresses, by name, by literal address or
//! by redirect.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::{Error, Input};

/// The largest manifest read, whatever `Content-Length` says (KEDA's is about 1 MiB).
pub const MAX_MANIFEST_BYTES: usize = 16 * 1024 * 1024;

/// Redirects followed before giving up.
const MAX_REDIRECTS: usize = 5;

/// Reads at most `limit` bytes of a local file, device or pipe: one that has more fails as soon
/// as the byte after the limit is read, so `/dev/zero` or an endless pipe costs `limit` bytes
/// of memory at most. The error says why, without the path (the caller names it).
pub fn read_bounded(path: &std::path::Path, limit: usize) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot be read: {e}"))?;
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot be read: {e}"))?;
    if bytes.len() > limit {
        return Err(format!("is larger than {} MiB", limit / (1024 * 1024)));
    }
    Ok(bytes)
}

/// The `file://` URL of an absolute path, for [`Fetcher::allow_local_files`]; `None` for a
/// relative path.
pub fn file_url(path: &std::path::Path) -> Option<String> {
    Url::from_file_path(path).ok().map(String::from)
}

/// Where a manifest URL points, once it passed the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An `https://` URL (or `http://` where allowed).
    Https(Url),
    /// An `s3://bucket/key` location.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
    },
    /// Only with [`Fetcher::allow_plain_http`], which no template can set.
    Http(Url),
    /// A `file://` URL: only with [`Fetcher::allow_local_files`], which no template can set.
    File(std::path::PathBuf),
}

/// The URL as a log line or an error may show it: no user info, no query (a pre-signed URL's
/// signature stays out of stack events).
pub fn shown(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            let had_query = parsed.query().is_some();
            parsed.set_query(None);
            parsed.set_fragment(None);
            if had_query {
                format!("{parsed}?…")
            } else {
                parsed.to_string()
            }
        }
        Err(_) => "(not a URL)".to_owned(),
    }
}

/// What may be fetched besides https:// and s3://.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// Plain http:// (local mirrors, tests); never set by anything a template controls.
    pub allow_plain_http: bool,
    /// file:// (a mirror on disk, named by the person running the CLI); never set by anything
    /// a template controls.
    pub allow_local_files: bool,
    /// The Lambda Runtime API's `host:port` (`AWS_LAMBDA_RUNTIME_API`), never fetched.
    pub runtime_api: Option<String>,
}

/// Checks a URL against the rules; pure.
pub fn classify(url: &str, rules: &Rules) -> Result<Source, String> {
    let parsed = Url::parse(url).map_err(|e| format!("{} is not a URL: {e}", shown(url)))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("a URL with user info (user:password@) is refused: use a pre-signed https:// URL or s3://".into());
    }
    match parsed.scheme() {
        "s3" => {
            let bucket = parsed.host_str().unwrap_or_default().to_owned();
            let key = parsed.path().trim_start_matches('/').to_owned();
            if bucket.is_empty() || key.is_empty() {
                return Err(format!(
                    "{} does not name an object: expected s3://<bucket>/<key>",
                    shown(url)
                ));
            }
            Ok(Source::S3 { bucket, key })
        }
        "https" => {
            check_host(&parsed, rules)?;
            Ok(Source::Https(parsed))
        }
        "http" if rules.allow_plain_http => {
            check_runtime_api(&parsed, rules)?;
            Ok(Source::Http(parsed))
        }
        "file" if rules.allow_local_files => parsed
            .to_file_path()
            .map(Source::File)
            .map_err(|()| format!("{} does not name a local file", shown(url))),
        _ => Err(format!("{} is neither https:// nor s3://", shown(url))),
    }
}

/// Where a redirect may lead: https only, and never to a forbidden address.
fn check_redirect(target: &Url, rules: &Rules) -> Result<(), String> {
    if target.scheme() != "https" {
        return Err(format!(
            "a redirect to {} is not followed: only https:// is",
            shown(target.as_str())
        ));
    }
    check_host(target, rules)
}

fn check_host(url: &Url, rules: &Rules) -> Result<(), String> {
    check_runtime_api(url, rules)?;
    let literal = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        _ => None,
    };
    match literal {
        Some(ip) if forbidden(ip) => Err(format!(
            "{} is a loopback, link-local or metadata address, which is never fetched",
            shown(url.as_str())
        )),
        _ => Ok(()),
    }
}

/// The Lambda Runtime API (`AWS_LAMBDA_RUNTIME_API`, `host:port`) is never fetched, whatever
/// its address.
fn check_runtime_api(url: &Url, rules: &Rules) -> Result<(), String> {
    let Some(runtime_api) = &rules.runtime_api else {
        return Ok(());
    };
    let authority = format!(
        "{}:{}",
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or_default()
    );
    if authority.eq_ignore_ascii_case(runtime_api) {
        return Err("the Lambda Runtime API is never fetched".into());
    }
    Ok(())
}

/// Loopback, link-local (the instance metadata service among them), unspecified, and the
/// same as IPv4-mapped IPv6.
pub fn forbidden(ip: IpAddr) -> bool {
    const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_v4(v4);
            }
            v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xffc0) == 0xfe80 || v6 == METADATA_V6
        }
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    ip.is_loopback() || ip.is_link_local() || ip.is_unspecified()
}

/// Resolves names as the system does and drops forbidden addresses, so that a name pointing
/// at loopback or the metadata service connects nowhere.
#[derive(Debug)]
struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found.into_iter().filter(|a| !forbidden(a.ip())).collect();
            if allowed.is_empty() {
                return Err(format!("{host} resolves only to loopback, link-local or metadata addresses").into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// Fetches manifests from https://, s3:// and, when allowed, plain http://.
#[derive(Debug, Clone)]
pub struct Fetcher {
    /// Guarded resolver, redirect rules and timeouts, for http:// and https:// alike.
    http: reqwest::Client,
    s3: Option<aws_sdk_s3::Client>,
    rules: Rules,
    limit: usize,
}

impl Fetcher {
    /// A fetcher that reads `s3://` through `s3`.
    pub fn new(s3: aws_sdk_s3::Client) -> Self {
        Self {
            s3: Some(s3),
            ..Self::without_s3()
        }
    }

    /// For https:// (and allowed http://) only: needs no AWS settings, so that a caller
    /// without them never looks for any.
    pub fn without_s3() -> Self {
        let rules = Rules {
            allow_plain_http: false,
            allow_local_files: false,
            runtime_api: std::env::var("AWS_LAMBDA_RUNTIME_API").ok(),
        };
        let redirect_rules = rules.clone();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(30))
            // A server that trickles bytes cannot hold a download longer than this.
            .timeout(Duration::from_secs(300))
            .dns_resolver(Arc::new(GuardedResolver))
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= MAX_REDIRECTS {
                    return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
                }
                match check_redirect(attempt.url(), &redirect_rules) {
                    Ok(()) => attempt.follow(),
                    Err(refusal) => attempt.error(refusal),
                }
            }))
            .build()
            .expect("an HTTP client builds");
        Self {
            http,
            s3: None,
            rules,
            limit: MAX_MANIFEST_BYTES,
        }
    }

    /// Allows `http://` URLs (local mirrors, tests). The Lambdas never call it, so no
    /// template can turn it on. Redirects still lead to https:// only and names still never
    /// resolve to loopback: a loopback mirror is named by its address (`http://127.0.0.1:8000/`).
    #[must_use]
    pub fn allow_plain_http(mut self) -> Self {
        self.rules.allow_plain_http = true;
        self
    }

    /// Allows `file://` URLs, read up to the same limit (a mirror on disk, named by the person
    /// running the CLI). The Lambdas never call it, so no template can read the Lambda's files.
    #[must_use]
    pub fn allow_local_files(mut self) -> Self {
        self.rules.allow_local_files = true;
        self
    }

    /// The bytes at `url`, or an error about the manifest URL that names it (without its
    /// query) and never quotes what was fetched.
    pub async fn fetch(&self, url: &str) -> Result<Vec<u8>, Error> {
        let failed = |message: String| Error::input(Input::ManifestUrl, message);
        let cannot = |e: &dyn std::fmt::Display| failed(format!("cannot fetch {}: {e}", shown(url)));
        match classify(url, &self.rules).map_err(failed)? {
            // Off the runtime: a FIFO with no writer blocks its open, and Ctrl-C must still be seen.
            Source::File(path) => {
                let limit = self.limit;
                tokio::task::spawn_blocking(move || read_bounded(&path, limit))
                    .await
                    .map_err(|e| cannot(&e))?
                    .map_err(|why| failed(format!("{} {why}", shown(url))))
            }
            Source::S3 { bucket, key } => {
                let s3 = self
                    .s3
                    .as_ref()
                    .ok_or_else(|| failed(format!("{}: s3:// needs AWS settings here", shown(url))))?;
                let object = s3.get_object().bucket(bucket).key(key).send().await.map_err(|e| {
                    let error: aws_sdk_s3::Error = e.into();
                    cannot(&error)
                })?;
                if self.over_limit(object.content_length().and_then(|n| u64::try_from(n).ok())) {
                    return Err(failed(self.too_large(url)));
                }
                let mut body = object.body;
                let mut bytes = Vec::new();
                while let Some(chunk) = body.try_next().await.map_err(|e| cannot(&e))? {
                    self.append(&mut bytes, &chunk)
                        .map_err(|()| failed(self.too_large(url)))?;
                }
                Ok(bytes)
            }
            Source::Https(parsed) | Source::Http(parsed) => {
                let mut response = self
                    .http
                    .get(parsed)
                    .send()
                    .await
                    .map_err(|e| cannot(&crate::error_chain(&e)))?;
                if !response.status().is_success() {
                    return Err(cannot(&format!("HTTP {}", response.status())));
                }
                if self.over_limit(response.content_length()) {
                    return Err(failed(self.too_large(url)));
                }
                let mut bytes = Vec::new();
                while let Some(chunk) = response.chunk().await.map_err(|e| cannot(&crate::error_chain(&e)))? {
                    self.append(&mut bytes, &chunk)
                        .map_err(|()| failed(self.too_large(url)))?;
                }
                Ok(bytes)
            }
        }
    }

    /// Whether an announced length is over the limit (refused before reading).
    fn over_limit(&self, announced: Option<u64>) -> bool {
        announced.is_some_and(|n| usize::try_from(n).map_or(true, |n| n > self.limit))
    }

    fn append(&self, bytes: &mut Vec<u8>, chunk: &[u8]) -> Result<(), ()> {
        if bytes.len() + chunk.len() > self.limit {
            return Err(());
        }
        bytes.extend_from_slice(chunk);
        Ok(())
    }

    fn too_large(&self, url: &str) -> String {
        let limit = if self.limit.is_multiple_of(1_048_576) {
            format!("{} MiB", self.limit / 1_048_576)
        } else {
            format!("{} bytes", self.limit)
        };
        format!("{} is larger than the {limit} a manifest may have", shown(url))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_local_read_stops_after_its_limit() {
        let zeros = super::read_bounded(std::path::Path::new("/dev/zero"), 1024 * 1024);
        assert_eq!(zeros, Err("is larger than 1 MiB".to_owned()));
        let missing = super::read_bounded(std::path::Path::new("/nonexistent/kedaform"), 1024).unwrap_err();
        assert!(missing.starts_with("cannot be read: "), "{missing}");
    }

    use super::*;

    fn refused(url: &str) -> String {
        classify(url, &Rules::default()).unwrap_err()
    }

    fn plain_http() -> Rules {
        Rules {
            allow_plain_http: true,
            allow_local_files: false,
            runtime_api: Some("10.0.0.5:9001".into()),
        }
    }

    #[test]
    fn https_and_s3_only_by_default() {
        assert!(matches!(
            classify("https://github.com/kedacore/keda/releases/x.yaml", &Rules::default()),
            Ok(Source::Https(_))
        ));
        assert_eq!(
            classify("s3://mirror/keda/2.20.2.yaml", &Rules::default()),
            Ok(Source::S3 {
                bucket: "mirror".into(),
                key: "keda/2.20.2.yaml".into()
            })
        );
        for url in [
            "http://example.com/k.yaml",
            "http://127.0.0.1:8080/k.yaml",
            "file:///etc/passwd",
            "ftp://h/k",
            "gopher://h/",
        ] {
            assert!(
                refused(url).ends_with("is neither https:// nor s3://"),
                "{url}: {}",
                refused(url)
            );
        }
        assert!(matches!(
            classify("http://127.0.0.1:8080/k.yaml", &plain_http()),
            Ok(Source::Http(_))
        ));
        assert_eq!(
            refused("s3://bucket-only"),
            "s3://bucket-only does not name an object: expected s3://<bucket>/<key>"
        );
    }

    #[test]
    fn local_files_only_when_allowed_and_only_on_this_machine() {
        let files = Rules {
            allow_local_files: true,
            ..Rules::default()
        };
        assert_eq!(
            classify("file:///mirror/keda.yaml", &files),
            Ok(Source::File("/mirror/keda.yaml".into()))
        );
        assert!(refused("file:///mirror/keda.yaml").ends_with("is neither https:// nor s3://"));
        assert_eq!(
            classify("file://fileserver/share/keda.yaml", &files),
            Err("file://fileserver/share/keda.yaml does not name a local file".to_owned())
        );
    }

    #[tokio::test]
    async fn a_local_file_is_read_up_to_the_manifest_limit() {
        let fetcher = Fetcher::without_s3().allow_local_files();
        let message = fetcher.fetch("file:///dev/zero").await.unwrap_err().to_string();
        assert!(message.contains("file:///dev/zero is larger than 16 MiB"), "{message}");
        let message = fetcher
            .fetch("file:///nonexistent/keda.yaml")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("file:///nonexistent/keda.yaml cannot be read: "),
            "{message}"
        );
        let refused = Fetcher::without_s3()
            .fetch("file:///etc/hostname")
            .await
            .unwrap_err()
            .to_string();
        assert!(refused.contains("is neither https:// nor s3://"), "{refused}");
    }

    #[test]
    fn user_info_is_refused_and_never_shown() {
        for url in [
            "https://admin:hunter2@example.com/k.yaml",
            "https://token@example.com/k.yaml",
            "s3://a:hunter2@b/k",
        ] {
            let message = refused(url);
            assert!(message.starts_with("a URL with user info"), "{message}");
            assert!(!message.contains("hunter2") && !message.contains("token@"), "{message}");
        }
    }

    #[test]
    fn loopback_link_local_and_metadata_addresses_are_refused() {
        for url in [
            "https://127.0.0.1/k.yaml",
            "https://127.8.9.1:8443/k.yaml",
            "https://169.254.169.254/latest/meta-data/",
            "https://169.254.170.2/v2/credentials",
            "https://[::1]/k",
            "https://[fd00:ec2::254]/latest/meta-data/",
            "https://[::ffff:169.254.169.254]/",
            "https://[fe80::1]/",
            "https://0.0.0.0/",
            "https://2130706433/",
            "https://0x7f.1/",
        ] {
            assert!(
                refused(url).contains("loopback, link-local or metadata"),
                "{url}: {}",
                refused(url)
            );
        }
        let redirect = |url: &str| check_redirect(&Url::parse(url).unwrap(), &plain_http());
        assert_eq!(
            redirect("http://example.com/k"),
            Err("a redirect to http://example.com/k is not followed: only https:// is".into())
        );
        assert!(redirect("https://169.254.169.254/").is_err());
        assert!(redirect("https://example.com/k").is_ok());
    }

    #[test]
    fn the_lambda_runtime_api_is_never_fetched_even_with_plain_http_allowed() {
        for url in [
            "http://10.0.0.5:9001/2018-06-01/runtime/invocation/next",
            "https://10.0.0.5:9001/",
        ] {
            assert_eq!(
                classify(url, &plain_http()),
                Err("the Lambda Runtime API is never fetched".into()),
                "{url}"
            );
        }
        assert!(classify("http://10.0.0.5:9002/", &plain_http()).is_ok());
    }

    #[test]
    fn shown_urls_keep_neither_user_info_nor_query() {
        assert_eq!(
            shown("https://u:p@bucket.s3.amazonaws.com/k.yaml?X-Amz-Signature=secret"),
            "https://bucket.s3.amazonaws.com/k.yaml?…"
        );
        assert_eq!(shown("::"), "(not a URL)");
    }
}
