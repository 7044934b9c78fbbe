//! Contract drift: a delivery with an event type and a field its provider does not document
//! is processed as ever, and its signs are noted once — the `ContractChanged` metric (EMF),
//! `webhooks drift`, and the dev server's Contract page.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tests::fake_api::FakeApi;
use tests::{post, root, Captured, InMemory};
use webhook_core::metrics::Emf;
use webhook_core::process::ProcessorSettings;

use super::tenants_cli::{cli, devserver_on};

/// A Magicline delivery of a type the table does not list, with a member the docs do not name.
fn teleported(uuid: &str) -> webhook_core::WebhookRequest {
    let body = format!(
        r#"{{"entityId": 7893459, "uuid": "{uuid}", "region": "eu-1",
            "payload": [{{"timestamp": 1795640400000, "type": "CUSTOMER_TELEPORTED", "content": {{}}}}]}}"#
    );
    post(
        "magicline",
        &[
            ("x-api-key", "ml-demo-key-1001-new"),
            ("content-type", "application/json"),
        ],
        &body,
    )
}

/// The `ContractChanged` lines written.
fn changes(lines: &Captured) -> Vec<Value> {
    lines
        .text()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|line| line.get("ContractChanged").is_some())
        .collect()
}

#[tokio::test]
async fn a_new_type_and_field_are_counted_once_as_a_contract_change() {
    let api = FakeApi::start().await;
    let lines = Captured::default();
    let mut local = InMemory::new(&api, ProcessorSettings::default());
    local.processor = local.processor.with_metrics(Arc::new(Emf::new(
        "Webhooks/test",
        webhook_core::clock::system(),
        lines.clone(),
    )));
    let first = local.deliver_request("magicline", teleported("u-1")).await;
    assert_eq!(local.pump().await, 1);
    let changed = changes(&lines);
    let signals: Vec<&str> = changed
        .iter()
        .map(|l| l["signal"].as_str().unwrap())
        .collect();
    assert_eq!(
        signals,
        ["field:/region", "type:CUSTOMER_TELEPORTED"],
        "{changed:?}"
    );
    assert_eq!(changed[0]["Provider"], "magicline");
    assert_eq!(changed[0]["Signal"], "field");
    assert_eq!(changed[0]["key"], first.as_str());
    let dimensions = &changed[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"];
    assert_eq!(dimensions, &serde_json::json!([["Provider", "Signal"], []]));

    let second = local.deliver_request("magicline", teleported("u-2")).await;
    assert_eq!(local.pump().await, 1);
    assert_eq!(changes(&lines).len(), 2, "each sign counted once");
    assert_eq!(
        api.total_calls(),
        0,
        "an unknown type is stored, not fetched"
    );
    let seen = local
        .memory
        .ports
        .sightings
        .sightings(None, i64::MIN)
        .await
        .unwrap();
    assert_eq!(seen.len(), 2);
    // A processor writes a sign it keeps seeing again only after ten minutes.
    assert!(
        seen.iter().all(|s| s.example_key == first),
        "{second}: not written again yet"
    );
    assert!(seen.iter().all(|s| s.first_ms <= s.last_ms));
}

/// The items a check-out list is split into are not deliveries: their bodies (one list
/// element each) are never read as an envelope.
#[tokio::test]
async fn the_items_of_a_split_event_show_no_drift() {
    let api = FakeApi::start().await;
    let local = InMemory::new(&api, ProcessorSettings::default());
    local
        .deliver("magicline/automatic-customer-checkout.json")
        .await;
    for _ in 0..5 {
        local.pump().await;
    }
    assert!(api.total_calls() > 0, "the items were fetched");
    let seen = local
        .memory
        .ports
        .sightings
        .sightings(None, i64::MIN)
        .await
        .unwrap();
    assert!(seen.is_empty(), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_and_the_contract_page_show_what_was_seen() {
    let (server, data) = devserver_on(root().join("devserver.toml")).await;
    let place = ["--local", data.as_str()];
    let nothing = cli(&place, &["drift"]).await;
    assert_eq!(nothing.code, 0, "{nothing:?}");
    assert!(
        nothing.stdout.contains("no sign of contract drift"),
        "{nothing:?}"
    );

    let (parts, body) = teleported("u-9").into_parts();
    let mut request =
        reqwest::Client::new().post(format!("http://{}/webhooks/magicline", server.addr));
    for (name, value) in &parts.headers {
        request = request.header(name, value);
    }
    let answer = request.body(body.to_vec()).send().await.unwrap();
    assert_eq!(answer.status(), 202);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let shown = loop {
        let shown = cli(&place, &["drift", "--provider", "magicline"]).await;
        if shown.stdout.contains("type:CUSTOMER_TELEPORTED") {
            break shown;
        }
        assert!(std::time::Instant::now() < deadline, "{shown:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        shown.stdout.contains("studio-1001") && shown.stdout.contains("field:/region"),
        "{shown:?}"
    );
    let json = cli(&place, &["--json", "drift"]).await;
    let answer: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(answer["sightings"].as_array().unwrap().len(), 2, "{answer}");

    let page = reqwest::get(format!("http://{}/contract", server.admin_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("type:CUSTOMER_TELEPORTED") && page.contains("field:/region"),
        "{page}"
    );
    server.shutdown().await;
}
