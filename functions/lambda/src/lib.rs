//! The Lambda entry points: start-up shared by every function (logging, configuration read
//! once, AWS clients built once, warm connections), and the translation of API Gateway and SQS
//! events to and from the core's plain types.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use adapter_aws::{DynamoStore, EventBus, SecretsManager, SqsQueue};
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_http::service_fn;
use lambda_runtime::LambdaEvent;
use webhook_core::clock::{self, SharedClock};
use webhook_core::config::Settings;
use webhook_core::fetch::DetailClient;
use webhook_core::metrics::{Emf, LogLines, Metrics};
use webhook_core::model::InboundMessage;
use webhook_core::outbox::Sweeper;
use webhook_core::ports::Ports;
use webhook_core::process::{Processor, ProviderTenants};
use webhook_core::providers::{check_tenants, Provider};
use webhook_core::reconcile::Reconciler;
use webhook_core::tenants::{self as tenants, ConfigError, Loader, TenantSource};
use webhook_core::{Ingest, WebhookRequest, WebhookResponse};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Runs a Lambda's main future on a single-threaded Tokio runtime: one invocation at a time is
/// all Lambda sends to an execution environment, so worker threads would only add start-up time
/// and cross-thread wake-ups.
pub fn start(main: impl Future<Output = Result<(), Error>>) -> Result<(), Error> {
    prefer_single_ca_bundle();
    forget_empty_endpoint();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(main)
}

/// The template declares `AWS_ENDPOINT_URL` (so that `sam local --env-vars` may set it) and
/// leaves it empty in AWS; the SDK would take an empty value for an endpoint. Called before any
/// thread exists, since it changes the process environment.
fn forget_empty_endpoint() {
    if std::env::var_os("AWS_ENDPOINT_URL").is_some_and(|value| value.is_empty()) {
        std::env::remove_var("AWS_ENDPOINT_URL");
    }
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

/// The API Gateway request as the core sees it.
pub fn to_core(request: lambda_http::Request) -> WebhookRequest {
    use lambda_http::RequestExt;
    // The invocation's own trace is the webhook's, whatever trace header a sender wrote.
    let invocation_trace = request
        .lambda_context_ref()
        .and_then(|context| context.xray_trace_id.clone());
    let (mut parts, body) = request.into_parts();
    if let Some(Ok(trace)) = invocation_trace.map(|t| lambda_http::http::HeaderValue::from_str(&t))
    {
        parts.headers.insert(webhook_core::trace::HEADER, trace);
    }
    let bytes = match body {
        lambda_http::Body::Empty => bytes::Bytes::new(),
        lambda_http::Body::Text(text) => bytes::Bytes::from(text),
        lambda_http::Body::Binary(data) => bytes::Bytes::from(data),
        _ => bytes::Bytes::new(),
    };
    WebhookRequest::from_parts(parts, bytes)
}

/// The core's answer as API Gateway takes it.
pub fn from_core(response: WebhookResponse) -> lambda_http::Response<lambda_http::Body> {
    let (parts, body) = response.into_parts();
    let body = match String::from_utf8(body.to_vec()) {
        Ok(text) => lambda_http::Body::Text(text),
        Err(error) => lambda_http::Body::Binary(error.into_bytes()),
    };
    lambda_http::Response::from_parts(parts, body)
}

/// An SQS batch as the processor sees it.
pub fn inbound_messages(event: SqsEvent) -> Vec<InboundMessage> {
    event
        .records
        .into_iter()
        .map(|record| InboundMessage {
            id: record.message_id.unwrap_or_default(),
            body: record.body.unwrap_or_default(),
            receive_count: record
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1),
            receipt_handle: record.receipt_handle,
        })
        .collect()
}

/// Partial batch failures: the messages to retry.
pub fn batch_response(failed: Vec<String>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for id in failed {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id;
        response.batch_item_failures.push(failure);
    }
    response
}

/// The Lambda handler of the processor: an SQS batch in, the messages to retry out.
pub async fn handle_sqs(processor: &Processor, event: SqsEvent) -> SqsBatchResponse {
    batch_response(processor.process_batch(inbound_messages(event)).await)
}

/// Everything a function built on DynamoDB and SQS needs, built once per cold start.
struct Deployment {
    aws: aws_config::SdkConfig,
    settings: Settings,
    clock: SharedClock,
}

