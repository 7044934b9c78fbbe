//! Faults injected with real mechanisms — a proxy that drops the connections to DynamoDB, to
//! SQS or to the provider API, a processor killed mid-batch — and the promise checked after
//! each: every event that got a 2xx ends PROCESSED exactly once (or in the dead-letter queue
//! with its reason), and a refused one leaves nothing behind.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use adapter_aws::{DynamoStore, SqsQueue};
use aws_sdk_dynamodb::types::AttributeValue;
use tests::fake_api::{Behavior, FakeApi};
use tests::proxy::{local_aws_address, Proxy};
use tests::{aws_at, event, response_json, Backend};
use webhook_core::config::Settings;
use webhook_core::model::{InboundMessage, Record, Status};
use webhook_core::outbox::Sweeper;
use webhook_core::ports::Deliveries;
use webhook_core::process::{ProcessorSettings, Verdict};
use webhook_core::{Ingest, IngestSettings};

/// What Magicline's `customer-created.json` fetches.
const CUSTOMER: &str = "/magicline/v1/customers/7893459";

fn settings() -> ProcessorSettings {
    ProcessorSettings {
        max_receives: 3,
        retry_backoff: Duration::ZERO,
        lease: Duration::from_secs(2),
        ..ProcessorSettings::default()
    }
}

fn now_ms() -> i64 {
    webhook_core::clock::system().now_ms()
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> i64 {
    item[name].as_n().unwrap().parse().unwrap()
}

fn text<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> &'a str {
    item[name].as_s().unwrap()
}

/// The webhook handler with DynamoDB and SQS reached through their own proxies.
async fn ingest_via(backend: &Backend, store: &Proxy, queue: &Proxy, provider: &str) -> Ingest {
    let store_client = aws_sdk_dynamodb::Client::new(&aws_at(&store.url).await);
    let queue_client = aws_sdk_sqs::Client::new(&aws_at(&queue.url).await);
    Ingest::new(
        webhook_core::providers::by_name(provider).unwrap(),
        tests::demo_tenants(provider),
        adapter_aws::ports(
            DynamoStore::new(store_client, &backend.table),
            SqsQueue::new(queue_client, &backend.queue_url),
            webhook_core::clock::system(),
        ),
        IngestSettings::default(),
    )
}

/// The webhook handler on clients configured as the functions configure theirs
/// (`adapter_aws::sdk::loader`: its timeouts and retries), DynamoDB reached at `store` and SQS
/// at `queue`, with the deployed ingest settings.
async fn deployed_ingest(backend: &Backend, store: &str, queue: &str, provider: &str) -> Ingest {
    let aws = |url: &str| adapter_aws::sdk::loader().endpoint_url(url).load();
    Ingest::new(
        webhook_core::providers::by_name(provider).unwrap(),
        tests::demo_tenants(provider),
        adapter_aws::ports(
            DynamoStore::new(
                aws_sdk_dynamodb::Client::new(&aws(store).await),
                &backend.table,
            ),
            SqsQueue::new(
                aws_sdk_sqs::Client::new(&aws(queue).await),
                &backend.queue_url,
            ),
            webhook_core::clock::system(),
        ),
        Settings::from_lookup(&|_| None).unwrap().ingest,
    )
}

/// Providers give up after 5 s; API Gateway and the network take some of that.
const ACK_WITHIN: Duration = Duration::from_millis(4500);

