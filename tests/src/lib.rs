//! Harness for the end-to-end tests: the local DynamoDB/SQS endpoint started by `scripts/test`,
//! uniquely named tables and queues per test, and the real handlers built on them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use std::sync::{Arc, Mutex};
use std::time::Duration;

use adapter_aws::{DynamoStore, SqsQueue};
use aws_lambda_events::sqs::SqsEvent;
use bytes::Bytes;
use fake_api::FakeApi;
use webhook_core::fetch::DetailClient;
use webhook_core::model::{
    Claim, Erased, EventFilter, ItemsDone, Outcome, Pending, PutOutcome, QueueMessage, Record,
    Status,
};
use webhook_core::ports::{Claims, Deliveries, Erasing, Handover, Operating, Ports, StoreError};
use webhook_core::process::{Processor, ProcessorSettings, ProviderTenants};
use webhook_core::tenants::{TenantDirectory, TenantSource};
use webhook_core::{Ingest, IngestSettings, WebhookRequest, WebhookResponse};

/// The project root (where `events/` lives).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// SDK configuration for the local endpoint named by `AWS_ENDPOINT_URL` (set by `scripts/test`).
pub async fn local_aws() -> aws_config::SdkConfig {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect(
        "AWS_ENDPOINT_URL is not set: run the suite with scripts/test, which starts the local AWS endpoint",
    );
    aws_at(&endpoint).await
}

/// The ARN of a queue (for redrive policies and event targets).
pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone()
}

/// The project's virtual environment's Python where there is one, else `python3`.
pub fn python() -> PathBuf {
    let venv = std::env::var_os("VIRTUAL_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv"));
    let inside = venv.join("bin/python");
    if inside.exists() {
        inside
    } else {
        PathBuf::from("python3")
    }
}

/// A log or metrics writer whose every line the test can read afterwards.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// SDK configuration for an endpoint (the local one, or a proxy in front of it).
pub async fn aws_at(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(adapter_aws::sdk::https_client())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await
}

/// A fresh table and queue on the local endpoint, plus clients to look inside them.
#[derive(Clone)]
pub struct Backend {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub table: String,
    pub queue_url: String,
    /// The dead-letter queue, when made with [`Backend::with_dead_letter_queue`].
    pub dead_letter_url: Option<String>,
}

