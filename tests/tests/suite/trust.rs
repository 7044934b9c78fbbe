//! Trust boundaries, through the real webhook handlers and processor (in-memory adapters, the
//! strict fake API): ids that go into provider API URLs, copies of signed deliveries replayed
//! after their record is gone, records past their retention, and the work a request costs
//! before it is authenticated.

use std::time::{Duration, UNIX_EPOCH};

use adapter_memory::Memory;
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use tests::fake_api::FakeApi;
use tests::{demo_tenants, response_json, InMemory};
use webhook_core::clock::{Clock, ManualClock};
use webhook_core::key::subject_of;
use webhook_core::model::{Record, Status};
use webhook_core::operate::{Operations, Replayed};
use webhook_core::ports::Deliveries;
use webhook_core::process::ProcessorSettings;
use webhook_core::providers::{by_name, check_tenants};
use webhook_core::tenants::{Tenant, TenantDirectory};
use webhook_core::{Ingest, IngestSettings, WebhookRequest, WebhookResponse};

/// What the issue measured reaching other API paths, and what could be decoded into them.
const NOT_SEGMENTS: [&str; 6] = [".", "..", "%2e%2e", "/", "?", "#"];

const DAY_MS: i64 = 86_400_000;
/// 2027-01-15T08:00:00Z: the clock of the replay tests.
const NOW: i64 = 1_800_000_000_000;

/// A JSON POST of `body` to `tenant`'s registered URL, proved by the provider's own scheme
/// with its first secret (FlyBuy's HMAC signed with the time of sending).
fn signed(provider: &str, tenant: &Tenant, body: &str) -> WebhookRequest {
    let url = tenant
        .url
        .clone()
        .unwrap_or_else(|| format!("https://example.test/webhooks/{provider}"));
    let secret = tenant.webhook_secrets[0].expose();
    let headers =
        by_name(provider)
            .unwrap()
            .auth()
            .credential_headers(tenant, secret, &url, body.as_bytes());
    let mut request = http::Request::builder()
        .method("POST")
        .uri(&url)
        .header("content-type", "application/json");
    for (name, value) in &headers {
        request = request.header(name, value);
    }
    request
        .body(Bytes::copy_from_slice(body.as_bytes()))
        .unwrap()
}

/// Epoch milliseconds as RFC 3339 (`2027-01-15T08:00:00.000Z`), as Waitwhile writes `created`.
fn rfc3339(ms: i64) -> String {
    let (days, in_day) = (ms.div_euclid(DAY_MS), ms.rem_euclid(DAY_MS));
    // H. Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

/// For each provider, bodies that put `id` where a call's URL takes it, with the field the
/// quarantine reason must name.
fn bodies_naming(id: &str, now_ms: i64) -> Vec<(&'static str, &'static str, String)> {
    let id = serde_json::to_string(id).unwrap();
    let created = rfc3339(now_ms);
    vec![
        (
            "magicline",
            "payload[0].content.classId",
            format!(
                r#"{{"entityId": 88, "uuid": "u-1", "payload": [{{"timestamp": 1, "type": "CLASS_SLOT_UPDATED", "content": {{"classId": {id}}}}}]}}"#
            ),
        ),
        (
            "magicline",
            "payload[0].content.checkouts[1].customerId",
            format!(
                r#"{{"entityId": 1001, "uuid": "u-2", "payload": [{{"timestamp": 1, "type": "AUTOMATIC_CUSTOMER_CHECKOUT",
                    "content": {{"checkouts": [{{"customerId": 5}}, {{"customerId": {id}}}]}}}}]}}"#
            ),
        ),
        (
            "egym",
            "accountId",
            format!(r#"{{"accountId": {id}, "timestamp": 1, "type": "GYM_CHECKIN"}}"#),
        ),
        (
            "timify",
            "/data/id",
            format!(r#"{{"event": "event.created", "data": {{"id": {id}, "updatedAt": "u"}}}}"#),
        ),
        (
            "flybuy",
            "data.id",
            format!(
                r#"{{"data": {{"type": "order", "id": {id}, "updated_at": "u", "event": "order_updated"}}}}"#
            ),
        ),
        (
            "waitwhile",
            "/data/id",
            format!(
                r#"{{"id": "evt-1", "created": "{created}", "accountId": "acct-demo-0001", "type": "visit.created", "data": {{"id": {id}}}}}"#
            ),
        ),
    ]
}