/// `handle`'s answer to `request`, failing the test unless it came within [`ACK_WITHIN`].
async fn answered_in_time(
    ingest: &Ingest,
    request: webhook_core::WebhookRequest,
) -> webhook_core::WebhookResponse {
    let started = Instant::now();
    let response = ingest.handle(request).await;
    let took = started.elapsed();
    assert!(took < ACK_WITHIN, "answered after {took:?}");
    response
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
    assert_eq!(api.calls(CUSTOMER), 1, "processed once");
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
    let request = tests::post("magicline", &[("x-api-key", "ml-demo-key-1001-new")], &body);
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

/// The put gets half the ack budget: a delivery the store has not taken by then is spilled,
/// readable or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_hangs_gets_a_spilled_202_in_time_readable_or_quarantined() {
    let backend = Backend::new().await;
    let store_proxy = Proxy::start(local_aws_address()).await;
    let aws = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let ingest = deployed_ingest(&backend, &store_proxy.url, &aws, "magicline").await;
    store_proxy.hold_requests();
    let mut keys = Vec::new();
    for file in [
        "magicline/customer-created.json",
        "magicline/bad-malformed-json.json",
    ] {
        let response = answered_in_time(&ingest, event(file)).await;
        let answer = response_json(&response);
        assert_eq!(response.status(), 202, "{answer}");
        assert_eq!(answer["stored"], false, "{answer}");
        keys.push(answer["id"].as_str().unwrap().to_string());
    }
    assert!(keys[1].contains("#quarantine#"), "{keys:?}");
    let messages = backend.drain().await;
    assert!(messages
        .iter()
        .all(|message| message.work.spilled().is_some()));
    let mut spilled: Vec<String> = messages.into_iter().map(|message| message.key).collect();
    // A send the SDK retried after its attempt timed out may have been taken twice.
    spilled.sort();
    spilled.dedup();
    keys.sort();
    assert_eq!(spilled, keys, "each delivery whole in the queue");
    assert!(backend.items().await.is_empty(), "no put reached DynamoDB");
}

/// Without the ack budget a put that hangs takes the SDK's 3 s and a spill that hangs 3 s more:
/// the answer would come after the providers have given up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_and_queue_both_hanging_is_a_503_in_time_with_nothing_written() {
    let backend = Backend::new().await;
    let store_proxy = Proxy::start(local_aws_address()).await;
    let queue_proxy = Proxy::start(local_aws_address()).await;
    let ingest = deployed_ingest(&backend, &store_proxy.url, &queue_proxy.url, "egym").await;
    store_proxy.hold_requests();
    queue_proxy.hold_requests();
    let response = answered_in_time(&ingest, event("egym/gym-checkin.json")).await;
    assert_eq!(response.status(), 503, "{}", response_json(&response));
    assert!(backend.items().await.is_empty(), "nothing stored");
    assert!(backend.drain().await.is_empty(), "nothing queued");
}

