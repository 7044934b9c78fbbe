//! A scan for personal data after an erasure, on all three adapter pairs: a fixture person's
//! name and e-mail (as the provider's API answers them, and in a quarantined body) are sent
//! through events that name them in every way — about them, a multi-event payload, a
//! studio's check-out list, a booking, a quarantined delivery, a fetch still running when the
//! deletion arrives — and after their deletion no byte of either is left in the store (the
//! DynamoDB table's raw items, body items and links; the SQLite database file and its WAL; the
//! in-memory records), the queues and dead letters, the events published after the erasure or
//! any log line; another person's data is all still there.

use rusty_fork::rusty_fork_test;
use std::sync::Arc;
use std::time::Duration;

use adapter_memory::Memory;
use adapter_sqlite::Database;
use tests::fake_api::{Behavior, FakeApi, Gate};
use tests::{post, unique_name, Backend, Captured, Published};
use webhook_core::ports::{Ports, QueueConsumer};
use webhook_core::process::{Processor, ProcessorSettings};
use webhook_core::tenants::TenantSource;
use webhook_core::{Ingest, IngestSettings, WebhookRequest};

/// The person erased (the fake API answers their name and e-mail by id) and another one.
const ERASED: u64 = 4400001;
const KEPT: u64 = 4400002;

fn traces_of(customer: u64) -> [String; 2] {
    [
        format!("Sandbox-{customer}"),
        format!("mia.{customer}@example.com"),
    ]
}

/// One adapter pair with what the test needs to look into it.
struct Place {
    name: &'static str,
    ports: Ports,
    consumer: Arc<dyn QueueConsumer>,
    /// Everything it holds, as bytes or text, for the scan.
    dump: Box<dyn Fn() -> futures::future::BoxFuture<'static, String>>,
}

async fn places() -> Vec<Place> {
    let backend = Backend::with_dead_letter_queue(3).await;
    let aws = backend.clone();
    let path = std::env::temp_dir().join(format!("{}.db", unique_name("personal")));
    let database = Database::open(&path).unwrap();
    let (sqlite, sqlite_queue) = adapter_sqlite::ports(&database, 3, webhook_core::clock::system());
    let memory = Memory::new(3, webhook_core::clock::system());
    let memory_store = memory.store.clone();
    let memory_queue = memory.queue.clone();
    vec![
        Place {
            name: "dynamodb+sqs",
            ports: backend.ports(),
            consumer: Arc::new(backend.queue()),
            dump: Box::new(move || {
                let aws = aws.clone();
                Box::pin(async move { dump_aws(&aws).await })
            }),
        },
        Place {
            name: "sqlite",
            ports: sqlite,
            consumer: Arc::new(sqlite_queue),
            dump: Box::new(move || {
                let path = path.clone();
                Box::pin(async move {
                    let mut bytes = std::fs::read(&path).unwrap();
                    let wal = path.with_extension("db-wal");
                    bytes.extend(std::fs::read(wal).unwrap_or_default());
                    String::from_utf8_lossy(&bytes).into_owned()
                })
            }),
        },
        Place {
            name: "memory",
            ports: memory.ports.clone(),
            consumer: memory.queue.clone(),
            dump: Box::new(move || {
                let text = format!(
                    "{:?}{:?}",
                    memory_store.records(),
                    memory_queue.dead_letters()
                );
                Box::pin(async move { text })
            }),
        },
    ]
}

/// Every item of the table (records, body items, links, tombstones) and every message left
/// in the work and dead-letter queues.
async fn dump_aws(backend: &Backend) -> String {
    let items = backend
        .dynamodb
        .scan()
        .table_name(&backend.table)
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    let messages = backend.count_messages().await;
    format!(
        "{items:?}{messages}{:?}",
        backend.dead_letter_bodies().await
    )
}

fn magicline(
    entity: u64,
    types: &[&str],
    uuid: &str,
    content: serde_json::Value,
) -> WebhookRequest {
    let events: Vec<serde_json::Value> = types
        .iter()
        .map(|t| serde_json::json!({"timestamp": 1795640400000u64, "type": t, "content": content}))
        .collect();
    let body = serde_json::json!({"entityId": entity, "uuid": uuid, "payload": events});
    post(
        "magicline",
        &[("x-api-key", "ml-demo-key-1001-new")],
        &body.to_string(),
    )
}

fn processor(place: &Place, api: &FakeApi, published: Arc<Published>) -> Processor {
    let settings = ProcessorSettings {
        retry_backoff: Duration::ZERO,
        ..ProcessorSettings::default()
    };
    tests::demo_processor(
        place.ports.clone(),
        api,
        settings,
        Duration::from_secs(5),
        |_, demo| TenantSource::fixed(demo),
    )
    .with_publisher(published)
}

