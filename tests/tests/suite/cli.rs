//! The admin command line (`webhooks`, crate `functions/webhooks`) end to end, each case on
//! DynamoDB + SQS (the local endpoint; `--table/--queue/--dlq`, and `--stack` through a
//! CloudFormation stack made on it) and on the dev server's SQLite database (`--local`), with
//! deliveries written through the real ingest path and the real processor run afterwards. The
//! cases check effects in the store and the queues, not only what is printed.

use std::path::PathBuf;
use std::time::Duration;

use adapter_sqlite::{Database, SqliteQueue};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{json, Value};
use tests::fake_api::{Behavior, FakeApi};
use tests::{demo_tenants, demo_tenants_json, event, response_json, unique_name, Backend};
use webhook_core::model::{Claim, Outcome, Status};
use webhook_core::ports::{Ports, QueueConsumer};
use webhook_core::process::{Processor, ProcessorSettings};
use webhook_core::tenants::TenantSource;
use webhook_core::{Ingest, IngestSettings};
use webhooks::Output;

const TIMEOUT: Duration = Duration::from_secs(2);
/// What Magicline's customer events (about customer 7893459) fetch.
const CUSTOMER: &str = "/magicline/v1/customers/7893459";
/// Receives before a message is dead-lettered, in both places.
const MAX_RECEIVES: u32 = 2;

fn settings() -> ProcessorSettings {
    ProcessorSettings {
        max_receives: MAX_RECEIVES,
        // Retries come back when the queue's visibility timeout ends.
        retry_backoff: Duration::ZERO,
        ..ProcessorSettings::default()
    }
}

/// Where the command line works: a table and queues on the local endpoint, or a database file.
enum Place {
    Aws(Backend),
    Sqlite {
        path: PathBuf,
        ports: Ports,
        queue: SqliteQueue,
        _database: Database,
    },
}

impl Place {
    async fn aws() -> Place {
        Place::Aws(Backend::with_dead_letter_queue(MAX_RECEIVES).await)
    }

    fn sqlite() -> Place {
        let path = std::env::temp_dir().join(format!("{}.db", unique_name("cli")));
        let database = Database::open(&path).expect("open database");
        let (ports, queue) =
            adapter_sqlite::ports(&database, MAX_RECEIVES, webhook_core::clock::system());
        Place::Sqlite {
            path,
            ports,
            queue,
            _database: database,
        }
    }

    async fn both() -> [Place; 2] {
        [Place::aws().await, Place::sqlite()]
    }

    fn name(&self) -> &'static str {
        match self {
            Place::Aws(_) => "dynamodb+sqs",
            Place::Sqlite { .. } => "sqlite",
        }
    }

    /// The flags naming this place.
    fn flags(&self) -> Vec<String> {
        match self {
            Place::Aws(backend) => vec![
                "--table".into(),
                backend.table.clone(),
                "--queue".into(),
                backend.queue_url.clone(),
                "--dlq".into(),
                backend.dead_letter_url.clone().unwrap(),
            ],
            Place::Sqlite { path, .. } => vec!["--local".into(), path.display().to_string()],
        }
    }

    fn ports(&self) -> Ports {
        match self {
            Place::Aws(backend) => backend.ports(),
            Place::Sqlite { ports, .. } => ports.clone(),
        }
    }

    /// Runs `webhooks <flags> <args>`.
    async fn cli(&self, args: &[&str]) -> Output {
        let mut all: Vec<String> = vec!["webhooks".into()];
        all.extend(self.flags());
        all.extend(args.iter().map(|a| a.to_string()));
        webhooks::run(all).await
    }

    /// Runs it with `--json`, expecting success; the JSON document it printed.
    async fn json(&self, args: &[&str]) -> Value {
        let mut with_json = args.to_vec();
        with_json.push("--json");
        let output = self.cli(&with_json).await;
        assert_eq!(output.code, 0, "{}: {args:?}: {output:?}", self.name());
        serde_json::from_str(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "{}: {args:?} printed no JSON ({e}): {output:?}",
                self.name()
            )
        })
    }

    /// Sends an event file through the real webhook handler; returns the key it answered.
    async fn deliver(&self, file: &str) -> String {
        let provider = file.split('/').next().unwrap();
        let ingest = Ingest::new(
            webhook_core::providers::by_name(provider).unwrap(),
            demo_tenants(provider),
            self.ports(),
            IngestSettings::default(),
        );
        let response = ingest.handle(event(file)).await;
        assert!(response.status().is_success(), "{file}: {response:?}");
        response_json(&response)["id"]
            .as_str()
            .expect("the answer names the key")
            .to_string()
    }

    /// The real processor on this place, every provider's demo tenants pointed at `api`.
    fn processor(&self, api: &FakeApi) -> Processor {
        tests::demo_processor(self.ports(), api, settings(), TIMEOUT, |_, tenants| {
            TenantSource::fixed(tenants)
        })
    }

    /// Runs the processor until the queue stays empty; returns how many messages it received.
    async fn pump_until_empty(&self, processor: &Processor) -> usize {
        match self {
            Place::Aws(backend) => {
                // Until no message is left at all: a failed one comes back after the pump's
                // 1 s visibility timeout, and SQS moves one to the dead-letter queue on the
                // receive after its last.
                let mut total = 0;
                let started = std::time::Instant::now();
                while backend.messages_waiting().await > 0 {
                    assert!(
                        started.elapsed() < Duration::from_secs(30),
                        "the queue did not empty"
                    );
                    let (received, _) = backend.pump(processor).await;
                    total += received;
                    if received == 0 {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                total
            }
            Place::Sqlite { queue, .. } => {
                let mut total = 0;
                loop {
                    let batch = queue.receive(10, Duration::ZERO).await.unwrap();
                    if batch.is_empty() {
                        return total;
                    }
                    total += batch.len();
                    processor.process_received(queue, batch).await.unwrap();
                }
            }
        }
    }

    async fn status(&self, key: &str) -> Status {
        self.ports().store.get(key).await.unwrap().unwrap().status
    }

    /// Messages waiting in the dead-letter queue (table).
    async fn dead_letters(&self) -> usize {
        match self {
            Place::Aws(backend) => {
                visible(backend, backend.dead_letter_url.as_ref().unwrap()).await
            }
            Place::Sqlite { path, .. } => Database::open(path)
                .unwrap()
                .dead_letters()
                .await
                .unwrap()
                .len(),
        }
    }
}

impl Drop for Place {
    /// Removes the database file and its WAL.
    fn drop(&mut self) {
        if let Place::Sqlite { path, .. } = self {
            for suffix in ["", "-wal", "-shm"] {
                let mut file = path.as_os_str().to_owned();
                file.push(suffix);
                let _ = std::fs::remove_file(file);
            }
        }
    }
}

/// Messages visible in a queue, without receiving them.
async fn visible(backend: &Backend, url: &str) -> usize {
    backend
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::ApproximateNumberOfMessages]
        .parse()
        .unwrap()
}

