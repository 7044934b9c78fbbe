//! Every limit is a clear answer: a record the store refuses for good is a 422 at ingest, and
//! a detail that does not fit beside its event ends FAILED with the reason — never a 5xx the
//! sender retries forever, never a retry loop.

use std::time::Duration;

use adapter_aws::{DynamoStore, SqsQueue};
use adapter_memory::Memory;
use tests::fake_api::FakeApi;
use tests::proxy::Recorder;
use tests::{response_json, Backend};
use webhook_core::model::{InboundMessage, Record, Status};
use webhook_core::ports::Deliveries;
use webhook_core::process::{Processor, ProcessorSettings, ProviderTenants};
use webhook_core::tenants::TenantSource;
use webhook_core::{Ingest, IngestSettings};

/// DynamoDB refuses an item it cannot hold with a ValidationException (a key over 2,048 bytes
/// was one, until keys and tenant ids were bounded: `conformance.rs`'s long-keys case). The
/// refusal comes as DynamoDB answers it — through a proxy in front of the real endpoint that
/// answers the put so — to the real handler and adapter.
#[tokio::test]
async fn a_record_dynamodb_refuses_for_good_is_a_422_with_nothing_stored_or_queued() {
    let backend = Backend::new().await;
    let recorder = Recorder::start(tests::proxy::local_aws_address()).await;
    recorder.refuse("DynamoDB_20120810.PutItem");
    let store = aws_sdk_dynamodb::Client::new(&tests::aws_at(&recorder.url).await);
    let ingest = Ingest::new(
        webhook_core::providers::by_name("magicline").unwrap(),
        tests::demo_tenants("magicline"),
        adapter_aws::ports(
            DynamoStore::new(store, &backend.table),
            SqsQueue::new(backend.sqs.clone(), &backend.queue_url),
            webhook_core::clock::system(),
        ),
        IngestSettings::default(),
    );

    let response = ingest
        .handle(tests::event("magicline/customer-created.json"))
        .await;
    let answer = response_json(&response);
    assert_eq!(response.status(), 422, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("cannot be stored"),
        "{answer}"
    );
    assert!(backend.items().await.is_empty(), "nothing stored");
    assert!(
        backend.drain().await.is_empty(),
        "not spilled either: it would fail again"
    );
}

#[tokio::test]
async fn a_detail_that_does_not_fit_beside_its_event_ends_failed_after_one_call() {
    let memory = Memory::new(5, webhook_core::clock::system());
    let api = FakeApi::start().await;
    let processor = Processor::new(
        vec![ProviderTenants {
            provider: webhook_core::providers::by_name("egym").unwrap(),
            tenants: TenantSource::fixed(tests::demo_tenants_at("egym", &api.base_url)),
        }],
        memory.ports.clone(),
        webhook_core::fetch::DetailClient::new(
            Duration::from_secs(2),
            webhook_core::clock::system(),
        ),
        ProcessorSettings::default(),
    );
    // An event as large as an item may be (stored by hand: the webhook path caps bodies lower).
    let record = Record {
        key: "egym#gym-berlin-01#huge".into(),
        provider: "egym".into(),
        tenant: "gym-berlin-01".into(),
        event_type: "GYM_CHECKIN".into(),
        entity_id: "3f1c2a9e-5b7d-4e8f-a0c1-d2e3f4a5b6c7".into(),
        body: "x".repeat(webhook_core::model::MAX_ITEM_BYTES - 400),
        status: Status::Queued,
        ..Record::default()
    };
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