/// The put an answer is abandoned for may have been carried out: then the spilled delivery
/// meets its own record, and it is counted and processed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_carried_out_but_answered_too_late_is_spilled_and_processed_once() {
    let backend = Backend::new().await;
    let api = FakeApi::start().await;
    let store_proxy = Proxy::start(local_aws_address()).await;
    let aws = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let ingest = deployed_ingest(&backend, &store_proxy.url, &aws, "magicline").await;
    store_proxy.hold_answers();
    let file = "magicline/customer-created.json";
    let response = answered_in_time(&ingest, event(file)).await;
    let answer = response_json(&response);
    assert_eq!(answer["stored"], false, "spilled: {answer}");
    let key = answer["id"].as_str().unwrap().to_string();
    assert_eq!(
        backend.record(&key).await.status,
        Status::Received,
        "the put took effect"
    );

    let processor = backend.processor(&api, settings(), Duration::from_secs(5));
    backend.pump_until_empty(&processor, 10).await;
    assert_eq!(backend.items().await.len(), 1, "counted once");
    let record = backend.record(&key).await;
    assert_eq!((record.status, record.attempts), (Status::Processed, 1));
    assert_eq!(api.calls(CUSTOMER), 1, "processed once");
    store_proxy.restore();
    let copy = ingest.handle(event(file)).await;
    assert_eq!(response_json(&copy)["status"], "duplicate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_unavailable_after_the_store_write_is_202_and_the_sweeper_delivers_it_once() {
    let backend = Backend::new().await;
    let api = FakeApi::start().await;
    let store_proxy = Proxy::start(local_aws_address()).await;
    let queue_proxy = Proxy::start(local_aws_address()).await;
    let ingest = ingest_via(&backend, &store_proxy, &queue_proxy, "magicline").await;
    let sqs_via_proxy = aws_sdk_sqs::Client::new(&aws_at(&queue_proxy.url).await);
    let sweeper = webhook_core::outbox::Sweeper::new(
        adapter_aws::ports(
            backend.store(),
            SqsQueue::new(sqs_via_proxy, &backend.queue_url),
            webhook_core::clock::system(),
        ),
        Duration::from_secs(10),
    );

    queue_proxy.drop_connections();
    let response = ingest
        .handle(event("magicline/customer-checkin.json"))
        .await;
    assert_eq!(response.status(), 202, "stored durably: a promise");
    let answer = response_json(&response);
    assert_eq!(answer["queued"], false, "{answer}");
    let key = answer["id"].as_str().unwrap().to_string();
    let record = backend.record(&key).await;
    assert_eq!(record.status, Status::Received);
    assert!(
        record.lease_until_ms <= now_ms(),
        "lease released for the sweeper"
    );
    assert!(
        backend.drain().await.is_empty(),
        "nothing reached the queue"
    );
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

/// The deliveries of the killed batch and what each fetches.
const KILLED_BATCH: [(&str, &str); 3] = [
    ("magicline/customer-created.json", CUSTOMER),
    (
        "egym/gym-checkin.json",
        "/egym/api/v2/accounts/3f1c2a9e-5b7d-4e8f-a0c1-d2e3f4a5b6c7",
    ),
    (
        "waitwhile/visit-created.json",
        "/waitwhile/v2/visits/Kk1BeidF0N4p8wzp2J0x",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_killed_mid_batch_is_redelivered_without_double_effects() {
    let backend = Backend::new().await;
    let api = FakeApi::start().await;
    for (file, _) in KILLED_BATCH {
        let provider = file.split('/').next().unwrap();
        assert!(backend
            .ingest(provider)
            .handle(event(file))
            .await
            .status()
            .is_success());
    }
    api.set("/", Behavior::Slow(Duration::from_millis(1500)));
    // The claims outlast the pump's 1 s visibility timeout by 2 s: the messages come back
    // while they still run.
    let settings = ProcessorSettings {
        lease: Duration::from_secs(3),
        ..settings()
    };
    let processor = Arc::new(backend.processor(&api, settings.clone(), Duration::from_secs(5)));
    let victim = {
        let processor = Arc::clone(&processor);
        let backend = backend.clone();
        tokio::spawn(async move { backend.pump(&processor).await })
    };
    // The invocation dies holding three claims, its three API calls under way.
    tests::wait_until(Duration::from_secs(5), || api.total_calls() == 3).await;
    victim.abort();
    let _ = victim.await;
    let in_flight = backend.items().await;
    assert_eq!(in_flight.len(), 3);
    assert!(in_flight
        .iter()
        .all(|item| text(item, "status") == "PROCESSING" && number(item, "attempts") == 1));
    let dead_leases: HashMap<String, i64> = in_flight
        .iter()
        .map(|item| (text(item, "pk").to_string(), number(item, "lease_until")))
        .collect();
    let leases_end = *dead_leases.values().min().unwrap();
    let calls_of_the_dead: Vec<usize> = KILLED_BATCH
        .iter()
        .map(|(_, path)| api.calls(path))
        .collect();

    api.clear();
    let fresh = backend.processor(&api, settings, Duration::from_secs(5));
    let started = Instant::now();
    let mut refused_while_leased = 0;
    loop {
        let (received, failed) = backend.pump(&fresh).await;
        if now_ms() < leases_end {
            // Every claim of that batch was tried while the dead one's leases ran.
            assert_eq!(failed.len(), received, "a live claim is never taken over");
            refused_while_leased += received;
        }
        let items = backend.items().await;
        assert_eq!(items.len(), 3);
        if now_ms() < leases_end {
            assert!(
                items
                    .iter()
                    .all(|item| text(item, "status") == "PROCESSING"
                        && number(item, "attempts") == 1),
                "untouched until the lease ends"
            );
        }
        if items.iter().all(|item| text(item, "status") == "PROCESSED") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "not redelivered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        refused_while_leased >= 3,
        "the messages came back while the leases ran, and were refused"
    );
    let done = backend.items().await;
    assert_eq!(done.len(), 3);
    for item in &done {
        let key = text(item, "pk");
        assert_eq!(
            number(item, "attempts"),
            2,
            "{key}: claimed by the dead one, then once more"
        );
        assert!(item["detail"].as_s().is_ok(), "{key}");
        assert!(
            number(item, "processed_at") > dead_leases[key],
            "{key}: taken over only after the dead one's lease"
        );
    }
    for ((_, path), before) in KILLED_BATCH.iter().zip(calls_of_the_dead) {
        assert_eq!(
            api.calls(path),
            before + 1,
            "{path}: one call after the kill"
        );
    }
    assert_eq!(
        api.total_calls(),
        6,
        "the dead one's three and one each after: a refused claim calls nothing"
    );
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
    let request = tests::post("magicline", &[("x-api-key", "ml-demo-key-1001-new")], &body);
    let response = ingest.handle(request).await;
    assert_eq!(response.status(), 202, "{}", response_json(&response));
    assert_eq!(response_json(&response)["stored"], false);
    let messages = backend.drain().await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].work.spilled().unwrap().body, body);
}

/// An authentic delivery the parser cannot read is kept quarantined; while DynamoDB is down
/// it travels whole in the queue like any other, and the processor only stores it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_delivery_while_the_store_is_down_is_spilled_then_kept_quarantined_once() {
    let backend = Backend::new().await;
    let api = FakeApi::start().await;
    let store_proxy = Proxy::start(local_aws_address()).await;
    let queue_proxy = Proxy::start(local_aws_address()).await;
    let ingest = ingest_via(&backend, &store_proxy, &queue_proxy, "magicline").await;
    let file = "magicline/bad-malformed-json.json";
    store_proxy.drop_connections();
    let response = ingest.handle(event(file)).await;
    assert_eq!(response.status(), 202, "authentic: kept");
    let answer = response_json(&response);
    assert_eq!(answer["stored"], false, "{answer}");
    let key = answer["id"].as_str().unwrap().to_string();
    assert!(key.contains("#quarantine#"), "{key}");
    assert!(backend.items().await.is_empty(), "nothing stored yet");

    store_proxy.restore();
    let processor = backend.processor(&api, settings(), Duration::from_secs(5));
    let (received, failed) = backend.pump(&processor).await;
    assert_eq!((received, failed.len()), (1, 0), "stored, and done with");
    let record = backend.record(&key).await;
    assert_eq!(record.status, Status::Quarantined);
    assert_eq!(
        record.body.as_bytes(),
        event(file).body().as_ref(),
        "as it came"
    );
    assert!(record.last_error.unwrap().contains("malformed"));
    assert_eq!(record.attempts, 0, "never claimed");

    // The provider sends it again once DynamoDB is back: the same record.
    let copy = response_json(&ingest.handle(event(file)).await);
    assert_eq!(
        (copy["status"].as_str(), copy["id"].as_str()),
        (Some("quarantined"), Some(key.as_str()))
    );
    assert_eq!(backend.items().await.len(), 1, "counted once");
    assert_eq!(backend.record(&key).await.status, Status::Quarantined);
    assert!(
        backend.drain().await.is_empty(),
        "never queued for processing"
    );
    assert_eq!(api.total_calls(), 0, "never processed");
}

