//! The same guarantees for every provider, driven by its own event files: duplicates are
//! answered without a second message, 64 concurrent deliveries enqueue exactly one, and a
//! secret removed after rotation is refused.

use std::sync::Arc;

use tests::{event, post, root, Backend};
use webhook_core::tenants::TenantDirectory;
use webhook_core::IngestSettings;

/// A valid event of each provider and the rotation event (signed with a tenant's older secret).
fn provider_events() -> Vec<(String, String, String)> {
    webhook_core::providers::all()
        .iter()
        .map(|provider| {
            let name = provider.name();
            let folder = root().join("events").join(name);
            let mut files: Vec<String> = std::fs::read_dir(&folder)
                .unwrap()
                .map(|entry| entry.unwrap().file_name().into_string().unwrap())
                .collect();
            files.sort();
            let rotated = files
                .iter()
                .find(|f| f.starts_with("rotated-old"))
                .unwrap_or_else(|| panic!("events/{name} has no rotated-old-* event"))
                .clone();
            let valid = files
                .iter()
                .find(|f| !f.starts_with("bad-") && !f.starts_with("rotated"))
                .unwrap()
                .clone();
            (
                name.to_string(),
                format!("{name}/{valid}"),
                format!("{name}/{rotated}"),
            )
        })
        .collect()
}

fn accepted_status(provider: &str) -> u16 {
    testkit::Kit::of(webhook_core::providers::by_name(provider).unwrap().as_ref()).accepted_status()
}

/// The status of an answer and what its body says (`accepted`, `duplicate`, or nothing).
fn answer(response: webhook_core::WebhookResponse) -> (u16, String) {
    let body = tests::response_json(&response);
    let says = body["status"].as_str().unwrap_or_default().to_string();
    (response.status().as_u16(), says)
}

/// What an answer's body says for `word` (`accepted`, `duplicate`): nothing where a new
/// delivery is answered 200 (TIMIFY's `{}`, whatever happened).
fn says(accepted: u16, word: &str) -> String {
    if accepted == 200 { "" } else { word }.into()
}

#[tokio::test]
async fn every_provider_answers_a_repeated_delivery_as_a_duplicate() {
    for (provider, valid, _) in provider_events() {
        let backend = Backend::new().await;
        let ingest = backend.ingest(&provider);
        let accepted = accepted_status(&provider);
        let first = answer(ingest.handle(event(&valid)).await);
        assert_eq!(first, (accepted, says(accepted, "accepted")), "{valid}");
        let again = answer(ingest.handle(event(&valid)).await);
        assert_eq!(again, (200, says(accepted, "duplicate")), "{valid}");
        assert_eq!(backend.items().await.len(), 1, "{valid}");
        assert_eq!(backend.drain().await.len(), 1, "{valid}: one message only");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_provider_enqueues_64_concurrent_deliveries_exactly_once() {
    for (provider, valid, _) in provider_events() {
        let backend = Backend::new().await;
        let ingest = Arc::new(backend.ingest(&provider));
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let ingest = Arc::clone(&ingest);
                let valid = valid.clone();
                tokio::spawn(async move { answer(ingest.handle(event(&valid)).await) })
            })
            .collect();
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap());
        }
        answers.sort();
        let accepted = accepted_status(&provider);
        // TIMIFY's answer is 200 `{}` whatever happened: there the record and the message
        // below are what tell the copies apart.
        let mut expected = vec![(200, says(accepted, "duplicate")); 63];
        expected.push((accepted, says(accepted, "accepted")));
        expected.sort();
        assert_eq!(answers, expected, "{valid}: one new, 63 duplicates");
        assert_eq!(backend.items().await.len(), 1, "{valid}");
        assert_eq!(
            backend.drain().await.len(),
            1,
            "{valid}: exactly one message"
        );
    }
}