#[tokio::test]
async fn an_id_that_is_not_one_path_segment_is_quarantined_by_every_provider_and_calls_nothing() {
    let api = FakeApi::start().await;
    let local = InMemory::new(&api, ProcessorSettings::default());
    for id in NOT_SEGMENTS {
        for (provider, field, body) in bodies_naming(id, local.clock.now_ms()) {
            let tenants = demo_tenants(provider);
            let tenant = tenants.iter().next().unwrap();
            let key = local
                .deliver_request(provider, signed(provider, tenant, &body))
                .await;
            let record = local.record(&key).await;
            assert_eq!(record.status, Status::Quarantined, "{provider} {id:?}");
            let reason = record.last_error.unwrap_or_default();
            assert!(
                reason.contains(&format!("{field}: not an id")),
                "{provider} {id:?}: {reason}"
            );
            assert!(
                !reason.contains("%2e"),
                "the value is never quoted: {reason}"
            );
        }
    }
    assert!(local.memory.queue.is_empty(), "nothing queued");
    assert_eq!(local.pump().await, 0);
    assert_eq!(api.total_calls(), 0);
}

/// Records stored before ids were checked (or written by anything but a webhook) with ids
/// that are not a segment: each call stays on its documented route, an id of only dots is
/// called nowhere.
#[tokio::test]
async fn a_stored_id_that_is_not_one_segment_is_fetched_on_its_documented_route_or_not_at_all() {
    let api = FakeApi::start().await;
    let local = InMemory::new(&api, ProcessorSettings::default());
    let fetching = [
        ("magicline", "CUSTOMER_CREATED"),
        ("egym", "GYM_CHECKIN"),
        ("timify", "event.created"),
        ("flybuy", "order_updated"),
        ("waitwhile", "visit.created"),
    ];
    let now = local.clock.now_ms();
    let mut stored = Vec::new();
    for (provider, event_type) in fetching {
        let tenant = demo_tenants(provider).iter().next().unwrap().id.clone();
        for (n, id) in NOT_SEGMENTS.iter().enumerate() {
            let record = Record {
                key: format!("{provider}#{tenant}#stored-before-{n}"),
                provider: provider.into(),
                subject: subject_of(provider, &tenant, &format!("thing:{n}")),
                tenant: tenant.clone(),
                event_type: event_type.into(),
                entity_id: id.to_string(),
                body: format!(
                    r#"{{"entityId": 1, "uuid": "u", "payload": [{{"timestamp": 1, "type": "{event_type}"}}]}}"#
                ),
                status: Status::Received,
                received_at_ms: now,
                expires_at: now / 1000 + 86_400,
                ..Record::default()
            };
            local.memory.store.put_new(&record).await.unwrap();
            local
                .memory
                .ports
                .queue
                .send(&record.message())
                .await
                .unwrap();
            stored.push((record.key, id.chars().all(|c| c == '.')));
        }
    }
    while local.pump().await > 0 {}
    assert_eq!(api.refused().len(), 0, "{:?}", api.refused());
    for (key, only_dots) in stored {
        let record = local.record(&key).await;
        let expected = if only_dots {
            Status::Failed
        } else {
            Status::Processed
        };
        assert_eq!(record.status, expected, "{key}: {:?}", record.last_error);
    }
    let flybuy = api.api_calls("flybuy");
    assert!(
        flybuy.contains(&"GET /api/v1/orders/%2F".to_string()),
        "{flybuy:?}"
    );
    assert!(flybuy.contains(&"GET /api/v1/orders/%252e%252e".to_string()));
    assert_eq!(flybuy.len(), 4, "{flybuy:?}");
}

