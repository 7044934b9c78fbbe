//! CPU of the ack path and of the processor's per-message work, with in-memory ports (no I/O).
//!
//! `cargo bench -p e2e --bench ack_path` (scripts/bench runs it with shorter timings).
//!
//! Groups:
//! - `ack/<provider>/<tenants>`: `Ingest::handle` on a new delivery (verify + tenant lookup +
//!   parse + dedup key + record build + store put + queue message build and JSON encoding +
//!   answer), with 1 and 10,000 tenants configured. Every iteration is a new delivery (fresh
//!   dedup key) and a tenant picked across the whole directory, so the accept path is measured,
//!   not the duplicate path or one hot tenant.
//! - `ack_from_apigw_json/magicline`: the same plus decoding the API Gateway event JSON into the
//!   request, as the Lambda runtime does before the handler runs.
//! - `ack_worst_case/...`: lookups that are linear by design (a Waitwhile account-wide webhook
//!   without `?tenant=`, which tries every registered URL; TIMIFY with every tenant choosing its
//!   own header name, where `ack/timify` has them share one). Reported, not part of the targets.
//! - `processor/...`: `Processor::process` on a queued EGYM `TEST` event (no fetch: read the
//!   message, claim, decide, finish), and `handle_sqs` on a batch of 10 such SQS records.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use adapter_memory::Memory;
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use base64::Engine;
use bytes::Bytes;
use criterion::{criterion_group, BatchSize, Criterion, Throughput};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use shared::fetch::DetailClient;
use shared::ports::{InboundMessage, QueueMessage, Record, Status};
use shared::process::{Processor, ProcessorSettings, ProviderTenants, Verdict};
use shared::tenants::{TenantDirectory, TenantSource};
use shared::{Ingest, IngestSettings, WebhookRequest};

/// Records kept before the store is emptied (outside the timed part) to bound memory.
const STORE_CAPACITY: usize = 20_000;
const TENANT_COUNTS: [usize; 2] = [1, 10_000];

/// The in-memory ports, emptied outside the timed part when full.
struct Bounded(Memory);

