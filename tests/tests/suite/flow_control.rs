//! Flow control: a provider's API key is called at the rate the provider allows, shared by
//! every processor, and never over it. The drains (`tests::drain`) run here on a scaled-down
//! window (20 calls a second instead of EGYM's 60 in 10 s); `scripts/bench` runs the same code
//! at each provider's published limit (`tests/benches/drain.rs`) and reports the share of that
//! rate achieved. The pacer's slots on every adapter, DynamoDB's under contention among them,
//! are `conformance.rs`'s.

use std::sync::Arc;
use std::time::Duration;

use adapter_memory::Memory;
use testkit::Kit;
use tests::drain::{self, Adapters, Drained, Limit, Pacing};
use tests::fake_api::FakeApi;
use webhook_core::model::Status;
use webhook_core::ports::{Deliveries, QueueConsumer};
use webhook_core::process::ProcessorSettings;
use webhook_core::tenants::{TenantDirectory, TenantSource};
use webhook_core::{Ingest, IngestSettings};

const GYM: &str = "gym-berlin-01";

/// The scaled-down window: 20 calls a second per API key, for the fake and the tenants alike.
const SCALED: Limit = Limit {
    calls: 20,
    per: Duration::from_secs(1),
};
const EVENTS: u64 = 60;

/// The kits of the providers that publish a rate limit.
fn rate_limited() -> Vec<Kit> {
    let kits = drain::rate_limited_kits();
    assert!(kits.len() >= 3, "EGYM, Waitwhile and Magicline publish one");
    kits
}

/// Every event processed once, no call over the limit, no wait taken to the dead letters.
fn assert_within_the_limit(drained: &Drained) {
    assert_within(drained, 0);
}

/// The same, with up to `over` calls answered 429: where the store is a wire endpoint serving
/// one request at a time, a call can reach the API later after its slot than the next one
/// after its own, and the provider counts arrivals (such a 429 is waited out, never an attempt).
fn assert_within(drained: &Drained, over: usize) {
    let who = format!("{} through {}", drained.provider, drained.through);
    assert_eq!(
        drained.processed, drained.events as usize,
        "{who}: processed"
    );
    assert!(
        drained.limited <= over,
        "{who}: {} calls over the rate",
        drained.limited
    );
    assert_eq!(
        drained.calls, drained.events as usize,
        "{who}: each event fetched once"
    );
    assert_eq!(drained.dead_letters, 0, "{who}: dead letters");
}

/// Three processors drain one tenant's events at once, each far faster than the tenant's key
/// may be called: together they call it at its rate (the fake API answers 429 to any call over
/// it, counted in a sliding window as providers count), each event is processed once, and no
/// wait takes a message to the dead letters. Every provider that publishes a limit, at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn processors_draining_one_key_together_stay_within_its_rate() {
    let kits = rate_limited();
    let drains = kits.iter().map(|kit| async move {
        let adapters = Adapters::Memory(Memory::new(3, webhook_core::clock::system()));
        drain::through_processors(kit, &adapters, 3, EVENTS, Pacing::Configured(SCALED)).await
    });
    for drained in futures::future::join_all(drains).await {
        assert_within_the_limit(&drained);
    }
}

/// The same on DynamoDB and SQS: the pacer's slots are conditional writes on the table, a wait
/// is a delayed copy of the message, and the queue sends a message received 3 times to its
/// dead-letter queue. Fewer events: the local endpoint serves one request at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn processors_on_dynamodb_and_sqs_share_one_keys_rate() {
    const ON_THE_ENDPOINT: u64 = 20;
    let kits = rate_limited();
    let drains = kits.iter().map(|kit| async move {
        let adapters = Adapters::Aws(tests::Backend::with_dead_letter_queue(3).await);
        let pacing = Pacing::Configured(SCALED);
        drain::through_processors(kit, &adapters, 3, ON_THE_ENDPOINT, pacing).await
    });
    for drained in futures::future::join_all(drains).await {
        assert_within(&drained, 1);
    }
}

