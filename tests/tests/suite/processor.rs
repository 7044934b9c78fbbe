//! The processor end to end: signed webhook -> real handler -> DynamoDB + SQS (local endpoint)
//! -> processor invoked the way Lambda's SQS event source does -> fake provider API -> record.

use std::sync::Arc;
use std::time::Duration;

use tests::fake_api::{Behavior, FakeApi};
use tests::proxy::{local_aws_address, Proxy};
use tests::{event, response_json, Backend, InMemory};
use webhook_core::model::{InboundMessage, QueueMessage, Status};
use webhook_core::ports::{Deliveries, Erasing, Handover};
use webhook_core::process::{ProcessorSettings, Verdict};
use webhook_core::tenants::{Loader, Tenant, TenantDirectory, TenantSource};
use webhook_core::WebhookRequest;

const TIMEOUT: Duration = Duration::from_secs(2);
/// What Magicline's `customer-created.json` fetches.
const CUSTOMER: &str = "/magicline/v1/customers/7893459";
/// The same customer read across studios.
const CROSS_STUDIO: &str = "/magicline/v1/cross-studio/customers/7893459";
/// What FlyBuy's order events fetch.
const ORDER_187: &str = "/flybuy/api/v1/orders/187";
/// What Waitwhile's `visit-updated.json` fetches.
const VISIT: &str = "/waitwhile/v2/visits/Kk1BeidF0N4p8wzp2J0x";
/// What EGYM's `gym-checkout.json` fetches.
const CHECKOUT_ACCOUNT: &str = "/egym/api/v2/accounts/3f1c2a9e-5b7d-4e8f-a0c1-d2e3f4a5b6c7";

fn settings(max_receives: u32) -> ProcessorSettings {
    ProcessorSettings {
        max_receives,
        // Retries come back after the pump's 1 s visibility timeout.
        retry_backoff: Duration::ZERO,
        ..ProcessorSettings::default()
    }
}

/// Sends an event file through the real webhook handler; returns the dedup key it stored.
async fn deliver(backend: &Backend, file: &str) -> String {
    let provider = file.split('/').next().unwrap();
    deliver_request(backend, provider, event(file)).await
}

/// Sends a request through `provider`'s real webhook handler; returns the key it stored.
async fn deliver_request(backend: &Backend, provider: &str, request: WebhookRequest) -> String {
    let keys =
        |items: Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>| {
            items
                .into_iter()
                .map(|item| item["pk"].as_s().unwrap().clone())
                .collect::<std::collections::HashSet<_>>()
        };
    let before = keys(backend.items().await);
    let response = backend.ingest(provider).handle(request).await;
    assert!(
        response.status().is_success(),
        "{provider}: {}",
        response.status()
    );
    let after = keys(backend.items().await);
    let mut new = after.difference(&before);
    let key = new
        .next()
        .unwrap_or_else(|| panic!("{provider}: nothing new stored"))
        .clone();
    assert!(new.next().is_none());
    key
}

#[tokio::test(flavor = "current_thread")]
async fn every_provider_goes_from_signed_webhook_to_stored_detail() {
    let cases = [
        (
            "magicline/customer-created.json",
            "/magicline/v1/customers/7893459",
            "x-api-key: ml-demo-openapi-1001",
        ),
        (
            "egym/gym-checkin.json",
            "/egym/api/v2/accounts/3f1c2a9e-5b7d-4e8f-a0c1-d2e3f4a5b6c7",
            "x-api-key: egym-demo-api-berlin",
        ),
        (
            "flybuy/order-created.json",
            "/flybuy/api/v1/orders/187",
            "authorization: Token token=\"flybuy-demo-api-41\"",
        ),
        (
            "waitwhile/visit-created.json",
            "/waitwhile/v2/visits/Kk1BeidF0N4p8wzp2J0x",
            "apikey: ww-demo-api-downtown",
        ),
    ];
    for (file, path, auth) in cases {
        let backend = Backend::new().await;
        let api = FakeApi::start().await;
        let processor = backend.processor(&api, settings(5), TIMEOUT);
        let key = deliver(&backend, file).await;
        let (received, failed) = backend.pump(&processor).await;
        assert_eq!((received, failed.len()), (1, 0), "{file}");
        assert_eq!(api.calls(path), 1, "{file}: {path}");
        assert_eq!(api.auth_seen(path).as_deref(), Some(auth), "{file}");
        let record = backend.record(&key).await;
        assert_eq!(record.status, Status::Processed, "{file}");
        let detail: serde_json::Value =
            serde_json::from_str(record.detail.as_deref().unwrap()).unwrap();
        assert_eq!(detail["path"], path, "{file}");
        assert!(record.processed_at_ms.is_some());
        assert_eq!(record.attempts, 1);
    }
}

#[tokio::test]
async fn egym_test_events_are_stored_without_a_fetch() {
    let backend = Backend::new().await;
    let api = FakeApi::start().await;
    let processor = backend.processor(&api, settings(5), TIMEOUT);
    let key = deliver(&backend, "egym/test.json").await;
    backend.pump(&processor).await;
    let record = backend.record(&key).await;
    assert_eq!(record.status, Status::Processed);
    assert_eq!(record.detail, None);
    assert_eq!(api.total_calls(), 0);
}