fn keys(listing: &Value) -> Vec<String> {
    listing["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn events_list_finds_what_was_delivered_and_show_prints_its_body() {
    for place in Place::both().await {
        let name = place.name();
        let magicline = place.deliver("magicline/customer-created.json").await;
        let egym = place.deliver("egym/gym-checkin.json").await;
        let flybuy = place.deliver("flybuy/order-created.json").await;
        let api = FakeApi::start().await;
        api.set("/flybuy/", Behavior::Status(404));
        place.pump_until_empty(&place.processor(&api)).await;

        let all = place.json(&["events", "list"]).await;
        assert_eq!(all["count"], 3, "{name}: {all}");
        let mut listed = keys(&all);
        listed.sort();
        let mut delivered = vec![magicline.clone(), egym.clone(), flybuy.clone()];
        delivered.sort();
        assert_eq!(listed, delivered, "{name}");

        assert_eq!(
            keys(&place.json(&["events", "list", "--provider", "egym"]).await),
            [egym.as_str()],
            "{name}"
        );
        assert_eq!(
            keys(
                &place
                    .json(&["events", "list", "--tenant", "studio-1001"])
                    .await
            ),
            [magicline.as_str()],
            "{name}"
        );
        assert_eq!(
            place
                .json(&["events", "list", "--status", "processed", "--since", "1h"])
                .await["count"],
            2,
            "{name}"
        );
        assert_eq!(
            keys(&place.json(&["events", "list", "--status", "FAILED"]).await),
            [flybuy.as_str()],
            "{name}"
        );
        assert_eq!(
            place
                .json(&["events", "list", "--status", "QUARANTINED"])
                .await["count"],
            0,
            "{name}"
        );
        let future = "2999-01-01T00:00:00Z";
        assert_eq!(
            place.json(&["events", "list", "--since", future]).await["count"],
            0,
            "{name}: nothing was received after {future}"
        );
        assert_eq!(
            place
                .json(&[
                    "events",
                    "list",
                    "--since",
                    "2000-01-01T00:00:00Z",
                    "--limit",
                    "2"
                ])
                .await["count"],
            2,
            "{name}"
        );

        // People get an aligned table with every key.
        let table = place.cli(&["events", "list"]).await;
        assert_eq!(table.code, 0, "{name}: {table:?}");
        assert!(
            table.stdout.starts_with("RECEIVED (UTC)"),
            "{name}: {}",
            table.stdout
        );
        for key in &delivered {
            assert!(
                table.stdout.contains(key.as_str()),
                "{name}: {}",
                table.stdout
            );
        }

        let shown = place.cli(&["events", "show", &magicline]).await;
        assert_eq!(shown.code, 0, "{name}: {shown:?}");
        assert!(
            shown
                .stdout
                .contains("\"uuid\": \"095be615-a8ad-4c33-8e9c-c7612fbf6c9f\""),
            "{name}: the body, pretty-printed: {}",
            shown.stdout
        );
        assert!(
            shown.stdout.contains("status:     PROCESSED"),
            "{name}: {}",
            shown.stdout
        );
        let shown = place.json(&["events", "show", &magicline]).await;
        assert_eq!(
            shown["body"]["uuid"], "095be615-a8ad-4c33-8e9c-c7612fbf6c9f",
            "{name}"
        );
        assert_eq!(shown["subject"], "magicline#studio-1001#customer:7893459");

        let unknown = place.cli(&["events", "show", "magicline#nope#1"]).await;
        assert_eq!(unknown.code, 1, "{name}: {unknown:?}");
        assert!(
            unknown.stderr.contains("no event with the key")
                && unknown.stderr.contains("list events"),
            "{name}: says what to do: {}",
            unknown.stderr
        );
        let unknown_provider = place.cli(&["events", "list", "--provider", "acme"]).await;
        assert_eq!(unknown_provider.code, 1, "{name}");
        assert!(
            unknown_provider.stderr.contains("known: magicline"),
            "{name}"
        );
        let bad_since = place.cli(&["events", "list", "--since", "yesterday"]).await;
        assert_eq!(bad_since.code, 2, "{name}: a usage error: {bad_since:?}");
        assert!(bad_since.stderr.contains("RFC 3339"), "{name}");
    }
}

#[tokio::test]
async fn replay_of_a_failed_event_processes_it_once_and_never_queues_it_twice() {
    for place in Place::both().await {
        let name = place.name();
        let api = FakeApi::start().await;
        api.set("/magicline/", Behavior::Status(404));
        let processor = place.processor(&api);
        let key = place.deliver("magicline/customer-created.json").await;
        place.pump_until_empty(&processor).await;
        assert_eq!(place.status(&key).await, Status::Failed, "{name}");
        assert_eq!(api.calls(CUSTOMER), 1, "{name}");

        api.clear();
        let replayed = place.json(&["replay", "--status", "FAILED"]).await;
        assert_eq!(replayed["queued"], json!([key]), "{name}: {replayed}");
        // On its way again: RECEIVED under the replay's lease where the queue and the store
        // share no transaction (DynamoDB + SQS), QUEUED where they do (SQLite).
        assert!(
            matches!(place.status(&key).await, Status::Received | Status::Queued),
            "{name}"
        );
        // Nothing is FAILED any more: a second bulk run finds nothing to queue.
        let again = place.json(&["replay", "--status", "FAILED"]).await;
        assert_eq!(again["queued"], json!([]), "{name}: {again}");

        // While a processor holds it, a replay is refused and queues nothing.
        let store = place.ports().store;
        let now = webhook_core::clock::system().now_ms();
        let Claim::Claimed(_) = store.claim(&key, now, now + 60_000).await.unwrap() else {
            panic!("{name}: claim");
        };
        let in_flight = place.cli(&["replay", &key]).await;
        assert_eq!(in_flight.code, 1, "{name}: {in_flight:?}");
        assert!(
            in_flight.stdout.contains("skipped:             1")
                && in_flight
                    .stdout
                    .contains("PROCESSING and being worked on right now"),
            "{name}: {}",
            in_flight.stdout
        );
        let retry = Outcome::Retry {
            reason: "handed back by the test".into(),
        };
        assert!(store.finish(&key, now + 60_000, &retry, now).await.unwrap());

        assert_eq!(
            place.pump_until_empty(&processor).await,
            1,
            "{name}: one message, the replay's"
        );
        let record = place.ports().store.get(&key).await.unwrap().unwrap();
        assert_eq!(record.status, Status::Processed, "{name}");
        assert!(record.detail.is_some(), "{name}");
        assert_eq!(
            api.calls(CUSTOMER),
            2,
            "{name}: processed once after the replay"
        );

        let unknown = place.cli(&["replay", "magicline#nope#1"]).await;
        assert_eq!(unknown.code, 1, "{name}");
        assert!(
            unknown.stdout.contains("no such event"),
            "{name}: {unknown:?}"
        );
        let neither = place.cli(&["replay"]).await;
        assert_eq!(neither.code, 2, "{name}: keys or --status: {neither:?}");
    }
}

#[tokio::test]
async fn replay_of_a_processed_event_processes_it_once_more() {
    for place in Place::both().await {
        let name = place.name();
        let api = FakeApi::start().await;
        let processor = place.processor(&api);
        let key = place.deliver("magicline/customer-created.json").await;
        place.pump_until_empty(&processor).await;
        let store = place.ports().store;
        let before = store.get(&key).await.unwrap().unwrap();
        assert_eq!(
            (before.status, before.attempts),
            (Status::Processed, 1),
            "{name}"
        );
        assert_eq!(api.calls(CUSTOMER), 1, "{name}");

        let replayed = place.json(&["replay", &key]).await;
        assert_eq!(replayed["queued"], json!([key]), "{name}: {replayed}");
        assert_eq!(
            place.pump_until_empty(&processor).await,
            1,
            "{name}: one message, the replay's"
        );
        let after = store.get(&key).await.unwrap().unwrap();
        assert_eq!(
            (after.status, after.attempts),
            (Status::Processed, 2),
            "{name}"
        );
        assert!(after.detail.unwrap().contains(CUSTOMER), "{name}");
        assert!(
            after.processed_at_ms > before.processed_at_ms,
            "{name}: processed again"
        );
        assert_eq!(api.calls(CUSTOMER), 2, "{name}: one more call");
        assert_eq!(api.total_calls(), 2, "{name}");
    }
}

#[tokio::test]
async fn dlq_redrive_puts_dead_lettered_messages_back_to_be_processed() {
    for place in Place::both().await {
        let name = place.name();
        let api = FakeApi::start().await;
        api.set("/egym/", Behavior::Status(503));
        let processor = place.processor(&api);
        let key = place.deliver("egym/gym-checkin.json").await;
        place.pump_until_empty(&processor).await;
        // SQS moves a message on the receive after its last; the dev server's queue too.
        place.pump_until_empty(&processor).await;
        assert_eq!(place.dead_letters().await, 1, "{name}");
        assert_eq!(place.status(&key).await, Status::Queued, "{name}");

        let listed = place.json(&["dlq", "list"]).await;
        assert_eq!(listed["count"], 1, "{name}: {listed}");
        assert_eq!(listed["messages"][0]["key"], key.as_str(), "{name}");
        assert_eq!(listed["messages"][0]["status"], "QUEUED", "{name}");
        assert!(
            listed["messages"][0]["last_error"]
                .as_str()
                .unwrap()
                .contains("503"),
            "{name}: {listed}"
        );
        let table = place.cli(&["dlq", "list"]).await;
        assert!(table.stdout.contains(&key), "{name}: {table:?}");
        let redrive = format!("`webhooks {} dlq redrive`", place.flags().join(" "));
        assert!(
            table.stdout.contains(&redrive),
            "{name}: the hint reaches the same queue: {table:?}"
        );
        // Listing takes nothing away.
        assert_eq!(place.dead_letters().await, 1, "{name}");

        api.clear();
        let moved = place.json(&["dlq", "redrive"]).await;
        assert_eq!(moved["moved"], 1, "{name}: {moved}");
        if let Place::Aws(backend) = &place {
            // moto has no StartMessageMoveTask: the copy path moved it.
            assert_eq!(moved["method"], "copy", "{name}");
            assert_eq!(visible(backend, &backend.queue_url).await, 1, "{name}");
        }
        assert_eq!(place.dead_letters().await, 0, "{name}");
        assert_eq!(place.pump_until_empty(&processor).await, 1, "{name}");
        assert_eq!(place.status(&key).await, Status::Processed, "{name}");
        assert_eq!(place.json(&["dlq", "list"]).await["count"], 0, "{name}");
    }
}

/// Waitwhile's tenants with the object id read from where the quarantined test body has one.
fn waitwhile_tenants_reading_state() -> Value {
    let mut document: Value = serde_json::from_str(&demo_tenants_json("waitwhile")).unwrap();
    for tenant in document["tenants"].as_array_mut().unwrap() {
        tenant["pointers"] = json!({ "object_id": "/data/state" });
    }
    document
}

async fn released_keys(place: &Place) -> Vec<String> {
    keys(
        &place
            .json(&["events", "list", "--provider", "waitwhile"])
            .await,
    )
    .into_iter()
    .filter(|key| !key.contains("#quarantine#"))
    .collect()
}

#[tokio::test]
async fn quarantine_release_stores_the_delivery_under_its_real_key_once() {
    for place in Place::both().await {
        let name = place.name();
        let quarantined = place.deliver("waitwhile/bad-missing-object-id.json").await;
        assert!(quarantined.contains("#quarantine#"), "{name}");
        let listed = place.json(&["quarantine", "list"]).await;
        assert_eq!(keys(&listed), [quarantined.as_str()], "{name}");
        assert!(listed["events"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("/data/id"));
        let shown = place.cli(&["quarantine", "show", &quarantined]).await;
        assert!(shown.stdout.contains("\"WAITING\""), "{name}: {shown:?}");

        // The tenants as they are now: a replay is refused, the parser still cannot read it.
        let replay = place.cli(&["replay", &quarantined]).await;
        assert!(replay.stdout.contains("release it instead"), "{name}");

        let tenants = waitwhile_tenants_reading_state();
        let dir = std::env::temp_dir().join(unique_name("cli-tenants"));
        std::fs::create_dir_all(&dir).unwrap();
        let flag = match &place {
            Place::Aws(_) => {
                let file = dir.join("waitwhile.json");
                std::fs::write(&file, tenants.to_string()).unwrap();
                vec!["--tenants-file".to_string(), file.display().to_string()]
            }
            Place::Sqlite { .. } => {
                let file = dir.join("devserver.toml");
                let mut toml = String::new();
                for tenant in tenants["tenants"].as_array().unwrap() {
                    toml.push_str(&format!(
                        "[[waitwhile.tenants]]\nid = {}\nwebhook_secrets = {}\nurl = {}\npointers = {{ object_id = \"/data/state\" }}\n\n",
                        tenant["id"], tenant["webhook_secrets"], tenant["url"]
                    ));
                }
                std::fs::write(&file, toml).unwrap();
                vec!["--config".to_string(), file.display().to_string()]
            }
        };
        let mut args: Vec<&str> = flag.iter().map(String::as_str).collect();
        args.extend(["quarantine", "release", &quarantined]);
        let released = place.cli(&args).await;
        assert_eq!(released.code, 0, "{name}: {released:?}");
        let real = released_keys(&place).await;
        assert_eq!(real.len(), 1, "{name}: {real:?}");
        assert!(released.stdout.contains(&real[0]), "{name}: {released:?}");
        assert_eq!(place.status(&real[0]).await, Status::Queued, "{name}");
        assert_eq!(
            place.status(&quarantined).await,
            Status::Processed,
            "{name}"
        );

        let twice = place.cli(&args).await;
        assert_eq!(twice.code, 1, "{name}: {twice:?}");
        assert!(
            twice.stderr.contains("is not quarantined"),
            "{name}: {twice:?}"
        );
        assert_eq!(
            released_keys(&place).await,
            real,
            "{name}: no second record"
        );
        assert!(place.json(&["quarantine", "list"]).await["events"]
            .as_array()
            .unwrap()
            .is_empty());
        std::fs::remove_dir_all(&dir).ok();
    }
}

#[tokio::test]
async fn erase_leaves_the_subjects_records_without_body_and_detail() {
    for place in Place::both().await {
        let name = place.name();
        let api = FakeApi::start().await;
        let processor = place.processor(&api);
        let key = place.deliver("magicline/customer-created.json").await;
        let other = place.deliver("egym/gym-checkin.json").await;
        place.pump_until_empty(&processor).await;
        assert!(place
            .ports()
            .store
            .get(&key)
            .await
            .unwrap()
            .unwrap()
            .detail
            .is_some());

        let bad = place
            .cli(&[
                "erase",
                "--provider",
                "magicline",
                "--tenant",
                "studio-1001",
                "--subject",
                "7893459",
            ])
            .await;
        assert_eq!(bad.code, 2, "{name}: <kind>:<id>: {bad:?}");
        let erase = [
            "erase",
            "--provider",
            "magicline",
            "--tenant",
            "studio-1001",
            "--subject",
            "customer:7893459",
        ];
        let preview = place.json(&[&erase[..], &["--dry-run"]].concat()).await;
        assert_eq!(
            preview["records"],
            serde_json::json!([key]),
            "{name}: {preview}"
        );
        let text = place.cli(&[&erase[..], &["--dry-run"]].concat()).await;
        assert!(
            text.stdout.contains("would empty 1 record(s)") && text.stdout.contains(&key),
            "{name}: {text:?}"
        );
        let subject = "magicline#studio-1001#customer:7893459";
        assert_eq!(
            place.ports().store.erased_at(subject).await.unwrap(),
            None,
            "{name}: a dry run leaves no tombstone"
        );
        let kept = place.json(&["events", "show", &key]).await;
        assert!(kept["body"].is_object(), "{name}: a dry run erases nothing");
        let erased = place.json(&erase).await;
        assert_eq!(erased["records"], 1, "{name}: {erased}");
        let shown = place.json(&["events", "show", &key]).await;
        assert_eq!(shown["body"], Value::Null, "{name}: {shown}");
        assert_eq!(shown["detail"], Value::Null, "{name}: {shown}");
        assert!(shown["erased_at"].is_string(), "{name}");
        let untouched = place.json(&["events", "show", &other]).await;
        assert!(
            untouched["body"].is_object(),
            "{name}: another subject keeps its body"
        );
    }
}

#[tokio::test]
async fn erase_leaves_a_tombstone_so_a_later_delivery_keeps_no_body_and_calls_nothing() {
    for place in Place::both().await {
        let name = place.name();
        let api = FakeApi::start().await;
        let processor = place.processor(&api);
        place.deliver("magicline/customer-created.json").await;
        place.pump_until_empty(&processor).await;
        assert_eq!(api.calls(CUSTOMER), 1, "{name}");
        let erased = place
            .json(&[
                "erase",
                "--provider",
                "magicline",
                "--tenant",
                "studio-1001",
                "--subject",
                "customer:7893459",
            ])
            .await;
        assert_eq!(erased["records"], 1, "{name}: {erased}");
        let store = place.ports().store;
        assert!(
            store
                .erased_at("magicline#studio-1001#customer:7893459")
                .await
                .unwrap()
                .is_some(),
            "{name}: a tombstone"
        );

        // The same customer checks in afterwards.
        let later = place.deliver("magicline/customer-checkin.json").await;
        assert_eq!(place.pump_until_empty(&processor).await, 1, "{name}");
        let record = store.get(&later).await.unwrap().unwrap();
        assert_eq!(
            (record.status, record.body.as_str()),
            (Status::Processed, ""),
            "{name}: no body kept"
        );
        assert!(record.erased_at_ms.is_some(), "{name}");
        assert!(
            !record.detail.unwrap_or_default().contains(CUSTOMER),
            "{name}: no detail fetched"
        );
        assert_eq!(api.total_calls(), 1, "{name}: no API call");
    }
}

#[tokio::test]
async fn stats_count_by_provider_and_status() {
    for place in Place::both().await {
        let name = place.name();
        place.deliver("magicline/customer-created.json").await;
        place.deliver("magicline/customer-checkin.json").await;
        place.deliver("egym/gym-checkin.json").await;
        place.deliver("waitwhile/bad-missing-object-id.json").await;
        let api = FakeApi::start().await;
        api.set("/egym/", Behavior::Status(404));
        place.pump_until_empty(&place.processor(&api)).await;
        let stats = place.json(&["stats", "--since", "1d"]).await;
        let mut counts: Vec<(String, String, u64)> = stats["counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["provider"].as_str().unwrap().to_string(),
                    c["status"].as_str().unwrap().to_string(),
                    c["count"].as_u64().unwrap(),
                )
            })
            .collect();
        counts.sort();
        assert_eq!(
            counts,
            [
                ("egym".into(), "FAILED".into(), 1),
                ("magicline".into(), "PROCESSED".into(), 2),
                ("waitwhile".into(), "QUARANTINED".into(), 1),
            ],
            "{name}"
        );
        let table = place.cli(&["stats"]).await;
        assert_eq!(table.code, 0, "{name}");
        let all = table.stdout.lines().last().unwrap().to_string();
        assert!(
            all.starts_with("all") && all.trim_end().ends_with('4'),
            "{name}: {}",
            table.stdout
        );
    }
}

