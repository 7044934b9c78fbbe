//! Flow control: a provider's API key is called at the rate the provider allows, shared by
//! every processor, and never over it. These run the real code on a scaled-down window (20
//! calls a second instead of EGYM's 60 in 10 s); the drain at the provider's real rate, and
//! the share of that rate achieved, are measured by `scripts/bench`. The pacer's slots on
//! every adapter, DynamoDB's under contention among them, are `conformance.rs`'s.

use std::sync::Arc;
use std::time::Duration;

use adapter_memory::Memory;
use e2e::fake_api::FakeApi;
use shared::ports::{QueueConsumer, Status, Store};
use shared::process::{Processor, ProcessorSettings};
use shared::tenants::{TenantDirectory, TenantSource};
use shared::{Ingest, IngestSettings};
use testkit::Kit;

const GYM: &str = "gym-berlin-01";
const RATE: u32 = 20;

/// EGYM's demo tenants with their API at `api`, the gym's key allowed [`RATE`] calls a second.
fn egym_at(api: &FakeApi) -> TenantDirectory {
    let mut document: serde_json::Value =
        serde_json::from_str(&e2e::demo_tenants_json("egym").replace(e2e::NO_API, &api.base_url))
            .unwrap();
    for tenant in document["tenants"].as_array_mut().unwrap() {
        if tenant["id"] == GYM {
            tenant["api"]["rate"] = serde_json::json!({"calls": RATE, "per_seconds": 1});
        }
    }
    TenantDirectory::from_json(&document.to_string()).unwrap()
}

fn processor(memory: &Memory, api: &FakeApi) -> Processor {
    let settings = ProcessorSettings {
        max_receives: 3,
        retry_backoff: Duration::ZERO,
        ..ProcessorSettings::default()
    };
    e2e::demo_processor(
        memory.ports.clone(),
        api,
        settings,
        Duration::from_secs(5),
        |provider, demo| {
            TenantSource::fixed(if provider == "egym" {
                egym_at(api)
            } else {
                demo
            })
        },
    )
}

