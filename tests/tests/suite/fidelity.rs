//! Every digit a provider's API wrote: its answer is stored as the API wrote it, alone or
//! beside the event's other answers (by path), and published with each number's value — a
//! number where the bus carries it unchanged, else a string of its exact digits.

use std::time::Duration;

use serde_json::json;
use tests::fake_api::{Behavior, FakeApi};
use tests::{event, response_json, Backend, Bus};
use webhook_core::model::Status;
use webhook_core::process::ProcessorSettings;

/// What EGYM's `gym-checkin.json` fetches.
const ACCOUNT: &str = "/egym/api/v2/accounts/3f1c2a9e-5b7d-4e8f-a0c1-d2e3f4a5b6c7";

/// Beyond 2^64, a trailing zero, beyond any double; and one a number holds.
const DIGITS: &str = r#"{"id":18446744073709551617,"balance":-0.10,"score":1e400,"visits":7}"#;

#[tokio::test]
async fn an_answers_numbers_are_stored_digit_for_digit_and_published_without_loss() {
    let backend = Backend::new().await;
    let api = FakeApi::start().await;
    let bus = Bus::new().await;
    let settings = ProcessorSettings {
        max_receives: 2,
        retry_backoff: Duration::ZERO,
        ..ProcessorSettings::default()
    };
    let processor = backend
        .processor(&api, settings, Duration::from_secs(5))
        .with_publisher(bus.publisher());
    api.set(ACCOUNT, Behavior::Answer(DIGITS.into()));
    let response = backend
        .ingest("egym")
        .handle(event("egym/gym-checkin.json"))
        .await;
    let one = response_json(&response)["id"].as_str().unwrap().to_string();
    // Two calls for one delivery: Magicline's customer update and check-in.
    let customer = "/magicline/v1/customers/5";
    let checkins = "/magicline/v1/customers/5/activities/checkins";
    api.set(customer, Behavior::Answer(DIGITS.into()));
    api.set(checkins, Behavior::Answer("[1e400, -0.10]".into()));
    let body = json!({"entityId": 5, "uuid": "two-answers", "payload": [
        {"timestamp": 1, "type": "CUSTOMER_UPDATED"}, {"timestamp": 2, "type": "CUSTOMER_CHECKIN"}
    ]});
    let key = [("x-api-key", "ml-demo-key-1001-new")];
    let request = tests::post("magicline", &key, &body.to_string());
    let response = backend.ingest("magicline").handle(request).await;
    let two = response_json(&response)["id"].as_str().unwrap().to_string();
    backend.pump_until_empty(&processor, 20).await;

    let stored = backend.record(&one).await;
    assert_eq!(stored.status, Status::Processed, "{:?}", stored.last_error);
    assert_eq!(
        stored.detail.as_deref(),
        Some(DIGITS),
        "as the API wrote it"
    );
    let stored = backend.record(&two).await;
    assert_eq!(stored.status, Status::Processed, "{:?}", stored.last_error);
    let by_path = format!(
        r#"{{"/v1/customers/5":{DIGITS},"/v1/customers/5/activities/checkins":[1e400, -0.10]}}"#
    );
    assert_eq!(stored.detail, Some(by_path), "each answer as written");
    assert_eq!((api.calls(customer), api.calls(checkins)), (1, 1));

    let published = bus.published().await;
    let detail_of = |key: &str| {
        let event = published.iter().find(|event| event["detail"]["key"] == key);
        event.unwrap_or_else(|| panic!("{key} not in {published:?}"))["detail"]["detail"].clone()
    };
    let numbers =
        json!({"id": "18446744073709551617", "balance": -0.1, "score": "1e400", "visits": 7});
    assert_eq!(detail_of(&one), numbers);
    assert_eq!(
        detail_of(&two),
        json!({"/v1/customers/5": numbers, "/v1/customers/5/activities/checkins": ["1e400", -0.1]})
    );
}