#[tokio::test]
async fn where_the_events_are_is_checked_with_advice() {
    let missing =
        webhooks::run(["webhooks", "--local", "/nonexistent/devserver.db", "stats"]).await;
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("no such database file"),
        "{missing:?}"
    );
    assert!(
        !std::path::Path::new("/nonexistent/devserver.db").exists(),
        "not created"
    );
    let nowhere = webhooks::run(["webhooks", "stats"]).await;
    assert_eq!(nowhere.code, 2, "{nowhere:?}");
    assert!(nowhere.stderr.contains("--stack NAME"), "{nowhere:?}");
    let both = webhooks::run(["webhooks", "--stack", "s", "--local", "x.db", "stats"]).await;
    assert_eq!(both.code, 2, "{both:?}");
    let help = webhooks::run(["webhooks", "erase", "--help"]).await;
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("customer:42"), "{help:?}");
}

/// A CloudFormation stack on the local endpoint with the outputs template.yaml declares, naming
/// `backend`'s table and queues, and Waitwhile's tenants secret.
async fn stack_for(backend: &Backend, tenants: &Value) -> String {
    let aws = tests::local_aws().await;
    let secret = aws_sdk_secretsmanager::Client::new(&aws)
        .create_secret()
        .name(unique_name("waitwhile-tenants"))
        .secret_string(tenants.to_string())
        .send()
        .await
        .expect("create secret")
        .arn
        .unwrap();
    let template = json!({
        "Resources": { "Placeholder": { "Type": "AWS::SQS::Queue" } },
        "Outputs": {
            "EventsTableName": { "Value": backend.table },
            "WorkQueueUrl": { "Value": backend.queue_url },
            "DeadLetterQueueUrl": { "Value": backend.dead_letter_url.clone().unwrap() },
            "WaitwhileTenantsSecretArn": { "Value": secret },
            "EventBusName": { "Value": "stack-events" },
        },
    });
    let name = unique_name("stack");
    aws_sdk_cloudformation::Client::new(&aws)
        .create_stack()
        .stack_name(&name)
        .template_body(template.to_string())
        .send()
        .await
        .expect("create stack");
    name
}

