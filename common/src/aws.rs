//! The one place AWS configuration is loaded. Endpoints come only from the standard
//! `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` settings, so tests point the real SDK at
//! a local emulator without any code path of their own.

use std::net::IpAddr;

use aws_config::BehaviorVersion;
pub use aws_config::SdkConfig;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::dns::{DnsFuture, ResolveDns, ResolveDnsError};

/// The configuration every client is built from: the SDK's default chain (environment,
/// profile, web identity, container and instance credentials), one rustls HTTP client.
pub async fn load() -> SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
        .build_with_resolver(AddressesFirst);
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .load()
        .await
}

/// The SDK's resolver, but an endpoint given as an address is used as it is: the default one
/// hands even `127.0.0.1` to `getaddrinfo` on a blocking thread for every new connection,
/// which was a third of the consumer's CPU against an endpoint that closes each connection.
#[derive(Debug, Clone, Copy)]
struct AddressesFirst;

impl ResolveDns for AddressesFirst {
    fn resolve_dns<'a>(&'a self, name: &'a str) -> DnsFuture<'a> {
        let literal = name.trim_start_matches('[').trim_end_matches(']');
        if let Ok(address) = literal.parse::<IpAddr>() {
            return DnsFuture::ready(Ok(vec![address]));
        }
        DnsFuture::new(async move {
            let found = tokio::net::lookup_host((name, 0)).await.map_err(ResolveDnsError::new)?;
            Ok(found.map(|socket| socket.ip()).collect())
        })
    }
}

/// An S3 client. Path-style addressing when an endpoint is overridden: emulators serve
/// buckets on paths, not on `<bucket>.<host>` names.
pub fn s3(config: &SdkConfig) -> aws_sdk_s3::Client {
    let overridden = config.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(overridden)
            .build(),
    )
}