impl Backend {
    /// A table and a queue whose messages move to a dead-letter queue after `max_receives`.
    pub async fn with_dead_letter_queue(max_receives: u32) -> Backend {
        let mut backend = Backend::new().await;
        let dead_letter_url = backend
            .sqs
            .create_queue()
            .queue_name(unique_name("dead"))
            .send()
            .await
            .expect("create dead-letter queue")
            .queue_url
            .unwrap();
        let dead_letter_arn = queue_arn(&backend.sqs, &dead_letter_url).await;
        backend
            .sqs
            .set_queue_attributes()
            .queue_url(&backend.queue_url)
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy,
                serde_json::json!({ "deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": max_receives })
                    .to_string(),
            )
            .send()
            .await
            .expect("set redrive policy");
        backend.dead_letter_url = Some(dead_letter_url);
        backend
    }

    pub async fn new() -> Backend {
        let aws = local_aws().await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
        let sqs = aws_sdk_sqs::Client::new(&aws);
        let table = unique_name("events");
        adapter_aws::create_table(&dynamodb, &table)
            .await
            .expect("create table");
        let queue_url = sqs
            .create_queue()
            .queue_name(unique_name("work"))
            // As template.yaml: a spilled delivery carries its whole body.
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::MaximumMessageSize,
                "1048576",
            )
            .send()
            .await
            .expect("create queue")
            .queue_url
            .unwrap();
        Backend {
            dynamodb,
            sqs,
            table,
            queue_url,
            dead_letter_url: None,
        }
    }

    pub fn store(&self) -> DynamoStore {
        DynamoStore::new(self.dynamodb.clone(), &self.table)
    }

    pub fn queue(&self) -> SqsQueue {
        SqsQueue::new(self.sqs.clone(), &self.queue_url)
    }

    /// The ports on this table and queue, as the Lambdas build them.
    pub fn ports(&self) -> Ports {
        adapter_aws::ports(self.store(), self.queue(), webhook_core::clock::system())
    }

    /// The outbox sweeper on this table and queue (lease 10 s).
    pub fn sweeper(&self) -> webhook_core::outbox::Sweeper {
        webhook_core::outbox::Sweeper::new(self.ports(), Duration::from_secs(10))
    }

    /// The real handler of `provider`, configured with the demo tenants of `events/env.json`.
    pub fn ingest(&self, provider: &str) -> Ingest {
        self.ingest_with(provider, demo_tenants(provider), IngestSettings::default())
    }

    pub fn ingest_with(
        &self,
        provider: &str,
        tenants: TenantDirectory,
        settings: IngestSettings,
    ) -> Ingest {
        Ingest::new(
            webhook_core::providers::by_name(provider).expect("known provider"),
            tenants,
            self.ports(),
            settings,
        )
    }

    /// The records (and tombstones) in the table. A body kept in an item of its own is part
    /// of its record, not counted apart; one whose record is not there is a trace left behind
    /// and fails the test. Links from persons to records are left out.
    pub async fn items(&self) -> Vec<HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
        let all = self
            .dynamodb
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .send()
            .await
            .expect("scan")
            .items
            .unwrap_or_default();
        let pk = |item: &HashMap<String, aws_sdk_dynamodb::types::AttributeValue>| {
            item.get("pk")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default()
        };
        // Links, paces, pause, item counters and contract sightings are the processor's
        // bookkeeping, not records.
        let bookkeeping = |pk: &str| {
            adapter_aws::dynamodb::linked_record(pk).is_some()
                || ["pace#", "control#", "items#", "drift#"]
                    .iter()
                    .any(|prefix| pk.starts_with(prefix))
        };
        let all: Vec<_> = all
            .into_iter()
            .filter(|item| !bookkeeping(&pk(item)))
            .collect();
        let (bodies, items): (Vec<_>, Vec<_>) = all
            .into_iter()
            .partition(|item| adapter_aws::dynamodb::body_owner(&pk(item)).is_some());
        for body in &bodies {
            let owner = adapter_aws::dynamodb::body_owner(&pk(body)).unwrap();
            assert!(
                items.iter().any(|item| pk(item) == owner),
                "a body item without its record: {owner}"
            );
        }
        items
    }

    /// Receives (and deletes) every message currently in the queue.
    pub async fn drain(&self) -> Vec<QueueMessage> {
        self.drain_queue(&self.queue_url).await
    }

    /// Counts the messages in the queue by receiving them all (hidden for 5 minutes, not deleted).
    pub async fn count_messages(&self) -> usize {
        let mut count = 0;
        loop {
            let received = self.receive_some(&self.queue_url, 300).await;
            if received.is_empty() {
                return count;
            }
            count += received.len();
        }
    }

    /// Receives (and deletes) every message currently in the dead-letter queue.
    pub async fn drain_dead_letters(&self) -> Vec<QueueMessage> {
        self.drain_queue(
            self.dead_letter_url
                .as_ref()
                .expect("made with a dead-letter queue"),
        )
        .await
    }

    /// Up to 10 messages, hidden for `visibility_seconds`.
    async fn receive_some(
        &self,
        queue_url: &str,
        visibility_seconds: i32,
    ) -> Vec<aws_sdk_sqs::types::Message> {
        self.sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(visibility_seconds)
            .send()
            .await
            .expect("receive")
            .messages
            .unwrap_or_default()
    }

    async fn drain_queue(&self, queue_url: &str) -> Vec<QueueMessage> {
        self.drain_bodies(queue_url)
            .await
            .iter()
            .map(|body| serde_json::from_str(body).expect("message JSON"))
            .collect()
    }

    /// The raw bodies of every message in a queue (received and deleted).
    async fn drain_bodies(&self, queue_url: &str) -> Vec<String> {
        let mut bodies = Vec::new();
        loop {
            let received = self.receive_some(queue_url, 60).await;
            if received.is_empty() {
                return bodies;
            }
            for message in received {
                bodies.push(message.body().unwrap_or_default().to_string());
                self.sqs
                    .delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(message.receipt_handle().unwrap())
                    .send()
                    .await
                    .expect("delete");
            }
        }
    }
}

