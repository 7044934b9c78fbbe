//! Start-up shared by every Lambda: logging, AWS clients built once, warm connections.

use std::convert::Infallible;
use std::sync::Arc;

use lambda_http::{service_fn, Request};

use crate::ingest::{Ingest, IngestSettings};
use crate::providers::{check_tenants, Provider};
use crate::queue::SqsQueue;
use crate::secrets::load_tenants;
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

pub fn required_env(name: &str) -> Result<String, Error> {
    std::env::var(name).map_err(|_| format!("environment variable {name} is not set").into())
}

/// Builds the provider's ingest pipeline on DynamoDB and SQS from the environment
/// (`TABLE_NAME`, `QUEUE_URL`, tenants per [`load_tenants`]) and serves API Gateway requests.
pub async fn run_webhook(provider: impl Provider) -> Result<(), Error> {
    init_tracing();
    let aws = aws_config::load_from_env().await;
    let tenants = load_tenants(&aws).await?;
    check_tenants(&provider, &tenants)?;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&aws),
        required_env("TABLE_NAME")?,
    );
    let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&aws), required_env("QUEUE_URL")?);
    tokio::join!(store.warm_up(), queue.warm_up());
    let ingest = Arc::new(Ingest::new(
        Arc::new(provider),
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