#[tokio::test]
async fn a_redelivered_processed_message_calls_no_api_again() {
    let backend = Backend::new().await;
    let api = FakeApi::start().await;
    let processor = backend.processor(&api, settings(5), TIMEOUT);
    let key = deliver(&backend, "flybuy/order-ready.json").await;
    let body = serde_json::to_string(&backend.drain().await[0]).unwrap();
    let message = |id: &str| InboundMessage {
        id: id.into(),
        body: body.clone(),
        receive_count: 1,
        receipt_handle: None,
    };
    assert_eq!(processor.process(&message("first")).await, Verdict::Done);
    assert_eq!(processor.process(&message("again")).await, Verdict::Done);
    assert_eq!(api.calls(ORDER_187), 1);
    assert_eq!(api.total_calls(), 1);
    assert_eq!(backend.record(&key).await.attempts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processors_given_the_same_message_call_the_api_once() {
    let backend = Backend::new().await;
    let api = FakeApi::start().await;
    api.set("/waitwhile/", Behavior::Slow(Duration::from_millis(400)));
    let first = Arc::new(backend.processor(&api, settings(5), TIMEOUT));
    let second = Arc::new(backend.processor(&api, settings(5), TIMEOUT));
    let key = deliver(&backend, "waitwhile/visit-updated.json").await;
    let body = serde_json::to_string(&backend.drain().await[0]).unwrap();
    let message = InboundMessage {
        id: "m".into(),
        body,
        receive_count: 1,
        receipt_handle: None,
    };
    let (a, b) = tokio::join!(first.process(&message), second.process(&message));
    let mut verdicts = [a, b];
    verdicts.sort_by_key(|v| *v == Verdict::TryAgain);
    assert_eq!(
        verdicts,
        [Verdict::Done, Verdict::TryAgain],
        "the loser retries later"
    );
    assert_eq!(api.calls(VISIT), 1);
    assert_eq!(api.total_calls(), 1);
    assert_eq!(backend.record(&key).await.status, Status::Processed);
    // The loser's redelivery finds the work done.
    assert_eq!(second.process(&message).await, Verdict::Done);
    assert_eq!(api.total_calls(), 1);
}

#[tokio::test]
async fn in_a_mixed_batch_only_the_failing_message_is_reported() {
    let backend = Backend::new().await;
    let api = FakeApi::start().await;
    api.set("/egym/", Behavior::Status(503));
    let processor = backend.processor(&api, settings(5), TIMEOUT);
    let good = deliver(&backend, "magicline/customer-checkin.json").await;
    let bad = deliver(&backend, "egym/gym-checkout.json").await;
    let fine_too = deliver(&backend, "flybuy/customer-arrived.json").await;
    let (received, failed) = backend.pump(&processor).await;
    assert_eq!(received, 3);
    assert_eq!(failed.len(), 1);
    assert_eq!(backend.record(&good).await.status, Status::Processed);
    assert_eq!(backend.record(&fine_too).await.status, Status::Processed);
    let retried = backend.record(&bad).await;
    assert_eq!(retried.status, Status::Queued);
    assert!(retried.last_error.unwrap().contains("503"));
}

#[tokio::test]
async fn transient_failures_are_retried_then_dead_lettered_with_the_reason() {
    for (behavior, says) in [
        (Behavior::Status(500), "500"),
        (Behavior::Slow(Duration::from_secs(3)), "timed out"),
        (Behavior::MalformedJson, "malformed JSON"),
    ] {
        let backend = Backend::with_dead_letter_queue(3).await;
        let api = FakeApi::start().await;
        api.set("/magicline/", behavior);
        let processor = backend.processor(&api, settings(3), Duration::from_millis(300));
        let key = deliver(&backend, "magicline/customer-created.json").await;
        let dead = backend.pump_until_dead_lettered(&processor, 1).await;
        assert_eq!(api.calls(CUSTOMER), 3, "{says}: one call per receive");
        assert_eq!(dead.len(), 1, "{says}");
        assert_eq!(dead[0].key, key);
        let record = backend.record(&key).await;
        assert_eq!(
            record.status,
            Status::Queued,
            "redrive from the DLQ can still process it"
        );
        let reason = record.last_error.unwrap();
        assert!(
            reason.contains(says) && reason.contains("dead-letter"),
            "{reason}"
        );
    }
}

/// The seconds of "waiting N s" in a record's last error.
fn waited(reason: &str) -> u64 {
    let after = reason
        .split("waiting ")
        .nth(1)
        .unwrap_or_else(|| panic!("{reason}"));
    after.split(' ').next().unwrap().parse().unwrap()
}

/// A provider that asks us to wait — a 429, or a 503 with `Retry-After` (seconds or an HTTP
/// date) — gets a copy of the message back, delayed by what it asked; a 429 without one waits a
/// random time up to a minute (full jitter). The record says so; the next delivery calls the
/// API again.
#[tokio::test]
async fn a_provider_that_asks_us_to_wait_is_waited_out_in_a_delayed_copy() {
    let in_90_s = |local: &InMemory| {
        let at = std::time::UNIX_EPOCH
            + Duration::from_millis(webhook_core::clock::Clock::now_ms(local.clock.as_ref()) as u64)
            + Duration::from_secs(90);
        httpdate::fmt_http_date(at)
    };
    for case in [
        "429 after 30",
        "429 at a date",
        "503 at a date",
        "429 unsaid",
    ] {
        let api = FakeApi::start().await;
        let local = InMemory::new(&api, settings(5));
        let (behavior, asked) = match case {
            "429 after 30" => (
                Behavior::TooManyRequests {
                    retry_after: Some("30".into()),
                },
                Some(30),
            ),
            "429 at a date" => (
                Behavior::TooManyRequests {
                    retry_after: Some(in_90_s(&local)),
                },
                Some(90),
            ),
            "503 at a date" => (
                Behavior::Unavailable {
                    retry_after: Some(in_90_s(&local)),
                },
                Some(90),
            ),
            _ => (Behavior::TooManyRequests { retry_after: None }, None),
        };
        api.set("/flybuy/", behavior);
        let key = local.deliver("flybuy/customer-nearby.json").await;
        assert_eq!(local.pump().await, 1);
        assert_eq!(api.calls(ORDER_187), 1);
        let record = local.record(&key).await;
        assert_eq!(record.status, Status::Queued, "{case}");
        let reason = record.last_error.unwrap();
        let wait = waited(&reason);
        match asked {
            Some(asked) => assert!(wait == asked || wait == asked + 1, "{case}: {reason}"),
            None => assert!((1..=60).contains(&wait), "{case}: {reason}"),
        }
        api.clear();
        local.advance(Duration::from_secs(wait - 1));
        assert_eq!(
            local.pump().await,
            0,
            "{case}: still waiting at {} s",
            wait - 1
        );
        local.advance(Duration::from_secs(1));
        assert_eq!(local.pump().await, 1, "{case}: back after {wait} s");
        assert_eq!(local.record(&key).await.status, Status::Processed, "{case}");
        assert_eq!(api.calls(ORDER_187), 2, "{case}");
    }
}

/// However often a provider asks us to wait, the wait never counts as an attempt: a copy that
/// has waited a thousand times is delayed once more.
#[tokio::test]
async fn a_wait_for_the_provider_never_counts_as_an_attempt() {
    let api = FakeApi::start().await;
    let local = InMemory::new(&api, settings(5));
    api.set(
        "/flybuy/",
        Behavior::TooManyRequests {
            retry_after: Some("1".into()),
        },
    );
    let key = local.deliver("flybuy/customer-nearby.json").await;
    local.memory.queue.clear();
    let message = QueueMessage {
        throttled: 1000,
        ..local.record(&key).await.message()
    };
    let inbound = InboundMessage {
        id: "m".into(),
        body: serde_json::to_string(&message).unwrap(),
        receive_count: 5,
        receipt_handle: None,
    };
    assert_eq!(local.processor.process(&inbound).await, Verdict::Done);
    assert_eq!(local.memory.queue.len(), 1, "a delayed copy");
    let reason = local.record(&key).await.last_error.unwrap();
    assert!(
        reason.contains("waiting 1 s") && !reason.contains("dead-letter"),
        "{reason}"
    );
    assert_eq!(api.calls(ORDER_187), 1);
}

/// When the delayed copy cannot be queued, the message itself is retried: nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_whose_delayed_copy_cannot_be_queued_retries_the_message() {
    let backend = Backend::with_dead_letter_queue(5).await;
    let api = FakeApi::start().await;
    let sqs_proxy = Proxy::start(local_aws_address()).await;
    let sqs = aws_sdk_sqs::Client::new(&tests::aws_at(&sqs_proxy.url).await);
    let ports = adapter_aws::ports(
        backend.store(),
        adapter_aws::SqsQueue::new(sqs, &backend.queue_url),
        webhook_core::clock::system(),
    );
    let processor = tests::demo_processor(ports, &api, settings(5), TIMEOUT, |_, demo| {
        TenantSource::fixed(demo)
    });
    api.set(
        "/flybuy/",
        Behavior::TooManyRequests {
            retry_after: Some("1".into()),
        },
    );
    let key = deliver(&backend, "flybuy/customer-nearby.json").await;
    sqs_proxy.drop_requests_containing("DelaySeconds");
    let (received, failed) = backend.pump(&processor).await;
    assert_eq!((received, failed.len()), (1, 1), "reported for retry");
    let reason = backend.record(&key).await.last_error.unwrap();
    assert!(
        reason.contains("429") && reason.contains("attempt 1 of 5"),
        "{reason}"
    );
    api.clear();
    backend.pump_until_empty(&processor, 10).await;
    assert_eq!(backend.record(&key).await.status, Status::Processed);
    assert_eq!(api.calls(ORDER_187), 2);
}

#[tokio::test]
async fn a_429_waits_without_using_up_an_attempt() {
    let backend = Backend::with_dead_letter_queue(2).await;
    let api = FakeApi::start().await;
    api.set(
        "/flybuy/",
        Behavior::TooManyRequests {
            retry_after: Some("1".into()),
        },
    );
    let processor = backend.processor(&api, settings(2), TIMEOUT);
    let key = deliver(&backend, "flybuy/customer-nearby.json").await;
    // Three 429s in a row with a redrive limit of 2 receives: each wait is a fresh message.
    for round in 1..=3 {
        let mut received = 0;
        for _ in 0..30 {
            received = backend.pump(&processor).await.0;
            if received > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(received, 1, "round {round}");
    }
    api.clear();
    let record = backend.pump_until_finished(&processor, &key).await;
    assert_eq!(record.status, Status::Processed);
    assert!(backend.drain_dead_letters().await.is_empty());
    assert_eq!(api.calls(ORDER_187), 4);
}

/// Each transient failure hides the message twice as long as the one before.
#[tokio::test]
async fn transient_failures_back_off_exponentially() {
    let api = FakeApi::start().await;
    let backoff = ProcessorSettings {
        retry_backoff: Duration::from_secs(10),
        ..settings(5)
    };
    let local = InMemory::new(&api, backoff);
    api.set("/egym/", Behavior::Status(502));
    local.deliver("egym/gym-checkout.json").await;
    assert_eq!(local.pump().await, 1);
    for wait in [10, 20, 40] {
        local.advance(Duration::from_secs(wait - 1));
        assert_eq!(local.pump().await, 0, "still backing off at {} s", wait - 1);
        local.advance(Duration::from_secs(2));
        assert_eq!(local.pump().await, 1, "retried after {wait} s");
    }
    assert_eq!(api.calls(CHECKOUT_ACCOUNT), 4);
}

/// Every attempt is kept with the record — when, what it came to, how long, the provider's
/// status, the error — not only the last error.
#[tokio::test]
async fn a_record_keeps_each_attempt() {
    let api = FakeApi::start().await;
    let local = InMemory::new(&api, settings(5));
    api.set("/egym/", Behavior::Status(502));
    let key = local.deliver("egym/gym-checkout.json").await;
    assert_eq!(local.pump().await, 1);
    api.clear();
    // Back once the receive's visibility (30 s) is over.
    local.advance(Duration::from_secs(31));
    assert_eq!(local.pump().await, 1);
    let record = local.record(&key).await;
    assert_eq!(record.status, Status::Processed);
    let outcomes: Vec<(&str, Option<u16>)> = record
        .history
        .iter()
        .map(|tried| (tried.outcome.as_str(), tried.http_status))
        .collect();
    assert_eq!(outcomes, [("retry", Some(502)), ("fetched", None)]);
    assert!(record.history[0]
        .error
        .as_deref()
        .is_some_and(|e| e.contains("502")));
    assert!(record.history[0].at_ms < record.history[1].at_ms);
}

/// A customer who changed home studio is no longer visible with the source studio's key
/// (FACTS.md §1.2): the 404 there sends processing to the cross-studio read, and the detail
/// marks the customer detached from the source studio. Visible still, nothing more is called.
#[tokio::test]
async fn a_customer_who_moved_studio_is_read_cross_studio_and_marked_detached() {
    let moved = |uuid: &str| {
        let body = format!(
            r#"{{"entityId": 7893459, "uuid": "{uuid}", "payload": [{{"timestamp": 1795640400000,
            "type": "CUSTOMER_HOME_STUDIO_UPDATED", "content": {{"sourceStudioId": 1001, "targetStudioId": 2002}}}}]}}"#
        );
        tests::post(
            "magicline",
            &[
                ("x-api-key", "ml-demo-key-1001-new"),
                ("content-type", "application/json"),
            ],
            &body,
        )
    };
    let api = FakeApi::start().await;
    let local = InMemory::new(&api, settings(5));
    let still_here = local.deliver_request("magicline", moved("u-1")).await;
    assert_eq!(local.pump().await, 1);
    let record = local.record(&still_here).await;
    assert_eq!(record.status, Status::Processed);
    assert_eq!(api.calls(CUSTOMER), 1);
    assert_eq!(api.calls(CROSS_STUDIO), 0, "visible with this studio's key");

    api.set(CUSTOMER, Behavior::Status(404));
    let gone = local.deliver_request("magicline", moved("u-2")).await;
    assert_eq!(local.pump().await, 1);
    let record = local.record(&gone).await;
    assert_eq!(record.status, Status::Processed, "{:?}", record.last_error);
    assert_eq!(api.calls(CROSS_STUDIO), 1);
    let detail: serde_json::Value =
        serde_json::from_str(record.detail.as_deref().unwrap()).unwrap();
    assert_eq!(detail["detached_from_studio"], 1001);
    assert_eq!(detail["cross_studio"]["path"], CROSS_STUDIO, "{detail}");
}

