//! The local dev server end to end over real HTTP on loopback ports: every events/ file gets
//! its declared status, accepted ones end PROCESSED with detail from the sandbox, duplicates
//! enqueue nothing, a restart keeps records and dedup, a dead worker's message is delivered
//! again, a shutdown loses nothing that was accepted, the admin routes are served on the
//! loopback admin listener only, never on the webhook port, and with `[downstream]` configured
//! processed and erased events (never failed ones) are POSTed there. The event pages are
//! tested in `devserver_pages.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use devserver::{Options, RunningServer};
use tests::{root, unique_name};
use webhook_core::downstream::PublishError;
use webhook_core::model::{Record, Status};
use webhook_core::ports::QueueConsumer;

fn options(data: &Path, workers: usize) -> Options {
    Options {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        config: root().join("devserver.toml"),
        data: data.to_path_buf(),
        workers,
        visibility: Duration::from_secs(1),
        max_receives: 5,
        retry_backoff: Duration::from_secs(10),
        poll_interval: Duration::from_millis(20),
        sweep_interval: Duration::from_millis(200),
        clock: webhook_core::clock::system(),
    }
}

fn fresh_data() -> PathBuf {
    std::env::temp_dir().join(format!("{}.db", unique_name("devserver")))
}

async fn send(server: &RunningServer, file: &str) -> (u16, serde_json::Value) {
    let answer = devserver::send::send(
        root().join("events").join(file).to_str().unwrap(),
        &format!("http://{}", server.addr),
    )
    .await
    .unwrap();
    let body = serde_json::from_str(&answer.body).unwrap_or(serde_json::Value::Null);
    (answer.status, body)
}

