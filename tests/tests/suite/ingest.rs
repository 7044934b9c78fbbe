//! The ingest path end to end against the local DynamoDB/SQS endpoint, through the real handler.

use std::sync::Arc;

use adapter_aws::SqsQueue;
use base64::Engine;
use tests::{event, post, response_json, Backend};
use webhook_core::clock::{Clock, SystemClock};
use webhook_core::model::{PutOutcome, Record, Status};
use webhook_core::ports::{Deliveries, Handover};
use webhook_core::{Ingest, IngestSettings, WebhookRequest};

fn now_ms() -> i64 {
    SystemClock.now_ms()
}

#[tokio::test]
async fn a_valid_webhook_is_stored_once_and_queued_once() {
    let backend = Backend::new().await;
    let ingest = backend.ingest("magicline");
    let response = ingest
        .handle(event("magicline/customer-created.json"))
        .await;
    assert_eq!(response.status(), 202);
    let answer = response_json(&response);
    let key = "magicline#studio-1001#095be615-a8ad-4c33-8e9c-c7612fbf6c9f";
    assert_eq!(answer["id"], key);
    assert_eq!(answer["duplicate"], false);

    let record = backend
        .store()
        .get(key)
        .await
        .unwrap()
        .expect("record stored");
    // Two round trips (put, send): the message is queued, the record left RECEIVED under its
    // lease for the sweeper to re-send only if nobody claims it.
    assert_eq!(record.status, Status::Received);
    assert!(record.lease_until_ms > now_ms());
    assert_eq!(record.tenant, "studio-1001");
    assert_eq!(record.event_type, "CUSTOMER_CREATED");
    assert_eq!(record.entity_id, "7893459");
    assert!(record.body.contains("095be615"));
    assert!(record.expires_at > record.received_at_ms / 1000);

    let messages = backend.drain().await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].key, key);
    assert_eq!(messages[0].provider, "magicline");
    assert_eq!(messages[0].tenant, "studio-1001");
    assert_eq!(messages[0].entity_id, "7893459");
}

#[tokio::test]
async fn the_message_carries_no_secret() {
    let backend = Backend::new().await;
    backend
        .ingest("egym")
        .handle(event("egym/gym-checkin.json"))
        .await;
    let raw = backend
        .sqs
        .receive_message()
        .queue_url(&backend.queue_url)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap();
    assert_eq!(raw.len(), 1);
    assert!(!raw[0].body().unwrap().contains("egym-demo-secret"));
}

#[tokio::test]
async fn the_same_delivery_again_is_a_duplicate_and_enqueues_nothing() {
    let backend = Backend::new().await;
    let ingest = backend.ingest("egym");
    assert_eq!(
        ingest.handle(event("egym/gym-checkin.json")).await.status(),
        202
    );
    let again = ingest.handle(event("egym/gym-checkin.json")).await;
    assert_eq!(again.status(), 200);
    assert_eq!(response_json(&again)["duplicate"], true);
    assert_eq!(backend.items().await.len(), 1);
    assert_eq!(backend.drain().await.len(), 1);
}