#[tokio::test]
async fn permanent_failures_end_failed_once_with_the_reason() {
    // Another host, holding the same API: a redirect there would hand it the API key.
    let elsewhere = FakeApi::start().await;
    let redirect = format!("{}{CUSTOMER}", elsewhere.base_url);
    for (behavior, says) in [
        (Behavior::Status(404), "404"),
        (Behavior::Status(400), "400"),
        (Behavior::Status(410), "410"),
        (
            Behavior::Redirect(redirect),
            "302 Found (a redirect, not followed)",
        ),
        (
            Behavior::Oversized(200 * 1024),
            "answer is over 131072 bytes",
        ),
    ] {
        let backend = Backend::with_dead_letter_queue(3).await;
        let api = FakeApi::start().await;
        api.set("/magicline/", behavior);
        let processor = backend.processor(&api, settings(3), TIMEOUT);
        let key = deliver(&backend, "magicline/customer-created.json").await;
        backend.pump_until_empty(&processor, 20).await;
        assert_eq!(api.calls(CUSTOMER), 1, "{says}: not retried");
        assert_eq!(api.total_calls(), 1, "{says}");
        assert_eq!(elsewhere.total_calls(), 0, "{says}: never followed");
        assert!(backend.drain_dead_letters().await.is_empty());
        let record = backend.record(&key).await;
        assert_eq!(record.status, Status::Failed, "{says}");
        assert!(record.last_error.unwrap().contains(says), "{says}");
    }
}