/// Three processors drain one gym's events at once, each far faster than the gym's key may be
/// called: together they call it at its rate (the fake API answers 429 to any call over it,
/// counted in a sliding window as providers count), each event is processed once, and no wait
/// takes a message to the dead letters.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn processors_draining_one_key_together_stay_within_its_rate() {
    const EVENTS: u64 = 60;
    let memory = Memory::new(3, shared::clock::system());
    let api = FakeApi::start().await;
    api.enforce_rate("egym", RATE as usize, Duration::from_secs(1));
    let tenants = egym_at(&api);
    let ingest = Ingest::new(
        shared::providers::by_name("egym").unwrap(),
        egym_at(&api),
        memory.ports.clone(),
        IngestSettings::default(),
    );
    let kit = Kit::of(shared::providers::by_name("egym").unwrap().as_ref());
    let gym = tenants.get(GYM).unwrap();
    for seq in 0..EVENTS {
        let request = kit.unique(seq, gym, gym.webhook_secrets[0].expose());
        assert_eq!(ingest.handle(request).await.status(), 202);
    }
    let keys: Vec<String> = memory.store.records().into_iter().map(|r| r.key).collect();
    let started = std::time::Instant::now();
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let processor = Arc::new(processor(&memory, &api));
            let (memory, keys) = (memory.clone(), keys.clone());
            tokio::spawn(async move {
                let queue = memory.queue.as_ref();
                for key in &keys {
                    while memory.store.get(key).await.unwrap().unwrap().status != Status::Processed
                    {
                        assert!(
                            started.elapsed() < Duration::from_secs(60),
                            "{key} not processed"
                        );
                        let batch = queue.receive(10, Duration::from_secs(30)).await.unwrap();
                        if batch.is_empty() {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        processor.process_received(queue, batch).await.unwrap();
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    assert_eq!(api.limited(), 0, "no call over the rate");
    let served = api.requests().iter().filter(|call| call.served).count();
    assert_eq!(served, EVENTS as usize, "each event fetched once");
    assert!(memory.queue.dead_letters().is_empty());
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
    let local = e2e::InMemory::new(&api, settings);
    let operations =
        shared::operate::Operations::new(local.memory.ports.clone(), IngestSettings::default());
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
    let backend = e2e::Backend::with_dead_letter_queue(2).await;
    let api = FakeApi::start().await;
    let processor = backend.processor(&api, ProcessorSettings::default(), Duration::from_secs(5));
    let operations = shared::operate::Operations::new(backend.ports(), IngestSettings::default());
    operations.pause("egym", None, true).await.unwrap();
    let response = backend
        .ingest("egym")
        .handle(e2e::event("egym/gym-checkin.json"))
        .await;
    assert_eq!(response.status(), 202, "still acknowledged and stored");
    let key = e2e::response_json(&response)["id"]
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
        e2e::fake_api::Behavior::Slow(Duration::from_millis(250)),
    );
    api.set_nth(
        150,
        e2e::fake_api::Behavior::TooManyRequests {
            retry_after: Some("1".into()),
        },
    );
    let memory = Memory::new(3, shared::clock::system());
    let mut document: serde_json::Value = serde_json::from_str(
        &e2e::demo_tenants_json("magicline").replace(e2e::NO_API, &api.base_url),
    )
    .unwrap();
    for tenant in document["tenants"].as_array_mut().unwrap() {
        tenant["api"]["rate"] = serde_json::json!({"calls": 1000, "per_seconds": 1});
    }
    let tenants = || TenantDirectory::from_json(&document.to_string()).unwrap();
    let ingest = Ingest::new(
        shared::providers::by_name("magicline").unwrap(),
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
    let request = e2e::post(
        "magicline",
        &[("x-api-key", "ml-demo-key-1001-new")],
        &body.to_string(),
    );
    let response = ingest.handle(request).await;
    let key = e2e::response_json(&response)["id"]
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
            let processor = Arc::new(e2e::demo_processor(
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
        .filter(|record| shared::process::item_of(record).as_deref() == Some(key.as_str()))
        .filter(|record| record.status == Status::Processed && record.detail.is_some())
        .count();
    assert_eq!(
        items, CUSTOMERS as usize,
        "each item stored with its answer"
    );
    assert!(memory.queue.dead_letters().is_empty());
}

/// The dev server's four workers share the SQLite pacer: one gym's burst, sent over HTTP, is
/// fetched from an API that counts its key's calls (429 above 20 a second) without a 429, each
/// event once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dev_servers_workers_share_one_keys_rate() {
    const EVENTS: u64 = 40;
    let api = FakeApi::start().await;
    api.enforce_rate("egym", RATE as usize, Duration::from_secs(1));
    let text = std::fs::read_to_string(e2e::root().join("devserver.toml")).unwrap();
    let berlin = r#"api = { base_url = "{sandbox}/egym", api_key = "egym-demo-api-berlin" }"#;
    assert!(text.contains(berlin));
    let paced = format!(
        r#"api = {{ base_url = "{}/egym", api_key = "egym-demo-api-berlin", rate = {{ calls = {RATE}, per_seconds = 1 }} }}"#,
        api.base_url
    );
    let config = std::env::temp_dir().join(format!("{}.toml", e2e::unique_name("paced")));
    std::fs::write(&config, text.replace(berlin, &paced)).unwrap();
    let data = std::env::temp_dir().join(format!("{}.db", e2e::unique_name("paced")));
    let server = devserver::start(devserver::Options {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        config,
        data,
        workers: 4,
        visibility: Duration::from_secs(5),
        poll_interval: Duration::from_millis(20),
        sweep_interval: Duration::from_millis(500),
        ..devserver::Options::default()
    })
    .await
    .unwrap();
    let tenants = egym_at(&api);
    let kit = Kit::of(shared::providers::by_name("egym").unwrap().as_ref());
    let gym = tenants.get(GYM).unwrap();
    let client = reqwest::Client::new();
    for seq in 0..EVENTS {
        let request = kit.unique(seq, gym, gym.webhook_secrets[0].expose());
        let mut post = client.post(format!("http://{}/webhooks/egym", server.addr));
        for (name, value) in request.headers() {
            post = post.header(name.as_str(), value.as_bytes());
        }
        let answer = post.body(request.body().to_vec()).send().await.unwrap();
        assert_eq!(answer.status(), 202);
    }
    let started = std::time::Instant::now();
    loop {
        let records = server.database.recent_records(1000).await.unwrap();
        if records.len() == EVENTS as usize && records.iter().all(|r| r.status == Status::Processed)
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not all processed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(api.limited(), 0, "no call over the rate");
    let served = api.requests().iter().filter(|call| call.served).count();
    assert_eq!(served, EVENTS as usize, "each event fetched once");
    server.shutdown().await;
}
