//! What production adds around the processing path: processed and erased events published to
//! an EventBridge bus (the local endpoint's, routed to a queue the test reads), failed ones
//! not, a failed publication retried; and an embedded-metric-format line for every outcome.

use std::sync::Arc;
use std::time::Duration;

use adapter_aws::EventBus;
use adapter_memory::Memory;
use tests::fake_api::{Behavior, FakeApi};
use tests::{event, post, unique_name, Backend, Bus, Captured};
use webhook_core::metrics::Emf;
use webhook_core::model::Status;
use webhook_core::ports::{Deliveries, Ports, QueueConsumer, StoreError};
use webhook_core::process::ProcessorSettings;
use webhook_core::tenants::TenantSource;
use webhook_core::{Ingest, IngestSettings};

/// What EGYM's `gym-checkin.json` fetches.
const ACCOUNT: &str = "/egym/api/v2/accounts/3f1c2a9e-5b7d-4e8f-a0c1-d2e3f4a5b6c7";

fn settings() -> ProcessorSettings {
    ProcessorSettings {
        max_receives: 2,
        retry_backoff: Duration::ZERO,
        ..ProcessorSettings::default()
    }
}

async fn deliver(backend: &Backend, file: &str) -> String {
    let provider = file.split('/').next().unwrap();
    let response = backend.ingest(provider).handle(event(file)).await;
    assert!(response.status().is_success(), "{file}");
    tests::response_json(&response)["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn processed_and_erased_events_are_published_and_failed_ones_are_not() {
    let backend = Backend::new().await;
    let api = FakeApi::start().await;
    api.set("/magicline/", Behavior::Status(404));
    let bus = Bus::new().await;
    let processor = backend
        .processor(&api, settings(), Duration::from_secs(5))
        .with_publisher(bus.publisher());
    let fetched = deliver(&backend, "egym/second-gym.json").await;
    let failed = deliver(&backend, "magicline/customer-created.json").await;
    let erasure = deliver(&backend, "egym/membership-delete.json").await;
    backend.pump_until_empty(&processor, 20).await;
    assert_eq!(backend.record(&failed).await.status, Status::Failed);

    let published = bus.published().await;
    let keys: Vec<&str> = published
        .iter()
        .map(|e| e["detail"]["key"].as_str().unwrap())
        .collect();
    assert_eq!(published.len(), 2, "{keys:?}");
    assert!(keys.contains(&fetched.as_str()) && keys.contains(&erasure.as_str()));
    let checkin = published
        .iter()
        .find(|e| e["detail"]["key"] == fetched.as_str())
        .unwrap();
    assert_eq!(checkin["source"], "webhooks.egym");
    assert_eq!(checkin["detail-type"], "GYM_CHECKIN");
    assert_eq!(checkin["detail"]["tenant"], "gym-hamburg-02");
    assert!(
        checkin["detail"]["detail"].is_object(),
        "the fetched account"
    );
    let deleted = published
        .iter()
        .find(|e| e["detail"]["key"] == erasure.as_str())
        .unwrap();
    assert_eq!(deleted["detail-type"], "erasure.completed", "the receipt");
    assert_eq!(deleted["detail"]["provider"], "egym");
    assert_eq!(deleted["detail"]["tenant"], "gym-berlin-01");
    assert!(deleted["detail"]["person"]
        .as_str()
        .unwrap()
        .starts_with("account:"));
    assert_eq!(deleted["detail"]["records"], 1, "{deleted}");
}

#[tokio::test]
async fn a_publication_that_fails_is_retried_alone_without_a_new_fetch() {
    let backend = Backend::with_dead_letter_queue(5).await;
    let api = FakeApi::start().await;
    let nowhere = Arc::new(EventBus::new(
        aws_sdk_eventbridge::Client::new(&tests::local_aws().await),
        unique_name("no-such-bus"),
    ));
    let failing = backend
        .processor(&api, settings(), Duration::from_secs(5))
        .with_publisher(nowhere);
    let key = deliver(&backend, "egym/gym-checkin.json").await;
    let (received, failed) = backend.pump(&failing).await;
    assert_eq!(
        (received, failed.len()),
        (1, 0),
        "done with: a copy retries the publication"
    );
    let record = backend.record(&key).await;
    assert_eq!(
        record.status,
        Status::Processed,
        "written before it is published"
    );
    assert!(record.detail.is_some());
    let bus = Bus::new().await;
    let working = backend
        .processor(&api, settings(), Duration::from_secs(5))
        .with_publisher(bus.publisher());
    let started = std::time::Instant::now();
    let mut published = Vec::new();
    while published.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never published"
        );
        if backend.pump(&working).await.0 == 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        published.extend(bus.published().await);
    }
    backend.pump_until_empty(&working, 10).await;
    published.extend(bus.published().await);
    assert_eq!(published.len(), 1);
    assert_eq!(published[0]["detail"]["key"], key);
    assert_eq!(api.calls(ACCOUNT), 1, "fetched once");
    assert_eq!(backend.record(&key).await.attempts, 1);
}

