//! Start-up shared by every Lambda: logging, AWS clients built once, warm connections.

use std::convert::Infallible;
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

/// JSON log lines without timestamps (CloudWatch adds them); level from `RUST_LOG`, default info.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_target(false)
        .with_current_span(false)
        .without_time()
        .try_init();
}

/// Human-readable log lines with timestamps, for the local dev server.
pub fn init_readable_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .compact()
        .with_env_filter(filter)
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
    let aws = aws_config::load_from_env().await;
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
    let aws = aws_config::load_from_env().await;
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
    let aws = aws_config::load_from_env().await;
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