/// A processor whose fetch outlasts its claim loses the record to the next delivery of the
/// message; what it fetched is not written, and the one that took the record over finishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_lost_during_a_slow_fetch_is_finished_only_by_the_processor_that_took_it_over() {
    let backend = Backend::new().await;
    let api = FakeApi::start().await;
    api.set("/magicline/", Behavior::Slow(Duration::from_secs(3)));
    let with_lease = |lease| ProcessorSettings {
        lease,
        ..settings()
    };
    let loser = Arc::new(backend.processor(
        &api,
        with_lease(Duration::from_secs(1)),
        Duration::from_secs(5),
    ));
    let winner = Arc::new(backend.processor(
        &api,
        with_lease(Duration::from_secs(60)),
        Duration::from_secs(5),
    ));
    let response = backend
        .ingest("magicline")
        .handle(event("magicline/customer-created.json"))
        .await;
    let key = response_json(&response)["id"].as_str().unwrap().to_string();
    let messages = backend.drain().await;
    assert_eq!(messages.len(), 1);
    let message = InboundMessage {
        id: "m".into(),
        body: serde_json::to_string(&messages[0]).unwrap(),
        receive_count: 1,
        receipt_handle: None,
    };

    let first = {
        let (loser, message) = (Arc::clone(&loser), message.clone());
        tokio::spawn(async move { loser.process(&message).await })
    };
    tests::wait_until(Duration::from_secs(5), || api.total_calls() == 1).await;
    let claimed = backend.record(&key).await;
    assert_eq!((claimed.status, claimed.attempts), (Status::Processing, 1));
    tests::wait_until(Duration::from_secs(5), || now_ms() > claimed.lease_until_ms).await;
    let second = {
        let (winner, message) = (Arc::clone(&winner), message.clone());
        tokio::spawn(async move { winner.process(&message).await })
    };
    tests::wait_until(Duration::from_secs(5), || api.total_calls() == 2).await;

    assert_eq!(
        first.await.unwrap(),
        Verdict::TryAgain,
        "the loser reports it"
    );
    let lost_at = now_ms();
    let meanwhile = backend.record(&key).await;
    assert_eq!(
        (meanwhile.status, meanwhile.attempts, meanwhile.detail),
        (Status::Processing, 2, None),
        "nothing written by the loser"
    );
    assert!(
        meanwhile.lease_until_ms > lost_at,
        "the winner's claim runs on"
    );

    assert_eq!(second.await.unwrap(), Verdict::Done);
    let finished = backend.record(&key).await;
    assert_eq!((finished.status, finished.attempts), (Status::Processed, 2));
    assert!(finished.detail.unwrap().contains(CUSTOMER));
    assert!(
        finished.processed_at_ms.unwrap() > lost_at,
        "the winner's result"
    );
    assert_eq!(api.calls(CUSTOMER), 2);

    // The loser's message comes back: the work is done.
    assert_eq!(loser.process(&message).await, Verdict::Done);
    assert_eq!(api.total_calls(), 2);
    assert_eq!(
        backend.record(&key).await.processed_at_ms,
        finished.processed_at_ms
    );
}

