//! No hot key: one DynamoDB partition takes about 1,000 writes a second, so a provider at
//! 10,000 webhooks a second must write no partition key of the events table, nor of any index
//! template.yaml declares, more often than that. A second of such a provider is built through
//! the real webhook handler (on the in-memory store, its clock held still: every webhook in
//! the same second and day), each record turned into the items the DynamoDB adapter writes
//! (`item_image`), and the writes counted per partition of the table and of every index.

use std::collections::HashMap;
use std::sync::Arc;

use adapter_aws::dynamodb::item_image;
use aws_sdk_dynamodb::types::AttributeValue;
use http::header::{HeaderValue, CONTENT_TYPE};
use testkit::{Kit, Lookup};
use webhook_core::clock::ManualClock;
use webhook_core::model::{Claim, EventFilter, Outcome, Record, Status};
use webhook_core::ports::{Claims, Deliveries, Operating};
use webhook_core::providers::Provider;
use webhook_core::{Ingest, IngestSettings};

const WEBHOOKS_PER_SECOND: u64 = 10_000;

/// What one DynamoDB partition takes a second.
const PARTITION_WRITES_PER_SECOND: usize = 1_000;

/// A provider at 10,000 webhooks a second is many gyms. `by_subject` is keyed per member or
/// booking, and the kits' unique deliveries of some providers are all about one member of a
/// tenant: spread over 100 tenants, no subject gets more than 100 of them.
const TENANTS: usize = 100;

type Item = HashMap<String, AttributeValue>;

/// The table or one of its indexes, as template.yaml declares it.
struct Partitioned {
    name: String,
    /// Key attributes, the partition key first: an item lacking one is not in an index.
    keys: Vec<String>,
    /// The attributes an index holds beside its keys and the table's; `None`: all of them.
    projected: Option<Vec<String>>,
    is_table: bool,
}

fn table_and_indexes() -> Vec<Partitioned> {
    let template = tests::template();
    let tables = tests::resources_of_type(&template, "AWS::DynamoDB::Table");
    assert_eq!(tables.len(), 1, "one table in template.yaml");
    let properties = &tables.values().next().unwrap()["Properties"];
    let keys = |schema: &serde_json::Value| {
        let mut keys: Vec<(String, String)> = schema
            .as_array()
            .expect("a key schema")
            .iter()
            .map(|key| (key["KeyType"].to_string(), key["AttributeName"].to_string()))
            .collect();
        keys.sort(); // HASH before RANGE
        keys.into_iter()
            .map(|(_, name)| name.trim_matches('"').to_string())
            .collect::<Vec<_>>()
    };
    let table_keys = keys(&properties["KeySchema"]);
    let mut all = vec![Partitioned {
        name: "the table".into(),
        keys: table_keys.clone(),
        projected: None,
        is_table: true,
    }];
    for index in properties["GlobalSecondaryIndexes"].as_array().unwrap() {
        let projection = &index["Projection"];
        let non_key = projection["NonKeyAttributes"]
            .as_array()
            .into_iter()
            .flatten();
        let projected = match projection["ProjectionType"].as_str() {
            Some("ALL") => None,
            _ => Some(
                table_keys
                    .iter()
                    .cloned()
                    .chain(non_key.map(|name| name.as_str().unwrap().to_string()))
                    .collect(),
            ),
        };
        all.push(Partitioned {
            name: index["IndexName"].as_str().unwrap().to_string(),
            keys: keys(&index["KeySchema"]),
            projected,
            is_table: false,
        });
    }
    all
}

fn text(value: &AttributeValue) -> String {
    value
        .as_s()
        .or_else(|_| value.as_n())
        .cloned()
        .unwrap_or_else(|_| format!("{value:?}"))
}

impl Partitioned {
    /// The partition key `item` is under here; `None` if the item is not in it.
    fn partition(&self, item: &Item) -> Option<String> {
        if !self.keys.iter().all(|key| item.contains_key(key)) {
            return None;
        }
        Some(text(&item[&self.keys[0]]))
    }