/// Receives and processes until nothing is visible (a batch at a time, as the dev server does).
async fn drain(place: &Place, processor: &Processor) {
    loop {
        let batch = place
            .consumer
            .receive(10, Duration::from_secs(30))
            .await
            .unwrap();
        if batch.is_empty() {
            return;
        }
        processor
            .process_received(place.consumer.as_ref(), batch)
            .await
            .unwrap();
    }
}

rusty_fork_test! {
    /// In a process of its own: it installs the global log subscriber it reads.
    #[test]
    fn no_byte_of_an_erased_person_is_left_anywhere() {
        tests::block_on(run());
    }
}

async fn run() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .init();
    for place in places().await {
        let name = place.name;
        let api = FakeApi::start().await;
        let published = Arc::new(Published::default());
        let processor = Arc::new(processor(&place, &api, published.clone()));
        let ingest = Ingest::new(
            webhook_core::providers::by_name("magicline").unwrap(),
            tests::demo_tenants("magicline"),
            place.ports.clone(),
            IngestSettings::default(),
        );
        let deliver = |request| ingest.handle(request);
        let null = serde_json::Value::Null;
        let checkouts =
            serde_json::json!({"checkouts": [{"customerId": ERASED}, {"customerId": KEPT}]});
        for request in [
            magicline(ERASED, &["CUSTOMER_CREATED"], "a-created", null.clone()),
            magicline(KEPT, &["CUSTOMER_CREATED"], "b-created", null.clone()),
            magicline(
                ERASED,
                &["CUSTOMER_UPDATED", "CUSTOMER_CHECKIN"],
                "a-both",
                null.clone(),
            ),
            magicline(
                1001,
                &["AUTOMATIC_CUSTOMER_CHECKOUT"],
                "checkout",
                checkouts.clone(),
            ),
        ] {
            assert!(deliver(request).await.status().is_success(), "{name}");
        }
        // Authentic but unreadable (an empty uuid), holding the person's id and name.
        let unreadable = format!(
            r#"{{"entityId": {ERASED}, "uuid": "", "payload": [], "name": "Sandbox-{ERASED}"}}"#
        );
        let quarantined = deliver(post(
            "magicline",
            &[("x-api-key", "ml-demo-key-1001-new")],
            &unreadable,
        ))
        .await;
        assert_eq!(
            tests::response_json(&quarantined)["status"],
            "quarantined",
            "{name}"
        );
        drain(&place, &processor).await;
        assert!(
            (place.dump)().await.contains(&traces_of(ERASED)[1]),
            "{name}: fetched before"
        );

        // A fetch about the person is under way when their deletion is processed.
        let gate = Gate::default();
        api.set(
            &format!("/magicline/v1/customers/{ERASED}"),
            Behavior::Held(gate.clone()),
        );
        deliver(magicline(
            ERASED,
            &["CUSTOMER_UPDATED"],
            "a-late",
            null.clone(),
        ))
        .await;
        let held = {
            let (processor, consumer) = (processor.clone(), place.consumer.clone());
            tokio::spawn(async move {
                let batch = consumer.receive(10, Duration::from_secs(30)).await.unwrap();
                processor
                    .process_received(consumer.as_ref(), batch)
                    .await
                    .unwrap();
            })
        };
        tests::wait_until(Duration::from_secs(10), || gate.waiting() == 1).await;
        let before_erasure = published.count();
        deliver(magicline(
            ERASED,
            &["CUSTOMER_DELETED"],
            "a-deleted",
            null.clone(),
        ))
        .await;
        drain(&place, &processor).await;
        gate.open();
        held.await.unwrap();
        api.clear();
        drain(&place, &processor).await;

        let dump = (place.dump)().await;
        for trace in traces_of(ERASED) {
            assert!(
                !dump.contains(&trace),
                "{name}: {trace} left in the store or the queues"
            );
            assert!(
                !published.since(before_erasure).contains(&trace),
                "{name}: {trace} published after the erasure"
            );
        }
        for trace in traces_of(KEPT) {
            assert!(
                dump.contains(&trace),
                "{name}: the other person's {trace} is kept"
            );
        }
    }
    let logs = logs.text();
    assert!(!logs.is_empty());
    for trace in traces_of(ERASED).iter().chain(&traces_of(KEPT)) {
        assert!(!logs.contains(trace.as_str()), "{trace} in a log line");
    }
}