/// A paused gym's events are acknowledged and stored but not processed — no claim, no call, no
/// receive used up — while another gym's are; once resumed they are processed, each once.
#[tokio::test]
async fn a_paused_tenant_is_held_without_using_up_attempts_and_processed_once_resumed() {
    let api = FakeApi::start().await;
    let settings = ProcessorSettings {
        max_receives: 2,
        ..ProcessorSettings::default()
    };
    let local = tests::InMemory::new(&api, settings);
    let operations = webhook_core::operate::Operations::new(
        local.memory.ports.clone(),
        IngestSettings::default(),
    );
    operations.pause("egym", Some(GYM), true).await.unwrap();
    let held = local.deliver("egym/gym-checkin.json").await;
    let other = local.deliver("egym/second-gym.json").await;
    for _ in 0..3 {
        local.pump().await;
        assert_eq!(local.record(&other).await.status, Status::Processed);
        let record = local.record(&held).await;
        assert_ne!(record.status, Status::Processed);
        assert_eq!(record.attempts, 0, "not even claimed");
        assert_eq!(local.memory.queue.len(), 1, "its message waits");
        local.advance(Duration::from_secs(31));
    }
    assert_eq!(api.total_calls(), 1, "only the other gym's");
    assert!(
        local.memory.queue.dead_letters().is_empty(),
        "no receive used up"
    );
    operations.pause("egym", Some(GYM), false).await.unwrap();
    local.advance(Duration::from_secs(31));
    local.pump().await;
    let record = local.record(&held).await;
    assert_eq!((record.status, record.attempts), (Status::Processed, 1));
    assert_eq!(api.total_calls(), 2);
}

/// On SQS too a paused provider's message waits as a delayed copy: nothing processed, nothing
/// counted, nothing visible until the hold is over.
#[tokio::test]
async fn a_paused_provider_waits_in_a_delayed_copy_on_sqs() {
    let backend = tests::Backend::with_dead_letter_queue(2).await;
    let api = FakeApi::start().await;
    let processor = backend.processor(&api, ProcessorSettings::default(), Duration::from_secs(5));
    let operations =
        webhook_core::operate::Operations::new(backend.ports(), IngestSettings::default());
    operations.pause("egym", None, true).await.unwrap();
    let response = backend
        .ingest("egym")
        .handle(tests::event("egym/gym-checkin.json"))
        .await;
    assert_eq!(response.status(), 202, "still acknowledged and stored");
    let key = tests::response_json(&response)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (received, failed) = backend.pump(&processor).await;
    assert_eq!((received, failed.len()), (1, 0));
    assert_eq!(
        backend.messages_waiting().await,
        0,
        "nothing visible or in flight"
    );
    assert_eq!(backend.record(&key).await.attempts, 0);
    assert_eq!(api.total_calls(), 0);
    let paused = operations.paused().await.unwrap();
    assert_eq!(paused.len(), 1);
    assert_eq!(paused[0].scope, "egym");
}