impl Deployment {
    async fn from_env() -> Result<Deployment, Error> {
        webhook_core::logging::init_json();
        let settings = Settings::from_env()?;
        Ok(Deployment {
            aws: adapter_aws::sdk::from_env().await,
            settings,
            clock: clock::system(),
        })
    }

    /// The store and queue named by `TABLE_NAME` and `QUEUE_URL`, connections opened (the
    /// store's with a read of `warm_up_key`, where the function may read one).
    async fn ports(&self, warm_up_key: Option<&str>) -> Result<Ports, Error> {
        let table = self
            .settings
            .table_name
            .clone()
            .ok_or("environment variable TABLE_NAME is not set")?;
        let queue_url = self
            .settings
            .queue_url
            .clone()
            .ok_or("environment variable QUEUE_URL is not set")?;
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&self.aws), table);
        let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&self.aws), queue_url);
        let store_warm_up = async {
            if let Some(key) = warm_up_key {
                store.warm_up(key).await;
            }
        };
        tokio::join!(store_warm_up, queue.warm_up());
        Ok(adapter_aws::ports(store, queue, self.clock.clone()))
    }

    /// EMF lines on standard output in the configured namespace, or nothing.
    fn metrics(&self) -> Arc<dyn Metrics> {
        match &self.settings.metrics_namespace {
            Some(namespace) => Arc::new(Emf::stdout(namespace.clone(), self.clock.clone())),
            None => Arc::new(LogLines),
        }
    }

    /// The tenants under `prefix`, checked against what `provider` can verify, reloaded every
    /// `TENANTS_REFRESH_SECONDS`.
    async fn tenants(
        &self,
        provider: Arc<dyn Provider>,
        prefix: &str,
    ) -> Result<TenantSource, ConfigError> {
        let loader = self.tenant_loader(provider, prefix);
        let first = loader().await?;
        Ok(TenantSource::refreshing(
            first,
            self.settings.tenants_refresh,
            loader,
            self.clock.clone(),
        ))
    }

    fn tenant_loader(&self, provider: Arc<dyn Provider>, prefix: &str) -> Loader {
        let secrets = Arc::new(SecretsManager::new(&self.aws));
        let prefix = prefix.to_string();
        Arc::new(move || {
            let (secrets, provider, prefix) = (secrets.clone(), provider.clone(), prefix.clone());
            Box::pin(async move {
                let source = Settings::tenants_source(&prefix)
                    .ok_or_else(|| ConfigError::NotConfigured(prefix.clone()))?;
                let mut directory = tenants::load(&source, secrets.as_ref()).await?;
                if let Some(secret) = Settings::api_secret(&prefix) {
                    let json = tenants::SecretReader::read(secrets.as_ref(), &secret)
                        .await
                        .map_err(ConfigError::Source)?;
                    directory = directory.with_api(&json)?;
                }
                check_tenants(provider.as_ref(), &directory)?;
                Ok(directory)
            })
        })
    }
}

/// A provider's webhook function: API Gateway requests in, the core's ingest path on DynamoDB
/// and SQS, answers out.
pub async fn run_webhook(provider: impl Provider) -> Result<(), Error> {
    run_webhook_of(Arc::new(provider)).await
}

/// [`run_webhook`] for a provider picked at run time (the tests pick each of
/// `providers::all()`).
pub async fn run_webhook_of(provider: Arc<dyn Provider>) -> Result<(), Error> {
    let deployment = Deployment::from_env().await?;
    let tenants = deployment.tenants(provider.clone(), "").await?;
    let warm_up_key = format!("{}#warm-up", provider.name());
    let ingest = Arc::new(
        Ingest::new(
            provider,
            tenants,
            deployment.ports(Some(&warm_up_key)).await?,
            deployment.settings.ingest.clone(),
        )
        .with_metrics(deployment.metrics()),
    );
    lambda_http::run(service_fn(move |request: lambda_http::Request| {
        let ingest = Arc::clone(&ingest);
        async move { Ok::<_, Infallible>(from_core(ingest.handle(to_core(request)).await)) }
    }))
    .await
}

