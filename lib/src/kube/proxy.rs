//! The HTTP proxy a cluster is reached through, as kubectl chooses it: a kubeconfig cluster's
//! own `proxy-url`, else `HTTPS_PROXY` (or `https_proxy`) unless `NO_PROXY` (or `no_proxy`)
//! names the API server's host.

use crate::Error;

/// The proxy variables, in the order they are read.
const PROXY_VARIABLES: [&str; 2] = ["HTTPS_PROXY", "https_proxy"];
const NO_PROXY_VARIABLES: [&str; 2] = ["NO_PROXY", "no_proxy"];

fn first_set(names: [&'static str; 2]) -> Option<(&'static str, String)> {
    names.into_iter().find_map(|name| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(|v| (name, v))
    })
}

/// The proxy `HTTPS_PROXY` names, checked: an `http://` or `https://` URL with a host. The
/// error names the variable, never its value (a proxy URL may carry a password).
pub fn from_env() -> Result<Option<http::Uri>, Error> {
    let Some((name, value)) = first_set(PROXY_VARIABLES) else {
        return Ok(None);
    };
    parse(name, value.trim()).map(Some)
}

fn parse(name: &str, value: &str) -> Result<http::Uri, Error> {
    let bad = |why: &str| Error::Environment {
        variable: name.to_owned(),
        message: format!("{why}; expected http://host:port or https://host:port, or unset it"),
    };
    let uri: http::Uri = value.parse().map_err(|_| bad("is not a URL"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(bad("is not an http:// or https:// proxy"));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("names no host"));
    }
    Ok(uri)
}

/// Whether a `NO_PROXY` list exempts `host` (no port): `*`; a name equal to the host or a
/// parent domain of it (`example.com` and `.example.com` both cover `api.example.com`); an IP
/// address; or an IP range in CIDR notation. Entries may carry a port, which is ignored.
pub fn exempt(no_proxy: &str, host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
    let address: Option<std::net::IpAddr> = host.parse().ok();
    no_proxy
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            if let Some((network, bits)) = entry.split_once('/') {
                return match (address, network.parse::<std::net::IpAddr>(), bits.parse::<u32>()) {
                    (Some(address), Ok(network), Ok(bits)) => in_range(address, network, bits),
                    _ => false,
                };
            }
            let entry = entry.to_ascii_lowercase();
            let entry = strip_port(&entry);
            let entry = entry.trim_start_matches('[').trim_end_matches(']');
            if let (Some(address), Ok(listed)) = (address, entry.parse::<std::net::IpAddr>()) {
                return address == listed;
            }
            let domain = entry.trim_start_matches('.');
            !domain.is_empty() && (host == domain || host.ends_with(&format!(".{domain}")))
        })
}

/// `host:port` without the port; an IPv6 address in brackets keeps its colons.
fn strip_port(entry: &str) -> &str {
    match entry.rsplit_once(':') {
        Some((host, port))
            if port.bytes().all(|b| b.is_ascii_digit()) && (!host.contains(':') || host.ends_with(']')) =>
        {
            host
        }
        _ => entry,
    }
}

fn in_range(address: std::net::IpAddr, network: std::net::IpAddr, bits: u32) -> bool {
    use std::net::IpAddr::{V4, V6};
    match (address, network) {
        (V4(a), V4(n)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (V6(a), V6(n)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Sets `config`'s proxy as kubectl would: `own` (a kubeconfig cluster's `proxy-url`) when
/// given, else `HTTPS_PROXY` unless `NO_PROXY` exempts the API server.
pub fn route(config: &mut ::kube::Config, own: Option<http::Uri>) -> Result<(), Error> {
    config.proxy_url = if let Some(own) = own {
        Some(own)
    } else {
        let host = config.cluster_url.host().unwrap_or_default().to_owned();
        let exempted = first_set(NO_PROXY_VARIABLES).is_some_and(|(_, list)| exempt(&list, &host));
        if exempted { None } else { from_env()? }
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_entries_match_as_kubectl_and_curl_read_them() {
        let cases = [
            ("*", "api.example.com", true),
            ("example.com", "api.example.com", true),
            (".example.com", "api.example.com", true),
            ("example.com", "example.com", true),
            ("ample.com", "api.example.com", false),
            ("other.com, .example.com", "API.Example.com", true),
            ("127.0.0.1", "127.0.0.1", true),
            ("127.0.0.1:6443", "127.0.0.1", true),
            ("127.0.0.2", "127.0.0.1", false),
            ("10.0.0.0/8", "10.20.30.40", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("10.0.0.0/8", "ten.example.com", false),
            ("0.0.0.0/0", "192.168.1.1", true),
            ("::1", "[::1]", true),
            ("[::1]:443", "::1", true),
            ("fd00::/8", "fd12::1", true),
            ("fd00::/8", "10.0.0.1", false),
            ("10.0.0.0/99", "10.0.0.1", false),
            ("", "api.example.com", false),
            (" , ,", "api.example.com", false),
            (".", "api.example.com", false),
        ];
        for (list, host, expected) in cases {
            assert_eq!(exempt(list, host), expected, "NO_PROXY={list:?} host {host}");
        }
    }

    #[test]
    fn a_bad_proxy_names_the_variable_not_its_value() {
        for value in ["not a url", "socks5://h:1080", "http://", "ftp://proxy:21"] {
            let message = parse("HTTPS_PROXY", value).unwrap_err().to_string();
            assert!(message.starts_with("environment variable HTTPS_PROXY "), "{message}");
        }
        let secret = parse("HTTPS_PROXY", "ftp://user:hunter2@proxy:21")
            .unwrap_err()
            .to_string();
        assert!(!secret.contains("hunter2"), "{secret}");
        assert_eq!(
            parse("HTTPS_PROXY", "http://proxy.corp:3128").unwrap().host(),
            Some("proxy.corp")
        );
    }
}