#[tokio::test]
async fn the_same_event_for_another_tenant_is_not_a_duplicate() {
    let backend = Backend::new().await;
    let ingest = backend.ingest("magicline");
    let body = r#"{"entityId": 1, "uuid": "same-uuid", "payload": [{"timestamp": 1, "type": "CUSTOMER_CREATED"}]}"#;
    for key in ["ml-demo-key-1001-new", "ml-demo-key-2002"] {
        let response = ingest
            .handle(post("magicline", &[("x-api-key", key)], body))
            .await;
        assert_eq!(response.status(), 202);
    }
    assert_eq!(backend.drain().await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_deliveries_of_one_key_enqueue_exactly_one_message() {
    for provider_event in [
        "magicline/customer-checkin.json",
        "egym/equipment-checkin.json",
    ] {
        let backend = Backend::new().await;
        let ingest = Arc::new(backend.ingest(provider_event.split('/').next().unwrap()));
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let ingest = Arc::clone(&ingest);
            tasks.push(tokio::spawn(async move {
                ingest.handle(event(provider_event)).await.status().as_u16()
            }));
        }
        let mut statuses = Vec::new();
        for task in tasks {
            statuses.push(task.await.unwrap());
        }
        statuses.sort();
        let mut expected = vec![200; 63];
        expected.push(202);
        assert_eq!(
            statuses, expected,
            "{provider_event}: one new, 63 duplicates"
        );
        assert_eq!(backend.items().await.len(), 1);
        assert_eq!(backend.drain().await.len(), 1, "{provider_event}");
    }
}

#[tokio::test]
async fn rotation_accepts_old_and_new_keys_and_refuses_a_removed_one() {
    let backend = Backend::new().await;
    let body = |uuid: &str| {
        format!(
            r#"{{"entityId": 1, "uuid": "{uuid}", "payload": [{{"timestamp": 1, "type": "CUSTOMER_CREATED"}}]}}"#
        )
    };
    let during = webhook_core::tenants::TenantDirectory::from_json(
        r#"{"tenants": [{"id": "studio-9", "webhook_secrets": ["key-new", "key-old"]}]}"#,
    )
    .unwrap();
    let ingest = backend.ingest_with("magicline", during, IngestSettings::default());
    for (key, uuid) in [("key-new", "r1"), ("key-old", "r2")] {
        let response = ingest
            .handle(post("magicline", &[("x-api-key", key)], &body(uuid)))
            .await;
        assert_eq!(response.status(), 202, "{key}");
    }
    let after = webhook_core::tenants::TenantDirectory::from_json(
        r#"{"tenants": [{"id": "studio-9", "webhook_secrets": ["key-new"]}]}"#,
    )
    .unwrap();
    let ingest = backend.ingest_with("magicline", after, IngestSettings::default());
    let refused = ingest
        .handle(post("magicline", &[("x-api-key", "key-old")], &body("r3")))
        .await;
    assert_eq!(refused.status(), 401);
    assert_eq!(backend.items().await.len(), 2);
    assert_eq!(backend.drain().await.len(), 2);
}

#[tokio::test]
async fn a_failed_enqueue_is_acknowledged_once_stored_and_the_sweeper_enqueues_it_once() {
    let backend = Backend::new().await;
    // A queue that does not exist: SendMessage really fails on the wire.
    let gone = SqsQueue::new(backend.sqs.clone(), format!("{}-gone", backend.queue_url));
    let broken = Ingest::new(
        webhook_core::providers::by_name("magicline").unwrap(),
        tests::demo_tenants("magicline"),
        adapter_aws::ports(backend.store(), gone, Arc::new(SystemClock)),
        IngestSettings::default(),
    );
    let response = broken
        .handle(event("magicline/customer-created.json"))
        .await;
    assert_eq!(
        response.status(),
        202,
        "durably stored: the sweeper owns it now"
    );
    assert_eq!(response_json(&response)["queued"], false);
    let key = "magicline#studio-1001#095be615-a8ad-4c33-8e9c-c7612fbf6c9f";
    let record = backend.store().get(key).await.unwrap().unwrap();
    assert_eq!(record.status, Status::Received);
    assert!(
        record.lease_until_ms <= now_ms(),
        "lease released for the sweeper"
    );
    assert!(backend.drain().await.is_empty());

    let report = backend.sweeper().sweep(100).await.unwrap();
    assert_eq!(report.enqueued, 1);
    assert_eq!(
        backend.sweeper().sweep(100).await.unwrap().found,
        0,
        "nothing left"
    );
    assert_eq!(
        backend.store().get(key).await.unwrap().unwrap().status,
        Status::Queued
    );
    // A provider that retries anyway is told it is a duplicate.
    let again = backend
        .ingest("magicline")
        .handle(event("magicline/customer-created.json"))
        .await;
    assert_eq!(again.status(), 200);
    assert_eq!(backend.drain().await.len(), 1);
}

#[tokio::test]
async fn the_sweeper_leaves_live_leases_alone() {
    let backend = Backend::new().await;
    let store = backend.store();
    let now = now_ms();
    let in_flight = Record {
        key: "egym#gym-berlin-01#a#GYM_CHECKIN#1".into(),
        provider: "egym".into(),
        tenant: "gym-berlin-01".into(),
        event_type: "GYM_CHECKIN".into(),
        entity_id: "a".into(),
        body: "{}".into(),
        received_at_ms: now,
        status: Status::Received,
        lease_until_ms: now + 60_000,
        expires_at: now / 1000 + 3600,
        ..Record::default()
    };
    store.put_new(&in_flight).await.unwrap();
    assert_eq!(backend.sweeper().sweep(100).await.unwrap().found, 0);
    store.release(&in_flight.key, now_ms()).await.unwrap();
    assert_eq!(backend.sweeper().sweep(100).await.unwrap().enqueued, 1);
    let messages = backend.drain().await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].entity_id, "a");
    assert_eq!(messages[0].event_type, "GYM_CHECKIN");
}