/// The processor: SQS batches in, each provider's tenants under its prefix (`EGYM_…`).
pub async fn run_processor() -> Result<(), Error> {
    let deployment = Deployment::from_env().await?;
    let mut providers = Vec::new();
    for provider in webhook_core::providers::all() {
        let prefix = format!("{}_", provider.name().to_ascii_uppercase());
        // A provider whose tenants do not load holds back only its own events: they are
        // retried (then dead-lettered) while its document is tried again.
        let tenants = match deployment.tenants(provider.clone(), &prefix).await {
            Ok(tenants) => tenants,
            Err(error) => {
                tracing::error!(provider = provider.name(), error = %error, "tenants did not load; this provider's events wait until they do");
                TenantSource::loading(
                    deployment.settings.tenants_refresh,
                    deployment.tenant_loader(provider.clone(), &prefix),
                    deployment.clock.clone(),
                )
            }
        };
        providers.push(ProviderTenants { provider, tenants });
    }
    let settings = deployment.settings.processor.clone();
    let mut processor = Processor::new(
        providers,
        deployment.ports(Some("warm-up")).await?,
        DetailClient::new(settings.fetch_timeout, deployment.clock.clone()),
        settings,
    )
    .with_metrics(deployment.metrics());
    if let Some(bus) = &deployment.settings.event_bus_name {
        let client = aws_sdk_eventbridge::Client::new(&deployment.aws);
        processor = processor.with_publisher(Arc::new(EventBus::new(client, bus.clone())));
    }
    if let Some(spans) = adapter_aws::xray::XraySpans::from_lambda_env() {
        processor = processor.with_spans(Arc::new(spans));
    }
    let processor = Arc::new(processor);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<SqsEvent>| {
            let processor = Arc::clone(&processor);
            async move { Ok::<_, Infallible>(handle_sqs(&processor, event.payload).await) }
        },
    ))
    .await
}

/// Stuck records the reconciler looks at per run (a run a minute).
const RECONCILED_PER_RUN: usize = 100;

/// The outbox sweeper: one sweep per scheduled invocation, then the reconciler.
pub async fn run_sweeper() -> Result<(), Error> {
    let deployment = Deployment::from_env().await?;
    // The sweeper reads no record by key: its role has no GetItem to warm up with.
    let ports = deployment.ports(None).await?;
    let settings = deployment.settings.ingest.clone();
    let sweeper =
        Arc::new(Sweeper::new(ports.clone(), settings.lease).with_metrics(deployment.metrics()));
    let reconciler =
        Arc::new(Reconciler::new(ports, settings.lease).with_metrics(deployment.metrics()));
    lambda_runtime::run(lambda_runtime::service_fn(
        move |_: LambdaEvent<serde_json::Value>| {
            let (sweeper, reconciler) = (Arc::clone(&sweeper), Arc::clone(&reconciler));
            async move {
                let report = sweeper.sweep_all(Duration::from_secs(40)).await?;
                tracing::info!(
                    found = report.found,
                    enqueued = report.enqueued,
                    skipped = report.skipped,
                    failed = report.failed,
                    "sweep"
                );
                let reconciled = reconciler
                    .reconcile(settings.retention, RECONCILED_PER_RUN)
                    .await?;
                Ok::<_, Error>(serde_json::json!({
                    "enqueued": report.enqueued,
                    "failed": report.failed,
                    "stuck": reconciled.stuck,
                    "requeued": reconciled.requeued,
                }))
            }
        },
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::RequestExt;

    const INVOCATION: &str = "1-5759e988-bd862e3fe1be46a994272793";

    fn request(header: Option<&str>) -> lambda_http::Request {
        let mut request = lambda_http::http::Request::builder().uri("/webhooks/egym");
        if let Some(header) = header {
            request = request.header("x-amzn-trace-id", header);
        }
        request.body(lambda_http::Body::Empty).unwrap()
    }

    /// The invocation's X-Ray trace is the webhook's, whatever header the sender wrote; with no
    /// invocation trace (outside Lambda) the header is read.
    #[test]
    fn the_invocations_trace_is_the_webhooks() {
        let mut context = lambda_runtime::Context::default();
        context.xray_trace_id = Some(format!(
            "Root={INVOCATION};Parent=53995c3f42cd8ad8;Sampled=1"
        ));
        let sender = "Root=1-00000001-000000000000000000000001";
        let traced = to_core(request(Some(sender)).with_lambda_context(context));
        assert_eq!(webhook_core::trace::of_request(&traced, 0), INVOCATION);
        let untraced = to_core(request(Some(sender)));
        assert_eq!(
            webhook_core::trace::of_request(&untraced, 0),
            "1-00000001-000000000000000000000001"
        );
    }
}
