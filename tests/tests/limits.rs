//! Every limit is a clear answer: a record the store refuses for good is a 422 at ingest, and
//! a detail that does not fit beside its event ends FAILED with the reason — never a 5xx the
//! sender retries forever, never a retry loop.

use std::sync::Arc;
use std::time::Duration;

use adapter_memory::Memory;
use e2e::fake_api::FakeApi;
use shared::ports::{InboundMessage, Ports, Record, Status, StoreError};
use shared::process::{Processor, ProcessorSettings, ProviderTenants};
use shared::tenants::TenantSource;
use shared::{Ingest, IngestSettings};

#[tokio::test]
async fn a_record_the_store_refuses_for_good_is_a_422_not_a_5xx() {
    let memory = Memory::new(5, shared::clock::system());
    let ports = Ports {
        store: Arc::new(e2e::RefusingPuts {
            inner: memory.store.clone(),
            error: || StoreError::Rejected("ValidationException: item too large".into()),
        }),
        ..memory.ports.clone()
    };
    let ingest = Ingest::new(
        shared::providers::by_name("egym").unwrap(),
        e2e::demo_tenants("egym"),
        ports,
        IngestSettings::default(),
    );
    let response = ingest.handle(e2e::event("egym/gym-checkin.json")).await;
    assert_eq!(response.status(), 422);
    assert!(e2e::response_json(&response)["error"]
        .as_str()
        .unwrap()
        .contains("cannot be stored"));
    assert!(
        memory.queue.is_empty(),
        "not spilled either: it would fail again"
    );
}

#[tokio::test]
async fn a_detail_that_does_not_fit_beside_its_event_ends_failed_after_one_call() {
    let memory = Memory::new(5, shared::clock::system());
    let api = FakeApi::start().await;
    let processor = Processor::new(
        vec![ProviderTenants {
            provider: shared::providers::by_name("egym").unwrap(),
            tenants: TenantSource::fixed(e2e::demo_tenants_at("egym", &api.base_url)),
        }],
        memory.ports.clone(),
        shared::fetch::DetailClient::new(Duration::from_secs(2), shared::clock::system()),
        ProcessorSettings::default(),
    );
    // An event as large as an item may be (stored by hand: the webhook path caps bodies lower).
    let record = Record {
        key: "egym#gym-berlin-01#huge".into(),
        provider: "egym".into(),
        tenant: "gym-berlin-01".into(),
        event_type: "GYM_CHECKIN".into(),
        entity_id: "3f1c2a9e-5b7d-4e8f-a0c1-d2e3f4a5b6c7".into(),
        body: "x".repeat(shared::ports::MAX_ITEM_BYTES - 400),
        status: Status::Queued,
        ..Record::default()
    };
    use shared::ports::Store;
    memory.store.put_new(&record).await.unwrap();
    let message = InboundMessage {
        id: "m".into(),
        body: serde_json::to_string(&record.message()).unwrap(),
        receive_count: 1,
        receipt_handle: None,
    };
    processor.process(&message).await;
    let after = memory.store.get(&record.key).await.unwrap().unwrap();
    assert_eq!(after.status, Status::Failed);
    assert!(after.last_error.unwrap().contains("does not fit"));
    assert_eq!(api.total_calls(), 1, "one call, no retry loop");
}
