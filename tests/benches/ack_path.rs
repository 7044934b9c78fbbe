//! CPU of the ack path and of the processor's per-message work, with in-memory ports (no I/O).
//! Every provider, its tenants and its deliveries come from its test kit (`testkit`).
//!
//! `cargo bench -p tests --bench ack_path` (scripts/bench runs it with shorter timings).
//!
//! Groups:
//! - `ack/<provider>/<tenants>`: `Ingest::handle` on a new delivery (verify + tenant lookup +
//!   parse + dedup key + record build + store put + queue message build and JSON encoding +
//!   answer), with 1 and 10,000 tenants configured. Every iteration is a new delivery (the kit's
//!   unique-delivery template) from a tenant picked across the whole directory, so the accept
//!   path is measured, not the duplicate path or one hot tenant.
//! - `ack_from_apigw_json/<first provider>`: the same plus decoding the API Gateway event JSON
//!   into the request, as the Lambda runtime does before the handler runs.
//! - `ack_worst_case/...`: lookups that are linear by design, where a kit names one (`scale.
//!   worst_case`: a Waitwhile account-wide webhook without `?tenant=`, which tries every
//!   registered URL; TIMIFY with every tenant choosing its own header name). Reported, not part
//!   of the targets.
//! - `processor/...`: `Processor::process` on a queued event the kits say is stored without a
//!   call (read the message, claim, decide, finish), and `handle_sqs` on a batch of 10.
//!
//! Two other jobs for scripts/bench, each instead of the benchmarks, chosen by the environment:
//! - `ACK_EVENTS_DIR`: writes, for every provider, API Gateway events of new deliveries of each
//!   body size in `ACK_EVENTS_SIZES` (bytes, default `300,51200`; `ACK_EVENTS_COUNT` of each,
//!   default 200), signed with the provider's own scheme, and its demo tenants, for
//!   bench/cost.py to send through the release bootstraps.
//! - `ACK_ROUNDTRIP_JSON`: `Ingest::handle` on the AWS adapters, the SDK configured as the
//!   functions configure it and pointed at `ACK_ROUNDTRIP_ENDPOINT` (bench/delay_proxy.py in
//!   front of bench/local_aws_timed.py at `ACK_ROUNDTRIP_DIRECT`), as the ack path is now (put,
//!   send) and as it was before (put, send, mark queued: the outbox's `enqueue`, which the
//!   sweeper still uses), in turn; per webhook its time and the endpoint's own time.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use adapter_memory::Memory;
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use criterion::{criterion_group, BatchSize, Criterion, Throughput};
use testkit::{Expect, Kit, Lookup};
use webhook_core::fetch::DetailClient;
use webhook_core::model::{InboundMessage, Record, Status};
use webhook_core::process::{Processor, ProcessorSettings, ProviderTenants, Verdict};
use webhook_core::tenants::{Tenant, TenantSource};
use webhook_core::{Ingest, IngestSettings, WebhookRequest};

/// Where the kits' tenants' APIs point: nothing listens there, and nothing here calls it.
use tests::NO_API;

/// Records kept before the store is emptied (outside the timed part) to bound memory.
const STORE_CAPACITY: usize = 20_000;
const TENANT_COUNTS: [usize; 2] = [1, 10_000];

/// The in-memory ports, emptied outside the timed part when full.
struct Bounded(Memory);

impl Bounded {
    fn new() -> Bounded {
        Bounded(Memory::new(5, webhook_core::clock::system()))
    }

    /// Empties the store and queue when full; call outside the timed part.
    fn trim(&self) {
        if self.0.store.len() >= STORE_CAPACITY {
            self.0.store.retain(|_| false);
            self.0.queue.clear();
        }
    }

    /// Drops finished records when the store is full, keeping those still to be processed
    /// (criterion prepares the inputs of a whole batch before it times them); untimed.
    fn trim_finished(&self) {
        if self.0.store.len() >= STORE_CAPACITY {
            self.0
                .store
                .retain(|record| record.status != Status::Processed);
        }
    }