/// The in-memory adapters on a clock at `NOW`, and `provider`'s handler with `settings`.
fn at_now(provider: &str, settings: IngestSettings) -> (Memory, Ingest) {
    let memory = Memory::new(5, ManualClock::starting_at(NOW));
    let ingest = Ingest::new(
        by_name(provider).unwrap(),
        demo_tenants(provider),
        memory.ports.clone(),
        settings,
    );
    (memory, ingest)
}

fn waitwhile_created_at(created_ms: i64) -> WebhookRequest {
    let tenants = demo_tenants("waitwhile");
    let body = format!(
        r#"{{"id": "evt-{created_ms}", "created": "{}", "accountId": "acct-demo-0001", "type": "visit.created", "data": {{"id": "v{created_ms}"}}}}"#,
        rfc3339(created_ms)
    );
    signed("waitwhile", tenants.get("loc-downtown").unwrap(), &body)
}

fn assert_refused_leaving_nothing(response: &WebhookResponse, memory: &Memory, what: &str) {
    assert_eq!(response.status(), 401, "{what}");
    assert_eq!(
        response_json(response),
        serde_json::json!({"error": "unauthorized"})
    );
    assert_eq!(memory.store.len(), 0, "{what}: nothing stored");
    assert!(memory.queue.is_empty(), "{what}: nothing queued");
}

#[tokio::test]
async fn a_waitwhile_delivery_created_outside_the_retention_period_is_refused_as_a_replay() {
    let (memory, ingest) = at_now("waitwhile", IngestSettings::default());
    for (created, what) in [
        (NOW - 31 * DAY_MS, "created 31 days ago"),
        (NOW + DAY_MS, "created a day ahead"),
    ] {
        let response = ingest.handle(waitwhile_created_at(created)).await;
        assert_refused_leaving_nothing(&response, &memory, what);
    }
    let response = ingest.handle(waitwhile_created_at(NOW - 29 * DAY_MS)).await;
    assert_eq!(response.status(), 202, "29 days old, inside the window");
    assert_eq!(memory.store.len(), 1);
}

#[tokio::test]
async fn a_copy_replayed_once_its_record_has_expired_is_refused_and_the_window_is_the_retention() {
    let two_days = IngestSettings {
        retention: Duration::from_secs(2 * 86_400),
        ..IngestSettings::default()
    };
    let clock = ManualClock::starting_at(NOW);
    let memory = Memory::new(5, clock.clone());
    let ingest = Ingest::new(
        by_name("waitwhile").unwrap(),
        demo_tenants("waitwhile"),
        memory.ports.clone(),
        two_days,
    );
    let captured = waitwhile_created_at(NOW);
    assert_eq!(ingest.handle(captured.clone()).await.status(), 202);
    clock.advance(Duration::from_secs(2 * 86_400 - 600));
    let copy = ingest.handle(captured.clone()).await;
    assert_eq!(
        copy.status(),
        200,
        "a copy while the record is kept is a duplicate"
    );
    clock.advance(Duration::from_secs(600));
    // DynamoDB's TTL deletes the record once it has expired.
    memory
        .store
        .retain(|record| record.expires_at * 1000 > clock.now_ms());
    assert_eq!(memory.store.len(), 0);
    // Its message was processed (or expired from the queue) long ago.
    memory.queue.clear();
    let replayed = ingest.handle(captured).await;
    assert_refused_leaving_nothing(&replayed, &memory, "replayed once the record is gone");
    let three_days_old = ingest
        .handle(waitwhile_created_at(clock.now_ms() - 3 * DAY_MS))
        .await;
    assert_refused_leaving_nothing(&three_days_old, &memory, "older than a 2-day retention");
    let one_day_old = ingest
        .handle(waitwhile_created_at(clock.now_ms() - DAY_MS))
        .await;
    assert_eq!(one_day_old.status(), 202);
}

