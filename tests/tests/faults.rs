//! Faults injected with real mechanisms — a proxy that drops the connections to DynamoDB, to
//! SQS or to the provider API, a processor killed mid-batch — and the promise checked after
//! each: every event that got a 2xx ends PROCESSED exactly once (or in the dead-letter queue
//! with its reason), and a refused one leaves nothing behind.

use std::sync::Arc;
use std::time::Duration;

use adapter_aws::{DynamoStore, SqsQueue};
use e2e::fake_api::{Behavior, FakeApi};
use e2e::proxy::{local_aws_address, Proxy};
use e2e::{aws_at, event, response_json, Backend};
use shared::ports::Status;
use shared::process::ProcessorSettings;
use shared::{Ingest, IngestSettings};

fn settings() -> ProcessorSettings {
    ProcessorSettings {
        max_receives: 3,
        retry_backoff: Duration::ZERO,
        lease: Duration::from_secs(2),
        ..ProcessorSettings::default()
    }
}

/// The webhook handler with DynamoDB and SQS reached through their own proxies.
async fn ingest_via(backend: &Backend, store: &Proxy, queue: &Proxy, provider: &str) -> Ingest {
    let store_client = aws_sdk_dynamodb::Client::new(&aws_at(&store.url).await);
    let queue_client = aws_sdk_sqs::Client::new(&aws_at(&queue.url).await);
    Ingest::new(
        shared::providers::by_name(provider).unwrap(),
        e2e::demo_tenants(provider),
        adapter_aws::ports(
            DynamoStore::new(store_client, &backend.table),
            SqsQueue::new(queue_client, &backend.queue_url),
            shared::clock::system(),
        ),
        IngestSettings::default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_unavailable_spills_to_the_queue_and_the_processor_stores_it_once() {
    let backend = Backend::new().await;
    let api = FakeApi::start().await;
    let store_proxy = Proxy::start(local_aws_address()).await;
    let queue_proxy = Proxy::start(local_aws_address()).await;
    let ingest = ingest_via(&backend, &store_proxy, &queue_proxy, "magicline").await;
    store_proxy.drop_connections();
    let response = ingest
        .handle(event("magicline/customer-created.json"))
        .await;
    assert_eq!(response.status(), 202, "Magicline may never send it again");
    let answer = response_json(&response);
    assert_eq!(answer["stored"], false);
    let key = answer["id"].as_str().unwrap().to_string();
    assert!(backend.items().await.is_empty(), "nothing stored yet");

    // A direct copy arrives once DynamoDB is back, before the spill is processed.
    store_proxy.restore();
    let copy = ingest
        .handle(event("magicline/customer-created.json"))
        .await;
    assert_eq!(copy.status(), 202);
    let processor = backend.processor(&api, settings(), Duration::from_secs(5));
    backend.pump_until_empty(&processor, 30).await;
    assert_eq!(backend.items().await.len(), 1, "counted once");
    let record = backend.record(&key).await;
    assert_eq!(record.status, Status::Processed);
    assert!(
        record.body.contains("095be615"),
        "the spilled body was stored"
    );
    assert_eq!(
        api.calls("/magicline/v1/customers/7893459"),
        1,
        "processed once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spilled_delivery_is_stored_by_the_processor_alone() {
    let backend = Backend::new().await;
    let api = FakeApi::start().await;
    let store_proxy = Proxy::start(local_aws_address()).await;
    let queue_proxy = Proxy::start(local_aws_address()).await;
    let ingest = ingest_via(&backend, &store_proxy, &queue_proxy, "egym").await;
    store_proxy.drop_connections();
    let response = ingest.handle(event("egym/gym-checkin.json")).await;
    assert_eq!(response_json(&response)["stored"], false);
    let processor = backend.processor(&api, settings(), Duration::from_secs(5));
    backend.pump_until_empty(&processor, 30).await;
    let key = response_json(&response)["id"].as_str().unwrap().to_string();
    let record = backend.record(&key).await;
    assert_eq!(record.status, Status::Processed);
    assert_eq!(record.attempts, 1);
}

/// DynamoDB keeps a large body in an item of its own, written beside the record: when only
/// that write fails, the record is stored without its body, so the delivery is spilled whole
/// and the processor's put writes the body before it is processed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_body_whose_own_write_fails_is_spilled_and_kept_whole() {
    let backend = Backend::new().await;
    let api = FakeApi::start().await;
    let store_proxy = Proxy::start(local_aws_address()).await;
    let queue_proxy = Proxy::start(local_aws_address()).await;
    let ingest = ingest_via(&backend, &store_proxy, &queue_proxy, "magicline").await;
    store_proxy.drop_requests_containing("##body#");
    let body = serde_json::json!({
        "entityId": 7, "uuid": "large-body-1",
        "payload": [{"timestamp": 1, "type": "CUSTOMER_UPDATED"}],
        "padding": "x".repeat(8 * 1024),
    })
    .to_string();
    let request = e2e::post("magicline", &[("x-api-key", "ml-demo-key-1001-new")], &body);
    let response = ingest.handle(request).await;
    assert_eq!(response.status(), 202, "{}", response_json(&response));
    assert_eq!(response_json(&response)["stored"], false, "spilled");
    let key = response_json(&response)["id"].as_str().unwrap().to_string();

    let processor = backend.processor(&api, settings(), Duration::from_secs(5));
    backend.pump_until_empty(&processor, 30).await;
    let record = backend.record(&key).await;
    assert_eq!(record.status, Status::Processed);
    assert_eq!(record.body, body, "the body as it came");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_and_queue_both_unavailable_is_503_with_nothing_half_written() {
    let backend = Backend::new().await;
    let store_proxy = Proxy::start(local_aws_address()).await;
    let queue_proxy = Proxy::start(local_aws_address()).await;
    let ingest = ingest_via(&backend, &store_proxy, &queue_proxy, "egym").await;
    store_proxy.drop_connections();
    queue_proxy.drop_connections();
    let response = ingest.handle(event("egym/gym-checkin.json")).await;
    assert_eq!(response.status(), 503);
    assert!(response_json(&response)["error"]
        .as_str()
        .unwrap()
        .contains("retry later"));
    assert!(backend.items().await.is_empty(), "nothing stored");
    assert!(backend.drain().await.is_empty(), "nothing queued");

    // The provider retries once DynamoDB is back.
    store_proxy.restore();
    queue_proxy.restore();
    assert_eq!(
        ingest.handle(event("egym/gym-checkin.json")).await.status(),
        202
    );
    assert_eq!(backend.items().await.len(), 1);
    assert_eq!(backend.drain().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_unavailable_after_the_store_write_is_202_and_the_sweeper_delivers_it_once() {
    let backend = Backend::new().await;
    let api = FakeApi::start().await;
    let store_proxy = Proxy::start(local_aws_address()).await;
    let queue_proxy = Proxy::start(local_aws_address()).await;
    let ingest = ingest_via(&backend, &store_proxy, &queue_proxy, "magicline").await;
    let sqs_via_proxy = aws_sdk_sqs::Client::new(&aws_at(&queue_proxy.url).await);
    let sweeper = shared::outbox::Sweeper::new(
        adapter_aws::ports(
            backend.store(),
            SqsQueue::new(sqs_via_proxy, &backend.queue_url),
            shared::clock::system(),
        ),
        Duration::from_secs(10),
    );

    queue_proxy.drop_connections();
    let response = ingest
        .handle(event("magicline/customer-checkin.json"))
        .await;
    assert_eq!(response.status(), 202, "stored durably: a promise");
    let key = response_json(&response)["id"].as_str().unwrap().to_string();
    assert_eq!(backend.record(&key).await.status, Status::Received);
    // Still down: the sweeper fails too, and keeps the record for its next run.
    let report = sweeper.sweep(100).await.unwrap();
    assert_eq!((report.found, report.failed), (1, 1));
    assert_eq!(backend.record(&key).await.status, Status::Received);

    queue_proxy.restore();
    assert_eq!(sweeper.sweep(100).await.unwrap().enqueued, 1);
    assert_eq!(sweeper.sweep(100).await.unwrap().found, 0);
    let processor = backend.processor(&api, settings(), Duration::from_secs(2));
    backend.pump_until_empty(&processor, 20).await;
    let record = backend.record(&key).await;
    assert_eq!(
        (record.status, record.attempts),
        (Status::Processed, 1),
        "processed exactly once"
    );
    assert_eq!(api.total_calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_killed_mid_batch_is_redelivered_without_double_effects() {
    let backend = Backend::new().await;
    let api = FakeApi::start().await;
    let files = [
        "magicline/customer-created.json",
        "egym/gym-checkin.json",
        "waitwhile/visit-created.json",
    ];
    for file in files {
        let provider = file.split('/').next().unwrap();
        assert!(backend
            .ingest(provider)
            .handle(event(file))
            .await
            .status()
            .is_success());
    }
    api.set("/", Behavior::Slow(Duration::from_millis(1500)));
    let processor = Arc::new(backend.processor(&api, settings(), Duration::from_secs(5)));
    let victim = {
        let processor = Arc::clone(&processor);
        let backend = backend.clone();
        tokio::spawn(async move { backend.pump(&processor).await })
    };
    // The invocation dies holding three claims, its three API calls under way.
    e2e::wait_until(Duration::from_secs(5), || api.total_calls() == 3).await;
    victim.abort();
    let _ = victim.await;
    let in_flight = backend.items().await;
    assert!(in_flight
        .iter()
        .all(|item| item["status"].as_s().unwrap() == "PROCESSING"));

    api.clear();
    // Messages come back after their visibility timeout, claims after their lease.
    let fresh = backend.processor(&api, settings(), Duration::from_secs(5));
    let started = std::time::Instant::now();
    while backend
        .items()
        .await
        .iter()
        .any(|item| item["status"].as_s().unwrap() != "PROCESSED")
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "not redelivered"
        );
        backend.pump(&fresh).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for item in backend.items().await {
        assert_eq!(
            item["attempts"].as_n().unwrap(),
            "2",
            "claimed by the dead one, then once more"
        );
        assert!(item["detail"].as_s().is_ok());
    }
    backend.pump_until_empty(&fresh, 10).await;
    assert!(
        backend.drain().await.is_empty(),
        "nothing left to redeliver"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_api_dropping_connections_is_retried_then_succeeds() {
    let backend = Backend::with_dead_letter_queue(5).await;
    let api = FakeApi::start().await;
    let api_proxy = Proxy::start(api.base_url.trim_start_matches("http://").parse().unwrap()).await;
    let proxied = api.via(&api_proxy.url);
    let processor = backend.processor(&proxied, settings(), Duration::from_secs(2));
    let response = backend
        .ingest("flybuy")
        .handle(event("flybuy/order-ready.json"))
        .await;
    let key = response_json(&response)["id"].as_str().unwrap().to_string();
    api_proxy.drop_connections();
    let (_, failed) = backend.pump(&processor).await;
    assert_eq!(failed.len(), 1);
    let record = backend.record(&key).await;
    assert_eq!(record.status, Status::Queued);
    assert!(record.last_error.unwrap().contains("unreachable"));
    api_proxy.restore();
    backend.pump_until_empty(&processor, 20).await;
    let record = backend.record(&key).await;
    assert_eq!((record.status, record.attempts), (Status::Processed, 2));
    assert!(backend.drain_dead_letters().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_of_the_largest_size_spills_in_one_message() {
    let backend = Backend::new().await;
    let store_proxy = Proxy::start(local_aws_address()).await;
    let queue_proxy = Proxy::start(local_aws_address()).await;
    let ingest = ingest_via(&backend, &store_proxy, &queue_proxy, "magicline").await;
    store_proxy.drop_connections();
    let padding = "\"".repeat(120 * 1024);
    let body = serde_json::json!({
        "entityId": 7, "uuid": "big-one",
        "payload": [{"timestamp": 1, "type": "CUSTOMER_UPDATED"}],
        "padding": padding,
    })
    .to_string();
    assert!(body.len() < 256 * 1024 && body.len() > 240 * 1024);
    let request = e2e::post("magicline", &[("x-api-key", "ml-demo-key-1001-new")], &body);
    let response = ingest.handle(request).await;
    assert_eq!(response.status(), 202, "{}", response_json(&response));
    assert_eq!(response_json(&response)["stored"], false);
    let messages = backend.drain().await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].spilled.as_ref().unwrap().body, body);
}
