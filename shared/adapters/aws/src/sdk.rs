//! AWS SDK configuration shared by every client of the functions and tools.

use std::time::Duration;

/// The HTTP client of every AWS SDK client: rustls on ring, the crypto library reqwest uses
/// too, so the bootstraps link only one.
pub fn https_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// SDK configuration from the environment (region, credentials, `AWS_ENDPOINT_URL`) with
/// [`https_client`] and timeouts that fit a provider's 5 s acknowledgement budget: an attempt
/// that hangs is abandoned after 1 s and retried, and a call gives up after 3 s, so the function
/// still answers instead of being killed at its own timeout. With those, the SDK's
/// stalled-stream protection (meant for long transfers) only costs time on these small requests.
pub async fn from_env() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https_client())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_millis(500))
                .operation_attempt_timeout(Duration::from_secs(1))
                .operation_timeout(Duration::from_secs(3))
                .build(),
        )
        .stalled_stream_protection(
            aws_config::stalled_stream_protection::StalledStreamProtectionConfig::disabled(),
        )
        .load()
        .await
}