#[tokio::test]
async fn a_copy_of_a_delivery_in_flight_is_a_duplicate_and_only_the_sweeper_resends() {
    let backend = Backend::new().await;
    let store = backend.store();
    let key = "egym#gym-berlin-01#3f1c2a9e-5b7d-4e8f-a0c1-d2e3f4a5b6c7#GYM_CHECKOUT#1795640400000";
    let now = now_ms();
    let in_flight = Record {
        key: key.to_string(),
        provider: "egym".into(),
        tenant: "gym-berlin-01".into(),
        event_type: "GYM_CHECKOUT".into(),
        entity_id: "3f1c2a9e-5b7d-4e8f-a0c1-d2e3f4a5b6c7".into(),
        body: "{}".into(),
        received_at_ms: now,
        status: Status::Received,
        lease_until_ms: now + 60_000,
        expires_at: now / 1000 + 3600,
        ..Record::default()
    };
    assert_eq!(
        store.put_new(&in_flight).await.unwrap(),
        PutOutcome::Created
    );
    let ingest = backend.ingest("egym");
    let response = ingest.handle(event("egym/gym-checkout.json")).await;
    assert_eq!(
        response.status(),
        200,
        "stored: sent by its delivery, or the sweeper's"
    );
    assert!(backend.drain().await.is_empty());

    // The other delivery died before it sent anything: a copy arriving after its lease is
    // still a duplicate; the sweeper sends the record, once.
    store.release(key, now_ms()).await.unwrap();
    let response = ingest.handle(event("egym/gym-checkout.json")).await;
    assert_eq!(response.status(), 200);
    assert!(backend.drain().await.is_empty());
    assert_eq!(backend.sweeper().sweep(100).await.unwrap().enqueued, 1);
    assert_eq!(backend.drain().await.len(), 1);
}

