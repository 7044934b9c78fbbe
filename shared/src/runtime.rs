//! Start-up shared by every Lambda: logging, AWS clients built once, warm connections.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::sqs::SqsEvent;
use lambda_http::{service_fn, Request};
use lambda_runtime::LambdaEvent;

use crate::fetch::DetailClient;
use crate::ingest::{Ingest, IngestSettings};
use crate::outbox::Sweeper;
use crate::process::{Processor, ProcessorSettings, ProviderTenants};
use crate::providers::{check_tenants, Provider};
use crate::queue::SqsQueue;
use crate::secrets::{load_tenants, ConfigError, TenantDirectory, TenantSource};
use crate::store::DynamoStore;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Runs a Lambda's main future on a single-threaded Tokio runtime: one invocation at a time is
/// all Lambda sends to an execution environment, so worker threads would only add start-up time
/// and cross-thread wake-ups.
pub fn start(main: impl Future<Output = Result<(), Error>>) -> Result<(), Error> {
    prefer_single_ca_bundle();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(main)
}

/// The system's CA bundle file, when `SSL_CERT_FILE` / `SSL_CERT_DIR` do not already say where
/// to look. Without them the TLS client reads both the bundle and every file of the
/// certificate directory (hundreds of files on Debian) at start; the bundle alone holds the
/// same roots. Called before any thread exists, since it sets the process environment.
fn prefer_single_ca_bundle() {
    const BUNDLES: [&str; 3] = [
        "/etc/pki/tls/certs/ca-bundle.crt", // Amazon Linux (Lambda), Fedora, RHEL
        "/etc/ssl/certs/ca-certificates.crt", // Debian, Ubuntu, Alpine
        "/etc/ssl/cert.pem",                // macOS, BSDs
    ];
    if std::env::var_os("SSL_CERT_FILE").is_some() || std::env::var_os("SSL_CERT_DIR").is_some() {
        return;
    }
    if let Some(bundle) = BUNDLES
        .iter()
        .find(|path| std::path::Path::new(path).is_file())
    {
        std::env::set_var("SSL_CERT_FILE", bundle);
    }
}

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
/// still answers (5xx, and the provider retries) instead of being killed at its own timeout.
/// With those, the SDK's stalled-stream protection (meant for long transfers) only costs time
/// on these small requests.
pub async fn aws_from_env() -> aws_config::SdkConfig {
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

/// The log level named by `RUST_LOG` (`error`, `warn`, `info`, `debug`, `trace`, `off`), else
/// info. A plain level rather than per-module directives keeps a regex engine out of the
/// bootstraps. Release builds stop at `info` whatever this says (the workspace enables
/// `tracing/release_max_level_info`).
fn log_level() -> tracing_subscriber::filter::LevelFilter {
    std::env::var("RUST_LOG")
        .ok()
        .and_then(|level| level.trim().parse().ok())
        .unwrap_or(tracing_subscriber::filter::LevelFilter::INFO)
}

/// JSON log lines without timestamps (CloudWatch adds them); level per [`log_level`].
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_max_level(log_level())
        .with_target(false)
        .with_current_span(false)
        .without_time()
        .try_init();
}

/// Human-readable log lines with timestamps, for the local dev server.
pub fn init_readable_tracing() {
    let _ = tracing_subscriber::fmt()
        .compact()
        .with_max_level(log_level())
        .with_target(false)
        .try_init();
}

pub fn required_env(name: &str) -> Result<String, Error> {
    std::env::var(name).map_err(|_| format!("environment variable {name} is not set").into())
}