/// A FlyBuy delivery as FlyBuy sends it with an HMAC key: `Date` and body signed together.
fn flybuy_dated(tenant: &Tenant, date_ms: i64, order: i64) -> WebhookRequest {
    let key = tenant
        .signing_key
        .as_ref()
        .map(|key| key.expose().as_bytes());
    flybuy_signed_with(tenant, key, date_ms, order)
}

/// [`flybuy_dated`] with the HMAC computed over `key`'s bytes, whatever the tenant's says.
fn flybuy_signed_with(
    tenant: &Tenant,
    key: Option<&[u8]>,
    date_ms: i64,
    order: i64,
) -> WebhookRequest {
    let body = format!(
        r#"{{"data": {{"type": "order", "id": {order}, "updated_at": "u{date_ms}", "event": "order_updated"}}}}"#
    );
    let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(date_ms as u64));
    let mut authorization = format!(r#"Token token="{}""#, tenant.webhook_secrets[0].expose());
    if let Some(key) = key {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
        mac.update(format!("{date}\n{body}").as_bytes());
        let signature =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        authorization.push_str(&format!(r#" signature="{signature}""#));
    }
    http::Request::builder()
        .method("POST")
        .uri("https://example.test/webhooks/flybuy")
        .header("authorization", authorization)
        .header("date", date)
        .body(Bytes::from(body))
        .unwrap()
}

/// FlyBuy does not say whether its HMAC key is used as written or Base64-decoded (FACTS.md
/// §4): a tenant that has not pinned it accepts both, and each record says which one signed.
#[tokio::test]
async fn a_flybuy_signature_made_with_the_base64_decoded_key_is_accepted_and_noted() {
    let memory = Memory::new(5, ManualClock::starting_at(NOW));
    // "a2V5LWJ5dGVz" is Base64 for "key-bytes".
    let tenants = TenantDirectory::from_json(
        r#"{"tenants": [{"id": "project-7", "webhook_secrets": ["tok-7"], "signing_key": "a2V5LWJ5dGVz"}]}"#,
    )
    .unwrap();
    let tenant = tenants.get("project-7").unwrap().clone();
    let ingest = Ingest::new(
        by_name("flybuy").unwrap(),
        tenants,
        memory.ports.clone(),
        IngestSettings::default(),
    );
    for (order, key, form) in [
        (1, &b"key-bytes"[..], "base64"),
        (2, b"a2V5LWJ5dGVz", "raw"),
    ] {
        let response = ingest
            .handle(flybuy_signed_with(&tenant, Some(key), NOW - 1_000, order))
            .await;
        assert_eq!(response.status(), 202, "{form}");
        let key = response_json(&response)["id"].as_str().unwrap().to_string();
        let record = memory.store.get(&key).await.unwrap().unwrap();
        let facts: serde_json::Value =
            serde_json::from_str(record.facts.as_deref().unwrap()).unwrap();
        assert_eq!(facts["signature_key"], form);
    }
    let wrong = ingest
        .handle(flybuy_signed_with(
            &tenant,
            Some(b"another"),
            NOW - 1_000,
            3,
        ))
        .await;
    assert_eq!(wrong.status(), 401, "signed with another key");
}

#[tokio::test]
async fn a_flybuy_delivery_whose_signed_date_is_outside_the_window_is_refused_and_a_token_alone_signs_none(
) {
    let (memory, ingest) = at_now("flybuy", IngestSettings::default());
    let tenants = demo_tenants("flybuy");
    let signed = tenants.get("project-41").unwrap();
    assert!(signed.signing_key.is_some());
    for (date, what) in [
        (NOW - 31 * DAY_MS, "dated 31 days ago"),
        (NOW + DAY_MS, "dated a day ahead"),
    ] {
        let response = ingest.handle(flybuy_dated(signed, date, 7)).await;
        assert_refused_leaving_nothing(&response, &memory, what);
    }
    let fresh = ingest.handle(flybuy_dated(signed, NOW - 60_000, 7)).await;
    assert_eq!(fresh.status(), 202, "dated a minute ago");
    let token_only = tenants.get("project-42").unwrap();
    assert!(token_only.signing_key.is_none());
    let unprotected = ingest
        .handle(flybuy_dated(token_only, NOW - 31 * DAY_MS, 8))
        .await;
    assert_eq!(
        unprotected.status(),
        202,
        "a token signs no time: an old copy cannot be told from a new one"
    );
}

/// 200 Waitwhile tenants behind one registered URL, each found by the envelope's account.
#[tokio::test]
async fn two_hundred_waitwhile_accounts_at_one_url_are_each_found_by_their_envelope() {
    let url = "https://hooks.example.test/webhooks/waitwhile";
    let tenants: Vec<serde_json::Value> = (0..200)
        .map(|i| {
            serde_json::json!({"id": format!("t{i:03}"), "url": url, "account_id": format!("acc-{i:03}"),
                "webhook_secrets": [format!("ww-secret-{i:03}-Zq8v2LmN")]})
        })
        .collect();
    let directory =
        TenantDirectory::from_json(&serde_json::json!({ "tenants": tenants }).to_string()).unwrap();
    let waitwhile = by_name("waitwhile").unwrap();
    check_tenants(waitwhile.as_ref(), &directory).unwrap();
    let t150 = directory.get("t150").unwrap().clone();
    let memory = Memory::new(5, ManualClock::now());
    let ingest = Ingest::new(
        waitwhile,
        directory,
        memory.ports.clone(),
        IngestSettings::default(),
    );
    let body = |account: &str| {
        format!(
            r#"{{"id": "evt-{account}", "accountId": "{account}", "type": "visit.created", "data": {{"id": "v1"}}}}"#
        )
    };
    let response = ingest
        .handle(signed("waitwhile", &t150, &body("acc-150")))
        .await;
    assert_eq!(response.status(), 202);
    assert_eq!(memory.store.records()[0].tenant, "t150");
    let elsewhere = signed("waitwhile", &t150, &body("acc-003"));
    assert_eq!(
        ingest.handle(elsewhere).await.status(),
        401,
        "t003's account, t150's secret"
    );
    let mut junk = signed("waitwhile", &t150, &body("acc-150"));
    *junk.body_mut() = Bytes::from(body("acc-150").replace("v1", "v2"));
    assert_eq!(ingest.handle(junk).await.status(), 401);
    assert_eq!(memory.store.len(), 1);
}

/// A record past its retention that DynamoDB's TTL has not deleted yet (it does so within
/// days): not listed, not replayed, and its message — one that waited that long — finishes it
/// without a call or a publication.
#[tokio::test]
async fn a_record_past_its_retention_is_neither_listed_replayed_nor_processed() {
    let api = FakeApi::start().await;
    let tests::InMemory {
        memory,
        clock,
        processor,
    } = InMemory::new(&api, ProcessorSettings::default());
    let published = std::sync::Arc::new(tests::Published::default());
    let processor = processor.with_publisher(published.clone());
    let local = InMemory {
        memory,
        clock,
        processor,
    };
    let settings = IngestSettings::default();
    let operations = Operations::new(local.memory.ports.clone(), settings.clone());
    let key = local.deliver("magicline/customer-created.json").await;
    let filter = || operations.filter(None, None, None, Some(0), 100).unwrap();
    assert_eq!(operations.list(&filter()).await.unwrap().len(), 1);

    local.advance(settings.retention + Duration::from_secs(1));
    let listed = operations.list(&filter()).await.unwrap();
    assert!(listed.is_empty(), "not listed once expired");
    let replayed = operations.replay(&key).await.unwrap();
    assert!(
        matches!(&replayed, Replayed::Skipped(why) if why.contains("retention")),
        "{replayed:?}"
    );
    assert_eq!(local.pump().await, 1, "its message still comes");
    let record = local.record(&key).await;
    assert_eq!(record.status, Status::Processed);
    assert!(
        record.detail.as_deref().unwrap_or("").contains("retention"),
        "{:?}",
        record.detail
    );
    assert_eq!(api.total_calls(), 0, "nothing fetched");
    assert_eq!(published.count(), 0, "nothing published");
}
