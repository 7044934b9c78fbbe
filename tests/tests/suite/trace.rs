//! One trace per webhook: the trace id a webhook's request brings (or, where it brings none,
//! one made for it) is kept with its record and is the one in the processor's log line, the
//! downstream event, `webhooks events show` and the event page — with the attempts the record
//! keeps.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tests::fake_api::FakeApi;
use tests::{event, post, root, Backend, Bus, Captured};
use webhook_core::metrics::Emf;
use webhook_core::process::ProcessorSettings;

use super::tenants_cli::{cli, devserver_on};

const TRACE: &str = "1-5759e988-bd862e3fe1be46a994272793";
/// The segment the webhook function ran in, as Lambda's trace header names it.
const PARENT: &str = "53995c3f42cd8ad8";

#[tokio::test]
async fn a_webhooks_trace_is_followed_into_the_processors_line_and_the_downstream_event() {
    let backend = Backend::new().await;
    let api = FakeApi::start().await;
    let bus = Bus::new().await;
    let lines = Captured::default();
    // The X-Ray daemon's side of the wire: UDP datagrams, a header line and a document.
    let daemon = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let spans = adapter_aws::xray::XraySpans::to(daemon.local_addr().unwrap()).unwrap();
    let processor = backend
        .processor(&api, ProcessorSettings::default(), Duration::from_secs(2))
        .with_publisher(bus.publisher())
        .with_spans(Arc::new(spans))
        .with_metrics(Arc::new(Emf::new(
            "Webhooks/test",
            webhook_core::clock::system(),
            lines.clone(),
        )));
    let sample = event("egym/gym-checkin.json");
    let body = String::from_utf8(sample.body().to_vec()).unwrap();
    let traced = post(
        "egym",
        &[
            ("x-api-key", "egym-demo-secret-berlin"),
            ("content-type", "application/json"),
            (
                "x-amzn-trace-id",
                &format!("Root={TRACE};Parent={PARENT};Sampled=1"),
            ),
        ],
        &body,
    );
    let answer = backend.ingest("egym").handle(traced).await;
    assert_eq!(answer.status(), 202);
    let key = tests::response_json(&answer)["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(backend.record(&key).await.trace_id.as_deref(), Some(TRACE));
    // The message carries it for X-Ray (the processor reads it from the record).
    let queued = backend
        .sqs
        .receive_message()
        .queue_url(&backend.queue_url)
        .message_system_attribute_names(
            aws_sdk_sqs::types::MessageSystemAttributeName::AwsTraceHeader,
        )
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    let header = queued.messages()[0]
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::AwsTraceHeader))
        .cloned();
    assert_eq!(
        header,
        Some(format!("Root={TRACE};Parent={PARENT};Sampled=1"))
    );

    backend.pump(&processor).await;
    let processed: Vec<Value> = lines
        .text()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .filter(|line: &Value| line["message"] == "processed")
        .collect();
    assert_eq!(processed.len(), 1, "{}", lines.text());
    assert_eq!(processed[0]["trace_id"], TRACE);
    let published = bus.published().await;
    assert_eq!(published.len(), 1);
    assert_eq!(published[0]["detail"]["trace_id"], TRACE);

    // The provider call and the publication, each a subsegment under the webhook function's
    // segment, naming where the call went and never its path.
    let sent = subsegments(&daemon);
    let names: Vec<&str> = sent.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["egym API", "downstream bus"], "{sent:?}");
    for subsegment in &sent {
        assert_eq!(subsegment["type"], "subsegment", "{subsegment}");
        assert_eq!(subsegment["trace_id"], TRACE, "{subsegment}");
        assert_eq!(subsegment["parent_id"], PARENT, "{subsegment}");
        assert!(
            subsegment["end_time"].as_f64().unwrap() >= subsegment["start_time"].as_f64().unwrap(),
            "{subsegment}"
        );
        assert!(subsegment.get("in_progress").is_none(), "{subsegment}");
        assert!(subsegment.get("fault").is_none(), "{subsegment}");
    }
    assert_eq!(sent[0]["namespace"], "remote");
    assert_eq!(sent[0]["http"]["request"]["method"], "GET");
    let origin: String = api
        .base_url
        .split('/')
        .take(3)
        .collect::<Vec<_>>()
        .join("/");
    assert_eq!(
        sent[0]["http"]["request"]["url"].as_str(),
        Some(origin.as_str())
    );
}

/// The documents the daemon received, each after its `{"format": "json", "version": 1}` line.
fn subsegments(daemon: &std::net::UdpSocket) -> Vec<Value> {
    daemon
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut sent = Vec::new();
    let mut buffer = [0u8; 65_536];
    while let Ok(length) = daemon.recv(&mut buffer) {
        let datagram = std::str::from_utf8(&buffer[..length]).unwrap();
        let (header, document) = datagram.split_once('\n').unwrap();
        assert_eq!(header, r#"{"format": "json", "version": 1}"#);
        sent.push(serde_json::from_str(document).unwrap());
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dev_server_makes_a_trace_for_a_webhook_and_shows_it() {
    let (server, data) = devserver_on(root().join("devserver.toml")).await;
    let answer = devserver::send::send(
        root()
            .join("events/egym/gym-checkin.json")
            .to_str()
            .unwrap(),
        &format!("http://{}", server.addr),
    )
    .await
    .unwrap();
    let key = serde_json::from_str::<Value>(&answer.body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let record = loop {
        let shown = cli(&["--local", &data], &["--json", "events", "show", &key]).await;
        let record: Value = serde_json::from_str(&shown.stdout).unwrap();
        if record["status"] == "PROCESSED" {
            break record;
        }
        assert!(std::time::Instant::now() < deadline, "{record}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let trace = record["trace_id"].as_str().unwrap().to_string();
    assert!(webhook_core::trace::is_trace_id(&trace), "{trace}");
    let text = cli(&["--local", &data], &["events", "show", &key]).await;
    assert!(
        text.stdout.contains(&format!("trace:      {trace}")),
        "{text:?}"
    );
    let page = reqwest::get(format!(
        "http://{}/events/{}",
        server.admin_addr,
        key.replace('#', "%23")
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(page.contains(&trace), "{page}");
    // Its attempts are kept with it, and shown.
    assert_eq!(record["history"][0]["outcome"], "fetched", "{record}");
    assert!(
        text.stdout.contains("history:") && text.stdout.contains("fetched"),
        "{text:?}"
    );
    assert!(page.contains(r#"<section id="history">"#), "{page}");
    server.shutdown().await;
}