async fn events(server: &RunningServer) -> Vec<serde_json::Value> {
    reqwest::get(format!("http://{}/_dev/events", server.admin_addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits until no record is waiting for the processor (bounded: fails after 20 s); quarantined
/// records are never processed. The records of the deliveries (not those of a list's items).
async fn settled(server: &RunningServer) -> Vec<Record> {
    let started = Instant::now();
    loop {
        let records = server.database.recent_records(10_000).await.unwrap();
        if records.iter().all(|r| {
            matches!(
                r.status,
                Status::Processed | Status::Failed | Status::Quarantined
            )
        }) {
            return records
                .into_iter()
                .filter(|record| webhook_core::process::item_of(record).is_none())
                .collect();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "processing did not settle: {records:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Each webhook event file's declared status.
fn webhook_files() -> BTreeMap<String, u16> {
    declared()
        .into_iter()
        .filter_map(|(file, declared)| Some((file, declared["status"].as_u64()? as u16)))
        .collect()
}

/// The event files declared quarantined (authentic but unreadable: stored, never processed).
fn quarantined_files() -> Vec<String> {
    declared()
        .into_iter()
        .filter(|(_, declared)| declared["quarantined"].as_bool().unwrap_or(false))
        .map(|(file, _)| file)
        .collect()
}

fn declared() -> BTreeMap<String, serde_json::Value> {
    let text = std::fs::read_to_string(root().join("events/manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_file_gets_its_declared_status_and_accepted_ones_are_enriched() {
    let server = devserver::start(options(&fresh_data(), 2)).await.unwrap();
    let mut accepted = 0;
    for (file, expected) in webhook_files() {
        let (status, body) = send(&server, &file).await;
        assert_eq!(status, expected, "{file}: {body}");
        if status < 300 {
            accepted += 1;
        }
    }
    let records = settled(&server).await;
    assert_eq!(records.len(), accepted, "one record per accepted file");
    let quarantined = records
        .iter()
        .filter(|r| r.status == Status::Quarantined)
        .count();
    assert_eq!(quarantined, quarantined_files().len());
    for record in records.iter().filter(|r| r.status != Status::Quarantined) {
        assert_eq!(
            record.status,
            Status::Processed,
            "{}: {:?}",
            record.key,
            record.last_error
        );
        // An event split into items is claimed once more to be finished after them; one the
        // pacer turned away (fourteen FlyBuy orders for one key at 5 calls a second) is
        // claimed again from its delayed copy, as its history says. Nothing else is retried.
        let split = record
            .detail
            .as_deref()
            .is_some_and(|d| d.starts_with("{\"items\""));
        let paced = record
            .history
            .iter()
            .filter(|tried| tried.outcome == "throttled")
            .count();
        assert_eq!(
            record.attempts,
            1 + i64::from(split) + paced as i64,
            "{}: {:?}",
            record.key,
            record.history
        );
        assert_eq!(record.last_error, None, "{}", record.key);
    }
    // Every detail fetched came from the sandbox (the others are erasure summaries and the
    // item counts of split events), and each provider's events were enriched from it.
    let from_sandbox = |r: &&Record| {
        r.detail
            .as_deref()
            .is_some_and(|d| d.contains("\"sandbox\":true"))
    };
    for record in &records {
        if let Some(detail) = record.detail.as_deref() {
            assert!(
                from_sandbox(&record)
                    || detail.starts_with("{\"erasure\"")
                    || detail.starts_with("{\"items\""),
                "{}: {detail}",
                record.key
            );
        }
    }
    for provider in webhook_core::providers::all() {
        assert!(
            records
                .iter()
                .filter(|r| r.provider == provider.name())
                .any(|r| from_sandbox(&r)),
            "no {} event enriched from the sandbox",
            provider.name()
        );
    }
    let listed = events(&server).await;
    let items = server.database.recent_records(10_000).await.unwrap().len() - records.len();
    assert_eq!(
        listed.len(),
        accepted + items,
        "every record, a split event's items too"
    );
    assert!(listed
        .iter()
        .all(|e| e["status"] == "PROCESSED" || e["status"] == "QUARANTINED"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_enqueue_nothing_and_the_event_view_shows_body_and_detail() {
    let server = devserver::start(options(&fresh_data(), 1)).await.unwrap();
    let (status, first) = send(&server, "magicline/customer-created.json").await;
    assert_eq!(status, 202);
    let (status, again) = send(&server, "magicline/customer-created.json").await;
    assert_eq!(
        (status, &again["duplicate"]),
        (200, &serde_json::json!(true))
    );
    let records = settled(&server).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].attempts, 1, "processed once");
    let key = first["id"].as_str().unwrap().replace('#', "%23");
    let view: serde_json::Value =
        reqwest::get(format!("http://{}/_dev/events/{key}", server.admin_addr))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(view["body"]["uuid"], "095be615-a8ad-4c33-8e9c-c7612fbf6c9f");
    assert_eq!(view["detail"]["firstName"], "Mia");
    assert_eq!(view["detail"]["sandbox"], true);
    assert_eq!(view["detail_fetched"], true);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_records_and_dedup() {
    let data = fresh_data();
    let server = devserver::start(options(&data, 1)).await.unwrap();
    assert_eq!(send(&server, "egym/gym-checkin.json").await.0, 202);
    settled(&server).await;
    server.shutdown().await;

    let restarted = devserver::start(options(&data, 1)).await.unwrap();
    let (status, body) = send(&restarted, "egym/gym-checkin.json").await;
    assert_eq!(
        (status, &body["duplicate"]),
        (200, &serde_json::json!(true))
    );
    let records = settled(&restarted).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].status, Status::Processed);
    restarted.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_held_by_a_worker_that_died_is_delivered_again() {
    let data = fresh_data();
    // No workers: the message waits in the queue.
    let server = devserver::start(options(&data, 0)).await.unwrap();
    assert_eq!(send(&server, "flybuy/order-created.json").await.0, 202);
    // A worker takes the message and crashes with it, together with the server.
    let queue =
        adapter_sqlite::SqliteQueue::new(server.database.clone(), 5, webhook_core::clock::system());
    let taken = queue.receive(10, Duration::from_secs(1)).await.unwrap();
    assert_eq!(taken.len(), 1);
    server.abort();

    let restarted = devserver::start(options(&data, 1)).await.unwrap();
    let records = settled(&restarted).await;
    assert_eq!(records[0].status, Status::Processed);
    assert_eq!(records[0].attempts, 1, "the dead worker never claimed it");
    restarted.shutdown().await;
}

/// An events/ file's request sent with `Expect: 100-continue`, its body held back until the
/// server's handler asks for it (hyper then answers `100 Continue`): a request provably in
/// the server's hands.
struct HeldRequest {
    stream: tokio::net::TcpStream,
    body: Vec<u8>,
}

impl HeldRequest {
    async fn open(addr: std::net::SocketAddr, file: &str) -> HeldRequest {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let event = event_file(file);
        let mut target = event["rawPath"].as_str().unwrap().to_string();
        let query = event["rawQueryString"].as_str().unwrap_or_default();
        if !query.is_empty() {
            target = format!("{target}?{query}");
        }
        let body = event["body"].as_str().unwrap().as_bytes().to_vec();
        let mut head = format!(
            "POST {target} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\n\
             expect: 100-continue\r\nconnection: close\r\n",
            body.len()
        );
        for (name, value) in event["headers"].as_object().unwrap() {
            if !["host", "content-length"].contains(&name.as_str())
                && !name.starts_with("x-forwarded")
            {
                head.push_str(&format!("{name}: {}\r\n", value.as_str().unwrap()));
            }
        }
        head.push_str("\r\n");
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut interim = Vec::new();
        while !interim.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "{file}: closed");
            interim.push(byte[0]);
        }
        assert!(
            interim.starts_with(b"HTTP/1.1 100 Continue"),
            "{file}: {}",
            String::from_utf8_lossy(&interim)
        );
        HeldRequest { stream, body }
    }

    /// Sends the body; the answer's status.
    async fn finish(mut self) -> u16 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        self.stream.write_all(&self.body).await.unwrap();
        let mut answer = Vec::new();
        self.stream.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer);
        answer
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|status| status.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP answer: {answer}"))
    }
}

/// The key each events/ file is stored under, by the real handler with the same demo tenants
/// on the in-memory store (TIMIFY's answers name none; an erasure empties the stored body).
async fn stored_keys<'a>(files: impl Iterator<Item = &'a str>) -> BTreeMap<String, String> {
    let mut keys = BTreeMap::new();
    for file in files {
        let provider = file.split('/').next().unwrap();
        let memory = adapter_memory::Memory::new(5, webhook_core::clock::system());
        let answer = webhook_core::Ingest::new(
            webhook_core::providers::by_name(provider).unwrap(),
            tests::demo_tenants(provider),
            memory.ports.clone(),
            webhook_core::IngestSettings::default(),
        )
        .handle(tests::event(file))
        .await;
        assert!(answer.status().is_success(), "{file}");
        let [record] = memory.store.records().try_into().unwrap();
        keys.insert(file.to_string(), record.key);
    }
    keys
}

fn event_file(file: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(root().join("events").join(file)).unwrap();
    let event: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_ne!(event["isBase64Encoded"], true, "{file}");
    event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_loses_nothing_that_was_accepted() {
    // In flight when the shutdown begins: a delivery, a TIMIFY one (answered `{}`, naming no
    // key) and an unreadable one (quarantined).
    const HELD: [&str; 3] = [
        "magicline/customer-created.json",
        "timify/event-created.json",
        "waitwhile/bad-malformed-json.json",
    ];
    let data = fresh_data();
    let server = devserver::start(options(&data, 2)).await.unwrap();
    let addr = server.addr;
    let files: Vec<String> = webhook_files()
        .into_iter()
        .filter(|(_, status)| *status < 300)
        .map(|(file, _)| file)
        .collect();
    let mut held = Vec::new();
    for file in HELD {
        held.push((file, HeldRequest::open(addr, file).await));
    }
    let mut sends: Vec<_> = files
        .iter()
        .filter(|file| !HELD.contains(&file.as_str()))
        .map(|file| {
            let (file, to) = (file.clone(), format!("http://{addr}"));
            tokio::spawn(async move {
                let path = root().join("events").join(&file);
                let answer = devserver::send::send(path.to_str().unwrap(), &to).await;
                (file, answer.ok().map(|answer| answer.status))
            })
        })
        .collect();
    // Shut down once one delivery has been answered, while the others are arriving.
    let (first, status) = sends.remove(0).await.unwrap();
    assert!(status.is_some_and(|s| s < 300), "{first}: {status:?}");
    let shutdown = tokio::spawn(server.shutdown());
    // The shutdown has begun once the webhook listener is closed.
    let started = Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still listening"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The file of each request, and its answer's status (none: refused by the shutdown).
    let mut answers: Vec<(String, Option<u16>)> = vec![(first, status)];
    for (file, request) in held {
        let status = request.finish().await;
        assert!(status < 300, "{file}, in flight at the shutdown: {status}");
        answers.push((file.to_string(), Some(status)));
    }
    shutdown.await.unwrap();
    for send in sends {
        answers.push(send.await.unwrap());
    }

    let restarted = devserver::start(options(&data, 2)).await.unwrap();
    let records = settled(&restarted).await;
    let keys = stored_keys(answers.iter().map(|(file, _)| file.as_str())).await;
    let distinct: std::collections::BTreeSet<&String> = keys.values().collect();
    assert_eq!(distinct.len(), answers.len(), "one key per file");
    let file_of = |record: &Record| {
        let (file, status) = answers
            .iter()
            .find(|(file, _)| keys[file] == record.key)
            .unwrap_or_else(|| panic!("{} was never sent", record.key));
        (file.as_str(), *status)
    };
    let quarantined = quarantined_files();
    let mut stored = Vec::new();
    for record in &records {
        let (file, status) = file_of(record);
        assert!(
            status.is_none_or(|s| s < 300),
            "{file} was answered {status:?}, yet stored"
        );
        let expected = if quarantined.iter().any(|q| q == file) {
            Status::Quarantined
        } else {
            Status::Processed
        };
        assert_eq!(record.status, expected, "{file}: {:?}", record.last_error);
        stored.push(file);
    }
    let acknowledged: Vec<&str> = answers
        .iter()
        .filter(|(_, status)| status.is_some_and(|s| s < 300))
        .map(|(file, _)| file.as_str())
        .collect();
    for file in &acknowledged {
        assert!(stored.contains(file), "acknowledged {file} is not stored");
    }
    let refused = answers.len() - acknowledged.len();
    eprintln!(
        "{} acknowledged ({} in flight at the shutdown), {refused} refused, {} records",
        acknowledged.len(),
        HELD.len(),
        records.len()
    );
    restarted.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_routes_are_served_on_the_admin_listener_only() {
    let server = devserver::start(options(&fresh_data(), 1)).await.unwrap();
    assert_ne!(server.addr, server.admin_addr);
    assert!(server.admin_addr.ip().is_loopback());
    let (status, accepted) = send(&server, "magicline/customer-created.json").await;
    assert_eq!(status, 202, "{accepted}");
    settled(&server).await;
    let key = accepted["id"].as_str().unwrap().replace('#', "%23");
    let sandbox_path = "/_sandbox/magicline/v1/customers/7893459";

    // The webhook port (the one exposed through a tunnel): webhooks only.
    for path in [
        "/".to_string(),
        "/_dev/events".to_string(),
        format!("/_dev/events/{key}"),
        sandbox_path.to_string(),
    ] {
        let answer = reqwest::get(format!("http://{}{path}", server.addr))
            .await
            .unwrap();
        assert_eq!(answer.status(), 404, "{path} on the webhook port");
        let body = answer.text().await.unwrap();
        assert!(
            !body.contains("7893459"),
            "{path} on the webhook port: {body}"
        );
    }

    // The admin port: the index, the events and the sandbox; no webhooks.
    let admin = format!("http://{}", server.admin_addr);
    let index: serde_json::Value = reqwest::get(format!("{admin}/"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(index["events"].as_str().unwrap().contains("/_dev/events"));
    let webhooks = index["webhooks"].to_string();
    assert!(
        webhooks.contains(&format!("http://{}/webhooks/magicline", server.addr)),
        "{webhooks}"
    );
    assert_eq!(events(&server).await.len(), 1);
    let view = reqwest::get(format!("{admin}/_dev/events/{key}"))
        .await
        .unwrap();
    assert_eq!(view.status(), 200);
    let view: serde_json::Value = view.json().await.unwrap();
    assert_eq!(view["body"]["uuid"], "095be615-a8ad-4c33-8e9c-c7612fbf6c9f");
    let answer = reqwest::Client::new()
        .post(format!("{admin}/webhooks/magicline"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404, "webhooks on the admin port");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_listener_off_loopback_is_refused() {
    for exposed in ["0.0.0.0:0", "[::]:0"] {
        let mut options = options(&fresh_data(), 1);
        options.admin_listen = exposed.parse().unwrap();
        let Err(error) = devserver::start(options).await else {
            panic!("{exposed} accepted for the admin listener");
        };
        let error = error.to_string();
        assert!(error.contains("--admin-listen"), "{error}");
        assert!(error.contains("not a loopback address"), "{error}");
    }
}

/// A downstream receiver on a loopback port: keeps every JSON body POSTed to it and answers
/// with `status`.
async fn receiver(
    status: u16,
) -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
) {
    use axum::extract::State;
    type Received = std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>;
    let received: Received = Default::default();
    let app = axum::Router::new()
        .route(
            "/events",
            axum::routing::post(
                move |State(received): State<Received>, body: axum::body::Bytes| async move {
                    received
                        .lock()
                        .unwrap()
                        .push(serde_json::from_slice(&body).unwrap_or_default());
                    axum::http::StatusCode::from_u16(status).unwrap()
                },
            ),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processed_and_erased_events_are_posted_downstream_and_failed_ones_are_not() {
    let (url, received) = receiver(200).await;
    // gym-hamburg-02's API path is wrong: the sandbox answers 404, its event FAILS.
    let text = std::fs::read_to_string(root().join("devserver.toml")).unwrap();
    let right = r#"api = { base_url = "{sandbox}/egym", api_key = "egym-demo-api-hamburg" }"#;
    assert!(text.contains(right));
    let text = text.replace(
        right,
        &right.replace("{sandbox}/egym", "{sandbox}/egym/moved"),
    );
    let config = std::env::temp_dir().join(format!("{}.toml", unique_name("downstream")));
    std::fs::write(&config, format!("{text}\n[downstream]\nurl = \"{url}\"\n")).unwrap();
    let mut options = options(&fresh_data(), 1);
    options.config = config;
    let server = devserver::start(options).await.unwrap();

    let mut keys = Vec::new();
    for file in [
        "magicline/customer-created.json",
        "magicline/customer-deleted.json",
        "egym/second-gym.json",
    ] {
        let (status, body) = send(&server, file).await;
        assert_eq!(status, 202, "{file}: {body}");
        keys.push(body["id"].as_str().unwrap().to_string());
    }
    let records = settled(&server).await;
    let status_of = |key: &str| records.iter().find(|r| r.key == key).unwrap().status;
    assert_eq!(status_of(&keys[0]), Status::Processed);
    assert_eq!(status_of(&keys[1]), Status::Processed);
    assert_eq!(status_of(&keys[2]), Status::Failed);
    // Published before the record is finished, so already there; and nothing more comes: the
    // server's single worker publishes a later delivery only once it has finished, and deleted,
    // every message before it, so that delivery's publication is the last.
    let (status, marker) = send(&server, "magicline/customer-checkin.json").await;
    assert_eq!(status, 202, "{marker}");
    let marker = marker["id"].clone();
    let (arrived, wanted) = (received.clone(), marker.clone());
    tests::wait_until(Duration::from_secs(10), move || {
        arrived
            .lock()
            .unwrap()
            .iter()
            .any(|e| e["detail"]["key"] == wanted)
    })
    .await;
    let mut events = received.lock().unwrap().clone();
    assert_eq!(
        events.pop().unwrap()["detail"]["key"],
        marker,
        "{events:#?}"
    );
    let mut published: Vec<&str> = events
        .iter()
        .map(|e| e["detail"]["key"].as_str().unwrap())
        .collect();
    // An erasure is published as its receipt.
    published.sort_unstable();
    let mut expected = vec![keys[0].as_str(), keys[1].as_str()];
    expected.sort_unstable();
    assert_eq!(published, expected, "{events:#?}");
    for event in &events {
        assert_eq!(event["source"], "webhooks.magicline");
        assert_eq!(event["detail"]["provider"], "magicline");
        assert_eq!(event["detail"]["tenant"], "studio-1001");
    }
    let by_key = |key: &str| {
        events
            .iter()
            .find(|e| e["detail"]["key"] == key)
            .unwrap()
            .clone()
    };
    let created = by_key(&keys[0]);
    assert_eq!(created["detail-type"], "CUSTOMER_CREATED");
    assert_eq!(created["detail"]["event_type"], "CUSTOMER_CREATED");
    assert_eq!(created["detail"]["detail"]["firstName"], "Mia");
    let receipt = by_key(&keys[1]);
    assert_eq!(receipt["detail-type"], "erasure.completed");
    assert_eq!(receipt["detail"]["person"], "customer:7893470", "{receipt}");
    assert_eq!(
        receipt["detail"]["records"], 1,
        "the deletion itself: {receipt}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downstream_answer_other_than_2xx_or_no_answer_is_a_failed_publication() {
    let event = webhook_core::downstream::DownstreamEvent {
        source: "webhooks.egym".into(),
        detail_type: "GYM_CHECKIN".into(),
        detail: serde_json::json!({ "key": "egym#g#1" }),
    };
    use webhook_core::downstream::Publisher;
    let (accepting, received) = receiver(204).await;
    let publisher = devserver::downstream::HttpPublisher::new(&accepting).unwrap();
    publisher.publish(&event).await.unwrap();
    assert_eq!(
        received.lock().unwrap()[0],
        serde_json::json!({
            "source": "webhooks.egym",
            "detail-type": "GYM_CHECKIN",
            "detail": { "key": "egym#g#1" },
        })
    );
    for status in [500, 404, 302] {
        let (url, _) = receiver(status).await;
        let error = devserver::downstream::HttpPublisher::new(&url)
            .unwrap()
            .publish(&event)
            .await
            .unwrap_err();
        let PublishError::Unavailable(error) = error else {
            panic!("{error}: retried, not refused");
        };
        assert!(error.contains(&status.to_string()), "{error}");
    }
    // Nothing listening.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/events", listener.local_addr().unwrap())
    };
    let error = devserver::downstream::HttpPublisher::new(&closed)
        .unwrap()
        .publish(&event)
        .await
        .unwrap_err();
    let PublishError::Unavailable(error) = error else {
        panic!("{error}: retried, not refused");
    };
    assert!(error.starts_with("downstream:"), "{error}");
}

/// The personal-data scan of `personal_data.rs`, through the dev server over HTTP: a person's
/// name and e-mail (as the sandbox answers them, and in a quarantined body) reach it through a
/// delivery about them, a studio's check-out list naming them and another person, and an
/// unreadable delivery; after their `CUSTOMER_DELETED` no byte of either is left in the
/// database file (after a graceful shutdown: no WAL) or in what is posted downstream after the
/// erasure, and the other person's are all still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_byte_of_an_erased_person_is_left_in_the_dev_server() {
    const ERASED: u64 = 4_400_101;
    const KEPT: u64 = 4_400_102;
    let traces = |id: u64| [format!("Sandbox-{id}"), format!("mia.{id}@example.com")];
    let (url, received) = receiver(200).await;
    let text = std::fs::read_to_string(root().join("devserver.toml")).unwrap();
    let config = std::env::temp_dir().join(format!("{}.toml", unique_name("scan")));
    std::fs::write(&config, format!("{text}\n[downstream]\nurl = \"{url}\"\n")).unwrap();
    let data = fresh_data();
    let mut options = options(&data, 2);
    options.config = config;
    let server = devserver::start(options).await.unwrap();
    let client = reqwest::Client::new();
    let post = |body: String| {
        let request = client
            .post(format!("http://{}/webhooks/magicline", server.addr))
            .header("x-api-key", "ml-demo-key-1001-new")
            .header("content-type", "application/json")
            .body(body);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let event = |uuid: &str, entity: u64, kind: &str, content: serde_json::Value| {
        serde_json::json!({
            "entityId": entity, "uuid": uuid,
            "payload": [{"timestamp": 1_795_640_400_000_u64, "type": kind, "content": content}],
        })
        .to_string()
    };
    for id in [ERASED, KEPT] {
        let created = event(
            &format!("scan-created-{id}"),
            id,
            "CUSTOMER_CREATED",
            serde_json::json!({}),
        );
        assert_eq!(post(created).await, 202);
    }
    let checkouts = serde_json::json!({"checkouts": [
        {"customerId": ERASED, "checkoutTime": "2026-11-25T22:00:00.000Z"},
        {"customerId": KEPT, "checkoutTime": "2026-11-25T22:00:00.000Z"},
    ]});
    assert_eq!(
        post(event(
            "scan-checkout",
            1001,
            "AUTOMATIC_CUSTOMER_CHECKOUT",
            checkouts
        ))
        .await,
        202
    );
    let [name, mail] = traces(ERASED);
    let unreadable = format!(r#"{{"entityId": {ERASED}, "note": "{name} <{mail}>""#);
    assert_eq!(post(unreadable).await, 202, "quarantined, kept");
    settled(&server).await;
    let before_erasure = received.lock().unwrap().len();
    let deleted = event(
        "scan-deleted",
        ERASED,
        "CUSTOMER_DELETED",
        serde_json::json!({}),
    );
    assert_eq!(post(deleted).await, 202);
    settled(&server).await;
    // The second erasure pass and its publication come through the queue too.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after: Vec<String> = received.lock().unwrap()[before_erasure..]
        .iter()
        .map(|event| event.to_string())
        .collect();
    server.shutdown().await;

    let mut file = std::fs::read(&data).unwrap();
    let mut wal = data.as_os_str().to_owned();
    wal.push("-wal");
    file.extend(std::fs::read(PathBuf::from(wal)).unwrap_or_default());
    let holds = |text: &str| {
        file.windows(text.len())
            .any(|window| window == text.as_bytes())
    };
    for trace in traces(ERASED) {
        assert!(!holds(&trace), "{trace} left in the database");
        assert!(
            after.iter().all(|event| !event.contains(&trace)),
            "{trace} published: {after:?}"
        );
    }
    for trace in traces(KEPT) {
        assert!(holds(&trace), "{trace} of the other person is kept");
    }
    assert!(
        after
            .iter()
            .any(|event| event.contains("erasure.completed")),
        "the receipt: {after:?}"
    );
    std::fs::remove_file(&data).ok();
}

/// `/_dev/events/{key}` gives the raw body as it came: key order, a number no float holds
/// (`18446744073709551617`, `-0.10`) and the spacing, all as sent.
#[tokio::test]
async fn the_dev_event_view_gives_the_body_exactly_as_it_came() {
    let server = devserver::start(options(&fresh_data(), 1)).await.unwrap();
    let body = r#"{"uuid": "exact-1", "zeta": 18446744073709551617,  "entityId": 7893459,
        "payload": [{"timestamp": 1, "type": "CUSTOMER_UPDATED"}], "alpha": -0.10}"#;
    let answer = reqwest::Client::new()
        .post(format!("http://{}/webhooks/magicline", server.addr))
        .header("x-api-key", "ml-demo-key-1001-new")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    let key = answer.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .replace('#', "%23");
    let view = reqwest::get(format!("http://{}/_dev/events/{key}", server.admin_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(view.contains(body), "{view}");
    let parsed: serde_json::Value = serde_json::from_str(&view).expect("still JSON");
    assert_eq!(parsed["entity_id"], "7893459");
    server.shutdown().await;
}

/// A second dev server on the data file of a running one is refused with what to do; once the
/// first has stopped, it starts.
#[tokio::test]
async fn a_second_server_on_the_same_data_file_is_refused() {
    let data = fresh_data();
    let first = devserver::start(options(&data, 1)).await.unwrap();
    let Err(refused) = devserver::start(options(&data, 1)).await else {
        panic!("a second server started on the same data file");
    };
    let refused = refused.to_string();
    assert!(
        refused.contains("another dev server is running") && refused.contains("--data"),
        "{refused}"
    );
    first.shutdown().await;
    let second = devserver::start(options(&data, 1)).await.unwrap();
    second.shutdown().await;
}

/// The mistakes a newcomer makes with the dev server get an answer that says what to do next:
/// a missing configuration names `--config`; `send` with no server says to start it or use
/// `--to`, on a file that is not a webhook event names where the samples are, and to the admin
/// address is no success and says where webhooks go; a provider typo lists the providers; a
/// key cut at its first unescaped `#` says to write `%23`, and the `%23` form finds the event.
#[tokio::test]
async fn a_newcomers_mistakes_are_answered_with_the_next_step() {
    let missing = Options {
        config: std::env::temp_dir().join(format!("{}.toml", unique_name("absent"))),
        ..options(&fresh_data(), 1)
    };
    let Err(error) = devserver::start(missing).await else {
        panic!("started without a configuration");
    };
    assert!(error.to_string().contains("--config"), "{error}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nobody = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let sample = root().join("events/magicline/customer-created.json");
    let sample = sample.to_str().unwrap();
    let Err(error) = devserver::send::send(sample, &nobody).await else {
        panic!("sent to nobody");
    };
    let error = error.to_string();
    assert!(
        error.contains("is the dev server running") && error.contains("--to"),
        "{error}"
    );

    let server = devserver::start(options(&fresh_data(), 1)).await.unwrap();
    let to = format!("http://{}", server.addr);
    let not_a_webhook = root().join("events/processor").join(
        std::fs::read_dir(root().join("events/processor"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .file_name(),
    );
    let Err(error) = devserver::send::send(not_a_webhook.to_str().unwrap(), &to).await else {
        panic!("sent an SQS event as a webhook");
    };
    let error = error.to_string();
    assert!(
        error.contains("not an API Gateway HTTP API event") && error.contains("events/<provider>/"),
        "{error}"
    );

    let admin = format!("http://{}", server.admin_addr);
    let answer = devserver::send::send(sample, &admin).await.unwrap();
    assert!(!answer.is_success(), "the admin address took a webhook");
    let hint = answer.hint(&admin).expect("a hint");
    assert!(
        hint.contains("admin address") && hint.contains("--listen"),
        "{hint}"
    );
    let answer = devserver::send::send(sample, &to).await.unwrap();
    assert!(answer.is_success() && answer.hint(&to).is_none());
    let key = serde_json::from_str::<serde_json::Value>(&answer.body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    let typo = reqwest::Client::new()
        .post(format!("{to}/webhooks/magiclin"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(typo.status(), 404);
    let error = typo.json::<serde_json::Value>().await.unwrap()["error"].to_string();
    for provider in webhook_core::providers::names() {
        assert!(error.contains(&provider), "{error}");
    }

    let cut = key.split('#').next().unwrap();
    let answer = reqwest::get(format!("{admin}/_dev/events/{cut}"))
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);
    let error = answer.json::<serde_json::Value>().await.unwrap()["error"].to_string();
    assert!(error.contains("%23"), "{error}");
    let escaped = key.replace('#', "%23");
    let answer = reqwest::get(format!("{admin}/_dev/events/{escaped}"))
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.json::<serde_json::Value>().await.unwrap()["key"],
        key
    );
    server.shutdown().await;
}

/// With `--max-receives 2 --retry-backoff 1` (the README's "make it fail" walkthrough), an
/// event whose provider API cannot be reached reaches the dead letters within seconds, not the
/// minutes of the defaults.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_retry_settings_take_a_failing_event_to_the_dead_letters_in_seconds() {
    let text = std::fs::read_to_string(root().join("devserver.toml")).unwrap();
    let sandboxed = "{sandbox}/magicline";
    assert!(text.contains(sandboxed));
    let config = std::env::temp_dir().join(format!("{}.toml", unique_name("unreachable")));
    std::fs::write(&config, text.replace(sandboxed, tests::NO_API)).unwrap();
    let server = devserver::start(Options {
        config,
        max_receives: 2,
        retry_backoff: Duration::from_secs(1),
        ..options(&fresh_data(), 1)
    })
    .await
    .unwrap();
    let (status, answer) = send(&server, "magicline/customer-created.json").await;
    assert_eq!(status, 202);
    let key = answer["id"].as_str().unwrap().to_string();
    let started = std::time::Instant::now();
    while server.database.dead_letters().await.unwrap().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "not dead-lettered within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let letters = server.database.dead_letters().await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].key, key);
    server.shutdown().await;
}

/// The README's "make it fail" recipe, step 1, without a restart: a tenant's API pointed at a
/// path the sandbox does not serve, while the server runs, fails the next event with a 404;
/// pointed back, the replay processes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_api_changed_under_the_running_server_is_used_for_the_next_event() {
    let text = std::fs::read_to_string(root().join("devserver.toml")).unwrap();
    let sandboxed = "{sandbox}/magicline\", api_key = \"ml-demo-openapi-1001\"";
    assert!(text.contains(sandboxed));
    let config = std::env::temp_dir().join(format!("{}.toml", unique_name("edited")));
    std::fs::write(&config, &text).unwrap();
    let server = devserver::start(Options {
        config: config.clone(),
        ..options(&fresh_data(), 1)
    })
    .await
    .unwrap();
    let wrong = sandboxed.replace("/magicline\"", "/magicline/wrong\"");
    std::fs::write(&config, text.replace(sandboxed, &wrong)).unwrap();
    tokio::time::sleep(devserver::TENANTS_RELOAD + Duration::from_millis(1500)).await;
    let (status, answer) = send(&server, "magicline/customer-created.json").await;
    assert_eq!(status, 202);
    let key = answer["id"].as_str().unwrap().to_string();
    let finished = |status: Status| {
        let database = server.database.clone();
        let key = key.clone();
        async move {
            let started = std::time::Instant::now();
            loop {
                let records = database.recent_records(100).await.unwrap();
                let record = records.into_iter().find(|r| r.key == key);
                if let Some(record) = record.filter(|r| r.status == status) {
                    return record;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(15),
                    "not {status:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let failed = finished(Status::Failed).await;
    assert!(
        failed
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("404")),
        "{:?}",
        failed.last_error
    );
    std::fs::write(&config, &text).unwrap();
    tokio::time::sleep(devserver::TENANTS_RELOAD + Duration::from_millis(1500)).await;
    let admin = format!("http://{}", server.admin_addr);
    let replayed = reqwest::Client::new()
        .post(format!("{admin}/events/{}/replay", key.replace('#', "%23")))
        .send()
        .await
        .unwrap();
    assert!(replayed.status().is_success() || replayed.status().is_redirection());
    finished(Status::Processed).await;
    server.shutdown().await;
    let _ = std::fs::remove_file(config);
}

/// The event files the README's walkthrough sends (`devserver -- send events/…`).
fn walkthrough_files() -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find("### A 60-second walkthrough")
        .expect("the walkthrough");
    // The next heading, of any level the walkthrough's own could be followed by.
    let end = start
        + ["\n## ", "\n### "]
            .iter()
            .filter_map(|heading| readme[start + 1..].find(heading))
            .min()
            .expect("the section after it");
    let files: Vec<String> = readme[start..end]
        .lines()
        .filter_map(|line| line.split("-p devserver -- send events/").nth(1))
        .map(|rest| rest.split_whitespace().next().unwrap().to_string())
        .collect();
    assert!(files.len() >= 3, "{files:?}");
    files
}

/// Sending every sample after the walkthrough does not undo it: no deletion among the samples
/// names a person the walkthrough's events are about, so their fetched details stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sending_every_sample_after_the_walkthrough_leaves_its_events_whole() {
    let server = devserver::start(options(&fresh_data(), 2)).await.unwrap();
    let mut walked = Vec::new();
    for file in walkthrough_files() {
        let (status, body) = send(&server, &file).await;
        if status == 202 {
            walked.push(body["id"].as_str().unwrap().to_string());
        }
    }
    assert!(walked.len() >= 2, "{walked:?}");
    settled(&server).await;
    for (file, _) in webhook_files() {
        send(&server, &file).await;
    }
    let records = settled(&server).await;
    for key in &walked {
        let record = records.iter().find(|r| &r.key == key).unwrap();
        assert_eq!(record.status, Status::Processed, "{key}");
        assert_eq!(record.erased_at_ms, None, "{key}: erased by a sample");
        assert!(
            record
                .detail
                .as_deref()
                .is_some_and(|d| d.contains("\"sandbox\":true")),
            "{key}: its detail is gone: {:?}",
            record.detail
        );
    }
    server.shutdown().await;
}