#[tokio::test]
async fn the_stack_names_the_table_queues_and_tenants_secret() {
    let backend = Backend::with_dead_letter_queue(MAX_RECEIVES).await;
    let place = Place::Aws(backend);
    let Place::Aws(backend) = &place else {
        unreachable!()
    };
    let stack = stack_for(backend, &waitwhile_tenants_reading_state()).await;
    let magicline = place.deliver("magicline/customer-created.json").await;
    let quarantined = place.deliver("waitwhile/bad-missing-object-id.json").await;
    let cli = |args: &[&str]| {
        let mut all = vec!["webhooks", "--stack", &stack];
        all.extend_from_slice(args);
        let all: Vec<String> = all.into_iter().map(str::to_string).collect();
        webhooks::run(all)
    };

    let listed = cli(&["events", "list", "--provider", "magicline", "--json"]).await;
    assert_eq!(listed.code, 0, "{listed:?}");
    let listed: Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(keys(&listed), [magicline]);

    // Release reads Waitwhile's tenants from the secret the stack names.
    let released = cli(&["quarantine", "release", &quarantined]).await;
    assert_eq!(released.code, 0, "{released:?}");
    assert_eq!(released_keys(&place).await.len(), 1);

    let env = cli(&["sam-env"]).await;
    assert_eq!(env.code, 0, "{env:?}");
    let env: Value = serde_json::from_str(&env.stdout).unwrap();
    for provider in webhook_core::providers::all() {
        let function = &env[tests::function_id(provider.name())];
        assert_eq!(function["TABLE_NAME"], backend.table.as_str(), "{env}");
        assert_eq!(function["QUEUE_URL"], backend.queue_url.as_str(), "{env}");
    }
    assert_eq!(env["ProcessorFunction"]["EVENT_BUS_NAME"], "stack-events");
    for function in ["ProcessorFunction", "SweeperFunction"] {
        assert_eq!(env[function]["TABLE_NAME"], backend.table.as_str(), "{env}");
        assert_eq!(
            env[function]["QUEUE_URL"],
            backend.queue_url.as_str(),
            "{env}"
        );
    }
    let secret = env["WaitwhileWebhookFunction"]["TENANTS_SECRET_ID"]
        .as_str()
        .expect("the stack's secret");
    assert_eq!(
        env["ProcessorFunction"]["WAITWHILE_TENANTS_SECRET_ID"],
        secret
    );
    assert_eq!(
        env.as_object().unwrap().len(),
        webhook_core::providers::all().len() + 2
    );

    let nope = webhooks::run(["webhooks", "--stack", "no-such-stack", "stats"]).await;
    assert_eq!(nope.code, 1, "{nope:?}");
    assert!(
        nope.stderr
            .contains("no stack no-such-stack in us-east-1: check --stack and AWS_REGION"),
        "{nope:?}"
    );
}