/// Builds the provider's ingest pipeline on DynamoDB and SQS from the environment
/// (`TABLE_NAME`, `QUEUE_URL`, tenants per [`load_tenants`]) and serves API Gateway requests.
pub async fn run_webhook(provider: impl Provider) -> Result<(), Error> {
    init_tracing();
    let aws = aws_from_env().await;
    let provider: Arc<dyn Provider> = Arc::new(provider);
    let tenants = load_tenants(&aws, "").await?;
    check_tenants(provider.as_ref(), &tenants)?;
    let reload = {
        let (aws, provider) = (aws.clone(), Arc::clone(&provider));
        Arc::new(move || {
            let (aws, provider) = (aws.clone(), Arc::clone(&provider));
            Box::pin(async move {
                let tenants = load_tenants(&aws, "").await?;
                check_tenants(provider.as_ref(), &tenants)?;
                Ok(tenants)
            }) as futures::future::BoxFuture<'static, _>
        })
    };
    let refresh_every = std::env::var("TENANTS_REFRESH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(300), Duration::from_secs);
    let tenants = TenantSource::refreshing(tenants, refresh_every, reload);
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&aws),
        required_env("TABLE_NAME")?,
    );
    let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&aws), required_env("QUEUE_URL")?);
    tokio::join!(store.warm_up(), queue.warm_up());
    let ingest = Arc::new(Ingest::new(
        provider,
        tenants,
        Arc::new(store),
        Arc::new(queue),
        IngestSettings::from_env(),
    ));
    lambda_http::run(service_fn(move |request: Request| {
        let ingest = Arc::clone(&ingest);
        async move { Ok::<_, Infallible>(ingest.handle(request).await) }
    }))
    .await
}

/// Builds the processor from the environment (`TABLE_NAME`, `QUEUE_URL`, each provider's
/// tenants under its prefix, `FETCH_TIMEOUT_SECONDS`) and serves SQS batches.
pub async fn run_processor() -> Result<(), Error> {
    init_tracing();
    let aws = aws_from_env().await;
    let mut providers = Vec::new();
    for provider in crate::providers::all() {
        let prefix = format!("{}_", provider.name().to_ascii_uppercase());
        let tenants = match load_tenants(&aws, &prefix).await {
            Ok(tenants) => tenants,
            Err(ConfigError::NotConfigured(_)) => {
                tracing::warn!(
                    provider = provider.name(),
                    "no tenants configured; its events will fail"
                );
                TenantDirectory::new(Vec::new())?
            }
            Err(error) => return Err(error.into()),
        };
        providers.push(ProviderTenants { provider, tenants });
    }
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&aws),
        required_env("TABLE_NAME")?,
    );
    let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&aws), required_env("QUEUE_URL")?);
    store.warm_up().await;
    let fetch_timeout = std::env::var("FETCH_TIMEOUT_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(10), Duration::from_secs);
    let processor = Arc::new(Processor::new(
        providers,
        Arc::new(store),
        Arc::new(queue),
        DetailClient::new(fetch_timeout),
        ProcessorSettings::from_env(),
    ));
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<SqsEvent>| {
            let processor = Arc::clone(&processor);
            async move { Ok::<_, Infallible>(processor.handle_sqs(event.payload).await) }
        },
    ))
    .await
}

/// Builds the outbox sweeper from the environment (`TABLE_NAME`, `QUEUE_URL`, `LEASE_SECONDS`)
/// and runs one sweep per scheduled invocation.
pub async fn run_sweeper() -> Result<(), Error> {
    init_tracing();
    let aws = aws_from_env().await;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&aws),
        required_env("TABLE_NAME")?,
    );
    let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&aws), required_env("QUEUE_URL")?);
    let sweeper = Arc::new(Sweeper::new(
        Arc::new(store),
        Arc::new(queue),
        IngestSettings::from_env().lease,
    ));
    lambda_runtime::run(lambda_runtime::service_fn(
        move |_: LambdaEvent<serde_json::Value>| {
            let sweeper = Arc::clone(&sweeper);
            async move {
                let report = sweeper.sweep_all(Duration::from_secs(40)).await?;
                tracing::info!(
                    found = report.found,
                    enqueued = report.enqueued,
                    skipped = report.skipped,
                    failed = report.failed,
                    "sweep"
                );
                Ok::<_, Error>(
                    serde_json::json!({ "enqueued": report.enqueued, "failed": report.failed }),
                )
            }
        },
    ))
    .await
}
