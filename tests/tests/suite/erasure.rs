//! Erasure that holds: a fetch running while its subject is erased writes no detail, later
//! deliveries about an erased subject keep no body and call nothing, a second pass catches
//! records the subject index had not shown yet, and a delivery without a credential erases
//! nothing.

use std::sync::Arc;
use std::time::Duration;

use adapter_memory::Memory;
use tests::fake_api::{Behavior, FakeApi, Gate};
use tests::{event, post, Backend};
use webhook_core::clock::{Clock, ManualClock};
use webhook_core::fetch::DetailClient;
use webhook_core::model::{Record, Status};
use webhook_core::operate::{Operations, Replayed};
use webhook_core::ports::{Deliveries, Erasing, Queue, QueueConsumer};
use webhook_core::process::{Processor, ProcessorSettings, ProviderTenants};
use webhook_core::tenants::{TenantDirectory, TenantSource};
use webhook_core::{Ingest, IngestSettings, WebhookRequest};

const ACCOUNT: &str = "3f1c2a9e-5b7d-4e8f-a0c1-d2e3f4a5b6c7";
const ACCOUNT_PATH: &str = "/egym/api/v2/accounts/3f1c2a9e-5b7d-4e8f-a0c1-d2e3f4a5b6c7";

fn settings() -> ProcessorSettings {
    ProcessorSettings {
        retry_backoff: Duration::ZERO,
        ..ProcessorSettings::default()
    }
}