/// A record stored `RECEIVED` whose lease ended (its delivery died before sending).
fn unsent(key: &str) -> Record {
    let now = now_ms();
    Record {
        key: key.to_string(),
        provider: "egym".into(),
        tenant: "gym-berlin-01".into(),
        event_type: "GYM_CHECKIN".into(),
        entity_id: key.rsplit('#').next().unwrap().to_string(),
        body: "{}".into(),
        received_at_ms: now,
        status: Status::Received,
        lease_until_ms: now - 1,
        expires_at: now / 1000 + 3600,
        ..Record::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sweepers_racing_over_the_same_records_queue_each_once() {
    let backend = Backend::new().await;
    let store = backend.store();
    let (one, other) = (backend.sweeper(), backend.sweeper());
    let mut skipped = 0;
    for round in 0..3 {
        let mut keys: Vec<String> = (0..5)
            .map(|n| format!("egym#gym-berlin-01#race-{round}-{n}"))
            .collect();
        keys.sort();
        for key in &keys {
            store.put_new(&unsent(key)).await.unwrap();
        }
        let (a, b) = tokio::join!(one.sweep(100), other.sweep(100));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(
            (a.enqueued + b.enqueued, a.failed + b.failed),
            (keys.len(), 0),
            "round {round}: {a:?} {b:?}"
        );
        skipped += a.skipped + b.skipped;
        let mut sent: Vec<String> = backend
            .drain()
            .await
            .into_iter()
            .map(|message| message.key)
            .collect();
        sent.sort();
        assert_eq!(sent, keys, "round {round}: one message per record");
    }
    assert!(skipped > 0, "the sweepers did meet over the same records");
}

/// What only the update marking a record `QUEUED` says (the DynamoDB adapter's `mark_queued`).
const MARK_QUEUED: &str = "= :queued REMOVE pending";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sent_message_whose_record_was_not_marked_queued_is_processed_once() {
    let backend = Backend::new().await;
    let api = FakeApi::start().await;
    // Stored, but its send failed: the record is the sweeper's to send.
    let gone = SqsQueue::new(backend.sqs.clone(), format!("{}-gone", backend.queue_url));
    let ingest = Ingest::new(
        webhook_core::providers::by_name("magicline").unwrap(),
        tests::demo_tenants("magicline"),
        adapter_aws::ports(backend.store(), gone, webhook_core::clock::system()),
        IngestSettings::default(),
    );
    let response = ingest
        .handle(event("magicline/customer-created.json"))
        .await;
    assert_eq!(response_json(&response)["queued"], false);
    let key = response_json(&response)["id"].as_str().unwrap().to_string();

    // The sweeper reaches DynamoDB through a proxy that drops only the update marking QUEUED.
    let store_proxy = Proxy::start(local_aws_address()).await;
    let dynamodb_via_proxy = aws_sdk_dynamodb::Client::new(&aws_at(&store_proxy.url).await);
    let sweeper = Sweeper::new(
        adapter_aws::ports(
            DynamoStore::new(dynamodb_via_proxy, &backend.table),
            backend.queue(),
            webhook_core::clock::system(),
        ),
        Duration::from_secs(1),
    );
    store_proxy.drop_requests_containing(MARK_QUEUED);
    let report = sweeper.sweep(100).await.unwrap();
    assert_eq!(
        (report.found, report.enqueued, report.failed),
        (1, 1, 0),
        "sent: the message is in the queue"
    );
    assert_eq!(backend.messages_waiting().await, 1);
    let record = backend.record(&key).await;
    assert_eq!(record.status, Status::Received, "not marked QUEUED");

    // Once the sweeper's lease is over, it sends the record again.
    store_proxy.restore();
    tests::wait_until(Duration::from_secs(5), || now_ms() > record.lease_until_ms).await;
    assert_eq!(sweeper.sweep(100).await.unwrap().enqueued, 1);
    assert_eq!(backend.record(&key).await.status, Status::Queued);
    assert_eq!(backend.messages_waiting().await, 2, "one message per send");

    let processor = backend.processor(&api, settings(), Duration::from_secs(5));
    backend.pump_until_empty(&processor, 10).await;
    assert_eq!(backend.messages_waiting().await, 0);
    let record = backend.record(&key).await;
    assert_eq!(
        (record.status, record.attempts),
        (Status::Processed, 1),
        "processed exactly once"
    );
    assert_eq!(api.calls(CUSTOMER), 1);
    assert_eq!(api.total_calls(), 1);
    assert_eq!(sweeper.sweep(100).await.unwrap().found, 0, "nothing left");
}

/// A large body and its record are stored together or not at all. With the write of either
/// dropped on its way to DynamoDB (the proxy drops what names the body's own item, or what
/// names the record's `body_apart`), and the spill dropped too or not: no record is ever
/// without its body, and no body item without its record (`Backend::items` fails on one);
/// each delivery answered 2xx ends `PROCESSED` with its body, one answered 503 left nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_body_and_its_record_are_stored_together_or_not_at_all() {
    let backend = Backend::new().await;
    let api = FakeApi::start().await;
    let store_proxy = Proxy::start(local_aws_address()).await;
    let queue_proxy = Proxy::start(local_aws_address()).await;
    let ingest = ingest_via(&backend, &store_proxy, &queue_proxy, "magicline").await;
    let rounds = [
        ("##body#", false),
        ("body_apart", false),
        ("##body#", true),
        ("body_apart", true),
    ];
    let mut kept = Vec::new();
    for (round, (dropped, spill_dropped)) in rounds.into_iter().enumerate() {
        store_proxy.drop_requests_containing(dropped);
        if spill_dropped {
            queue_proxy.drop_requests_containing("spilled");
        }
        let body = serde_json::json!({
            "entityId": 7, "uuid": format!("together-{round}"),
            "payload": [{"timestamp": 1, "type": "CUSTOMER_UPDATED"}],
            "padding": "x".repeat(8 * 1024),
        })
        .to_string();
        let request = tests::post("magicline", &[("x-api-key", "ml-demo-key-1001-new")], &body);
        let response = ingest.handle(request).await;
        let answer = response_json(&response);
        if spill_dropped {
            assert_eq!(response.status(), 503, "{dropped}: {answer}");
        } else {
            assert_eq!(response.status(), 202, "{dropped}: {answer}");
            assert_eq!(answer["stored"], false, "{dropped}: spilled");
            kept.push((answer["id"].as_str().unwrap().to_string(), body));
        }
        each_record_has_its_body(&backend, dropped).await;
        store_proxy.restore();
        queue_proxy.restore();
    }
    let processor = backend.processor(&api, settings(), Duration::from_secs(5));
    backend.pump_until_empty(&processor, 30).await;
    each_record_has_its_body(&backend, "after processing").await;
    assert_eq!(
        backend.items().await.len(),
        kept.len(),
        "a 503 left nothing"
    );
    for (key, body) in kept {
        let record = backend.record(&key).await;
        assert_eq!(record.status, Status::Processed, "{key}");
        assert_eq!(record.body, body, "{key}: the body as it came");
    }
}

/// Fails on a record whose body is kept apart but not there (and, through `Backend::items`,
/// on a body item without its record).
async fn each_record_has_its_body(backend: &Backend, when: &str) {
    for item in backend.items().await {
        if item.contains_key("body_apart") {
            let key = text(&item, "pk");
            let record = backend.store().get(key).await.unwrap().unwrap();
            assert!(!record.body.is_empty(), "{when}: {key} without its body");
        }
    }
}

/// A record and body left half written by the side-by-side writes of before: the next put of
/// the delivery (a copy, or the processor's put of its spill) writes the missing half — except
/// the body of a record erased since, which stays away.
#[tokio::test]
async fn a_large_body_or_record_left_alone_by_an_earlier_write_gets_its_other_half() {
    let backend = Backend::new().await;
    let store = backend.store();
    let record = |name: &str| Record {
        key: format!("magicline#studio-1001#{name}"),
        provider: "magicline".into(),
        tenant: "studio-1001".into(),
        event_type: "CUSTOMER_UPDATED".into(),
        entity_id: "7".into(),
        body: format!(r#"{{"padding":"{}"}}"#, "y".repeat(4096)),
        status: Status::Received,
        expires_at: now_ms() / 1000 + 3600,
        ..Record::default()
    };
    let put_raw = |item: HashMap<String, AttributeValue>| {
        let request = backend.dynamodb.put_item().table_name(&backend.table);
        request.set_item(Some(item)).send()
    };
    let alone = record("record-alone");
    put_raw(adapter_aws::dynamodb::item_image(&alone))
        .await
        .unwrap();
    let mut erased = adapter_aws::dynamodb::item_image(&record("erased"));
    erased.remove("body_apart");
    erased.insert("erased_at".into(), AttributeValue::N(now_ms().to_string()));
    put_raw(erased).await.unwrap();
    let orphan = record("body-alone");
    put_raw(HashMap::from([
        (
            "pk".into(),
            AttributeValue::S("magicline##body#studio-1001#body-alone".into()),
        ),
        ("body".into(), AttributeValue::S(orphan.body.clone())),
        (
            "expires_at".into(),
            AttributeValue::N(orphan.expires_at.to_string()),
        ),
    ]))
    .await
    .unwrap();

    for half in [&alone, &record("erased"), &orphan] {
        store.put_new(half).await.unwrap();
    }
    each_record_has_its_body(&backend, "after the puts").await;
    assert_eq!(backend.record(&alone.key).await.body, alone.body);
    assert_eq!(backend.record(&orphan.key).await.body, orphan.body);
    let erased_body = backend
        .dynamodb
        .get_item()
        .table_name(&backend.table)
        .key(
            "pk",
            AttributeValue::S("magicline##body#studio-1001#erased".into()),
        )
        .send()
        .await
        .unwrap();
    assert!(
        erased_body.item.is_none(),
        "an erased record gets no body back"
    );
    assert_eq!(backend.items().await.len(), 3);
}
