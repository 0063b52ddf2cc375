//! The one place AWS configuration is loaded. Endpoints come only from the standard
//! `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` settings, so tests point the real SDK at
//! a local emulator without any code path of their own.

use aws_config::{BehaviorVersion, SdkConfig};

pub async fn load() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
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