async fn deliver(backend: &Backend, file: &str) -> String {
    let response = backend.ingest("egym").handle(event(file)).await;
    assert!(response.status().is_success(), "{file}");
    tests::response_json(&response)["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn subject() -> String {
    webhook_core::key::subject_of("egym", "gym-berlin-01", &format!("account:{ACCOUNT}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_running_while_its_subject_is_erased_writes_no_detail() {
    let backend = Backend::new().await;
    let api = FakeApi::start().await;
    let gate = Gate::default();
    api.set("/egym/", Behavior::Held(gate.clone()));
    let bus = tests::Bus::new().await;
    let processor = Arc::new(
        backend
            .processor(&api, settings(), Duration::from_secs(5))
            .with_publisher(bus.publisher()),
    );
    let key = deliver(&backend, "egym/gym-checkin.json").await;
    let running = {
        let processor = Arc::clone(&processor);
        let backend = backend.clone();
        tokio::spawn(async move { backend.pump(&processor).await })
    };
    // The fetch is under way, its answer held back: the member is erased meanwhile.
    tests::wait_until(Duration::from_secs(5), || gate.waiting() == 1).await;
    let erased = backend
        .store()
        .erase_subject(&subject(), now(), now() / 1000 + 3600)
        .await
        .unwrap();
    assert_eq!(erased.records, 1);
    assert_eq!(gate.waiting(), 1, "the fetch was still in flight");
    gate.open();
    running.await.unwrap();
    assert_eq!(api.calls(ACCOUNT_PATH), 1, "the answer came back");
    assert!(
        bus.published().await.is_empty(),
        "nothing erased is published"
    );
    let record = backend.record(&key).await;
    assert_eq!(record.status, Status::Processed);
    assert_eq!(record.detail, None, "the answer that came back is not kept");
    assert_eq!(record.body, "");
}

#[tokio::test]
async fn deliveries_about_an_erased_subject_keep_no_body_and_call_nothing() {
    let backend = Backend::new().await;
    let api = FakeApi::start().await;
    let processor = backend.processor(&api, settings(), Duration::from_secs(5));
    deliver(&backend, "egym/membership-delete.json").await;
    backend.pump_until_empty(&processor, 10).await;
    let later = deliver(&backend, "egym/equipment-checkin.json").await;
    backend.pump_until_empty(&processor, 10).await;
    assert_eq!(
        api.calls(ACCOUNT_PATH),
        0,
        "nothing fetched about an erased member"
    );
    let record = backend.record(&later).await;
    assert_eq!(record.status, Status::Processed);
    assert_eq!(record.body, "", "its body was not kept");
    assert!(record.erased_at_ms.is_some());
    let other = deliver(&backend, "egym/second-gym.json").await;
    backend.pump_until_empty(&processor, 10).await;
    assert!(
        backend.record(&other).await.detail.is_some(),
        "others still fetched"
    );
}

/// A record whose subject is erased before the processor gets to it ends `PROCESSED` with a
/// note (not `FAILED` for its empty body), calls nothing and publishes nothing; so does a
/// replay of it afterwards.
#[tokio::test]
async fn a_record_erased_before_it_is_processed_ends_processed_and_so_does_its_replay() {
    for file in ["egym/gym-checkin.json", "magicline/customer-created.json"] {
        let backend = Backend::new().await;
        let api = FakeApi::start().await;
        let bus = tests::Bus::new().await;
        let processor = backend
            .processor(&api, settings(), Duration::from_secs(5))
            .with_publisher(bus.publisher());
        let provider = file.split('/').next().unwrap();
        let response = backend.ingest(provider).handle(event(file)).await;
        let key = tests::response_json(&response)["id"]
            .as_str()
            .unwrap()
            .to_string();
        let stored = backend.record(&key).await;
        let store = backend.store();
        store
            .erase_subject(&stored.subject, now(), now() / 1000 + 3600)
            .await
            .unwrap();
        let operations = Operations::new(backend.ports(), IngestSettings::default());
        for round in ["first", "replay"] {
            backend.pump_until_empty(&processor, 10).await;
            let record = backend.record(&key).await;
            assert_eq!(record.status, Status::Processed, "{file} {round}");
            assert_eq!(record.last_error, None, "{file} {round}");
            let note: serde_json::Value = serde_json::from_str(&record.detail.unwrap()).unwrap();
            assert_eq!(
                note["erasure"]["subject_erased_before"], stored.entity_id,
                "{file} {round}"
            );
            assert_eq!(api.total_calls(), 0, "{file} {round}");
            assert!(bus.published().await.is_empty(), "{file} {round}");
            let replayed = operations.replay(&key).await.unwrap();
            assert_eq!(replayed, Replayed::Queued, "{file} {round}");
        }
    }
}

/// A Magicline delivery of one event about `entity`, with the demo studio's key.
fn magicline(
    entity: u64,
    event_type: &str,
    uuid: &str,
    content: serde_json::Value,
) -> WebhookRequest {
    let body = serde_json::json!({
        "entityId": entity, "uuid": uuid,
        "payload": [{"timestamp": 1795640400000u64, "type": event_type, "content": content}],
    });
    post(
        "magicline",
        &[("x-api-key", "ml-demo-key-1001-new")],
        &body.to_string(),
    )
}

async fn deliver_request(backend: &Backend, provider: &str, request: WebhookRequest) -> String {
    let response = backend.ingest(provider).handle(request).await;
    assert!(response.status().is_success(), "{provider}");
    tests::response_json(&response)["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Erasure follows the person: a customer's deletion empties the records about other objects
/// that name them — a studio's check-out list (in its body), a booking (in its fetched
/// detail), and one that arrives afterwards (nothing fetched for it) — and a Waitwhile visit's
/// removal empties the messages about it; the receipt counts them; others stay whole.
#[tokio::test]
async fn erasing_a_person_reaches_every_record_that_names_them() {
    let backend = Backend::new().await;
    let api = FakeApi::start().await;
    let processor = backend.processor(&api, settings(), Duration::from_secs(5));
    let checkout = deliver_request(
        &backend,
        "magicline",
        event("magicline/automatic-customer-checkout.json"),
    )
    .await;
    let booking = deliver_request(
        &backend,
        "magicline",
        event("magicline/appointment-booking-created.json"),
    )
    .await;
    let other = deliver_request(
        &backend,
        "magicline",
        magicline(
            7893461,
            "CUSTOMER_UPDATED",
            "other",
            serde_json::Value::Null,
        ),
    )
    .await;
    let message = deliver_request(
        &backend,
        "waitwhile",
        event("waitwhile/message-created.json"),
    )
    .await;
    backend.pump_until_empty(&processor, 10).await;
    for key in [&checkout, &booking, &other, &message] {
        assert!(
            backend.record(key).await.detail.is_some(),
            "{key} fetched before"
        );
    }

    let deletion = deliver_request(
        &backend,
        "magicline",
        magicline(7893459, "CUSTOMER_DELETED", "gone", serde_json::Value::Null),
    )
    .await;
    deliver_request(&backend, "waitwhile", event("waitwhile/visit-removed.json")).await;
    backend.pump_until_empty(&processor, 10).await;
    for key in [&checkout, &booking, &message] {
        let record = backend.record(key).await;
        assert_eq!(
            (record.body.as_str(), record.detail.as_deref()),
            ("", None),
            "{key}"
        );
        assert!(record.erased_at_ms.is_some(), "{key}");
    }
    let untouched = backend.record(&other).await;
    assert!(
        !untouched.body.is_empty() && untouched.detail.is_some(),
        "another customer's data stays"
    );
    let note: serde_json::Value =
        serde_json::from_str(&backend.record(&deletion).await.detail.unwrap()).unwrap();
    let receipt = &note["erasure"];
    assert_eq!(
        (
            receipt["person"].as_str(),
            receipt["records"].as_u64(),
            receipt["details"].as_u64()
        ),
        (Some("customer:7893459"), Some(4), Some(3)),
        "the check-out, its item for the customer, the booking and the deletion itself: {receipt}"
    );

    let calls = api.total_calls();
    let later_list = serde_json::json!({"checkouts": [{"customerId": 7893459}]});
    let later = deliver_request(
        &backend,
        "magicline",
        magicline(1001, "AUTOMATIC_CUSTOMER_CHECKOUT", "later", later_list),
    )
    .await;
    backend.pump_until_empty(&processor, 10).await;
    let record = backend.record(&later).await;
    assert_eq!(
        (record.status, record.body.as_str()),
        (Status::Processed, ""),
        "a later list naming them"
    );
    assert_eq!(
        api.total_calls(),
        calls,
        "nothing fetched about an erased person"
    );
}

/// A delivery about an erased person that reaches the store another way — spilled to the
/// queue while DynamoDB was down, or released from quarantine — is stored without its body,
/// fetches nothing and publishes nothing.
#[tokio::test]
async fn a_spilled_or_released_delivery_about_an_erased_person_keeps_nothing() {
    let backend = Backend::new().await;
    let api = FakeApi::start().await;
    let bus = tests::Bus::new().await;
    let processor = backend
        .processor(&api, settings(), Duration::from_secs(5))
        .with_publisher(bus.publisher());
    let operations = Operations::new(backend.ports(), IngestSettings::default());
    operations
        .erase("magicline", "studio-1001", "customer:7893459", false)
        .await
        .unwrap();
    let tenants = tests::demo_tenants("magicline");
    let provider = webhook_core::providers::by_name("magicline").unwrap();
    let body = |uuid: &str| {
        serde_json::json!({"entityId": 7893459, "uuid": uuid,
            "payload": [{"timestamp": 1, "type": "CUSTOMER_UPDATED"}]})
        .to_string()
    };
    let delivery = |body: &str| {
        webhook_core::ingest::Delivery {
            provider: provider.as_ref(),
            tenant: tenants.get("studio-1001").unwrap(),
            body: body.as_bytes(),
            declared_json: true,
            unauthenticated: false,
            signature_key: None,
        }
        .record(now(), &IngestSettings::default())
    };
    let spilled = delivery(&body("spilled"));
    let mut spill = spilled.spill();
    let secret = tenants.get("studio-1001").unwrap().webhook_secrets[0].expose();
    spill.seal(secret);
    backend.queue().send(&spill).await.unwrap();
    // Quarantined under a parser that could not read it; the current one can.
    let quarantined = Record {
        key: "magicline#studio-1001#quarantine#old".into(),
        status: Status::Quarantined,
        last_error: Some("unreadable then".into()),
        ..delivery(&body("released"))
    };
    backend.store().put_new(&quarantined).await.unwrap();
    let released = operations.release(&quarantined, &tenants).await.unwrap();
    backend.pump_until_empty(&processor, 10).await;
    for key in [&spilled.key, &released] {
        let record = backend.record(key).await;
        assert_eq!(
            (record.status, record.body.as_str()),
            (Status::Processed, ""),
            "{key}"
        );
        assert!(record.erased_at_ms.is_some(), "{key}");
    }
    assert_eq!(api.total_calls(), 0);
    assert!(bus.published().await.is_empty());
}

/// The in-memory pair on a clock the test moves, with the demo tenants.
fn in_memory() -> (Memory, Arc<ManualClock>, Processor) {
    in_memory_with(tests::demo_tenants)
}

fn in_memory_with(
    tenants: impl Fn(&str) -> TenantDirectory,
) -> (Memory, Arc<ManualClock>, Processor) {
    let clock = ManualClock::now();
    let memory = Memory::new(5, clock.clone());
    let providers = webhook_core::providers::all()
        .into_iter()
        .map(|provider| ProviderTenants {
            tenants: TenantSource::fixed(tenants(provider.name())),
            provider,
        })
        .collect();
    let processor = Processor::new(
        providers,
        memory.ports.clone(),
        DetailClient::new(Duration::from_secs(1), clock.clone()),
        settings(),
    );
    (memory, clock, processor)
}

async fn pump(memory: &Memory, processor: &Processor) -> usize {
    let batch = memory
        .queue
        .receive(10, Duration::from_secs(30))
        .await
        .unwrap();
    let count = batch.len();
    processor
        .process_received(memory.queue.as_ref(), batch)
        .await
        .unwrap();
    count
}

#[tokio::test]
async fn a_second_pass_erases_what_the_subject_index_did_not_show_yet() {
    let (memory, clock, processor) = in_memory();
    let ingest = Ingest::new(
        webhook_core::providers::by_name("egym").unwrap(),
        tests::demo_tenants("egym"),
        memory.ports.clone(),
        IngestSettings::default(),
    );
    ingest.handle(event("egym/membership-delete.json")).await;
    assert_eq!(pump(&memory, &processor).await, 1);
    // A record the first pass could not see: already processed, with the member's data.
    let missed = Record {
        key: "egym#gym-berlin-01#missed".into(),
        provider: "egym".into(),
        tenant: "gym-berlin-01".into(),
        subject: subject(),
        body: "{\"accountId\": \"...\"}".into(),
        detail: Some("{\"firstName\": \"Ben\"}".into()),
        status: Status::Processed,
        ..Record::default()
    };
    memory.store.put_new(&missed).await.unwrap();
    assert_eq!(pump(&memory, &processor).await, 0, "the second pass waits");
    clock.advance(Duration::from_secs(60));
    assert_eq!(pump(&memory, &processor).await, 1);
    let record = memory.store.get(&missed.key).await.unwrap().unwrap();
    assert_eq!((record.body.as_str(), record.detail), ("", None));
}

#[tokio::test]
async fn a_deletion_delivered_without_a_credential_erases_nothing() {
    let open = || {
        TenantDirectory::from_json(
            r#"{"tenants": [{"id": "app-open", "allow_unauthenticated": true}]}"#,
        )
        .unwrap()
    };
    let (memory, _clock, processor) = in_memory_with(|_| open());
    let ingest = Ingest::new(
        webhook_core::providers::by_name("timify").unwrap(),
        open(),
        memory.ports.clone(),
        IngestSettings::default(),
    );
    let victim = Record {
        key: "timify#app-open#earlier".into(),
        provider: "timify".into(),
        tenant: "app-open".into(),
        subject: webhook_core::key::subject_of("timify", "app-open", "customer:cust-1"),
        body: "{\"data\": {\"id\": \"cust-1\"}}".into(),
        status: Status::Processed,
        ..Record::default()
    };
    memory.store.put_new(&victim).await.unwrap();
    let deletion =
        r#"{"event": "customers.deleted", "data": {"id": "cust-1", "updatedAt": "2026-11-25"}}"#;
    let response = ingest.handle(post("timify", &[], deletion)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(pump(&memory, &processor).await, 1);
    let kept = memory.store.get(&victim.key).await.unwrap().unwrap();
    assert!(!kept.body.is_empty(), "nothing erased");
    assert_eq!(memory.store.erased_at(&victim.subject).await.unwrap(), None);
    let deletion = memory
        .store
        .records()
        .into_iter()
        .find(|record| record.key != victim.key)
        .unwrap();
    let note: serde_json::Value = serde_json::from_str(&deletion.detail.unwrap()).unwrap();
    assert_eq!(
        note["erasure"]["skipped"], "delivered without a credential: it may not erase anything",
        "the note says why"
    );
}

fn now() -> i64 {
    webhook_core::clock::SystemClock.now_ms()
}

/// TIMIFY's event names are not confirmed: a tenant whose deletion event is called
/// `customer.deleted` says so in its `events`, and that event erases the customer's data.
#[tokio::test]
async fn a_timify_deletion_event_named_by_the_tenant_erases() {
    let tenants = || {
        TenantDirectory::from_json(
            r#"{"tenants": [{"id": "app-x", "header": "x-timify-secret", "webhook_secrets": ["s-x"],
                "events": {"customer.deleted": "erase"}}]}"#,
        )
        .unwrap()
    };
    let (memory, _clock, processor) = in_memory_with(|_| tenants());
    let ingest = Ingest::new(
        webhook_core::providers::by_name("timify").unwrap(),
        tenants(),
        memory.ports.clone(),
        IngestSettings::default(),
    );
    let deliver = |event: &str, at: &str| {
        let body =
            format!(r#"{{"event": "{event}", "data": {{"id": "c-9", "updatedAt": "{at}"}}}}"#);
        post(
            "timify",
            &[
                ("x-timify-secret", "s-x"),
                ("content-type", "application/json"),
            ],
            &body,
        )
    };
    // TIMIFY is answered `{}`: the key is the one record stored.
    assert_eq!(
        ingest
            .handle(deliver("customers.created", "t1"))
            .await
            .status(),
        200
    );
    let created = memory.store.records()[0].key.clone();
    assert_eq!(pump(&memory, &processor).await, 1);
    let kept = memory.store.get(&created).await.unwrap().unwrap();
    assert!(kept.body.contains("c-9") && kept.erased_at_ms.is_none());

    ingest.handle(deliver("customer.deleted", "t2")).await;
    assert_eq!(pump(&memory, &processor).await, 1);
    let erased = memory.store.get(&created).await.unwrap().unwrap();
    assert_eq!(erased.body, "", "the customer's earlier event is emptied");
    assert!(erased.erased_at_ms.is_some());
}