    /// What of `item` this holds, under which partition key; `None` if the item is not in it.
    fn entry<'a>(&self, item: &'a Item) -> Option<(String, Vec<(&'a str, &'a AttributeValue)>)> {
        let partition = self.partition(item)?;
        let mut held: Vec<_> = match &self.projected {
            None => item
                .iter()
                .map(|(name, value)| (name.as_str(), value))
                .collect(),
            Some(projected) => self
                .keys
                .iter()
                .chain(projected)
                .filter_map(|name| item.get_key_value(name))
                .map(|(name, value)| (name.as_str(), value))
                .collect(),
        };
        held.sort_by_key(|(name, _)| *name);
        Some((partition, held))
    }

    /// The partitions a write that turns `before` into `after` writes: the table's always;
    /// an index's where its entry changes (a move between partitions writes both).
    fn written(&self, before: Option<&Item>, after: &Item) -> Vec<String> {
        if self.is_table {
            return vec![text(&after[&self.keys[0]])];
        }
        match (before.and_then(|item| self.entry(item)), self.entry(after)) {
            (old, new) if old == new => vec![],
            (Some((from, _)), Some((to, _))) if from == to => vec![to],
            (old, new) => old.into_iter().chain(new).map(|(p, _)| p).collect(),
        }
    }
}

/// One second of `provider` at 10,000 webhooks a second, as the handler stores them;
/// `declared_xml`: every body declared as XML, so every one is quarantined (what an envelope
/// the parser no longer reads does).
async fn one_second(provider: Arc<dyn Provider>, declared_xml: bool) -> Vec<Record> {
    let kit = Kit::of(provider.as_ref());
    let clock = ManualClock::now();
    let memory = adapter_memory::Memory::new(5, clock);
    let tenants = kit.scaled_tenants(TENANTS, Lookup::Normal).unwrap();
    let senders: Vec<_> = tenants.iter().cloned().collect();
    let ingest = Ingest::new(
        provider,
        tenants,
        memory.ports.clone(),
        IngestSettings::default(),
    );
    for seq in 0..WEBHOOKS_PER_SECOND {
        let tenant = &senders[seq as usize % TENANTS];
        let mut request = kit.unique(seq, tenant, tenant.webhook_secrets[0].expose());
        if declared_xml {
            let xml = HeaderValue::from_static("application/xml");
            request.headers_mut().insert(CONTENT_TYPE, xml);
        }
        let status = ingest.handle(request).await.status();
        assert!(status.is_success(), "{} #{seq}: {status}", kit.name());
    }
    memory.store.records()
}

/// The items a record is written as, one after the other: stored, then claimed and finished
/// `FAILED` (the outcome that writes most: into `by_attention`) as the claim's and the
/// finish's updates leave it — within the same second, as when processing keeps up. A
/// quarantined record is only stored.
fn life(record: &Record) -> Vec<Item> {
    let mut items = vec![item_image(record)];
    if record.status == Status::Received {
        let claimed = Record {
            status: Status::Processing,
            attempts: 1,
            ..record.clone()
        };
        let failed = Record {
            status: Status::Failed,
            last_error: Some("API answered 404".into()),
            ..claimed.clone()
        };
        items.extend([item_image(&claimed), item_image(&failed)]);
    }
    items
}

