//! The hostile-request corpus (tests/hostile/*.json, written by scripts/make_hostile.py): each
//! request goes to the real handler as an API Gateway HTTP API event and must get its declared
//! status — never a panic, never a 5xx. A refused request gets a short JSON error naming the
//! problem and leaves nothing stored and nothing queued; an authentic one the provider's parser
//! cannot read is quarantined (stored once, never queued; the reason named where the answer
//! carries one); an accepted one is stored and queued.

use std::collections::{BTreeMap, BTreeSet};

use testkit::Kit;
use tests::{root, Backend};
use webhook_core::IngestSettings;

fn corpus() -> BTreeMap<String, serde_json::Value> {
    let folder = root().join("tests/hostile");
    std::fs::read_dir(&folder)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let case = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                case,
            )
        })
        .collect()
}

/// The API Gateway event for a corpus case, as Lambda would receive it.
fn event(case: &serde_json::Value) -> String {
    let provider = case["provider"].as_str().unwrap();
    let method = case["method"].as_str().unwrap();
    let mut headers = serde_json::Map::new();
    for pair in case["headers"].as_array().unwrap() {
        headers.insert(pair[0].as_str().unwrap().into(), pair[1].clone());
    }
    let mut body = case["body"].as_str().map(String::from);
    if let (Some(size), Some(text)) = (case["pad_to"].as_u64(), body.as_mut()) {
        let filler = size as usize - text.len() - r#""padding":"","#.len();
        *text = format!(r#"{{"padding":"{}",{}"#, "x".repeat(filler), &text[1..]);
        assert_eq!(text.len(), size as usize);
    }
    let path = format!("/webhooks/{provider}");
    serde_json::json!({
        "version": "2.0",
        "routeKey": format!("{method} {path}"),
        "rawPath": path,
        "rawQueryString": case["query"],
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": "abc123",
            "domainName": "abc123.execute-api.eu-central-1.amazonaws.com", "domainPrefix": "abc123",
            "http": { "method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.66", "userAgent": "hostile" },
            "requestId": "hostile", "routeKey": format!("{method} {path}"), "stage": "$default",
            "time": "25/Nov/2026:19:00:00 +0000", "timeEpoch": 1795640400000u64
        },
        "body": body.map(serde_json::Value::String).unwrap_or_else(|| case["body_base64"].clone()),
        "isBase64Encoded": case["is_base64"],
    })
    .to_string()
}

/// A case's class: the refusal's status, or `quarantined` / `accepted`.
fn class(case: &serde_json::Value) -> String {
    match case["outcome"].as_str().unwrap() {
        "refused" => case["status"].to_string(),
        kept => kept.to_string(),
    }
}

#[test]
fn the_corpus_splits_into_the_classes_reliability_md_counts() {
    let corpus = corpus();
    let mut split: BTreeMap<String, usize> = BTreeMap::new();
    for (name, case) in &corpus {
        *split.entry(class(case)).or_default() += 1;
        // Kept requests get the answer of a new delivery (TIMIFY's 200 `{}`).
        if case["outcome"] != "refused" {
            let provider =
                webhook_core::providers::by_name(case["provider"].as_str().unwrap()).unwrap();
            assert_eq!(
                case["status"],
                Kit::of(provider.as_ref()).accepted_status(),
                "{name}"
            );
        }
    }
    let (total, stated) = reliability_counts();
    assert_eq!(split, stated, "RELIABILITY.md's Bad input table");
    assert_eq!(
        corpus.len(),
        total,
        "RELIABILITY.md's count of hostile requests"
    );
    for provider in webhook_core::providers::all() {
        assert!(
            corpus.values().any(|c| c["provider"] == provider.name()),
            "{}",
            provider.name()
        );
    }
}

/// What one provider's requests must have left: accepted records (each queued) and quarantined
/// bodies (one record per distinct body, never queued).
#[derive(Default)]
struct Left {
    accepted: usize,
    quarantined: BTreeSet<String>,
}

