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

/// SDK configuration from the environment (region, credentials, `AWS_ENDPOINT_URL`): [`loader`]
/// loaded.
pub async fn from_env() -> aws_config::SdkConfig {
    loader().load().await
}

/// The loader of every function's SDK configuration, for a caller to point elsewhere (a test's
/// proxy): [`https_client`] and timeouts under which a call that hangs ends in an error rather
/// than in a function killed at its timeout: 500 ms to connect, an attempt abandoned after 1 s
/// and retried (the SDK's standard retries, 3 attempts, the first retry within 100 ms rather
/// than the default's 1 s), a call given up after 3 s. On the webhook path the core's ack budget
/// (`webhook_core::config::ACK_BUDGET`, 4 s) is the tighter bound: the put gets 2 s of it and the
/// spill or the send the rest, each room for a second attempt after a hung first one, so a
/// provider's 5 s are kept even when DynamoDB and SQS both hang. With those, the SDK's
/// stalled-stream protection (meant for long transfers) only costs time on these small requests.
pub fn loader() -> aws_config::ConfigLoader {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https_client())
        .retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_initial_backoff(Duration::from_millis(100)),
        )
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
}