#[tokio::test]
async fn refused_credentials_are_retried_then_dead_lettered_never_failed() {
    for (behavior, says) in [
        (Behavior::Status(401), "401"),
        (Behavior::Status(403), "403"),
    ] {
        let backend = Backend::with_dead_letter_queue(2).await;
        let api = FakeApi::start().await;
        api.set("/magicline/", behavior);
        let processor = backend.processor(&api, settings(2), TIMEOUT);
        let key = deliver(&backend, "magicline/customer-created.json").await;
        let dead = backend.pump_until_dead_lettered(&processor, 1).await;
        assert_eq!(api.calls(CUSTOMER), 2, "{says}: one call per receive");
        assert_eq!(api.total_calls(), 2, "{says}");
        assert_eq!(dead.len(), 1, "{says}");
        assert_eq!(dead[0].key, key, "{says}");
        let record = backend.record(&key).await;
        assert_eq!(
            record.status,
            Status::Queued,
            "{says}: redrive can process it"
        );
        let reason = record.last_error.unwrap();
        assert!(
            reason.starts_with("configuration:") && reason.contains(says),
            "{reason}"
        );
    }
}

/// A message whose record is missing, and one that is not a message at all, are retried and
/// end in the dead-letter queue as they came: never dropped.
#[tokio::test]
async fn a_message_whose_record_is_missing_is_reported_failed_then_dead_lettered() {
    let backend = Backend::with_dead_letter_queue(2).await;
    let api = FakeApi::start().await;
    let processor = backend.processor(&api, settings(2), TIMEOUT);
    let orphan = r#"{"provider":"egym","tenant":"gym-berlin-01","key":"egym#gym-berlin-01#nobody#GYM_CHECKIN#1","event_type":"GYM_CHECKIN","entity_id":"nobody"}"#;
    let message = |body: &str| InboundMessage {
        id: "orphan".into(),
        body: body.into(),
        receive_count: 1,
        receipt_handle: None,
    };
    assert_eq!(processor.process(&message(orphan)).await, Verdict::TryAgain);
    assert_eq!(
        processor.process(&message("not json")).await,
        Verdict::TryAgain
    );
    for body in [orphan, "not json"] {
        backend
            .sqs
            .send_message()
            .queue_url(&backend.queue_url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    backend.pump_until_empty(&processor, 10).await;
    let mut dead = backend.dead_letter_bodies().await;
    dead.sort();
    assert_eq!(dead, ["not json", orphan]);
    assert_eq!(api.total_calls(), 0);
}

#[tokio::test]
async fn deletion_events_erase_the_subjects_personal_data() {
    let cases = [
        (
            "egym/gym-checkin.json",
            "egym/equipment-checkin.json",
            "egym/membership-delete.json",
        ),
        (
            "timify/customers-created.json",
            "timify/customers-updated.json",
            "timify/customers-deleted.json",
        ),
        (
            "waitwhile/visit-created.json",
            "waitwhile/visit-updated.json",
            "waitwhile/visit-removed.json",
        ),
    ];
    for (first, second, deletion) in cases {
        let backend = Backend::new().await;
        let api = FakeApi::start().await;
        let processor = backend.processor(&api, settings(5), TIMEOUT);
        let earlier = [
            deliver(&backend, first).await,
            deliver(&backend, second).await,
        ];
        let other_subject = deliver(&backend, "egym/second-gym.json").await;
        backend.pump_until_empty(&processor, 10).await;
        for key in &earlier {
            assert_eq!(
                backend.record(key).await.status,
                Status::Processed,
                "{key} processed before"
            );
        }
        let delete_key = deliver(&backend, deletion).await;
        backend.pump_until_empty(&processor, 10).await;
        for key in &earlier {
            let record = backend.record(key).await;
            assert_eq!(record.body, "", "{deletion}: raw body of {key} erased");
            assert_eq!(record.detail, None, "{deletion}: detail of {key} erased");
            assert!(record.erased_at_ms.is_some());
            assert_eq!(
                record.status,
                Status::Processed,
                "the record itself stays, without data"
            );
        }
        let deletion_record = backend.record(&delete_key).await;
        assert_eq!(deletion_record.status, Status::Processed);
        assert_eq!(
            deletion_record.body, "",
            "the deletion event's own body is erased too"
        );
        let note: serde_json::Value =
            serde_json::from_str(&deletion_record.detail.unwrap()).unwrap();
        assert_eq!(
            note["erasure"]["records"], 3,
            "{deletion}: two earlier + itself"
        );
        let untouched = backend.record(&other_subject).await;
        assert!(!untouched.body.is_empty() && untouched.detail.is_some());
        assert!(untouched.erased_at_ms.is_none());
    }
}

/// A Magicline delivery of one event about `entity`, with the demo studio's key.
fn magicline(entity: u64, event_type: &str, uuid: &str) -> WebhookRequest {
    let body = serde_json::json!({
        "entityId": entity, "uuid": uuid,
        "payload": [{"timestamp": 1795640400000u64, "type": event_type}],
    });
    tests::post(
        "magicline",
        &[("x-api-key", "ml-demo-key-1001-new")],
        &body.to_string(),
    )
}

#[tokio::test]
async fn magiclines_three_deletion_types_erase_what_came_before_and_what_comes_after() {
    let cases = [
        (
            "CUSTOMER_DELETED",
            7893459,
            ["CUSTOMER_CREATED", "CUSTOMER_CHECKIN"],
        ),
        (
            "CUSTOMER_ACCESS_DISABLED",
            7893459,
            ["CUSTOMER_UPDATED", "CUSTOMER_CHECKOUT"],
        ),
        (
            "EMPLOYEE_DELETED",
            42,
            ["EMPLOYEE_CREATED", "EMPLOYEE_UPDATED"],
        ),
    ];
    for (deletion, entity, before) in cases {
        let backend = Backend::new().await;
        let api = FakeApi::start().await;
        let processor = backend.processor(&api, settings(5), TIMEOUT);
        let mut earlier = Vec::new();
        for (n, event_type) in before.iter().enumerate() {
            let request = magicline(entity, event_type, &format!("{deletion}-before-{n}"));
            earlier.push(deliver_request(&backend, "magicline", request).await);
        }
        let other = deliver_request(
            &backend,
            "magicline",
            magicline(5551234, "CUSTOMER_UPDATED", "other"),
        )
        .await;
        backend.pump_until_empty(&processor, 10).await;
        for key in &earlier {
            assert!(
                backend.record(key).await.detail.is_some(),
                "{deletion}: {key} fetched before"
            );
        }
        let calls_before = api.total_calls();
        let deletion_key =
            deliver_request(&backend, "magicline", magicline(entity, deletion, deletion)).await;
        backend.pump_until_empty(&processor, 10).await;
        for key in &earlier {
            let record = backend.record(key).await;
            assert_eq!(
                (record.body.as_str(), record.detail.as_deref()),
                ("", None),
                "{deletion}: {key}"
            );
            assert!(record.erased_at_ms.is_some(), "{deletion}: {key}");
        }
        let deletion_record = backend.record(&deletion_key).await;
        assert_eq!(deletion_record.body, "", "{deletion}: its own body too");
        let note: serde_json::Value =
            serde_json::from_str(&deletion_record.detail.unwrap()).unwrap();
        assert_eq!(note["erasure"]["records"], 3, "{deletion}: two + itself");
        let subject = backend.record(&earlier[0]).await.subject;
        assert!(
            backend.store().erased_at(&subject).await.unwrap().is_some(),
            "{deletion}: a tombstone"
        );
        assert_eq!(
            api.total_calls(),
            calls_before,
            "{deletion}: erasing calls no API"
        );
        // A later delivery about the erased person keeps no body and fetches nothing.
        let later =
            deliver_request(&backend, "magicline", magicline(entity, before[1], "later")).await;
        backend.pump_until_empty(&processor, 10).await;
        let record = backend.record(&later).await;
        assert_eq!(
            (record.status, record.body.as_str()),
            (Status::Processed, ""),
            "{deletion}"
        );
        assert_eq!(
            api.total_calls(),
            calls_before,
            "{deletion}: nothing fetched after"
        );
        let untouched = backend.record(&other).await;
        assert!(
            !untouched.body.is_empty() && untouched.detail.is_some(),
            "{deletion}"
        );
    }
}

const TIMIFY_TOKEN: &str = "/timify/v1/auth/token";
const TIMIFY_APPOINTMENTS: &str = "/timify/v1/appointments";

/// TIMIFY's access token is exchanged once and reused, renewed once the API refuses it, and
/// renewed a minute before it expires without waiting for a refusal.
#[tokio::test]
async fn timify_tokens_are_cached_renewed_after_a_refusal_and_before_they_expire() {
    let api = FakeApi::start().await;
    let local = InMemory::new(&api, settings(5));
    local.deliver("timify/event-created.json").await;
    local.deliver("timify/sync-before-confirmations.json").await;
    assert_eq!(local.pump().await, 2);
    assert_eq!(api.calls(TIMIFY_APPOINTMENTS), 2);
    assert_eq!(api.calls(TIMIFY_TOKEN), 1, "one exchange for both fetches");

    api.revoke_tokens();
    let refused = local.deliver("timify/sync-before-reminders.json").await;
    assert_eq!(local.pump().await, 1);
    assert_eq!(api.refused().len(), 1, "the revoked token, refused once");
    assert_eq!(api.calls(TIMIFY_TOKEN), 2, "renewed after the refusal");
    assert_eq!(local.record(&refused).await.status, Status::Processed);

    // The token is good for 3600 s: 59 s before its end, the next fetch renews it first.
    local.advance(Duration::from_secs(3600 - 59));
    let kit = testkit::Kit::of(webhook_core::providers::by_name("timify").unwrap().as_ref());
    let case = kit
        .cases()
        .iter()
        .find(|case| case.name == "event-updated")
        .unwrap();
    let key = local.deliver_request("timify", kit.request(case)).await;
    assert_eq!(local.pump().await, 1);
    assert_eq!(api.calls(TIMIFY_TOKEN), 3, "renewed before it expired");
    assert_eq!(api.refused().len(), 1, "without a refusal first");
    assert_eq!(local.record(&key).await.status, Status::Processed);
    assert_eq!(api.calls(TIMIFY_APPOINTMENTS), 4);
}

#[tokio::test]
async fn timify_answers_sync_webhooks_before_any_processing() {
    let backend = Backend::new().await;
    let response = backend
        .ingest("timify")
        .handle(event("timify/sync-before-reminders.json"))
        .await;
    assert_eq!(response_json(&response), serde_json::json!({}));
}

#[tokio::test]
async fn a_provider_whose_tenants_do_not_load_holds_back_only_its_own_events() {
    let backend = Backend::with_dead_letter_queue(2).await;
    let api = FakeApi::start().await;
    let broken = "egym";
    let processor = backend.processor_with(&api, settings(2), TIMEOUT, |provider, demo| {
        if provider != broken {
            return TenantSource::fixed(demo);
        }
        let loader: Loader = Arc::new(|| {
            Box::pin(async { TenantDirectory::from_json(r#"{"tenants": [{"id": 7}]}"#) })
        });
        TenantSource::loading(
            Duration::from_secs(300),
            loader,
            webhook_core::clock::system(),
        )
    });
    let waiting = deliver(&backend, "egym/gym-checkin.json").await;
    let fine = deliver(&backend, "magicline/customer-created.json").await;
    let dead = backend.pump_until_dead_lettered(&processor, 1).await;
    let fine = backend.pump_until_finished(&processor, &fine).await;
    assert_eq!(fine.status, Status::Processed);
    let record = backend.record(&waiting).await;
    assert_eq!(
        record.status,
        Status::Queued,
        "never FAILED: fix, then redrive"
    );
    let reason = record.last_error.unwrap();
    assert!(reason.starts_with("configuration:"), "{reason}");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].key, waiting);
}

#[tokio::test]
async fn an_event_of_a_tenant_not_yet_configured_waits_for_the_configuration() {
    let backend = Backend::with_dead_letter_queue(5).await;
    let api = FakeApi::start().await;
    let without_berlin = |provider: &str, demo: TenantDirectory| {
        if provider != "egym" {
            return TenantSource::fixed(demo);
        }
        let others: Vec<Tenant> = demo
            .iter()
            .filter(|t| t.id != "gym-berlin-01")
            .cloned()
            .collect();
        TenantSource::fixed(TenantDirectory::new(others).unwrap())
    };
    let before = backend.processor_with(&api, settings(5), TIMEOUT, without_berlin);
    let key = deliver(&backend, "egym/gym-checkin.json").await;
    backend.pump(&before).await;
    assert_eq!(backend.record(&key).await.status, Status::Queued);
    // The gym is added to the configuration: the next delivery of the message processes it.
    let after = backend.processor(&api, settings(5), TIMEOUT);
    backend.pump_until_empty(&after, 30).await;
    assert_eq!(backend.record(&key).await.status, Status::Processed);
}

/// Only what a webhook function authenticated is acted on. Every webhook function may send to
/// the work queue, so a message may be written by another provider's role: a spill of an EGYM
/// deletion without the EGYM function's seal (or sealed with another provider's key) is not
/// stored — it ends in the dead-letter queue — and a second erasure pass naming a record that
/// erased nobody erases nothing; a spill sealed with the tenant's own secret is stored.
#[tokio::test]
async fn forged_queue_messages_store_and_erase_nothing() {
    let backend = Backend::with_dead_letter_queue(2).await;
    let api = FakeApi::start().await;
    let processor = backend.processor(&api, settings(2), TIMEOUT);
    let member = deliver(&backend, "egym/gym-checkin.json").await;
    backend.pump_until_empty(&processor, 10).await;
    let before = backend.record(&member).await;
    assert!(before.detail.is_some());

    let tenants = tests::demo_tenants("egym");
    let provider = webhook_core::providers::by_name("egym").unwrap();
    let tenant = tenants.get("gym-berlin-01").unwrap();
    let deletion = tests::event("egym/membership-delete.json");
    let spill = || {
        webhook_core::ingest::Delivery {
            provider: provider.as_ref(),
            tenant,
            body: deletion.body(),
            declared_json: true,
            unauthenticated: false,
            signature_key: None,
        }
        .record(1, &webhook_core::IngestSettings::default())
        .spill()
    };
    let unsealed = spill();
    let mut sealed_elsewhere = spill();
    sealed_elsewhere.seal("ml-demo-key-1001-new");
    let second_pass = QueueMessage {
        work: webhook_core::model::Work::EraseAgain,
        ..before.message()
    };
    use webhook_core::ports::Queue;
    for message in [&unsealed, &sealed_elsewhere, &second_pass] {
        backend.queue().send(message).await.unwrap();
    }
    backend.pump_until_empty(&processor, 20).await;
    assert_eq!(backend.record(&member).await, before, "nothing erased");
    assert!(
        backend.store().get(&unsealed.key).await.unwrap().is_none(),
        "the forged deletion is not stored"
    );
    assert_eq!(
        backend.dead_letter_bodies().await.len(),
        2,
        "both forged spills"
    );

    let mut sealed = spill();
    sealed.seal(tenant.webhook_secrets[0].expose());
    backend.queue().send(&sealed).await.unwrap();
    backend.pump_until_empty(&processor, 10).await;
    let stored = backend.record(&sealed.key).await;
    assert_eq!(
        stored.status,
        Status::Processed,
        "a sealed spill is the real thing"
    );
}

/// Every acknowledged delivery ends `PROCESSED`, `FAILED` or `QUARANTINED`: one still
/// unfinished a day after it came — its message lost, or dead-lettered after its attempts — is
/// counted as stuck and sent through the queue once more, once in its life.
#[tokio::test]
async fn a_delivery_unfinished_a_day_later_is_counted_and_queued_once_more() {
    use webhook_core::reconcile::{ReconcileReport, Reconciler};
    let api = FakeApi::start().await;
    let local = InMemory::new(&api, settings(2));
    let lost = local.deliver("magicline/customer-created.json").await;
    local.memory.store.mark_queued(&lost).await.unwrap();
    local.memory.queue.clear();
    api.set("/egym/", Behavior::Status(500));
    let failing = local.deliver("egym/gym-checkout.json").await;
    let pump = || async {
        for _ in 0..4 {
            local.pump().await;
            local.advance(Duration::from_secs(31));
        }
    };
    pump().await;
    assert_eq!(local.memory.queue.dead_letters().len(), 1);
    let ingest = webhook_core::IngestSettings::default();
    let reconciler = Reconciler::new(local.memory.ports.clone(), ingest.lease);
    let reconcile = || reconciler.reconcile(ingest.retention, 100);
    let report = |stuck, requeued| ReconcileReport { stuck, requeued };
    assert_eq!(reconcile().await.unwrap(), report(0, 0), "within the day");

    local.advance(Duration::from_secs(24 * 3600));
    assert_eq!(reconcile().await.unwrap(), report(2, 2));
    pump().await;
    assert_eq!(local.record(&lost).await.status, Status::Processed);
    assert_eq!(api.calls(CUSTOMER), 1);
    let failed_again = local.record(&failing).await;
    assert_eq!(failed_again.status, Status::Queued, "{failed_again:?}");
    assert_eq!(local.memory.queue.dead_letters().len(), 2);
    assert_eq!(api.calls(CHECKOUT_ACCOUNT), 4, "two attempts, twice");
    assert_eq!(reconcile().await.unwrap(), report(1, 0), "once in its life");
    pump().await;
    assert_eq!(api.calls(CHECKOUT_ACCOUNT), 4, "no loop");
}

/// The last attempt says what happens next and makes it happen: its message is visible again
/// at once, so the queue moves it to the dead-letter queue at its next receive (no waiting out
/// a backoff or a visibility timeout), and `last_error` and the log say so, not "tried again".
#[tokio::test]
async fn the_last_attempt_reaches_the_dead_letter_queue_at_the_next_receive() {
    let api = FakeApi::start().await;
    let local = InMemory::new(&api, settings(2));
    api.set("/magicline/", Behavior::Status(503));
    let key = local.deliver("magicline/customer-created.json").await;
    assert_eq!(local.pump().await, 1);
    local.advance(Duration::from_secs(31));
    assert_eq!(local.pump().await, 1, "the last attempt");
    let record = local.record(&key).await;
    let reason = record.last_error.unwrap();
    assert!(
        reason.contains("attempt 2 of 2, the last") && reason.contains("dead-letter queue"),
        "{reason}"
    );
    assert!(local.memory.queue.dead_letters().is_empty());
    assert_eq!(
        local.pump().await,
        0,
        "no time passed: the next receive moves it"
    );
    assert_eq!(local.memory.queue.dead_letters().len(), 1);
    assert_eq!(api.calls(CUSTOMER), 2);
}