/// The problem with an answer of the declared status, if any.
fn misanswered(
    case: &serde_json::Value,
    body: &serde_json::Value,
    left: &mut Left,
) -> Option<String> {
    let says = case["says"].as_str().unwrap();
    let (text, limit) = match case["outcome"].as_str().unwrap() {
        "refused" => (body["error"].as_str().unwrap_or_default(), 300),
        "quarantined" => {
            let raw = case.get("body").or(case.get("body_base64")).unwrap();
            left.quarantined.insert(raw.to_string());
            // An acknowledgement that is `{}` whatever happened (TIMIFY's) says nothing; any
            // other names the reason.
            let silent = body.as_object().is_some_and(|answer| answer.is_empty());
            let reason = if silent {
                says
            } else {
                body["reason"].as_str().unwrap_or_default()
            };
            (reason, 400)
        }
        _ => {
            left.accepted += 1;
            return None;
        }
    };
    (!text.contains(says) || text.len() > limit)
        .then(|| format!("{text:?} should say {says:?} briefly"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_request_gets_its_clear_answer_and_leaves_no_trace() {
    let mut backends = BTreeMap::new();
    for provider in webhook_core::providers::all() {
        let backend = Backend::new().await;
        let tenants = Kit::of(provider.as_ref()).tenants(tests::NO_API);
        let ingest = backend.ingest_with(provider.name(), tenants, IngestSettings::default());
        backends.insert(provider.name(), (backend, ingest, Left::default()));
    }
    let mut failures = Vec::new();
    for (name, case) in corpus() {
        let provider = case["provider"].as_str().unwrap();
        let (_, ingest, left) = backends.get_mut(provider).unwrap();
        let request = match tests::apigw_request(&event(&case)) {
            Ok(request) => request,
            Err(error) => panic!("{name}: not a valid API Gateway event: {error}"),
        };
        let response = ingest.handle(request).await;
        let status = response.status().as_u16();
        let expected = case["status"].as_u64().unwrap() as u16;
        let body: serde_json::Value =
            serde_json::from_slice(response.body()).unwrap_or(serde_json::Value::Null);
        if status != expected {
            failures.push(format!("{name}: {status}, want {expected}: {body}"));
            continue;
        }
        if let Some(problem) = misanswered(&case, &body, left) {
            failures.push(format!("{name}: {problem}"));
        }
    }
    for (provider, (backend, _, left)) in &backends {
        let records = backend.items().await.len();
        let messages = backend.drain().await.len();
        let want = (left.accepted + left.quarantined.len(), left.accepted);
        if (records, messages) != want {
            failures.push(format!(
                "{provider}: {records} records and {messages} messages, want {want:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// What RELIABILITY.md's "Bad input" section says of the corpus (scripts/make_hostile.py writes
/// it): how many requests, and how many of each class — the last `(N)` of the class's row.
fn reliability_counts() -> (usize, BTreeMap<String, usize>) {
    let text = std::fs::read_to_string(tests::root().join("RELIABILITY.md")).unwrap();
    let total = text
        .split(" hostile requests across")
        .next()
        .and_then(|before| before.rsplit(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok())
        .expect("RELIABILITY.md: <N> hostile requests across …");
    let rows = [
        ("401", "| Missing credential"),
        ("405", "| GET, PUT"),
        ("413", "| Body 1 byte over"),
        ("quarantined", "| Authentic: empty body"),
        ("accepted", "| Authentic with readable"),
    ];
    let counts = rows
        .iter()
        .map(|(class, start)| {
            let row = text
                .lines()
                .find(|line| line.starts_with(start))
                .unwrap_or_else(|| panic!("RELIABILITY.md: the row {start}"));
            let count = row
                .rsplit('(')
                .next()
                .and_then(|last| last.split([')', ' ']).next())
                .and_then(|digits| digits.parse().ok())
                .unwrap_or_else(|| panic!("RELIABILITY.md: no (N) in {row}"));
            (class.to_string(), count)
        })
        .collect();
    (total, counts)
}