impl Backend {
    /// The real processor on this table and queue, with the demo tenants of every provider
    /// pointed at `api` (`<api>/<provider>` as each tenant's API base URL).
    pub fn processor(
        &self,
        api: &FakeApi,
        settings: ProcessorSettings,
        timeout: Duration,
    ) -> Processor {
        self.processor_with(api, settings, timeout, |_, demo| TenantSource::fixed(demo))
    }

    /// The real processor with each provider's tenants chosen by `tenants`, given the
    /// provider and its demo tenants pointed at `api`.
    pub fn processor_with(
        &self,
        api: &FakeApi,
        settings: ProcessorSettings,
        timeout: Duration,
        tenants: impl Fn(&str, TenantDirectory) -> TenantSource,
    ) -> Processor {
        demo_processor(self.ports(), api, settings, timeout, tenants)
    }

    /// Does what Lambda's SQS event source does once: receives a batch (visibility 1 s),
    /// invokes the processor with it as an `SqsEvent`, deletes what it did not report failed.
    /// Returns the number of messages received and the ids reported failed.
    pub async fn pump(&self, processor: &Processor) -> (usize, Vec<String>) {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(1)
            .message_system_attribute_names(
                aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
            )
            .send()
            .await
            .expect("receive")
            .messages
            .unwrap_or_default();
        if received.is_empty() {
            return (0, Vec::new());
        }
        let records: Vec<serde_json::Value> = received
            .iter()
            .map(|message| {
                let count = message
                    .attributes()
                    .and_then(|a| {
                        a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
                    })
                    .cloned()
                    .unwrap_or_else(|| "1".into());
                serde_json::json!({
                    "messageId": message.message_id(),
                    "receiptHandle": message.receipt_handle(),
                    "body": message.body(),
                    "attributes": { "ApproximateReceiveCount": count },
                    "messageAttributes": {},
                    "eventSource": "aws:sqs",
                })
            })
            .collect();
        let event: SqsEvent =
            serde_json::from_value(serde_json::json!({ "Records": records })).unwrap();
        let response = ::lambda::handle_sqs(processor, event).await;
        let failed: Vec<String> = response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        for message in &received {
            if !failed
                .iter()
                .any(|id| Some(id.as_str()) == message.message_id())
            {
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(message.receipt_handle().unwrap())
                    .send()
                    .await
                    .expect("delete");
            }
        }
        (received.len(), failed)
    }