    /// The in-memory store never waits, so its future completes on the first poll.
    fn insert(&self, record: Record) {
        use webhook_core::ports::Deliveries;
        futures::executor::block_on(self.0.store.put_new(&record)).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Tenants and requests per provider
// ---------------------------------------------------------------------------------------------

/// A new delivery (`seq` makes its dedup key unique) from tenant `index`.
fn webhook(setup: &Setup, seq: u64, index: usize) -> WebhookRequest {
    let tenant = &setup.tenants[index];
    let secret = tenant.webhook_secrets[0].expose();
    setup.kit.unique(seq, tenant, secret)
}

/// A tenant index spread over the directory, so lookups do not hit one hot entry.
fn pick(seq: u64, count: usize) -> usize {
    (seq.wrapping_mul(7919) % count as u64) as usize
}

struct Setup {
    kit: Kit,
    ingest: Ingest,
    tenants: Vec<Tenant>,
    store: Bounded,
}

fn ingest_for(
    provider: &Arc<dyn webhook_core::providers::Provider>,
    count: usize,
    lookup: Lookup,
) -> Setup {
    let kit = Kit::of(provider.as_ref());
    let directory = kit
        .scaled_tenants(count, lookup)
        .expect("the kit has this lookup");
    webhook_core::providers::check_tenants(provider.as_ref(), &directory).expect("valid tenants");
    let tenants = directory.iter().cloned().collect();
    let store = Bounded::new();
    let ingest = Ingest::new(
        provider.clone(),
        directory,
        store.0.ports.clone(),
        IngestSettings::default(),
    );
    Setup {
        kit,
        ingest,
        tenants,
        store,
    }
}

/// Fails the bench loudly if the request it measures would not be accepted as new.
fn assert_accepted(runtime: &tokio::runtime::Runtime, setup: &Setup, request: WebhookRequest) {
    let response = runtime.block_on(setup.ingest.handle(request));
    let status = response.status().as_u16();
    let body = String::from_utf8_lossy(response.body()).into_owned();
    assert!(
        status == setup.kit.accepted_status() && setup.store.0.store.len() == 1,
        "{}: bench request not accepted as new: {status} {body}",
        setup.kit.name()
    );
    setup.store.0.store.retain(|_| false);
    setup.store.0.queue.clear();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn bench_ack(c: &mut Criterion) {
    let runtime = runtime();
    let mut group = c.benchmark_group("ack");
    group.throughput(Throughput::Elements(1));
    for provider in webhook_core::providers::all() {
        for count in TENANT_COUNTS {
            // Flatness is judged on `interleaved_flatness`; these give each count's own median.
            let setup = ingest_for(&provider, count, Lookup::Normal);
            let name = format!("{}/{count}", setup.kit.name());
            bench_new_deliveries(&mut group, &runtime, &name, &setup);
        }
    }
    group.finish();
    bench_from_apigw_json(c, &runtime);

    // Lookups that are linear by design, for the record.
    let mut group = c.benchmark_group("ack_worst_case");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    for provider in webhook_core::providers::all() {
        let Some(label) = Kit::of(provider.as_ref()).worst_case().map(String::from) else {
            continue;
        };
        for count in TENANT_COUNTS {
            let setup = ingest_for(&provider, count, Lookup::WorstCase);
            bench_new_deliveries(&mut group, &runtime, &format!("{label}/{count}"), &setup);
        }
    }
    group.finish();
}

/// `Ingest::handle` on a new delivery each iteration, from tenants across the directory.
fn bench_new_deliveries(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    runtime: &tokio::runtime::Runtime,
    name: &str,
    setup: &Setup,
) {
    let count = setup.tenants.len();
    assert_accepted(runtime, setup, webhook(setup, 1 << 40, count - 1));
    let seq = AtomicU64::new(0);
    group.bench_function(name, |b| {
        b.to_async(runtime).iter_batched(
            || {
                setup.store.trim();
                let n = seq.fetch_add(1, Ordering::Relaxed);
                webhook(setup, n, pick(n, count))
            },
            |request| setup.ingest.handle(request),
            BatchSize::SmallInput,
        )
    });
}

/// The same, starting from the API Gateway event JSON the Lambda runtime receives (for the
/// first provider, one tenant).
fn bench_from_apigw_json(c: &mut Criterion, runtime: &tokio::runtime::Runtime) {
    let mut group = c.benchmark_group("ack_from_apigw_json");
    group.throughput(Throughput::Elements(1));
    let provider = &webhook_core::providers::all()[0];
    let setup = ingest_for(provider, 1, Lookup::Normal);
    let seq = AtomicU64::new(0);
    let setup = &setup;
    group.bench_function(format!("{}/1", setup.kit.name()), |b| {
        b.to_async(runtime).iter_batched(
            || {
                setup.store.trim();
                apigw_json(&webhook(setup, seq.fetch_add(1, Ordering::Relaxed), 0))
            },
            |json| async move {
                let request = lambda_http::request::from_str(&json).expect("API Gateway event");
                setup.ingest.handle(lambda::to_core(request)).await
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// The API Gateway HTTP API (payload 2.0) event carrying `request`.
fn apigw_json(request: &WebhookRequest) -> String {
    let path = request.uri().path();
    let route = format!("POST {path}");
    let mut headers: serde_json::Map<String, serde_json::Value> = request
        .headers()
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().into()))
        .collect();
    let host = request.uri().host().unwrap_or_default();
    headers.insert("host".into(), host.into());
    headers.insert("user-agent".into(), "bench/1.0".into());
    serde_json::json!({
        "version": "2.0",
        "routeKey": route,
        "rawPath": path,
        "rawQueryString": request.uri().query().unwrap_or_default(),
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": "abc123", "domainName": host, "domainPrefix": "abc123",
            "http": { "method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.10", "userAgent": "bench/1.0" },
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef", "routeKey": route, "stage": "$default",
            "time": "25/Nov/2026:19:00:00 +0000", "timeEpoch": 1795640400000u64
        },
        "body": std::str::from_utf8(request.body()).unwrap(),
        "isBase64Encoded": false,
    })
    .to_string()
}

/// A delivery the kits say is stored without an API call, stored and queued through the real
/// handler: the record every processor iteration works on (under a key of its own).
fn stored_without_call(runtime: &tokio::runtime::Runtime) -> Record {
    let (provider, kit, case) = webhook_core::providers::all()
        .into_iter()
        .find_map(|provider| {
            let kit = Kit::of(provider.as_ref());
            let case = kit
                .cases()
                .iter()
                .find(|case| case.process == Some(Expect::Calls(Vec::new())))?
                .clone();
            Some((provider, kit, case))
        })
        .expect("a kit case processed without a call");
    let memory = Memory::new(5, webhook_core::clock::system());
    let ingest = Ingest::new(
        provider,
        kit.tenants(NO_API),
        memory.ports.clone(),
        IngestSettings::default(),
    );
    let status = runtime.block_on(ingest.handle(kit.request(&case))).status();
    assert!(
        status.is_success(),
        "{}/{}: {status}",
        kit.name(),
        case.name
    );
    memory
        .store
        .records()
        .pop()
        .expect("the delivery is stored")
}

fn queued_record(template: &Record, seq: u64) -> Record {
    Record {
        key: format!("{}#{seq}", template.key),
        status: Status::Queued,
        ..template.clone()
    }
}

fn inbound(record: &Record, seq: u64) -> InboundMessage {
    InboundMessage {
        id: format!("msg-{seq}"),
        body: serde_json::to_string(&record.message()).unwrap(),
        receive_count: 1,
        receipt_handle: Some(format!("receipt-{seq}")),
    }
}

fn bench_processor(c: &mut Criterion) {
    let runtime = runtime();
    let providers = webhook_core::providers::all()
        .into_iter()
        .map(|provider| {
            let tenants = Kit::of(provider.as_ref()).tenants(NO_API);
            ProviderTenants {
                provider,
                tenants: TenantSource::fixed(tenants),
            }
        })
        .collect();
    let store = Arc::new(Bounded::new());
    let settings = ProcessorSettings::default();
    let processor = Processor::new(
        providers,
        store.0.ports.clone(),
        DetailClient::new(settings.fetch_timeout, webhook_core::clock::system()),
        settings,
    );
    let template = stored_without_call(&runtime);

    // Sanity: the measured message is processed and finished without a fetch.
    let record = queued_record(&template, 1 << 40);
    store.insert(record.clone());
    let verdict = runtime.block_on(processor.process(&inbound(&record, 1 << 40)));
    assert_eq!(verdict, Verdict::Done);
    let status = store
        .0
        .store
        .records()
        .into_iter()
        .find(|r| r.key == record.key)
        .map(|r| r.status);
    assert_eq!(
        status,
        Some(Status::Processed),
        "the bench message must be processed"
    );

    let processor = &processor;
    let template = &template;
    let mut group = c.benchmark_group("processor");
    group.throughput(Throughput::Elements(1));
    let seq = AtomicU64::new(0);
    group.bench_function("message_skip", |b| {
        b.to_async(&runtime).iter_batched(
            || {
                store.trim_finished();
                let n = seq.fetch_add(1, Ordering::Relaxed);
                let record = queued_record(template, n);
                store.insert(record.clone());
                inbound(&record, n)
            },
            |inbound| async move {
                let verdict = processor.process(&inbound).await;
                assert_eq!(verdict, Verdict::Done);
                verdict
            },
            BatchSize::SmallInput,
        )
    });

    // A batch of 10 as Lambda's SQS event source delivers it; figures are per batch.
    group.throughput(Throughput::Elements(10));
    group.bench_function("sqs_batch_of_10_skip", |b| {
        b.to_async(&runtime).iter_batched(
            || {
                store.trim_finished();
                let records = (0..10)
                    .map(|_| {
                        let n = seq.fetch_add(1, Ordering::Relaxed);
                        let record = queued_record(template, n);
                        store.insert(record.clone());
                        sqs_message(&inbound(&record, n))
                    })
                    .collect();
                let mut event = SqsEvent::default();
                event.records = records;
                event
            },
            |event| async move {
                let response = lambda::handle_sqs(processor, event).await;
                assert!(response.batch_item_failures.is_empty());
                response
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn sqs_message(inbound: &InboundMessage) -> SqsMessage {
    let mut sqs = SqsMessage::default();
    sqs.message_id = Some(inbound.id.clone());
    sqs.receipt_handle = inbound.receipt_handle.clone();
    sqs.body = Some(inbound.body.clone());
    sqs.attributes
        .insert("ApproximateReceiveCount".into(), "1".into());
    sqs
}

/// With 1 and with 10,000 tenants, one webhook from each in turn, each timed on its own: the
/// two medians come from the same stretch of time, so drift of the machine (which criterion's
/// benchmarks, measured one after the other, are exposed to) touches both alike. Written as JSON
/// to `$ACK_FLATNESS_JSON` for the report; skipped when that is not set.
fn interleaved_flatness() {
    let Some(out) = std::env::var_os("ACK_FLATNESS_JSON") else {
        return;
    };
    const ROUNDS: u64 = 100_000;
    let runtime = runtime();
    let mut results = serde_json::Map::new();
    for provider in webhook_core::providers::all() {
        let setups: Vec<Setup> = TENANT_COUNTS
            .iter()
            .map(|&count| ingest_for(&provider, count, Lookup::Normal))
            .collect();
        let mut samples: Vec<Vec<u64>> = vec![Vec::new(); setups.len()];
        for round in 0..ROUNDS {
            for (index, setup) in setups.iter().enumerate() {
                setup.store.trim();
                let request = webhook(setup, round, pick(round, setup.tenants.len()));
                let started = Instant::now();
                let response = runtime.block_on(setup.ingest.handle(request));
                let elapsed = started.elapsed().as_nanos() as u64;
                drop(response);
                // The first tenth warms caches and the allocator up.
                if round >= ROUNDS / 10 {
                    samples[index].push(elapsed);
                }
            }
        }
        let medians: serde_json::Map<String, serde_json::Value> = setups
            .iter()
            .zip(samples.iter_mut())
            .map(|(setup, values)| {
                values.sort_unstable();
                (
                    setup.tenants.len().to_string(),
                    values[values.len() / 2].into(),
                )
            })
            .collect();
        let name = provider.name();
        println!("interleaved {name}: median ns by tenant count {medians:?}");
        results.insert(name.to_string(), medians.into());
    }
    let json = serde_json::json!({ "rounds": ROUNDS, "median_ns": results });
    std::fs::write(out, json.to_string()).expect("write ACK_FLATNESS_JSON");
}

criterion_group!(benches, bench_ack, bench_processor);

// ---------------------------------------------------------------------------------------------
// Events for the release bootstraps (ACK_EVENTS_DIR)
// ---------------------------------------------------------------------------------------------

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The kit's `seq`-th unique delivery from `tenant`, its body padded to `size` bytes with a
/// field no parser reads (when it is shorter), signed again with the provider's scheme.
fn padded(
    kit: &Kit,
    provider: &dyn webhook_core::providers::Provider,
    tenant: &Tenant,
    seq: u64,
    size: usize,
) -> WebhookRequest {
    let secret = tenant.webhook_secrets[0].expose();
    let base = kit.unique(seq, tenant, secret);
    let url = base.uri().to_string();
    let mut body = String::from_utf8(base.body().to_vec()).expect("kit bodies are text");
    const FIELD: usize = r#","bench_padding":"""#.len();
    if body.ends_with('}') && body.len() + FIELD < size {
        let fill = "x".repeat(size - body.len() - FIELD);
        body.truncate(body.len() - 1);
        body.push_str(&format!(r#","bench_padding":"{fill}"}}"#));
    }
    let mut request = http::Request::builder()
        .method("POST")
        .uri(&url)
        .header("content-type", "application/json");
    for (name, value) in provider
        .auth()
        .credential_headers(tenant, secret, &url, body.as_bytes())
    {
        request = request.header(name, value);
    }
    request
        .body(bytes::Bytes::from(body))
        .expect("a valid request")
}

fn write_events(dir: PathBuf) {
    let count: u64 = env_or("ACK_EVENTS_COUNT", 200);
    let sizes: Vec<usize> = std::env::var("ACK_EVENTS_SIZES")
        .unwrap_or_else(|_| "300,51200".into())
        .split(',')
        .map(|s| s.trim().parse().expect("ACK_EVENTS_SIZES: byte counts"))
        .collect();
    // Keys of different runs apart (the uuids and ids of the kits' templates take the digits).
    let run: u64 = env_or(
        "ACK_EVENTS_RUN",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            % 100_000,
    );
    std::fs::create_dir_all(&dir).expect("ACK_EVENTS_DIR");
    let runtime = runtime();
    let mut index = serde_json::Map::new();
    for provider in webhook_core::providers::all() {
        let kit = Kit::of(provider.as_ref());
        let name = kit.name();
        // The demo tenants, their API at `{api}/<provider>` for the caller to fill in.
        std::fs::write(
            dir.join(format!("{name}.tenants.json")),
            kit.tenants_json("{api}"),
        )
        .expect("write tenants");
        let tenants = kit.tenants(NO_API);
        let tenant = tenants.iter().next().expect("a demo tenant");
        let memory = Memory::new(5, webhook_core::clock::system());
        let ingest = Ingest::new(
            provider.clone(),
            kit.tenants(NO_API),
            memory.ports.clone(),
            IngestSettings::default(),
        );
        let mut files = serde_json::Map::new();
        for (i, &size) in sizes.iter().enumerate() {
            let mut lines = String::new();
            let mut body_bytes = 0;
            for n in 0..count {
                let seq = run * 10_000_000 + i as u64 * 1_000_000 + n;
                let request = padded(&kit, provider.as_ref(), tenant, seq, size);
                body_bytes = request.body().len();
                lines.push_str(&apigw_json(&request));
                lines.push('\n');
                if n == 0 {
                    // The bootstraps must take it as a new delivery, as the core does here.
                    let again = padded(&kit, provider.as_ref(), tenant, seq, size);
                    let response = runtime.block_on(ingest.handle(again));
                    assert_eq!(
                        response.status().as_u16(),
                        kit.accepted_status(),
                        "{name}, {size} bytes: not accepted: {}",
                        String::from_utf8_lossy(response.body())
                    );
                }
            }
            let file = format!("{name}-{size}.jsonl");
            std::fs::write(dir.join(&file), lines).expect("write events");
            files.insert(
                size.to_string(),
                serde_json::json!({ "file": file, "count": count, "body_bytes": body_bytes }),
            );
        }
        index.insert(
            name.to_string(),
            serde_json::json!({
                "tenants": format!("{name}.tenants.json"),
                "accepted_status": kit.accepted_status(),
                "sizes": files,
            }),
        );
    }
    std::fs::write(
        dir.join("index.json"),
        serde_json::Value::Object(index).to_string(),
    )
    .expect("write index");
}

// ---------------------------------------------------------------------------------------------
// The ack path through a delaying proxy, before and after (ACK_ROUNDTRIP_JSON)
// ---------------------------------------------------------------------------------------------

/// The ack path as it was before it took two round trips: send, then mark the record
/// `QUEUED` (the outbox's `enqueue`, which the sweeper still uses).
struct MarkQueuedToo(Arc<dyn webhook_core::ports::Outbox>);

#[async_trait::async_trait]
impl webhook_core::ports::Outbox for MarkQueuedToo {
    async fn enqueue(
        &self,
        message: &webhook_core::model::QueueMessage,
    ) -> Result<(), webhook_core::ports::QueueError> {
        self.0.enqueue(message).await
    }

    async fn send_fresh(
        &self,
        message: &webhook_core::model::QueueMessage,
    ) -> Result<(), webhook_core::ports::QueueError> {
        self.0.enqueue(message).await
    }
}

/// Per webhook of one variant: its time, the endpoint's own time, and the requests it made.
#[derive(Default)]
struct Samples {
    raw_ns: Vec<u64>,
    endpoint_ns: Vec<u64>,
    operations: std::collections::BTreeMap<String, u64>,
}

/// The endpoint's log since the last call: (start, end, operation) per request.
async fn endpoint_log(direct: &str) -> Vec<(u64, u64, String)> {
    let log: Vec<serde_json::Value> = reqwest::get(format!("{direct}/_bench/timings"))
        .await
        .expect("endpoint timings")
        .json()
        .await
        .expect("timings JSON");
    log.iter()
        .map(|entry| {
            (
                entry[0].as_u64().unwrap_or_default(),
                entry[1].as_u64().unwrap_or_default(),
                entry[2].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn roundtrip(out: PathBuf) {
    let endpoint = std::env::var("ACK_ROUNDTRIP_ENDPOINT").expect("ACK_ROUNDTRIP_ENDPOINT");
    let direct = std::env::var("ACK_ROUNDTRIP_DIRECT").expect("ACK_ROUNDTRIP_DIRECT");
    let rounds: usize = env_or("ACK_ROUNDTRIP_N", 300);
    // The functions' SDK configuration (adapter_aws::sdk::from_env) reads these; set before
    // any thread exists.
    for (name, value) in [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/dev/null"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
    ] {
        std::env::set_var(name, value);
    }
    let runtime = runtime();
    let report = runtime.block_on(async {
        let aws = adapter_aws::sdk::from_env().await;
        let setup = tests::aws_at(&direct).await;
        let setup_dynamodb = aws_sdk_dynamodb::Client::new(&setup);
        let setup_sqs = aws_sdk_sqs::Client::new(&setup);
        let suffix = std::process::id();
        let table = format!("bench-roundtrip-{suffix}");
        adapter_aws::create_table(&setup_dynamodb, &table)
            .await
            .expect("create table");
        let queue_url = setup_sqs
            .create_queue()
            .queue_name(format!("bench-roundtrip-{suffix}"))
            .send()
            .await
            .expect("create queue")
            .queue_url
            .unwrap();
        let store = adapter_aws::DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), &table);
        let queue = adapter_aws::SqsQueue::new(aws_sdk_sqs::Client::new(&aws), &queue_url);
        let provider = webhook_core::providers::all().remove(0);
        let kit = Kit::of(provider.as_ref());
        store.warm_up(&format!("{}#warm-up", kit.name())).await;
        queue.warm_up().await;
        let now = adapter_aws::ports(store, queue, webhook_core::clock::system());
        let before = webhook_core::ports::Ports {
            outbox: Arc::new(MarkQueuedToo(now.outbox.clone())),
            ..now.clone()
        };
        let variants = [("three_calls", before), ("two_calls", now)].map(|(name, ports)| {
            let ingest = Ingest::new(
                provider.clone(),
                kit.tenants(NO_API),
                ports,
                IngestSettings::default(),
            );
            (name, ingest)
        });
        let tenants = kit.tenants(NO_API);
        let tenant = tenants.iter().next().expect("a demo tenant");
        let secret = tenant.webhook_secrets[0].expose().to_string();
        let run = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            % 100_000;
        let mut seq = run * 10_000_000;
        let mut results: Vec<Samples> = vec![Samples::default(), Samples::default()];
        let warm_up = 10;
        for round in 0..rounds + warm_up {
            if round % 50 == 0 {
                // moto's SendMessage slows down as a queue fills: emptied between webhooks.
                let consumer = adapter_aws::SqsQueue::new(setup_sqs.clone(), &queue_url);
                use webhook_core::ports::QueueConsumer;
                loop {
                    let messages = consumer
                        .receive(10, std::time::Duration::from_secs(30))
                        .await
                        .expect("receive");
                    if messages.is_empty() {
                        break;
                    }
                    let handles: Vec<String> = messages
                        .into_iter()
                        .filter_map(|m| m.receipt_handle)
                        .collect();
                    consumer.delete_all(&handles).await.expect("delete");
                }
            }
            for (index, (name, ingest)) in variants.iter().enumerate() {
                seq += 1;
                let request = kit.unique(seq, tenant, &secret);
                endpoint_log(&direct).await;
                let started = Instant::now();
                let response = ingest.handle(request).await;
                let elapsed = started.elapsed().as_nanos() as u64;
                assert_eq!(
                    response.status().as_u16(),
                    kit.accepted_status(),
                    "{name}: {}",
                    String::from_utf8_lossy(response.body())
                );
                let log = endpoint_log(&direct).await;
                if round < warm_up {
                    continue;
                }
                let samples = &mut results[index];
                samples.raw_ns.push(elapsed);
                samples
                    .endpoint_ns
                    .push(log.iter().map(|(s, e, _)| e.saturating_sub(*s)).sum());
                for (_, _, operation) in log {
                    *samples.operations.entry(operation).or_default() += 1;
                }
            }
        }
        let variants: serde_json::Map<String, serde_json::Value> = variants
            .iter()
            .zip(results)
            .map(|((name, _), samples)| {
                (
                    name.to_string(),
                    serde_json::json!({
                        "raw_ns": samples.raw_ns,
                        "endpoint_ns": samples.endpoint_ns,
                        "operations": samples.operations,
                    }),
                )
            })
            .collect();
        serde_json::json!({
            "provider": kit.name(),
            "webhooks": rounds,
            "variants": variants,
        })
    });
    std::fs::write(out, report.to_string()).expect("write ACK_ROUNDTRIP_JSON");
}

fn main() {
    if let Some(dir) = std::env::var_os("ACK_EVENTS_DIR") {
        write_events(dir.into());
        return;
    }
    if let Some(out) = std::env::var_os("ACK_ROUNDTRIP_JSON") {
        roundtrip(out.into());
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
    interleaved_flatness();
}