#[tokio::test]
async fn pause_and_resume_hold_a_provider_or_tenant_and_stats_say_so() {
    for place in Place::both().await {
        let name = place.name();
        let paused = place
            .json(&["pause", "egym", "--tenant", "gym-berlin-01"])
            .await;
        assert_eq!(paused["scope"], "egym#gym-berlin-01", "{name}");
        place.json(&["pause", "magicline"]).await;
        let stats = place.json(&["stats"]).await;
        let scopes: Vec<&str> = stats["paused"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["scope"].as_str().unwrap())
            .collect();
        assert_eq!(scopes, ["egym#gym-berlin-01", "magicline"], "{name}");
        let text = place.cli(&["stats"]).await;
        assert!(
            text.stdout.contains("paused: magicline since"),
            "{name}: {text:?}"
        );
        place.json(&["resume", "magicline"]).await;
        place
            .json(&["resume", "egym", "--tenant", "gym-berlin-01"])
            .await;
        assert_eq!(
            place.json(&["stats"]).await["paused"],
            Value::Array(vec![]),
            "{name}"
        );
        let hint = place.cli(&["pause", "egym"]).await;
        let resume = format!("`webhooks {} resume egym`", place.flags().join(" "));
        assert!(hint.stdout.contains(&resume), "{name}: {hint:?}");
        place.json(&["resume", "egym"]).await;
        let typo = place.cli(&["pause", "egim"]).await;
        assert_ne!(typo.code, 0, "{name}: an unknown provider");
        assert!(
            typo.stderr.contains("magicline"),
            "{name}: names the known ones: {typo:?}"
        );
    }
}

