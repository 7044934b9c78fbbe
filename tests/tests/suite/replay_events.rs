//! Every API Gateway event under events/<provider>/ goes through the real handler against the
//! local DynamoDB/SQS endpoint and must get the status the manifest declares; rejected ones
//! leave nothing behind, accepted ones leave exactly one record and one message, quarantined
//! ones one record and no message.

use std::collections::BTreeSet;

use std::time::Duration;

use tests::fake_api::FakeApi;
use tests::{load_event, root, Backend};
use webhook_core::model::Status;
use webhook_core::process::ProcessorSettings;

fn event_files(folder_name: &str) -> BTreeSet<String> {
    let folder = root().join("events").join(folder_name);
    std::fs::read_dir(&folder)
        .unwrap_or_else(|e| panic!("{folder:?}: {e}"))
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".json"))
        .map(|name| format!("{folder_name}/{name}"))
        .collect()
}

fn webhook_event_files() -> BTreeSet<String> {
    webhook_core::providers::all()
        .iter()
        .flat_map(|provider| event_files(provider.name()))
        .collect()
}

fn manifest() -> serde_json::Map<String, serde_json::Value> {
    let text = std::fs::read_to_string(root().join("events/manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn every_event_file_has_a_declared_outcome_and_every_declaration_a_file() {
    let manifest = manifest();
    let mut files = webhook_event_files();
    files.extend(event_files("processor"));
    let undeclared: Vec<_> = files
        .iter()
        .filter(|f| !manifest.contains_key(*f))
        .collect();
    assert!(
        undeclared.is_empty(),
        "no outcome declared for {undeclared:?}"
    );
    let missing: Vec<_> = manifest.keys().filter(|k| !files.contains(*k)).collect();
    assert!(missing.is_empty(), "declared but missing: {missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_file_gets_its_declared_status() {
    let manifest = manifest();
    let mut failures = Vec::new();
    for file in webhook_event_files() {
        let expected = manifest[&file]["status"].as_u64().unwrap() as u16;
        let provider = file.split('/').next().unwrap();
        let backend = Backend::new().await;
        let ingest = backend.ingest(provider);
        let response = ingest
            .handle(load_event(&root().join("events").join(&file)))
            .await;
        let status = response.status().as_u16();
        let body: serde_json::Value = serde_json::from_slice(response.body().as_ref())
            .unwrap_or_else(|_| panic!("{file}: answer is not JSON"));
        let items = backend.items().await.len();
        let messages = backend.drain().await.len();
        let quarantined = manifest[&file]["quarantined"].as_bool().unwrap_or(false);
        let (want_items, want_messages) = match (status < 300, quarantined) {
            (true, true) => (1, 0),
            (true, false) => (1, 1),
            (false, _) => (0, 0),
        };
        if status != expected || items != want_items || messages != want_messages {
            failures.push(format!(
                "{file}: status {status} (want {expected}), {items} records, {messages} messages, body {body}"
            ));
        }
        if status >= 400 {
            assert!(body["error"].is_string(), "{file}: error body {body}");
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Every SQS event under events/processor/ goes to the real processor after the webhooks it
/// refers to were delivered; the failures it reports must be exactly the declared ones, and
/// every other message must end PROCESSED with its detail.
#[tokio::test]
async fn every_processor_event_reports_exactly_its_declared_failures() {
    let manifest = manifest();
    for file in event_files("processor") {
        let declared = &manifest[&file];
        let backend = Backend::new().await;
        let api = FakeApi::start().await;
        for webhook in declared["after"].as_array().unwrap() {
            let webhook = webhook.as_str().unwrap();
            let provider = webhook.split('/').next().unwrap();
            let response = backend
                .ingest(provider)
                .handle(load_event(&root().join("events").join(webhook)))
                .await;
            assert!(response.status().is_success(), "{file}: {webhook}");
        }
        backend.drain().await;
        let text = std::fs::read_to_string(root().join("events").join(&file)).unwrap();
        let event: aws_lambda_events::sqs::SqsEvent = serde_json::from_str(&text).unwrap();
        let processor =
            backend.processor(&api, ProcessorSettings::default(), Duration::from_secs(2));
        let response = lambda::handle_sqs(&processor, event.clone()).await;
        let mut failed: Vec<String> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        failed.sort();
        let mut expected: Vec<String> = declared["failed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        expected.sort();
        assert_eq!(failed, expected, "{file}");
        for record in &event.records {
            if failed.contains(record.message_id.as_ref().unwrap()) {
                continue;
            }
            let message: webhook_core::model::QueueMessage =
                serde_json::from_str(record.body.as_ref().unwrap()).unwrap();
            let stored = backend.record(&message.key).await;
            assert_eq!(stored.status, Status::Processed, "{file}: {}", message.key);
            assert!(stored.detail.is_some(), "{file}: {}", message.key);
        }
    }
}