impl Bounded {
    fn new() -> Bounded {
        Bounded(Memory::new(5, shared::clock::system()))
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
        use shared::ports::Store;
        futures::executor::block_on(self.0.store.put_new(&record)).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Tenants and requests per provider
// ---------------------------------------------------------------------------------------------

/// The header TIMIFY tenants name for their secret in the normal case (one name shared by all).
const TIMIFY_HEADER: &str = "X-Timify-Secret";

fn secret(provider: &str, index: usize) -> String {
    format!("{provider}-bench-secret-{index:05}-Zq8v2LmN")
}

fn waitwhile_url(index: usize, named: bool) -> String {
    if named {
        format!("https://abc123.execute-api.eu-central-1.amazonaws.com/webhooks/waitwhile?tenant=t{index:05}")
    } else {
        format!(
            "https://abc123.execute-api.eu-central-1.amazonaws.com/webhooks/waitwhile/{index:05}"
        )
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// As deployed: tenant found through its key digest, or `?tenant=` for Waitwhile, and
    /// TIMIFY tenants sharing one header name.
    Normal,
    /// Waitwhile without `?tenant=`; TIMIFY with one header name per tenant.
    Worst,
}

/// A tenants document of `count` tenants of `provider`, each with a unique id and secret.
fn tenants_json(provider: &str, count: usize, variant: Variant) -> String {
    let tenants: Vec<serde_json::Value> = (0..count)
        .map(|index| {
            let mut tenant = serde_json::json!({
                "id": format!("t{index:05}"),
                "webhook_secrets": [secret(provider, index)],
                "api": {"base_url": "http://127.0.0.1:9/api", "api_key": format!("api-key-{index}")},
            });
            match provider {
                "timify" => {
                    tenant["header"] = match variant {
                        Variant::Normal => TIMIFY_HEADER.into(),
                        Variant::Worst => format!("X-Hook-Secret-{index:05}").into(),
                    }
                }
                "waitwhile" => {
                    tenant["url"] = waitwhile_url(index, variant == Variant::Normal).into()
                }
                _ => {}
            }
            tenant
        })
        .collect();
    serde_json::json!({ "tenants": tenants }).to_string()
}

/// A new delivery (`seq` makes its dedup key unique) from tenant `index`.
fn webhook(provider: &str, seq: u64, index: usize, variant: Variant) -> WebhookRequest {
    let secret = secret(provider, index);
    let mut uri =
        format!("https://abc123.execute-api.eu-central-1.amazonaws.com/webhooks/{provider}");
    let mut builder = http::Request::builder()
        .method("POST")
        .header("content-type", "application/json")
        .header("user-agent", "bench/1.0");
    let body = match provider {
        "magicline" => {
            builder = builder.header("x-api-key", &secret);
            format!(
                r#"{{"entityId": 7893459, "uuid": "095be615-a8ad-4c33-8e9c-{seq:012x}", "payload": [{{"timestamp": 1795640400000, "type": "CUSTOMER_CREATED"}}]}}"#
            )
        }
        "egym" => {
            builder = builder.header("x-api-key", &secret);
            format!(
                r#"{{"accountId": "3f1c2a9e-5b7d-4e8f-a0c1-d2e3f4a5b6c7", "timestamp": {}, "type": "GYM_CHECKIN"}}"#,
                1_795_640_400_000u64 + seq
            )
        }
        "timify" => {
            let header = match variant {
                Variant::Normal => TIMIFY_HEADER.to_string(),
                Variant::Worst => format!("X-Hook-Secret-{index:05}"),
            };
            builder = builder.header(header.as_str(), &secret);
            format!(
                r#"{{"event": "customers.created", "companyId": "company-5f1e", "data": {{"id": "cust-{seq}", "updatedAt": "2026-11-25T18:00:00.000Z"}}}}"#
            )
        }
        "flybuy" => {
            builder = builder.header("authorization", format!("Token token=\"{secret}\""));
            format!(
                r#"{{"data": {{"type": "order", "id": {seq}, "arrived_at": null, "customer_state": "created", "eta_at": "2026-11-25T17:15:33.645Z", "partner_identifier": "24667", "state": "created", "redemption_code": "NNSE9J", "created_at": "2026-11-25T17:14:50.941Z", "updated_at": "2026-11-25T17:00:20.442Z", "area_name": null, "customer_id": 135, "site_id": 43, "site_partner_identifier": "", "customer_name": "Demo Customer", "customer_car_type": "Demo Hatchback", "customer_car_color": "Red", "customer_license_plate": "DEMO-123", "pickup_window": null, "customer_state_changed": false, "state_changed": true}}}}"#
            )
        }
        "waitwhile" => {
            let body = format!(
                r#"{{"id": "evt-{seq}-visit-created", "created": "2026-11-25T18:00:11.638Z", "accountId": "acct-demo-0001", "type": "visit.created", "data": {{"id": "Kk1BeidF0N4p8wzp2J0x-{seq}", "updated": "2026-11-25T18:00:11.638Z", "locationId": "loc-downtown", "state": "WAITING", "firstName": "Demo", "partySize": 1}}}}"#
            );
            let url = waitwhile_url(index, variant == Variant::Normal);
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
            mac.update(url.as_bytes());
            mac.update(body.as_bytes());
            let signature =
                base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
            builder = builder.header("x-waitwhile-signature", signature);
            if variant == Variant::Normal {
                uri = format!("{uri}?tenant=t{index:05}");
            }
            body
        }
        other => panic!("no bench request for provider {other}"),
    };
    builder.uri(uri).body(Bytes::from(body)).unwrap()
}

/// A tenant index spread over the directory, so lookups do not hit one hot entry.
fn pick(seq: u64, count: usize) -> usize {
    (seq.wrapping_mul(7919) % count as u64) as usize
}

struct Setup {
    ingest: Ingest,
    store: Bounded,
}

fn ingest_for(provider_name: &str, count: usize, variant: Variant) -> Setup {
    let provider = shared::providers::by_name(provider_name).expect("provider");
    let tenants =
        TenantDirectory::from_json(&tenants_json(provider_name, count, variant)).expect("tenants");
    shared::providers::check_tenants(provider.as_ref(), &tenants).expect("valid tenants");
    let store = Bounded::new();
    let ingest = Ingest::new(
        provider,
        tenants,
        store.0.ports.clone(),
        IngestSettings::default(),
    );
    Setup { ingest, store }
}

/// Fails the bench loudly if the request it measures would not be accepted as new.
fn assert_accepted(runtime: &tokio::runtime::Runtime, setup: &Setup, request: WebhookRequest) {
    let response = runtime.block_on(setup.ingest.handle(request));
    let status = response.status().as_u16();
    let body = String::from_utf8_lossy(response.body()).into_owned();
    assert!(
        status == 202 || (status == 200 && body == "{}"),
        "bench request not accepted as new: {status} {body}"
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
    for provider in ["magicline", "egym", "timify", "flybuy", "waitwhile"] {
        let setups: Vec<_> = TENANT_COUNTS
            .iter()
            .map(|&count| {
                let setup = ingest_for(provider, count, Variant::Normal);
                assert_accepted(
                    &runtime,
                    &setup,
                    webhook(provider, 1 << 40, count - 1, Variant::Normal),
                );
                (count, setup)
            })
            .collect();
        // Flatness is judged on `interleaved_flatness`; these give each count's own median.
        for (count, setup) in &setups {
            let count = *count;
            let seq = AtomicU64::new(0);
            group.bench_function(format!("{provider}/{count}"), |b| {
                b.to_async(&runtime).iter_batched(
                    || {
                        setup.store.trim();
                        let n = seq.fetch_add(1, Ordering::Relaxed);
                        webhook(provider, n, pick(n, count), Variant::Normal)
                    },
                    |request| setup.ingest.handle(request),
                    BatchSize::SmallInput,
                )
            });
        }
    }
    group.finish();

    // The same, starting from the API Gateway event JSON the Lambda runtime receives.
    let mut group = c.benchmark_group("ack_from_apigw_json");
    group.throughput(Throughput::Elements(1));
    let setup = ingest_for("magicline", 1, Variant::Normal);
    let event_template = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../events/magicline/customer-created.json"
    ))
    .expect("events/magicline/customer-created.json");
    let mut event: serde_json::Value = serde_json::from_str(&event_template).unwrap();
    event["headers"]["x-api-key"] = secret("magicline", 0).into();
    let event_template = event.to_string();
    let uuid = "095be615-a8ad-4c33-8e9c-c7612fbf6c9f";
    assert!(event_template.contains(uuid), "the event file changed");
    let seq = AtomicU64::new(0);
    let setup = &setup;
    group.bench_function("magicline/1", |b| {
        b.to_async(&runtime).iter_batched(
            || {
                setup.store.trim();
                let n = seq.fetch_add(1, Ordering::Relaxed);
                event_template.replace(uuid, &format!("095be615-a8ad-4c33-8e9c-{n:012x}"))
            },
            |json| async move {
                let request = lambda_http::request::from_str(&json).expect("API Gateway event");
                setup.ingest.handle(lambda_glue::to_core(request)).await
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();

    // Lookups that are linear by design, for the record.
    let mut group = c.benchmark_group("ack_worst_case");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    for (provider, label) in [
        ("waitwhile", "waitwhile_account_webhook"),
        ("timify", "timify_header_per_tenant"),
    ] {
        for count in TENANT_COUNTS {
            let setup = ingest_for(provider, count, Variant::Worst);
            assert_accepted(
                &runtime,
                &setup,
                webhook(provider, 1 << 40, count - 1, Variant::Worst),
            );
            let seq = AtomicU64::new(0);
            group.bench_function(format!("{label}/{count}"), |b| {
                b.to_async(&runtime).iter_batched(
                    || {
                        setup.store.trim();
                        let n = seq.fetch_add(1, Ordering::Relaxed);
                        webhook(provider, n, pick(n, count), Variant::Worst)
                    },
                    |request| setup.ingest.handle(request),
                    BatchSize::SmallInput,
                )
            });
        }
    }
    group.finish();
}

/// A queued EGYM `TEST` event: processing stores it without a fetch.
fn queued_record(seq: u64) -> (Record, QueueMessage) {
    let timestamp = 1_795_640_400_000u64 + seq;
    let key = format!("egym#gym-berlin-01#3f1c2a9e-5b7d-4e8f-a0c1-d2e3f4a5b6c7#TEST#{timestamp}");
    let record = Record {
        key: key.clone(),
        provider: "egym".into(),
        tenant: "gym-berlin-01".into(),
        event_type: "TEST".into(),
        entity_id: "3f1c2a9e-5b7d-4e8f-a0c1-d2e3f4a5b6c7".into(),
        body: format!(
            r#"{{"accountId": "3f1c2a9e-5b7d-4e8f-a0c1-d2e3f4a5b6c7", "timestamp": {timestamp}, "type": "TEST"}}"#
        ),
        received_at_ms: 1_795_640_400_000,
        status: Status::Queued,
        expires_at: 1_798_232_400,
        ..Record::default()
    };
    let message = record.message();
    (record, message)
}

fn bench_processor(c: &mut Criterion) {
    let runtime = runtime();
    let env: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../events/env.json"))
            .expect("events/env.json"),
    )
    .unwrap();
    let providers = shared::providers::all()
        .into_iter()
        .map(|provider| {
            let variable = format!("{}_TENANTS_JSON", provider.name().to_ascii_uppercase());
            let json = env["ProcessorFunction"][&variable]
                .as_str()
                .unwrap_or(r#"{"tenants": []}"#);
            ProviderTenants {
                provider,
                tenants: TenantSource::fixed(
                    TenantDirectory::from_json(json).expect("demo tenants"),
                ),
            }
        })
        .collect();
    let store = Arc::new(Bounded::new());
    let settings = ProcessorSettings::default();
    let processor = Processor::new(
        providers,
        store.0.ports.clone(),
        DetailClient::new(settings.fetch_timeout, shared::clock::system()),
        settings,
    );

    // Sanity: the measured message is processed and finished without a fetch.
    let (record, message) = queued_record(1 << 40);
    let key = record.key.clone();
    store.insert(record);
    let inbound = InboundMessage {
        id: "check".into(),
        body: serde_json::to_string(&message).unwrap(),
        receive_count: 1,
        receipt_handle: Some("receipt".into()),
    };
    assert_eq!(runtime.block_on(processor.process(&inbound)), Verdict::Done);
    let status = store
        .0
        .store
        .records()
        .into_iter()
        .find(|r| r.key == key)
        .map(|r| r.status);
    assert_eq!(
        status,
        Some(Status::Processed),
        "the bench message must be processed"
    );

    let processor = &processor;
    let mut group = c.benchmark_group("processor");
    group.throughput(Throughput::Elements(1));
    let seq = AtomicU64::new(0);
    group.bench_function("message_skip", |b| {
        b.to_async(&runtime).iter_batched(
            || {
                store.trim_finished();
                let n = seq.fetch_add(1, Ordering::Relaxed);
                let (record, message) = queued_record(n);
                store.insert(record);
                InboundMessage {
                    id: format!("msg-{n}"),
                    body: serde_json::to_string(&message).unwrap(),
                    receive_count: 1,
                    receipt_handle: Some(format!("receipt-{n}")),
                }
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
                        let (record, message) = queued_record(n);
                        store.insert(record);
                        let mut sqs = SqsMessage::default();
                        sqs.message_id = Some(format!("msg-{n}"));
                        sqs.receipt_handle = Some(format!("receipt-{n}"));
                        sqs.body = Some(serde_json::to_string(&message).unwrap());
                        sqs.attributes
                            .insert("ApproximateReceiveCount".into(), "1".into());
                        sqs
                    })
                    .collect();
                let mut event = SqsEvent::default();
                event.records = records;
                event
            },
            |event| async move {
                let response = lambda_glue::handle_sqs(processor, event).await;
                assert!(response.batch_item_failures.is_empty());
                response
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
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
    for provider in ["magicline", "egym", "timify", "flybuy", "waitwhile"] {
        let setups: Vec<(usize, Setup)> = TENANT_COUNTS
            .iter()
            .map(|&count| (count, ingest_for(provider, count, Variant::Normal)))
            .collect();
        let mut samples: Vec<Vec<u64>> = vec![Vec::new(); setups.len()];
        for round in 0..ROUNDS {
            for (index, (count, setup)) in setups.iter().enumerate() {
                setup.store.trim();
                let request = webhook(provider, round, pick(round, *count), Variant::Normal);
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
            .map(|((count, _), values)| {
                values.sort_unstable();
                (count.to_string(), values[values.len() / 2].into())
            })
            .collect();
        println!("interleaved {provider}: median ns by tenant count {medians:?}");
        results.insert(provider.to_string(), medians.into());
    }
    let json = serde_json::json!({ "rounds": ROUNDS, "median_ns": results });
    std::fs::write(out, json.to_string()).expect("write ACK_FLATNESS_JSON");
}

criterion_group!(benches, bench_ack, bench_processor);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    interleaved_flatness();
}