/// The outcomes of the lines that carry `metric`.
fn outcomes(lines: &Captured, metric: &str) -> Vec<String> {
    dimension_of(lines, metric, "Outcome")
}

/// The values of `dimension` on the lines that carry `metric`.
fn dimension_of(lines: &Captured, metric: &str, dimension: &str) -> Vec<String> {
    lines
        .text()
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|line| line.get(metric).is_some())
        .map(|line| line[dimension].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn every_outcome_is_written_as_an_embedded_metric_format_line() {
    let lines = Captured::default();
    let clock = webhook_core::clock::system();
    let metrics = Arc::new(Emf::new("Webhooks/test", clock.clone(), lines.clone()));
    let memory = Memory::new(2, clock.clone());
    let api = FakeApi::start().await;
    api.set("/magicline/", Behavior::Status(404));
    api.set("/flybuy/", Behavior::Status(500));
    api.set("/waitwhile/", Behavior::Status(401));
    let ingest = |provider: &str, ports: Ports| {
        Ingest::new(
            webhook_core::providers::by_name(provider).unwrap(),
            tests::demo_tenants(provider),
            ports,
            IngestSettings {
                max_body_bytes: 4096,
                ..IngestSettings::default()
            },
        )
        .with_metrics(metrics.clone())
    };
    let egym = ingest("egym", memory.ports.clone());
    let key = ("x-api-key", "egym-demo-secret-berlin");
    egym.handle(event("egym/gym-checkin.json")).await;
    egym.handle(event("egym/gym-checkin.json")).await;
    egym.handle(event("egym/bad-wrong-key.json")).await;
    egym.handle(post("egym", &[key], "{")).await;
    egym.handle(post("egym", &[key], &"x".repeat(5000))).await;
    let mut get = post("egym", &[key], "{}");
    *get.method_mut() = http::Method::GET;
    egym.handle(get).await;
    egym.handle(event("egym/test.json")).await;
    egym.handle(event("egym/membership-delete.json")).await;
    let store_down = Ports {
        store: Arc::new(tests::RefusingPuts {
            inner: memory.store.clone(),
            error: || StoreError::Unavailable("throttled".into()),
        }),
        ..memory.ports.clone()
    };
    ingest("egym", store_down)
        .handle(event("egym/second-gym.json"))
        .await;
    for file in [
        "magicline/customer-created.json",
        "flybuy/order-created.json",
        "waitwhile/visit-created.json",
    ] {
        let provider = file.split('/').next().unwrap();
        ingest(provider, memory.ports.clone())
            .handle(event(file))
            .await;
    }
    assert_eq!(
        outcomes(&lines, "Webhooks"),
        [
            "accepted",
            "duplicate",
            "unauthorized",
            "quarantined",
            "too_large",
            "bad_method",
            "accepted",
            "accepted",
            "spilled",
            "accepted",
            "accepted",
            "accepted"
        ]
    );

    let bus = Bus::new().await;
    let processor = tests::demo_processor(
        memory.ports.clone(),
        &api,
        settings(),
        Duration::from_secs(2),
        |_, tenants| TenantSource::fixed(tenants),
    )
    .with_metrics(metrics.clone())
    .with_publisher(bus.publisher());
    // First receives, in the order sent: fetched (the account), stored without a fetch (TEST),
    // erased, the spill stored and fetched, failed (404), retried (500), configuration (401).
    let batch = memory
        .queue
        .receive(10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(batch.len(), 7);
    for message in batch {
        processor.process(&message).await;
    }
    // The last attempt of a message that keeps failing goes to the dead-letter queue.
    let mut last = memory
        .queue
        .receive(10, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(last.is_empty(), "retries wait for their visibility");
    let flybuy = memory
        .store
        .records()
        .into_iter()
        .find(|r| r.provider == "flybuy")
        .unwrap();
    last.push(webhook_core::model::InboundMessage {
        id: "last".into(),
        body: serde_json::to_string(&flybuy.message()).unwrap(),
        receive_count: 2,
        receipt_handle: None,
    });
    processor.process(&last[0]).await;
    let mut processed = outcomes(&lines, "Processed");
    processed.sort();
    assert_eq!(
        processed,
        [
            "configuration",
            "dead_lettered",
            "erased",
            "failed",
            "fetched",
            "fetched",
            "retried",
            "stored_without_fetch"
        ]
    );
    assert_eq!(
        dimension_of(&lines, "Published", "Publication"),
        ["published"; 4],
        "fetched x2, TEST, erasure"
    );

    // A record whose send never happened: the sweeper's recovery is counted.
    let stranded = webhook_core::model::Record {
        key: "egym#gym-berlin-01#stranded".into(),
        provider: "egym".into(),
        tenant: "gym-berlin-01".into(),
        status: webhook_core::model::Status::Received,
        ..webhook_core::model::Record::default()
    };
    memory.store.put_new(&stranded).await.unwrap();
    webhook_core::outbox::Sweeper::new(memory.ports.clone(), Duration::from_secs(60))
        .with_metrics(metrics.clone())
        .sweep(10)
        .await
        .unwrap();
    assert_eq!(outcomes(&lines, "Swept"), ["enqueued"]);
    // The reconciler counts the stuck records on every run, none included: the alarm on them
    // also tells a sweeper that stopped running.
    webhook_core::reconcile::Reconciler::new(memory.ports.clone(), Duration::from_secs(60))
        .with_metrics(metrics.clone())
        .reconcile(Duration::from_secs(30 * 86_400), 10)
        .await
        .unwrap();
    assert_eq!(outcomes(&lines, "Swept"), ["enqueued", "stuck"]);
    let text = lines.text();
    assert!(text.contains("\"FetchLatency\""), "fetch latency measured");
    assert!(text.contains("\"AckLatency\""), "ack latency measured");
    // Each webhook and each handled message is one line: its log line and its metrics.
    let messages: Vec<String> = text
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .map(|line| line["message"].as_str().unwrap_or("-").to_string())
        .collect();
    let count = |name: &str| messages.iter().filter(|m| *m == name).count();
    assert_eq!(
        (count("webhook"), count("processed"), count("sweep")),
        (12, 8, 2),
        "{messages:?}: the sweep's and the reconciliation's"
    );
    // The samples' signs of contract drift, each seen for the first time.
    let drift = dimension_of(&lines, "ContractChanged", "signal");
    assert_eq!(
        drift,
        ["signature_key:raw"],
        "flybuy's demo project signs, its key unpinned"
    );
    assert_eq!(messages.len(), 22 + drift.len(), "no other lines");
}

/// An event type EventBridge would refuse as a `DetailType` — none, or over 128 characters —
/// is published under a bounded one, the type as it came in the detail.
#[tokio::test]
async fn an_event_type_the_bus_would_refuse_goes_out_under_a_bounded_detail_type() {
    let backend = Backend::new().await;
    let api = FakeApi::start().await;
    let bus = Bus::new().await;
    let processor = backend
        .processor(&api, settings(), Duration::from_secs(5))
        .with_publisher(bus.publisher());
    let ingest = IngestSettings::default();
    let long = "T".repeat(300);
    let now = webhook_core::clock::system().now_ms();
    for (key, event_type) in [("no-type", ""), ("long-type", long.as_str())] {
        let record = webhook_core::model::Record {
            key: format!("egym#gym-berlin-01#{key}"),
            provider: "egym".into(),
            tenant: "gym-berlin-01".into(),
            event_type: event_type.into(),
            entity_id: "3f1c2a9e-5b7d-4e8f-a0c1-d2e3f4a5b6c7".into(),
            body: "{}".into(),
            received_at_ms: now,
            lease_until_ms: now,
            expires_at: ingest.expires_at(now),
            ..webhook_core::model::Record::default()
        };
        backend.store().put_new(&record).await.unwrap();
        backend
            .ports()
            .outbox
            .enqueue(&record.message())
            .await
            .unwrap();
    }
    backend.pump_until_empty(&processor, 10).await;
    let mut published = bus.published().await;
    published.sort_by_key(|event| event["detail"]["key"].to_string());
    let types: Vec<(&str, usize)> = published
        .iter()
        .map(|event| {
            let detail_type = event["detail-type"].as_str().unwrap();
            (
                detail_type,
                event["detail"]["event_type"].as_str().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(types.len(), 2, "{published:?}");
    assert_eq!(types[1], ("unknown", 0));
    assert_eq!(types[0].0.chars().count(), 128);
    assert_eq!(types[0].1, 300, "the type as it came, in the detail");
}

/// A publication the bus refuses for good (its answer to the event, not to the moment: a
/// `ValidationException`, which a proxy in front of the local endpoint answers here) is
/// counted and logged as refused, and never retried: the record stays `PROCESSED`.
#[tokio::test]
async fn a_publication_the_bus_refuses_for_good_is_not_retried() {
    let backend = Backend::with_dead_letter_queue(5).await;
    let api = FakeApi::start().await;
    let recorder = tests::proxy::Recorder::start(tests::proxy::local_aws_address()).await;
    recorder.refuse("AWSEvents.PutEvents");
    let refusing = Arc::new(EventBus::new(
        aws_sdk_eventbridge::Client::new(&tests::aws_at(&recorder.url).await),
        unique_name("refusing-bus"),
    ));
    let lines = Captured::default();
    let metrics = Arc::new(Emf::new(
        "Webhooks/test",
        webhook_core::clock::system(),
        lines.clone(),
    ));
    let processor = backend
        .processor(&api, settings(), Duration::from_secs(5))
        .with_publisher(refusing)
        .with_metrics(metrics);
    let key = deliver(&backend, "egym/gym-checkin.json").await;
    assert_eq!(backend.pump(&processor).await, (1, vec![]));
    assert_eq!(backend.record(&key).await.status, Status::Processed);
    // A retry would be a copy delayed by a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    backend.pump_until_empty(&processor, 5).await;
    let put_events = recorder
        .calls()
        .iter()
        .filter(|call| call.target == "AWSEvents.PutEvents")
        .count();
    assert_eq!(put_events, 1, "not retried");
    assert_eq!(
        dimension_of(&lines, "Published", "Publication"),
        ["refused"]
    );
    assert_eq!(api.calls(ACCOUNT), 1);
}