/// What a sender wrote — a body with terminal escape sequences (quarantined: not JSON), an
/// event type with a C1 control and a right-to-left override (valid JSON, stored) — is printed
/// without a control character but the line break, and `--json` still gives it back exactly.
#[tokio::test]
async fn nothing_a_sender_wrote_reaches_the_terminal_as_a_control_sequence() {
    let place = Place::sqlite();
    let ingest = Ingest::new(
        webhook_core::providers::by_name("magicline").unwrap(),
        demo_tenants("magicline"),
        place.ports(),
        IngestSettings::default(),
    );
    let hostile_type = "CUSTOMER_\u{9b}31mUPDATED\u{202e}";
    let bodies = [
        "{\"entityId\": 1, \u{1b}]0;owned\u{7}\u{1b}[2J\r\t}".to_string(),
        json!({"entityId": 2, "uuid": "esc-2", "payload": [{"timestamp": 1, "type": hostile_type}]})
            .to_string(),
    ];
    let mut keys = Vec::new();
    for body in &bodies {
        let request = tests::post("magicline", &[("x-api-key", "ml-demo-key-1001-new")], body);
        let response = ingest.handle(request).await;
        assert!(response.status().is_success(), "{response:?}");
        keys.push(response_json(&response)["id"].as_str().unwrap().to_string());
    }
    let runs = [
        vec!["events", "list"],
        vec!["events", "show", &keys[0]],
        vec!["events", "show", &keys[1]],
        vec!["quarantine", "list"],
        vec!["quarantine", "show", &keys[0]],
        vec!["replay", &keys[0]],
    ];
    for args in &runs {
        for json in [false, true] {
            let mut args = args.clone();
            if json {
                args.push("--json");
            }
            let output = place.cli(&args).await;
            let printed = format!("{}{}", output.stdout, output.stderr);
            assert!(
                !printed
                    .chars()
                    .any(|c| (c.is_control() && c != '\n') || c == '\u{202e}'),
                "{args:?}: {printed:?}"
            );
            if json && output.code == 0 {
                serde_json::from_str::<Value>(&output.stdout)
                    .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", output.stdout));
            }
        }
    }
    let shown = place.json(&["events", "show", &keys[1]]).await;
    assert_eq!(shown["type"], hostile_type, "the value itself is unchanged");
    let quarantined = place.json(&["events", "show", &keys[0]]).await;
    assert_eq!(quarantined["body"], bodies[0].as_str());
}

