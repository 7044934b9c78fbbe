//! Every API Gateway event under events/<provider>/ goes through the real handler against the
//! local DynamoDB/SQS endpoint and must get the status the manifest declares; rejected ones
//! leave nothing behind, accepted ones leave exactly one record and one message.

use std::collections::BTreeSet;

use e2e::{load_event, root, Backend};

fn webhook_event_files() -> BTreeSet<String> {
    let mut files = BTreeSet::new();
    for provider in shared::providers::all() {
        let folder = root().join("events").join(provider.name());
        for entry in std::fs::read_dir(&folder).unwrap_or_else(|e| panic!("{folder:?}: {e}")) {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.ends_with(".json") {
                files.insert(format!("{}/{name}", provider.name()));
            }
        }
    }
    files
}

fn manifest() -> serde_json::Map<String, serde_json::Value> {
    let text = std::fs::read_to_string(root().join("events/manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn every_event_file_has_a_declared_outcome_and_every_declaration_a_file() {
    let manifest = manifest();
    let files = webhook_event_files();
    let undeclared: Vec<_> = files
        .iter()
        .filter(|f| !manifest.contains_key(*f))
        .collect();
    assert!(
        undeclared.is_empty(),
        "no outcome declared for {undeclared:?}"
    );
    let missing: Vec<_> = manifest
        .keys()
        .filter(|k| !k.starts_with("processor/") && !files.contains(*k))
        .collect();
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
        let (want_items, want_messages) = if status < 300 { (1, 1) } else { (0, 0) };
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
