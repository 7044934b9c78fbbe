//! Duplicate storm: 1,000 distinct deliveries, each sent 8 times, interleaved, 64 at a time →
//! exactly 1,000 records and 1,000 messages, and no answer but 202 or 200 (duplicate). Against
//! the embedded SQLite adapters and the in-memory pair; against the local DynamoDB/SQS
//! endpoint with 250 deliveries (the same 64 at a time: the endpoint answers one call at a
//! time, so more would only lengthen the suite, not the contention).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use adapter_sqlite::Database;
use futures::StreamExt;
use webhook_core::ports::{Ports, QueueConsumer};
use webhook_core::{Ingest, IngestSettings, WebhookRequest};

const KEYS: usize = 1000;
/// Distinct deliveries of the storm against the local DynamoDB/SQS endpoint.
const KEYS_ON_THE_LOCAL_ENDPOINT: usize = 250;
const COPIES: usize = 8;

fn request(n: usize) -> WebhookRequest {
    let body = format!(r#"{{"accountId": "storm-{n}", "timestamp": {n}, "type": "GYM_CHECKIN"}}"#);
    tests::post("egym", &[("x-api-key", "egym-demo-secret-berlin")], &body)
}

/// Sends every delivery COPIES times in an interleaved order; returns how often each status came.
async fn storm(ingest: Arc<Ingest>, keys: usize) -> HashMap<u16, usize> {
    // A fixed shuffle (multiplicative step coprime to the length) interleaves the copies.
    let total = keys * COPIES;
    let order = (0..total).map(|i| (i * 7919) % total).map(|i| i % keys);
    let statuses: Vec<u16> = futures::stream::iter(order)
        .map(|n| {
            let ingest = Arc::clone(&ingest);
            async move { ingest.handle(request(n)).await.status().as_u16() }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let mut counts = HashMap::new();
    for status in statuses {
        *counts.entry(status).or_default() += 1;
    }
    counts
}

fn check(counts: &HashMap<u16, usize>, keys: usize) {
    assert_eq!(counts.get(&202).copied().unwrap_or(0), keys, "{counts:?}");
    assert!(counts.keys().all(|s| [200, 202].contains(s)), "{counts:?}");
    assert_eq!(counts.values().sum::<usize>(), keys * COPIES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_against_dynamodb_and_sqs() {
    let backend = tests::Backend::new().await;
    let ingest = Arc::new(backend.ingest("egym"));
    let keys = KEYS_ON_THE_LOCAL_ENDPOINT;
    let counts = storm(ingest, keys).await;
    check(&counts, keys);
    let mut items = 0;
    let mut pages = backend
        .dynamodb
        .scan()
        .table_name(&backend.table)
        .into_paginator()
        .items()
        .send();
    while let Some(item) = pages.next().await {
        item.unwrap();
        items += 1;
    }
    assert_eq!(items, keys);
    assert_eq!(
        backend.count_messages().await,
        keys,
        "exactly one message per delivery"
    );
}

fn egym_ingest(ports: Ports) -> Arc<Ingest> {
    Arc::new(Ingest::new(
        webhook_core::providers::by_name("egym").unwrap(),
        tests::demo_tenants("egym"),
        ports,
        IngestSettings::default(),
    ))
}

/// Receives everything visible, hidden for a minute; how many there were.
async fn count_messages(consumer: &dyn QueueConsumer) -> usize {
    let mut messages = 0;
    loop {
        let batch = consumer
            .receive(100, Duration::from_secs(60))
            .await
            .unwrap();
        if batch.is_empty() {
            return messages;
        }
        messages += batch.len();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_against_the_embedded_adapters() {
    let path = std::env::temp_dir().join(format!("{}.db", tests::unique_name("storm")));
    let database = Database::open(&path).unwrap();
    let (ports, queue) = adapter_sqlite::ports(&database, 5, webhook_core::clock::system());
    check(&storm(egym_ingest(ports), KEYS).await, KEYS);
    assert_eq!(
        database.recent_records(10 * KEYS).await.unwrap().len(),
        KEYS
    );
    assert_eq!(
        count_messages(&queue).await,
        KEYS,
        "exactly one message per delivery"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_against_the_in_memory_adapters() {
    let memory = adapter_memory::Memory::new(5, webhook_core::clock::system());
    check(&storm(egym_ingest(memory.ports.clone()), KEYS).await, KEYS);
    assert_eq!(memory.store.len(), KEYS);
    assert_eq!(
        count_messages(memory.queue.as_ref()).await,
        KEYS,
        "exactly one message per delivery"
    );
}