/// `events list --stuck` lists what the stuck-events alarm counts: deliveries of a day ago or
/// more that are still not finished — not a recent one, not a finished one.
#[tokio::test]
async fn events_list_stuck_shows_what_is_unfinished_a_day_later() {
    for place in Place::both().await {
        let name = place.name();
        let ports = place.ports();
        let now = webhook_core::clock::system().now_ms();
        let record = |key: &str, received_at_ms: i64| webhook_core::model::Record {
            key: format!("magicline#studio-1001#{key}"),
            provider: "magicline".into(),
            tenant: "studio-1001".into(),
            event_type: "CUSTOMER_UPDATED".into(),
            entity_id: "7".into(),
            body: "{}".into(),
            received_at_ms,
            lease_until_ms: received_at_ms + 60_000,
            expires_at: now / 1000 + 3600,
            ..webhook_core::model::Record::default()
        };
        let none = place.cli(&["events", "list", "--stuck"]).await;
        assert!(none.stdout.contains("nothing is stuck"), "{name}: {none:?}");
        let day = 86_400_000;
        let stuck = record("stuck", now - 2 * day);
        let recent = record("recent", now - 1000);
        let finished = record("finished", now - 2 * day);
        for record in [&stuck, &recent, &finished] {
            ports.store.put_new(record).await.unwrap();
            ports.store.mark_queued(&record.key).await.unwrap();
        }
        ports
            .store
            .claim(&finished.key, now, now + 1000)
            .await
            .unwrap();
        let done = Outcome::Processed { detail: None };
        assert!(ports
            .store
            .finish(&finished.key, now + 1000, &done, now)
            .await
            .unwrap());
        let listed = place.json(&["events", "list", "--stuck"]).await;
        assert_eq!(keys(&listed), [stuck.key.as_str()], "{name}: {listed}");
        assert_eq!(listed["filter"]["stuck"], true);
        let conflicting = place
            .cli(&["events", "list", "--stuck", "--status", "FAILED"])
            .await;
        assert_eq!(conflicting.code, 2, "{name}");
    }
}