/// A studio's automatic check-out of 300 customers, against an API answering in 250 ms: split
/// into 300 items, each fetched on its own, the event `PROCESSED` once all are, nothing in the
/// dead letters; a 429 at the 150th call makes that one item wait and repeats no other call.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_check_out_of_300_customers_is_split_into_items_and_a_429_repeats_no_call() {
    const CUSTOMERS: u64 = 300;
    let api = FakeApi::start().await;
    api.set(
        "/magicline/",
        tests::fake_api::Behavior::Slow(Duration::from_millis(250)),
    );
    api.set_nth(
        150,
        tests::fake_api::Behavior::TooManyRequests {
            retry_after: Some("1".into()),
        },
    );
    let memory = Memory::new(3, webhook_core::clock::system());
    let mut document: serde_json::Value = serde_json::from_str(
        &tests::demo_tenants_json("magicline").replace(tests::NO_API, &api.base_url),
    )
    .unwrap();
    for tenant in document["tenants"].as_array_mut().unwrap() {
        tenant["api"]["rate"] = serde_json::json!({"calls": 1000, "per_seconds": 1});
    }
    let tenants = || TenantDirectory::from_json(&document.to_string()).unwrap();
    let ingest = Ingest::new(
        webhook_core::providers::by_name("magicline").unwrap(),
        tenants(),
        memory.ports.clone(),
        IngestSettings::default(),
    );
    let checkouts: Vec<serde_json::Value> = (0..CUSTOMERS)
        .map(|n| serde_json::json!({"customerId": 4_500_000 + n, "checkoutTime": "2026-12-04T22:00:00Z"}))
        .collect();
    let body = serde_json::json!({"entityId": 1001, "uuid": "checkout-300", "payload": [
        {"timestamp": 1795640400000u64, "type": "AUTOMATIC_CUSTOMER_CHECKOUT", "content": {"checkouts": checkouts}}
    ]});
    let request = tests::post(
        "magicline",
        &[("x-api-key", "ml-demo-key-1001-new")],
        &body.to_string(),
    );
    let response = ingest.handle(request).await;
    let key = tests::response_json(&response)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let settings = ProcessorSettings {
        max_receives: 3,
        retry_backoff: Duration::ZERO,
        ..ProcessorSettings::default()
    };
    let started = std::time::Instant::now();
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let processor = Arc::new(tests::demo_processor(
                memory.ports.clone(),
                &api,
                settings.clone(),
                Duration::from_secs(5),
                |provider, demo| {
                    TenantSource::fixed(if provider == "magicline" {
                        tenants()
                    } else {
                        demo
                    })
                },
            ));
            let (memory, key) = (memory.clone(), key.clone());
            tokio::spawn(async move {
                let queue = memory.queue.as_ref();
                while memory.store.get(&key).await.unwrap().unwrap().status != Status::Processed {
                    assert!(started.elapsed() < Duration::from_secs(60), "not processed");
                    let batch = queue.receive(10, Duration::from_secs(30)).await.unwrap();
                    if batch.is_empty() {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    processor.process_received(queue, batch).await.unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let event = memory.store.get(&key).await.unwrap().unwrap();
    assert_eq!(event.detail.as_deref(), Some(r#"{"items":300}"#));
    let requests = api.requests();
    let mut calls: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for call in requests.iter().filter(|call| call.provider == "magicline") {
        *calls.entry(call.path.as_str()).or_default() += 1;
    }
    assert_eq!(
        calls.len(),
        CUSTOMERS as usize,
        "every customer's check-ins"
    );
    let repeated: Vec<_> = calls.iter().filter(|(_, n)| **n > 1).collect();
    assert_eq!(
        repeated.len(),
        1,
        "only the item answered 429 is called again: {repeated:?}"
    );
    assert_eq!(requests.len(), CUSTOMERS as usize + 1);
    let items = memory
        .store
        .records()
        .into_iter()
        .filter(|record| webhook_core::process::item_of(record).as_deref() == Some(key.as_str()))
        .filter(|record| record.status == Status::Processed && record.detail.is_some())
        .count();
    assert_eq!(
        items, CUSTOMERS as usize,
        "each item stored with its answer"
    );
    assert!(memory.queue.dead_letters().is_empty());
}

/// The dev server's four workers share the SQLite pacer: each provider's burst, sent over
/// HTTP, is fetched from an API that counts its key's calls (429 above 20 a second) without a
/// 429, each event once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dev_servers_workers_share_one_keys_rate() {
    let kits = rate_limited();
    let drains = kits
        .iter()
        .map(|kit| drain::through_devserver(kit, 4, EVENTS, Pacing::Configured(SCALED)));
    for drained in futures::future::join_all(drains).await {
        assert_within_the_limit(&drained);
    }
}