/// The demo tenants with every tenant's older secrets removed (rotation finished).
fn after_rotation(provider: &str) -> TenantDirectory {
    let mut document: serde_json::Value =
        serde_json::from_str(&tests::demo_tenants_json(provider)).unwrap();
    for tenant in document["tenants"].as_array_mut().unwrap() {
        tenant["webhook_secrets"]
            .as_array_mut()
            .unwrap()
            .truncate(1);
    }
    TenantDirectory::from_json(&document.to_string()).unwrap()
}

#[tokio::test]
async fn every_provider_accepts_old_and_new_secrets_during_rotation_and_refuses_a_removed_one() {
    for (provider, valid, rotated) in provider_events() {
        let backend = Backend::new().await;
        let during = backend.ingest(&provider);
        assert!(
            during.handle(event(&valid)).await.status().is_success(),
            "{valid}"
        );
        assert!(
            during.handle(event(&rotated)).await.status().is_success(),
            "{rotated}"
        );
        assert_eq!(backend.drain().await.len(), 2);

        let fresh = Backend::new().await;
        let after = fresh.ingest_with(
            &provider,
            after_rotation(&provider),
            IngestSettings::default(),
        );
        assert_eq!(
            after.handle(event(&rotated)).await.status(),
            401,
            "{rotated}"
        );
        assert!(
            after.handle(event(&valid)).await.status().is_success(),
            "{valid}"
        );
        assert_eq!(fresh.items().await.len(), 1, "{rotated} left nothing");
        assert_eq!(fresh.drain().await.len(), 1);
    }
}

#[tokio::test]
async fn optional_auth_accepts_no_credential_only_for_an_open_tenant() {
    let flybuy_body =
        r#"{"data": {"type": "order", "id": 5, "updated_at": "2026-11-25T10:00:00Z"}}"#;
    let timify_body = r#"{"event": "customers.created", "data": {"id": "c1", "updatedAt": "2026-11-25T10:00:00Z"}}"#;
    for (provider, body) in [("flybuy", flybuy_body), ("timify", timify_body)] {
        let backend = Backend::new().await;
        let closed = backend.ingest(provider);
        assert_eq!(closed.handle(post(provider, &[], body)).await.status(), 401);
        assert!(backend.items().await.is_empty());

        let tenants = TenantDirectory::from_json(
            r#"{"tenants": [
                {"id": "open-a", "allow_unauthenticated": true},
                {"id": "open-b", "allow_unauthenticated": true},
                {"id": "closed", "header": "x-secret", "webhook_secrets": ["s3cr3t"]}
            ]}"#,
        )
        .unwrap();
        let open = backend.ingest_with(provider, tenants, IngestSettings::default());
        // Two open tenants: only the registered URL's ?tenant= can tell them apart.
        assert_eq!(open.handle(post(provider, &[], body)).await.status(), 401);
        let mut named = post(provider, &[], body);
        *named.uri_mut() = format!("https://example.test/webhooks/{provider}?tenant=open-b")
            .parse()
            .unwrap();
        assert!(open.handle(named).await.status().is_success());
        let mut closed_named = post(provider, &[], body);
        *closed_named.uri_mut() = format!("https://example.test/webhooks/{provider}?tenant=closed")
            .parse()
            .unwrap();
        assert_eq!(open.handle(closed_named).await.status(), 401);
        let messages = backend.drain().await;
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].tenant, "open-b");
    }
}

#[tokio::test]
async fn timify_sync_webhooks_are_answered_with_an_empty_object_and_still_queued() {
    for file in [
        "timify/sync-before-confirmations.json",
        "timify/sync-before-reminders.json",
    ] {
        let backend = Backend::new().await;
        let ingest = backend.ingest("timify");
        let response = ingest.handle(event(file)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(tests::response_json(&response), serde_json::json!({}));
        let messages = backend.drain().await;
        assert_eq!(messages.len(), 1, "{file}");
        assert!(messages[0].event_type.ends_with(".sync"));
    }
}