/// An erasure that would reach nobody — a misspelt kind, no id, another provider's kind, a
/// tenant that does not exist — is refused with what is valid, erases nothing and leaves no
/// tombstone, so the operator does not believe a person erased whose data is still there.
#[tokio::test]
async fn erase_refuses_a_subject_or_tenant_that_names_nobody() {
    for place in Place::both().await {
        let name = place.name();
        let key = place.deliver("magicline/customer-created.json").await;
        let config = tests::root().join("devserver.toml").display().to_string();
        let erase = |tenant: &'static str, subject: &'static str| {
            let config = config.clone();
            let place = &place;
            async move {
                let mut args = vec![
                    "erase",
                    "--provider",
                    "magicline",
                    "--tenant",
                    tenant,
                    "--subject",
                    subject,
                ];
                if matches!(place, Place::Sqlite { .. }) {
                    args.extend(["--config", config.as_str()]);
                }
                place.cli(&args).await
            }
        };
        for (tenant, subject, says) in [
            ("studio-1001", "customr:7893459", "customer, "),
            ("studio-1001", "customer:", "no id"),
            ("studio-1001", "account:123", "never about a \"account\""),
            ("studio-9999", "customer:7893459", "studio-9999"),
        ] {
            let refused = erase(tenant, subject).await;
            assert_eq!(refused.code, 1, "{name}: {subject}: {refused:?}");
            assert!(
                refused.stderr.contains("nothing erased") && refused.stderr.contains(says),
                "{name}: {subject}: {refused:?}"
            );
            let subject = webhook_core::key::subject_of("magicline", tenant, subject);
            let tombstone = place.ports().store.erased_at(&subject).await.unwrap();
            assert_eq!(tombstone, None, "{name}: no tombstone for {subject}");
        }
        if matches!(place, Place::Sqlite { .. }) {
            let listed = erase("studio-9999", "customer:1").await;
            assert!(
                listed.stderr.contains("studio-1001"),
                "{listed:?}: the tenants there are"
            );
        }
        let record = place.ports().store.get(&key).await.unwrap().unwrap();
        assert!(!record.body.is_empty(), "{name}: nothing erased");
        let done = erase("studio-1001", "customer:7893459").await;
        assert_eq!(done.code, 0, "{name}: {done:?}");
        let record = place.ports().store.get(&key).await.unwrap().unwrap();
        assert!(record.body.is_empty(), "{name}: erased");
    }
}

/// `replay` without keys says how to replay by status instead.
#[tokio::test]
async fn replay_without_keys_names_the_status_option() {
    let place = Place::sqlite();
    let output = place.cli(&["replay"]).await;
    assert_ne!(output.code, 0, "{output:?}");
    assert!(output.stderr.contains("--status"), "{output:?}");
}