/// The most writes one partition of each of `partitioned` takes from the lives of `records`
/// (the table's or index's name, the partition, its writes).
fn busiest(partitioned: &[Partitioned], records: &[Record]) -> Vec<(String, String, usize)> {
    let lives: Vec<Vec<Item>> = records.iter().map(life).collect();
    partitioned
        .iter()
        .map(|index| {
            let mut writes: HashMap<String, usize> = HashMap::new();
            for items in &lives {
                let befores = std::iter::once(None).chain(items.iter().map(Some));
                for (before, item) in befores.zip(items) {
                    for partition in index.written(before, item) {
                        *writes.entry(partition).or_default() += 1;
                    }
                }
            }
            let (partition, most) = writes.into_iter().max_by_key(|(_, n)| *n).unzip();
            (
                index.name.clone(),
                partition.unwrap_or_default(),
                most.unwrap_or(0),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_at_ten_thousand_webhooks_a_second_writes_no_partition_over_a_thousand_times() {
    let partitioned = Arc::new(table_and_indexes());
    let mut seconds = Vec::new();
    // Shards do not depend on the provider: one provider's burst is every provider's.
    for provider in webhook_core::providers::all().into_iter().take(1) {
        for (declared_xml, status) in [(false, Status::Received), (true, Status::Quarantined)] {
            let (provider, partitioned) = (provider.clone(), partitioned.clone());
            seconds.push(tokio::spawn(async move {
                let name = provider.name();
                let records = one_second(provider, declared_xml).await;
                assert_eq!(records.len(), WEBHOOKS_PER_SECOND as usize, "{name}");
                assert!(records.iter().all(|r| r.status == status), "{name}");
                let label = format!("{name} {status:?}");
                (label, busiest(&partitioned, &records))
            }));
        }
    }
    let mut over = Vec::new();
    let mut written = HashMap::<String, usize>::new();
    for second in seconds {
        let (label, busiest) = second.await.unwrap();
        for (index, partition, most) in busiest {
            if most > PARTITION_WRITES_PER_SECOND {
                over.push(format!("{label}: {index} {partition:?}: {most}"));
            }
            *written.entry(index).or_default() += most;
        }
    }
    for index in partitioned.iter() {
        assert!(
            written[&index.name] > 0,
            "nothing written to {}",
            index.name
        );
    }
    assert!(
        over.is_empty(),
        "partitions written over {PARTITION_WRITES_PER_SECOND} times in a second:\n{}",
        over.join("\n")
    );
}

/// The count above takes the items the claim and the finish leave (and a replay's, a
/// release's) from `item_image`; on DynamoDB each of those writes leaves the item in the
/// partitions of the table and indexes where `item_image` of the record as it then is would
/// be. Else a finish writing another `attention` than the put's, say, would escape the count.
#[tokio::test]
async fn every_write_on_dynamodb_leaves_the_index_keys_of_the_item_image() {
    let partitioned = table_and_indexes();
    let backend = tests::Backend::new().await;
    let store = backend.store();
    let now = webhook_core::clock::system().now_ms();
    let leave_image_keys = |step: &str| {
        let (backend, store, partitioned) = (&backend, &store, &partitioned);
        let step = step.to_string();
        async move {
            let items = backend
                .dynamodb
                .scan()
                .table_name(&backend.table)
                .send()
                .await
                .unwrap()
                .items
                .unwrap_or_default();
            assert!(!items.is_empty());
            for item in items {
                let record = store.get(&text(&item["pk"])).await.unwrap().unwrap();
                let image = item_image(&record);
                for index in partitioned {
                    let (stored, imaged) = (index.partition(&item), index.partition(&image));
                    assert_eq!(stored, imaged, "{step}: {} of {}", index.name, record.key);
                }
            }
        }
    };
    for provider in webhook_core::providers::all() {
        let kit = Kit::of(provider.as_ref());
        let tenants = kit.scaled_tenants(2, Lookup::Normal).unwrap();
        let senders: Vec<_> = tenants.iter().cloned().collect();
        let ingest = backend.ingest_with(kit.name(), tenants, IngestSettings::default());
        for seq in 0..8 {
            let tenant = &senders[seq as usize % senders.len()];
            let mut request = kit.unique(seq, tenant, tenant.webhook_secrets[0].expose());
            if seq % 4 == 3 {
                let xml = HeaderValue::from_static("application/xml");
                request.headers_mut().insert(CONTENT_TYPE, xml);
            }
            assert!(ingest.handle(request).await.status().is_success());
        }
    }
    leave_image_keys("stored").await;
    let listed = |status: Status| {
        let store = &store;
        async move {
            let filter = EventFilter {
                providers: webhook_core::providers::all()
                    .iter()
                    .map(|p| p.name().into())
                    .collect(),
                tenant: None,
                status: Some(status),
                since_ms: now - 60_000,
                until_ms: now + 60_000,
                limit: 1_000,
                live_at_ms: now,
                unfinished_only: false,
            };
            store.list(&filter).await.unwrap()
        }
    };
    let providers = webhook_core::providers::all().len();
    let stored = listed(Status::Received).await;
    assert_eq!(stored.len(), providers * 6);
    for record in &stored {
        let claim = store.claim(&record.key, now, now + 60_000).await.unwrap();
        assert!(matches!(claim, Claim::Claimed(_)), "{claim:?}");
    }
    leave_image_keys("claimed").await;
    for record in &stored {
        let failed = Outcome::Failed {
            reason: "API answered 404".into(),
        };
        assert!(store
            .finish(&record.key, now + 60_000, &failed, now)
            .await
            .unwrap());
    }
    leave_image_keys("failed").await;
    for record in &stored {
        assert!(store.reopen(&record.key, now, now + 60_000).await.unwrap());
    }
    let quarantined = listed(Status::Quarantined).await;
    assert_eq!(quarantined.len(), providers * 2);
    for record in quarantined {
        assert!(store
            .resolve_quarantine(&record.key, "released", now)
            .await
            .unwrap());
    }
    leave_image_keys("replayed and released").await;
}