#[tokio::test]
async fn unauthenticated_and_oversized_requests_leave_no_trace() {
    let backend = Backend::new().await;
    let ingest = backend.ingest("egym");
    let key = ("x-api-key", "egym-demo-secret-berlin");
    let cases: Vec<(WebhookRequest, u16, &str)> = vec![
        (
            post(
                "egym",
                &[],
                r#"{"accountId":"a","timestamp":1,"type":"TEST"}"#,
            ),
            401,
            "unauthorized",
        ),
        (
            post(
                "egym",
                &[("x-api-key", "egym-demo-secret-berlin ")],
                r#"{"accountId":"a","timestamp":1,"type":"TEST"}"#,
            ),
            401,
            "unauthorized",
        ),
        (post("egym", &[], "not json"), 401, "unauthorized"),
        (
            post(
                "egym",
                &[key],
                &format!(
                    r#"{{"accountId":"{}","timestamp":1,"type":"TEST"}}"#,
                    "a".repeat(256 * 1024)
                ),
            ),
            413,
            "larger than",
        ),
    ];
    for (request, status, says) in cases {
        let response = ingest.handle(request).await;
        assert_eq!(response.status().as_u16(), status, "{says}");
        let error = response_json(&response)["error"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(error.contains(says), "{error} should say {says}");
    }
    assert!(backend.items().await.is_empty());
    assert!(backend.drain().await.is_empty());
}

#[tokio::test]
async fn authentic_but_unreadable_deliveries_are_quarantined_once_and_never_queued() {
    let backend = Backend::new().await;
    let ingest = backend.ingest("egym");
    let key = ("x-api-key", "egym-demo-secret-berlin");
    let mut not_utf8 = post("egym", &[key], "");
    *not_utf8.body_mut() = bytes::Bytes::from_static(b"{\"accountId\": \"\xff\"}");
    let mut xml = post("egym", &[key], "<event/>");
    xml.headers_mut()
        .insert("content-type", "application/xml".parse().unwrap());
    let cases: Vec<(WebhookRequest, &str)> = vec![
        (post("egym", &[key], "not json"), "malformed"),
        (
            post("egym", &[key], r#"{"accountId":"a","type":"GYM_CHECKIN"}"#),
            "timestamp",
        ),
        (
            post(
                "egym",
                &[key],
                r#"{"accountId":"a","timestamp":"soon","type":"GYM_CHECKIN"}"#,
            ),
            "timestamp",
        ),
        (
            post("egym", &[key], r#"{"timestamp":1,"type":"GYM_CHECKIN"}"#),
            "accountId",
        ),
        (post("egym", &[key], r#"[]"#), "malformed"),
        (post("egym", &[key], ""), "malformed"),
        (xml, "content-type"),
        (not_utf8, "unicode"),
    ];
    let mut keys = std::collections::HashSet::new();
    for (request, says) in cases {
        let again = request.clone();
        let response = ingest.handle(request).await;
        assert_eq!(response.status(), 202, "{says}");
        let answer = response_json(&response);
        assert_eq!(answer["status"], "quarantined", "{says}");
        assert!(
            answer["reason"].as_str().unwrap().contains(says),
            "{answer} should say {says}"
        );
        let key = answer["id"].as_str().unwrap().to_string();
        assert!(key.starts_with("egym#gym-berlin-01#quarantine#"), "{key}");
        let record = backend.record(&key).await;
        assert_eq!(record.status, Status::Quarantined);
        let kept = match record.facts.as_deref() {
            Some(r#"{"body_encoding":"base64"}"#) => base64::engine::general_purpose::STANDARD
                .decode(&record.body)
                .unwrap(),
            _ => record.body.clone().into_bytes(),
        };
        assert_eq!(kept, again.body().as_ref(), "kept as it came");
        let repeated = response_json(&ingest.handle(again).await);
        assert_eq!(repeated["id"], key.as_str(), "the same body is kept once");
        keys.insert(key);
    }
    assert_eq!(backend.items().await.len(), keys.len());
    assert!(backend.drain().await.is_empty(), "never queued");
}

#[tokio::test]
async fn a_body_exactly_at_the_limit_is_accepted() {
    let backend = Backend::new().await;
    let settings = IngestSettings {
        max_body_bytes: 1000,
        ..IngestSettings::default()
    };
    let ingest = backend.ingest_with("egym", tests::demo_tenants("egym"), settings);
    let head = r#"{"accountId":"a","timestamp":1,"type":"TEST","pad":""#;
    let body = format!("{head}{}\"}}", "x".repeat(1000 - head.len() - 2));
    assert_eq!(body.len(), 1000);
    let key = ("x-api-key", "egym-demo-secret-berlin");
    assert_eq!(
        ingest.handle(post("egym", &[key], &body)).await.status(),
        202
    );
    let over = body.replacen("\"pad\":\"", "\"pad\":\"x", 1);
    assert_eq!(
        ingest.handle(post("egym", &[key], &over)).await.status(),
        413
    );
}

#[tokio::test]
async fn two_waitwhile_deliveries_whose_ids_differ_beyond_two_to_the_64_are_both_kept() {
    let backend = Backend::new().await;
    let ingest = backend.ingest("waitwhile");
    let tenants = tests::demo_tenants("waitwhile");
    let tenant = tenants.get("acct-main").unwrap();
    let url = tenant.url.clone().unwrap();
    let mut keys = Vec::new();
    for id in ["18446744073709551617", "18446744073709551618"] {
        let body = format!(
            r#"{{"type": "visit.updated", "data": {{"id": {id}, "updated": "2026-11-25T18:00:00Z"}}}}"#
        );
        let signature = webhook_core::verify::url_body_signature(
            "ww-demo-secret-account-new",
            &url,
            body.as_bytes(),
        );
        let mut request = post("waitwhile", &[("x-waitwhile-signature", &signature)], &body);
        *request.uri_mut() = url.parse().unwrap();
        let response = ingest.handle(request).await;
        assert_eq!(response.status(), 202, "{id}");
        keys.push(response_json(&response)["id"].as_str().unwrap().to_string());
    }
    assert!(keys[0].contains("#18446744073709551617#"), "{}", keys[0]);
    assert_ne!(keys[0], keys[1]);
    assert_eq!(backend.items().await.len(), 2);
}