    /// Pumps until no message is visible or in flight (delayed ones, due later, do not count),
    /// at most `rounds` batches; fails the test if that takes over 30 s.
    pub async fn pump_until_empty(&self, processor: &Processor, rounds: usize) {
        let started = std::time::Instant::now();
        let mut batches = 0;
        while batches < rounds && self.messages_waiting().await > 0 {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the queue did not empty within 30 s"
            );
            let (received, _) = self.pump(processor).await;
            if received > 0 {
                batches += 1;
            } else {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// Pumps until `count` messages have reached the dead-letter queue, and takes them out of
    /// it; fails the test if that takes over 30 s. (The queue can look empty before: a retry
    /// may wait in a delayed copy, and SQS moves a message only on the receive after its
    /// last.)
    pub async fn pump_until_dead_lettered(
        &self,
        processor: &Processor,
        count: usize,
    ) -> Vec<QueueMessage> {
        let started = std::time::Instant::now();
        let mut dead = Vec::new();
        loop {
            dead.extend(self.drain_dead_letters().await);
            if dead.len() >= count {
                return dead;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{} of {count} dead letters after 30 s",
                dead.len()
            );
            if self.pump(processor).await.0 == 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Pumps until the record of `key` is done with (`PROCESSED`, `FAILED`, `QUARANTINED`),
    /// delayed messages included; fails the test if that takes over 30 s.
    pub async fn pump_until_finished(&self, processor: &Processor, key: &str) -> Record {
        let started = std::time::Instant::now();
        loop {
            let record = self.record(key).await;
            if matches!(
                record.status,
                Status::Processed | Status::Failed | Status::Quarantined
            ) {
                return record;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{key} still {:?} after 30 s",
                record.status
            );
            if self.pump(processor).await.0 == 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// Messages visible or in flight in the work queue (not those delayed by their sender).
    pub async fn messages_waiting(&self) -> usize {
        use aws_sdk_sqs::types::QueueAttributeName as Name;
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(Name::ApproximateNumberOfMessages)
            .attribute_names(Name::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("queue attributes")
            .attributes
            .unwrap_or_default();
        [
            Name::ApproximateNumberOfMessages,
            Name::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .map(|name| attributes.get(name).map_or(0, |n| n.parse().unwrap()))
        .sum()
    }

    /// The raw bodies of every message in the dead-letter queue (received and deleted).
    pub async fn dead_letter_bodies(&self) -> Vec<String> {
        let queue_url = self.dead_letter_url.clone();
        self.drain_bodies(&queue_url.expect("made with a dead-letter queue"))
            .await
    }

    pub async fn record(&self, key: &str) -> Record {
        use webhook_core::ports::Deliveries;
        self.store()
            .get(key)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no record {key}"))
    }
}

/// The sam-local style environment file shared by `sam local invoke --env-vars` and the tests.
pub fn demo_env() -> serde_json::Value {
    let text = std::fs::read_to_string(root().join("events/env.json")).expect("events/env.json");
    serde_json::from_str(&text).expect("events/env.json is JSON")
}

/// The logical id of a provider's function in template.yaml (`MagiclineWebhookFunction`).
pub fn function_id(provider: &str) -> String {
    let mut chars = provider.chars();
    let first = chars.next().unwrap().to_ascii_uppercase();
    format!("{first}{}WebhookFunction", chars.as_str())
}

pub fn demo_tenants_json(provider: &str) -> String {
    demo_env()[function_id(provider)]["TENANTS_JSON"]
        .as_str()
        .unwrap_or_else(|| panic!("events/env.json has no TENANTS_JSON for {provider}"))
        .to_string()
}

pub fn demo_tenants(provider: &str) -> TenantDirectory {
    TenantDirectory::from_json(&demo_tenants_json(provider)).expect("demo tenants")
}

/// Where the demo tenants' APIs are (`<NO_API>/<provider>`): an address nothing answers on.
pub const NO_API: &str = "http://127.0.0.1:9";

/// `provider`'s demo tenants with their API at `<api_base>/<provider>` instead of [`NO_API`].
pub fn demo_tenants_at(provider: &str, api_base: &str) -> TenantDirectory {
    let document = demo_tenants_json(provider).replace(NO_API, api_base);
    TenantDirectory::from_json(&document).expect("demo tenants")
}

/// The real processor on `ports`, every provider's demo tenants with their API at `api` (as
/// `tenants` makes a source of them).
pub fn demo_processor(
    ports: Ports,
    api: &FakeApi,
    settings: ProcessorSettings,
    timeout: Duration,
    tenants: impl Fn(&str, TenantDirectory) -> TenantSource,
) -> Processor {
    let providers = webhook_core::providers::all()
        .into_iter()
        .map(|provider| ProviderTenants {
            tenants: tenants(
                provider.name(),
                demo_tenants_at(provider.name(), &api.base_url),
            ),
            provider,
        })
        .collect();
    Processor::new(
        providers,
        ports,
        DetailClient::new(timeout, webhook_core::clock::system()),
        settings,
    )
}

/// An API Gateway HTTP API (v2) event file turned into the request the core sees, through
/// the Lambda glue's own conversion.
pub fn load_event(path: &Path) -> WebhookRequest {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    apigw_request(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// An API Gateway event document as the webhook Lambda turns it into the core's request.
pub fn apigw_request(event_json: &str) -> Result<WebhookRequest, String> {
    lambda_http::request::from_str(event_json)
        .map(::lambda::to_core)
        .map_err(|e| e.to_string())
}

/// The event file `events/<relative>`.
pub fn event(relative: &str) -> WebhookRequest {
    load_event(&root().join("events").join(relative))
}

pub fn response_json(response: &WebhookResponse) -> serde_json::Value {
    serde_json::from_slice(response.body()).expect("response body is JSON")
}

/// A POST to `/webhooks/<provider>` with the given headers and body.
pub fn post(provider: &str, headers: &[(&str, &str)], body: &str) -> WebhookRequest {
    let mut request = http::Request::builder()
        .method("POST")
        .uri(format!("https://example.test/webhooks/{provider}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request
        .body(Bytes::copy_from_slice(body.as_bytes()))
        .unwrap()
}
pub mod drain;
pub mod egym_management;
pub mod fake_api;
pub mod lambda;
pub mod proxy;

/// Waits until `done` holds, looking every 10 ms; fails the test after `within`.
pub async fn wait_until(within: Duration, done: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(
            started.elapsed() < within,
            "condition not reached within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The in-memory store, except that every new record is refused with `error()`: a store
/// that is down (`Unavailable`) or one that cannot hold the value (`Rejected`).
pub struct RefusingPuts {
    pub inner: Arc<adapter_memory::MemoryStore>,
    pub error: fn() -> StoreError,
}

#[async_trait::async_trait]
impl Deliveries for RefusingPuts {
    async fn put_new(&self, _: &Record) -> Result<PutOutcome, StoreError> {
        Err((self.error)())
    }
    async fn get(&self, k: &str) -> Result<Option<Record>, StoreError> {
        self.inner.get(k).await
    }
}

#[async_trait::async_trait]
impl Handover for RefusingPuts {
    async fn take_over(&self, k: &str, s: i64, n: i64) -> Result<bool, StoreError> {
        self.inner.take_over(k, s, n).await
    }
    async fn release(&self, k: &str, n: i64) -> Result<(), StoreError> {
        self.inner.release(k, n).await
    }
    async fn mark_queued(&self, k: &str) -> Result<(), StoreError> {
        self.inner.mark_queued(k).await
    }
    async fn pending(&self, n: i64, l: usize) -> Result<Vec<Pending>, StoreError> {
        self.inner.pending(n, l).await
    }
}

#[async_trait::async_trait]
impl Claims for RefusingPuts {
    async fn claim(&self, k: &str, n: i64, l: i64) -> Result<Claim, StoreError> {
        self.inner.claim(k, n, l).await
    }
    async fn finish_with(
        &self,
        k: &str,
        l: i64,
        o: &Outcome,
        n: i64,
        h: Option<&[webhook_core::model::Tried]>,
    ) -> Result<bool, StoreError> {
        self.inner.finish_with(k, l, o, n, h).await
    }
    async fn item_done(&self, p: &str, i: u32, f: bool, e: i64) -> Result<ItemsDone, StoreError> {
        self.inner.item_done(p, i, f, e).await
    }
}

#[async_trait::async_trait]
impl Erasing for RefusingPuts {
    async fn erase_subject(&self, s: &str, n: i64, e: i64) -> Result<Erased, StoreError> {
        self.inner.erase_subject(s, n, e).await
    }
    async fn subject_records(&self, s: &str) -> Result<Vec<String>, StoreError> {
        self.inner.subject_records(s).await
    }
    async fn link_persons(&self, k: &str, p: &[String], e: i64) -> Result<(), StoreError> {
        self.inner.link_persons(k, p, e).await
    }
    async fn erased_at(&self, s: &str) -> Result<Option<i64>, StoreError> {
        self.inner.erased_at(s).await
    }
    async fn erase_record(&self, k: &str, n: i64) -> Result<Erased, StoreError> {
        self.inner.erase_record(k, n).await
    }
}

#[async_trait::async_trait]
impl Operating for RefusingPuts {
    async fn list(&self, f: &EventFilter) -> Result<Vec<Record>, StoreError> {
        self.inner.list(f).await
    }
    async fn reopen(&self, k: &str, n: i64, l: i64) -> Result<bool, StoreError> {
        self.inner.reopen(k, n, l).await
    }
    async fn requeue_stuck(&self, k: &str, n: i64, l: i64) -> Result<bool, StoreError> {
        self.inner.requeue_stuck(k, n, l).await
    }
    async fn resolve_quarantine(&self, k: &str, t: &str, n: i64) -> Result<bool, StoreError> {
        self.inner.resolve_quarantine(k, t, n).await
    }
}

/// template.yaml as JSON, short tags in their long form (`{"Ref": "EventsTable"}`).
pub fn template() -> serde_json::Value {
    template_at(&root().join("template.yaml"))
}

/// A template file as JSON, as [`template`] reads the project's.
pub fn template_at(path: &std::path::Path) -> serde_json::Value {
    let output = std::process::Command::new(python())
        .arg(root().join("scripts/cfn.py"))
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/cfn.py with {:?}: {e}", python()));
    assert!(
        output.status.success(),
        "scripts/cfn.py template.yaml failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("scripts/cfn.py prints JSON")
}

/// The resources of one `Type`, by logical id.
pub fn resources_of_type<'a>(
    template: &'a serde_json::Value,
    kind: &str,
) -> std::collections::BTreeMap<&'a str, &'a serde_json::Value> {
    template["Resources"]
        .as_object()
        .expect("Resources")
        .iter()
        .filter(|(_, resource)| resource["Type"] == kind)
        .map(|(name, resource)| (name.as_str(), resource))
        .collect()
}

/// The in-memory store and queue on a clock the test moves, with the real webhook handlers
/// and the real processor (every provider's demo tenants, their APIs at `api`) on them: for
/// what depends on time (backoff, delays, token expiry) without sleeping.
pub struct InMemory {
    pub memory: adapter_memory::Memory,
    pub clock: Arc<webhook_core::clock::ManualClock>,
    pub processor: Processor,
}

impl InMemory {
    pub fn new(api: &FakeApi, settings: ProcessorSettings) -> InMemory {
        let clock = webhook_core::clock::ManualClock::now();
        let memory = adapter_memory::Memory::new(settings.max_receives, clock.clone());
        let providers = webhook_core::providers::all()
            .into_iter()
            .map(|provider| ProviderTenants {
                tenants: TenantSource::fixed(demo_tenants_at(provider.name(), &api.base_url)),
                provider,
            })
            .collect();
        let processor = Processor::new(
            providers,
            memory.ports.clone(),
            DetailClient::new(Duration::from_secs(2), clock.clone()),
            settings,
        );
        InMemory {
            memory,
            clock,
            processor,
        }
    }

    /// Sends an event file through its provider's real webhook handler; returns the key.
    pub async fn deliver(&self, file: &str) -> String {
        let provider = file.split('/').next().unwrap();
        self.deliver_request(provider, event(file)).await
    }

    /// Sends a request through `provider`'s real webhook handler; returns the key it stored.
    pub async fn deliver_request(&self, provider: &str, request: WebhookRequest) -> String {
        let ingest = Ingest::new(
            webhook_core::providers::by_name(provider).expect("known provider"),
            demo_tenants(provider),
            self.memory.ports.clone(),
            IngestSettings::default(),
        );
        let keys = || -> std::collections::BTreeSet<String> {
            self.memory
                .store
                .records()
                .into_iter()
                .map(|r| r.key)
                .collect()
        };
        let before = keys();
        let response = ingest.handle(request).await;
        assert!(response.status().is_success(), "{provider}");
        let new: Vec<String> = keys().difference(&before).cloned().collect();
        assert_eq!(new.len(), 1, "{provider}: one new record stored");
        new[0].clone()
    }

    /// Receives the visible messages (hidden 30 s while processed) and processes them as the
    /// dev server does; returns how many there were.
    pub async fn pump(&self) -> usize {
        use webhook_core::ports::QueueConsumer;
        let queue = self.memory.queue.as_ref();
        let batch = queue.receive(10, Duration::from_secs(30)).await.unwrap();
        let count = batch.len();
        self.processor.process_received(queue, batch).await.unwrap();
        count
    }

    pub async fn record(&self, key: &str) -> Record {
        self.memory
            .store
            .get(key)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no record {key}"))
    }

    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

/// Events published downstream, in order (a publisher for the adapters without a bus).
#[derive(Default)]
pub struct Published(Mutex<Vec<webhook_core::downstream::DownstreamEvent>>);

#[async_trait::async_trait]
impl webhook_core::downstream::Publisher for Published {
    async fn publish(
        &self,
        event: &webhook_core::downstream::DownstreamEvent,
    ) -> Result<(), webhook_core::downstream::PublishError> {
        self.0.lock().unwrap().push(event.clone());
        Ok(())
    }
}

impl Published {
    /// What was published after the first `count` events, for an assertion's message.
    pub fn since(&self, count: usize) -> String {
        format!("{:?}", &self.0.lock().unwrap()[count..])
    }

    pub fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// A bus on the local endpoint whose every `webhooks.*` event lands in a queue.
pub struct Bus {
    name: String,
    events: aws_sdk_eventbridge::Client,
    sqs: aws_sdk_sqs::Client,
    capture_url: String,
}

impl Bus {
    pub async fn new() -> Bus {
        let aws = local_aws().await;
        let events = aws_sdk_eventbridge::Client::new(&aws);
        let sqs = aws_sdk_sqs::Client::new(&aws);
        let name = unique_name("bus");
        events.create_event_bus().name(&name).send().await.unwrap();
        let capture_url = sqs
            .create_queue()
            .queue_name(unique_name("published"))
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let arn = queue_arn(&sqs, &capture_url).await;
        events
            .put_rule()
            .name("everything")
            .event_bus_name(&name)
            .event_pattern(r#"{"source": [{"prefix": "webhooks."}]}"#)
            .send()
            .await
            .unwrap();
        events
            .put_targets()
            .rule("everything")
            .event_bus_name(&name)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("capture")
                    .arn(arn)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        Bus {
            name,
            events,
            sqs,
            capture_url,
        }
    }

    pub fn publisher(&self) -> Arc<adapter_aws::EventBus> {
        Arc::new(adapter_aws::EventBus::new(self.events.clone(), &self.name))
    }

    /// Every event published since the last look (each is seen once).
    pub async fn published(&self) -> Vec<serde_json::Value> {
        let mut found = Vec::new();
        loop {
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.capture_url)
                .max_number_of_messages(10)
                .visibility_timeout(300)
                .send()
                .await
                .unwrap()
                .messages
                .unwrap_or_default();
            if received.is_empty() {
                return found;
            }
            found.extend(
                received
                    .iter()
                    .map(|m| serde_json::from_str(m.body().unwrap()).unwrap()),
            );
        }
    }
}

/// Serves `ingest` at `POST /webhooks/<provider>` on a loopback port, as API Gateway hands a
/// request to the webhook's Lambda; stops when the handle is aborted or the test ends.
pub async fn serve_ingest(ingest: Ingest) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    use axum::body::{to_bytes, Body};
    use axum::extract::{Request, State};
    use axum::response::Response;

    async fn webhook(State(ingest): State<Arc<Ingest>>, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let bytes = to_bytes(body, 1 << 20).await.expect("a body under 1 MiB");
        let (parts, body) = ingest
            .handle(WebhookRequest::from_parts(parts, bytes))
            .await
            .into_parts();
        Response::from_parts(parts, Body::from(body))
    }
    let router = axum::Router::new()
        .route("/webhooks/{provider}", axum::routing::post(webhook))
        .with_state(Arc::new(ingest));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    (addr, server)
}

/// Runs `future` on a runtime of its own (two worker threads, as `#[tokio::test(flavor =
/// "multi_thread", worker_threads = 2)]` would): for tests that run in a process of their own.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(future)
}
