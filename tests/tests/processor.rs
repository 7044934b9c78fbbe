//! The processor end to end: signed webhook -> real handler -> DynamoDB + SQS (local endpoint)
//! -> processor invoked the way Lambda's SQS event source does -> fake provider API -> record.

use std::sync::Arc;
use std::time::Duration;

use e2e::fake_api::{Behavior, FakeApi};
use e2e::{event, response_json, Backend};
use shared::ports::{InboundMessage, Status};
use shared::process::{ProcessorSettings, Verdict};
use shared::tenants::{Loader, Tenant, TenantDirectory, TenantSource};

const TIMEOUT: Duration = Duration::from_secs(2);

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
    let keys =
        |items: Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>| {
            items
                .into_iter()
                .map(|item| item["pk"].as_s().unwrap().clone())
                .collect::<std::collections::HashSet<_>>()
        };
    let before = keys(backend.items().await);
    let provider = file.split('/').next().unwrap();
    let response = backend.ingest(provider).handle(event(file)).await;
    assert!(
        response.status().is_success(),
        "{file}: {}",
        response.status()
    );
    let after = keys(backend.items().await);
    let mut new = after.difference(&before);
    let key = new
        .next()
        .unwrap_or_else(|| panic!("{file} stored nothing new"))
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
        backend.pump_until_empty(&processor, 60).await;
        assert_eq!(
            api.calls("/magicline/v1/customers/7893459"),
            3,
            "{says}: one call per receive"
        );
        let dead = backend.drain_dead_letters().await;
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

#[tokio::test]
async fn a_429_delays_the_retry_by_retry_after() {
    let backend = Backend::with_dead_letter_queue(5).await;
    let api = FakeApi::start().await;
    api.set(
        "/flybuy/",
        Behavior::TooManyRequests {
            retry_after_seconds: 30,
        },
    );
    let processor = backend.processor(&api, settings(5), TIMEOUT);
    let key = deliver(&backend, "flybuy/customer-nearby.json").await;
    let (_, failed) = backend.pump(&processor).await;
    assert!(
        failed.is_empty(),
        "the message is replaced by a delayed copy"
    );
    // Without Retry-After it would be visible again after the pump's 1 s visibility timeout.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        backend.pump(&processor).await.0,
        0,
        "still hidden for Retry-After"
    );
    assert_eq!(api.total_calls(), 1);
    let record = backend.record(&key).await;
    assert_eq!(record.status, Status::Queued);
    let reason = record.last_error.unwrap();
    assert!(
        reason.contains("429") && reason.contains("30 s"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_429_waits_without_using_up_an_attempt() {
    let backend = Backend::with_dead_letter_queue(2).await;
    let api = FakeApi::start().await;
    api.set(
        "/flybuy/",
        Behavior::TooManyRequests {
            retry_after_seconds: 1,
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
    backend.pump_until_empty(&processor, 30).await;
    assert!(backend.drain_dead_letters().await.is_empty());
    assert_eq!(backend.record(&key).await.status, Status::Processed);
    assert_eq!(api.calls("/flybuy/api/v1/orders/187"), 4);
}

#[tokio::test]
async fn transient_failures_back_off_exponentially() {
    let backend = Backend::with_dead_letter_queue(5).await;
    let api = FakeApi::start().await;
    api.set("/egym/", Behavior::Status(502));
    let backoff = ProcessorSettings {
        retry_backoff: Duration::from_secs(3),
        ..settings(5)
    };
    let processor = backend.processor(&api, backoff, TIMEOUT);
    deliver(&backend, "egym/gym-checkout.json").await;
    assert_eq!(backend.pump(&processor).await.1.len(), 1);
    // The pump hides messages for 1 s; the first backoff (3 s) hides it longer.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(backend.pump(&processor).await.0, 0, "still backing off");
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(
        backend.pump(&processor).await.0,
        1,
        "retried after the backoff"
    );
    assert_eq!(api.total_calls(), 2);
}

#[tokio::test]
async fn permanent_failures_end_failed_once_with_the_reason() {
    for (behavior, says) in [
        (Behavior::Status(404), "404"),
        (Behavior::Status(400), "400"),
        (Behavior::Status(410), "410"),
    ] {
        let backend = Backend::with_dead_letter_queue(3).await;
        let api = FakeApi::start().await;
        api.set("/magicline/", behavior);
        let processor = backend.processor(&api, settings(3), TIMEOUT);
        let key = deliver(&backend, "magicline/customer-created.json").await;
        backend.pump_until_empty(&processor, 20).await;
        assert_eq!(api.total_calls(), 1, "{says}: not retried");
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
        backend.pump_until_empty(&processor, 30).await;
        assert_eq!(api.total_calls(), 2, "{says}: one call per receive");
        assert_eq!(backend.drain_dead_letters().await.len(), 1, "{says}");
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

#[tokio::test]
async fn a_message_whose_record_is_missing_is_reported_failed() {
    let backend = Backend::new().await;
    let api = FakeApi::start().await;
    let processor = backend.processor(&api, settings(5), TIMEOUT);
    let message = InboundMessage {
        id: "orphan".into(),
        body: r#"{"provider":"egym","tenant":"gym-berlin-01","key":"egym#gym-berlin-01#nobody#GYM_CHECKIN#1","event_type":"GYM_CHECKIN","entity_id":"nobody"}"#.into(),
        receive_count: 1,
        receipt_handle: None,
    };
    assert_eq!(processor.process(&message).await, Verdict::TryAgain);
    let unreadable = InboundMessage {
        body: "not json".into(),
        ..message
    };
    assert_eq!(processor.process(&unreadable).await, Verdict::TryAgain);
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
            note["erasure"]["records_erased"], 3,
            "{deletion}: two earlier + itself"
        );
        let untouched = backend.record(&other_subject).await;
        assert!(!untouched.body.is_empty() && untouched.detail.is_some());
        assert!(untouched.erased_at_ms.is_none());
    }
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
        TenantSource::loading(Duration::from_secs(300), loader, shared::clock::system())
    });
    let waiting = deliver(&backend, "egym/gym-checkin.json").await;
    let fine = deliver(&backend, "magicline/customer-created.json").await;
    backend.pump_until_empty(&processor, 30).await;
    assert_eq!(backend.record(&fine).await.status, Status::Processed);
    let record = backend.record(&waiting).await;
    assert_eq!(
        record.status,
        Status::Queued,
        "never FAILED: fix, then redrive"
    );
    let reason = record.last_error.unwrap();
    assert!(reason.starts_with("configuration:"), "{reason}");
    let dead = backend.drain_dead_letters().await;
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
