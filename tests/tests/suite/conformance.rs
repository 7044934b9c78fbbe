//! One conformance suite for the store, queue and outbox ports, run against all three adapter
//! pairs: DynamoDB + SQS (local wire endpoint), the embedded SQLite database, and the in-memory
//! pair. If they drift apart, one of them fails here. Time passes by sleeping on the wire
//! endpoint (its clock is its own) and by advancing the injected clock elsewhere.

use std::sync::Arc;
use std::time::Duration;

use adapter_aws::SqsQueue;
use adapter_memory::Memory;
use adapter_sqlite::Database;
use tests::{unique_name, Backend};
use webhook_core::clock::{Clock, ManualClock, SharedClock};
use webhook_core::model::{
    Claim, Erased, EventFilter, InboundMessage, ItemsDone, Outcome, Paused, PutOutcome,
    QueueMessage, Record, Reservation, Sighting, Status, Tried,
};
use webhook_core::ports::{Outbox, Pacer, Queue, QueueConsumer, QueueError, Sightings, Store};

const MAX_RECEIVES: u32 = 2;

struct Ports {
    name: &'static str,
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    outbox: Arc<dyn Outbox>,
    consumer: Arc<dyn QueueConsumer>,
    dead_letters: Arc<dyn QueueConsumer>,
    clock: Arc<dyn Clock>,
    /// Set where the adapter's time is the injected clock.
    manual: Option<Arc<ManualClock>>,
    pacer: Arc<dyn Pacer>,
    sightings: Arc<dyn Sightings>,
}

async fn all_pairs() -> Vec<Ports> {
    let backend = Backend::with_dead_letter_queue(MAX_RECEIVES).await;
    let aws = backend.ports();
    let sqs = Arc::new(backend.queue());
    let dead = Arc::new(SqsQueue::new(
        backend.sqs.clone(),
        backend.dead_letter_url.clone().unwrap(),
    ));

    let sqlite_clock = ManualClock::now();
    let path = std::env::temp_dir().join(format!("{}.db", unique_name("conformance")));
    let database = Database::open(&path).unwrap();
    let (sqlite, sqlite_queue) =
        adapter_sqlite::ports(&database, MAX_RECEIVES, sqlite_clock.clone());

    let memory_clock = ManualClock::now();
    let memory = Memory::new(MAX_RECEIVES, memory_clock.clone());
    vec![
        Ports {
            name: "dynamodb+sqs",
            store: aws.store,
            queue: aws.queue,
            outbox: aws.outbox,
            consumer: sqs,
            dead_letters: dead,
            clock: aws.clock,
            manual: None,
            pacer: aws.pacer,
            sightings: aws.sightings,
        },
        Ports {
            name: "sqlite",
            store: sqlite.store,
            queue: sqlite.queue,
            outbox: sqlite.outbox,
            consumer: Arc::new(sqlite_queue),
            dead_letters: Arc::new(DeadLetterTable(database)),
            clock: sqlite.clock,
            manual: Some(sqlite_clock),
            pacer: sqlite.pacer,
            sightings: sqlite.sightings,
        },
        Ports {
            name: "memory",
            store: memory.ports.store,
            queue: memory.ports.queue,
            outbox: memory.ports.outbox,
            consumer: memory.queue.clone(),
            dead_letters: Arc::new(DeadLetterList(memory.queue)),
            clock: memory.ports.clock,
            manual: Some(memory_clock),
            pacer: memory.ports.pacer,
            sightings: memory.ports.sightings,
        },
    ]
}

fn as_inbound(messages: Vec<QueueMessage>) -> Vec<InboundMessage> {
    messages
        .into_iter()
        .map(|message| InboundMessage {
            id: message.key.clone(),
            body: serde_json::to_string(&message).unwrap(),
            receive_count: 0,
            receipt_handle: None,
        })
        .collect()
}

/// The SQLite dead-letter table seen through the consumer port, like the SQS dead-letter queue.
struct DeadLetterTable(Database);

#[async_trait::async_trait]
impl QueueConsumer for DeadLetterTable {
    async fn receive(
        &self,
        _max: usize,
        _visibility: Duration,
    ) -> Result<Vec<InboundMessage>, QueueError> {
        Ok(as_inbound(self.0.dead_letters().await?))
    }

    async fn delete_all(&self, _receipt_handles: &[String]) -> Result<(), QueueError> {
        Ok(())
    }
}

/// The in-memory dead letters seen through the consumer port.
struct DeadLetterList(Arc<adapter_memory::MemoryQueue>);

#[async_trait::async_trait]
impl QueueConsumer for DeadLetterList {
    async fn receive(
        &self,
        _max: usize,
        _visibility: Duration,
    ) -> Result<Vec<InboundMessage>, QueueError> {
        Ok(as_inbound(self.0.dead_letters()))
    }

    async fn delete_all(&self, _receipt_handles: &[String]) -> Result<(), QueueError> {
        Ok(())
    }
}

fn record_at(now: i64, key: &str, entity: &str) -> Record {
    Record {
        key: key.into(),
        provider: "egym".into(),
        tenant: "gym-1".into(),
        event_type: "GYM_CHECKIN".into(),
        entity_id: entity.into(),
        subject: webhook_core::key::subject_of("egym", "gym-1", &format!("account:{entity}")),
        facts: Some(r#"{"flag":true}"#.into()),
        body: r#"{"accountId":"a","name":"Grüße"}"#.into(),
        received_at_ms: now,
        status: Status::Received,
        lease_until_ms: now + 60_000,
        expires_at: now / 1000 + 3600,
        trace_id: Some("1-5759e988-bd862e3fe1be46a994272793".into()),
        trace_parent: Some("53995c3f42cd8ad8".into()),
        ..Record::default()
    }
}

impl Ports {
    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    fn record(&self, key: &str, entity: &str) -> Record {
        record_at(self.now(), key, entity)
    }

    /// Lets `duration` pass for the adapter: the wire endpoint keeps its own time, so the test
    /// sleeps there; the others read the injected clock, which is moved.
    async fn wait(&self, duration: Duration) {
        match &self.manual {
            Some(clock) => clock.advance(duration),
            None => tokio::time::sleep(duration).await,
        }
    }

    async fn send_keys(&self, keys: &[&str]) {
        for key in keys {
            self.queue.send(&message(key)).await.unwrap();
        }
    }

    /// Up to 10 visible messages, each hidden for `visibility` after this receive.
    async fn receive(&self, visibility: Duration) -> Vec<InboundMessage> {
        self.consumer.receive(10, visibility).await.unwrap()
    }
}

fn key_of(message: &InboundMessage) -> String {
    serde_json::from_str::<QueueMessage>(&message.body)
        .unwrap()
        .key
}

fn message(key: &str) -> QueueMessage {
    QueueMessage {
        provider: "egym".into(),
        tenant: "gym-1".into(),
        key: key.into(),
        event_type: "GYM_CHECKIN".into(),
        entity_id: "a".into(),
        ..QueueMessage::default()
    }
}

#[tokio::test]
async fn conditional_put_reports_what_exists() {
    for ports in all_pairs().await {
        let original = ports.record("k1", "a");
        let store = &ports.store;
        assert_eq!(
            store.put_new(&original).await.unwrap(),
            PutOutcome::Created,
            "{}",
            ports.name
        );
        let PutOutcome::Exists(existing) =
            store.put_new(&ports.record("k1", "other")).await.unwrap()
        else {
            panic!("{}: second put created", ports.name);
        };
        assert_eq!(existing.status, Status::Received, "{}", ports.name);
        assert_eq!(
            existing.lease_until_ms, original.lease_until_ms,
            "{}",
            ports.name
        );
        assert_eq!(
            store.get("k1").await.unwrap().unwrap(),
            original,
            "{}: round trip",
            ports.name
        );
        store.mark_queued("k1").await.unwrap();
        let PutOutcome::Exists(existing) = store.put_new(&original).await.unwrap() else {
            panic!();
        };
        assert_eq!(existing.status, Status::Queued, "{}", ports.name);
        assert_eq!(store.get("missing").await.unwrap(), None, "{}", ports.name);
    }
}

#[tokio::test]
async fn leases_are_taken_over_only_as_seen_and_only_while_received() {
    for ports in all_pairs().await {
        let store = &ports.store;
        let original = ports.record("k2", "a");
        store.put_new(&original).await.unwrap();
        let seen = original.lease_until_ms;
        assert!(
            !store.take_over("k2", seen + 1, seen + 5).await.unwrap(),
            "{}",
            ports.name
        );
        assert!(
            store.take_over("k2", seen, seen + 5).await.unwrap(),
            "{}",
            ports.name
        );
        assert!(
            !store.take_over("k2", seen, seen + 9).await.unwrap(),
            "{}: stale",
            ports.name
        );
        let now = ports.now();
        store.release("k2", now).await.unwrap();
        assert_eq!(
            store.get("k2").await.unwrap().unwrap().lease_until_ms,
            now,
            "{}",
            ports.name
        );
        store.mark_queued("k2").await.unwrap();
        assert!(
            !store.take_over("k2", now, now + 5).await.unwrap(),
            "{}: queued",
            ports.name
        );
        store.release("k2", now + 100).await.unwrap();
        assert_eq!(
            store.get("k2").await.unwrap().unwrap().lease_until_ms,
            now,
            "{}",
            ports.name
        );
    }
}

#[tokio::test]
async fn claims_exclude_each_other_and_expire() {
    for ports in all_pairs().await {
        let store = &ports.store;
        assert_eq!(
            store.claim("none", 0, 1).await.unwrap(),
            Claim::Missing,
            "{}",
            ports.name
        );
        store.put_new(&ports.record("k3", "a")).await.unwrap();
        store.mark_queued("k3").await.unwrap();
        let now = ports.now();
        let Claim::Claimed(claimed) = store.claim("k3", now, now + 1000).await.unwrap() else {
            panic!("{}: not claimed", ports.name);
        };
        assert_eq!(
            (claimed.status, claimed.attempts),
            (Status::Processing, 1),
            "{}",
            ports.name
        );
        assert_eq!(
            store.claim("k3", now, now + 2000).await.unwrap(),
            Claim::Busy,
            "{}",
            ports.name
        );
        // The first claim's lease ran out: another processor takes over.
        let later = now + 1001;
        let Claim::Claimed(second) = store.claim("k3", later, later + 1000).await.unwrap() else {
            panic!("{}: expired lease not taken over", ports.name);
        };
        assert_eq!(second.attempts, 2, "{}", ports.name);
        let done = Outcome::Processed {
            detail: Some(r#"{"id":"a"}"#.into()),
        };
        assert!(
            !store.finish("k3", now + 1000, &done, later).await.unwrap(),
            "{}: lost lease",
            ports.name
        );
        assert!(
            store
                .finish("k3", later + 1000, &done, later)
                .await
                .unwrap(),
            "{}",
            ports.name
        );
        let finished = store.get("k3").await.unwrap().unwrap();
        assert_eq!(finished.status, Status::Processed, "{}", ports.name);
        assert_eq!(
            finished.detail.as_deref(),
            Some(r#"{"id":"a"}"#),
            "{}",
            ports.name
        );
        assert_eq!(finished.processed_at_ms, Some(later), "{}", ports.name);
        assert_eq!(finished.lease_until_ms, 0, "{}", ports.name);
        assert_eq!(
            store.claim("k3", later, later + 1).await.unwrap(),
            Claim::Finished(Status::Processed),
            "{}",
            ports.name
        );
    }
}

/// A finish writes the record's attempts with it, under the claim only; a finish without
/// them leaves them as they were.
#[tokio::test]
async fn a_finish_keeps_the_records_attempts() {
    for ports in all_pairs().await {
        let (store, name) = (&ports.store, ports.name);
        store.put_new(&ports.record("h", "h")).await.unwrap();
        let now = ports.now();
        let tried = |at_ms, outcome: &str, http_status| Tried {
            at_ms,
            outcome: outcome.into(),
            latency_ms: 12,
            http_status,
            error: http_status.map(|s| format!("provider API answered {s}")),
        };
        let first = vec![tried(now, "retry", Some(503))];
        assert!(matches!(
            store.claim("h", now, now + 500).await.unwrap(),
            Claim::Claimed(_)
        ));
        let retry = Outcome::Retry {
            reason: "provider API answered 503".into(),
        };
        assert!(
            !store
                .finish_noted("h", now + 499, &retry, now, &first)
                .await
                .unwrap(),
            "{name}: not under the claim"
        );
        assert!(store
            .finish_noted("h", now + 500, &retry, now, &first)
            .await
            .unwrap());
        assert_eq!(
            store.get("h").await.unwrap().unwrap().history,
            first,
            "{name}"
        );
        let Claim::Claimed(claimed) = store.claim("h", now + 1, now + 600).await.unwrap() else {
            panic!("{name}: claimed again");
        };
        assert_eq!(claimed.history, first, "{name}: the claim reads them");
        let both = vec![first[0].clone(), tried(now + 2, "fetched", None)];
        let done = Outcome::Processed { detail: None };
        assert!(store
            .finish_noted("h", now + 600, &done, now + 2, &both)
            .await
            .unwrap());
        assert_eq!(
            store.get("h").await.unwrap().unwrap().history,
            both,
            "{name}"
        );
    }
}

#[tokio::test]
async fn retry_requeues_and_failure_is_final() {
    for ports in all_pairs().await {
        let store = &ports.store;
        for key in ["retry", "fail"] {
            store.put_new(&ports.record(key, key)).await.unwrap();
        }
        let now = ports.now();
        for key in ["retry", "fail"] {
            assert!(matches!(
                store.claim(key, now, now + 500).await.unwrap(),
                Claim::Claimed(_)
            ));
        }
        let retry = Outcome::Retry {
            reason: "provider API answered 503".into(),
        };
        let fail = Outcome::Failed {
            reason: "provider API answered 404".into(),
        };
        assert!(store.finish("retry", now + 500, &retry, now).await.unwrap());
        assert!(store.finish("fail", now + 500, &fail, now).await.unwrap());
        let retried = store.get("retry").await.unwrap().unwrap();
        assert_eq!(retried.status, Status::Queued, "{}", ports.name);
        assert_eq!(
            retried.last_error.as_deref(),
            Some("provider API answered 503")
        );
        assert!(matches!(
            store.claim("retry", now, now + 1).await.unwrap(),
            Claim::Claimed(_)
        ));
        assert_eq!(
            store.claim("fail", now, now + 1).await.unwrap(),
            Claim::Finished(Status::Failed),
            "{}",
            ports.name
        );
    }
}

#[tokio::test]
async fn pending_lists_received_records_whose_lease_ended_and_nothing_else() {
    for ports in all_pairs().await {
        let store = &ports.store;
        let now = ports.now();
        let mut expired = ports.record("p1", "a");
        expired.lease_until_ms = now - 5;
        let mut older = ports.record("p0", "b");
        older.lease_until_ms = now - 50;
        let live = ports.record("p2", "c");
        let mut queued = ports.record("p3", "d");
        queued.lease_until_ms = now - 5;
        for r in [&expired, &older, &live, &queued] {
            store.put_new(r).await.unwrap();
        }
        store.mark_queued("p3").await.unwrap();
        let pending = store.pending(now, 10).await.unwrap();
        let keys: Vec<&str> = pending.iter().map(|p| p.message.key.as_str()).collect();
        assert_eq!(keys, ["p0", "p1"], "{}: oldest lease first", ports.name);
        assert_eq!(pending[1].message.provider, "egym", "{}", ports.name);
        assert_eq!(pending[1].message.entity_id, "a", "{}", ports.name);
        assert_eq!(pending[1].lease_until_ms, now - 5, "{}", ports.name);
        assert_eq!(
            store.pending(now, 1).await.unwrap().len(),
            1,
            "{}: limit",
            ports.name
        );
        // Claimed by a processor: no longer pending, even with its lease over.
        assert!(matches!(
            store.claim("p0", now, now - 1).await.unwrap(),
            Claim::Claimed(_)
        ));
        let keys: Vec<String> = store
            .pending(now, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.message.key)
            .collect();
        assert_eq!(keys, ["p1"], "{}", ports.name);
    }
}

#[tokio::test]
async fn erasure_reaches_every_record_of_the_subject_and_nothing_else() {
    for ports in all_pairs().await {
        let store = &ports.store;
        for (key, entity) in [("e1", "person"), ("e2", "person"), ("e3", "someone-else")] {
            store.put_new(&ports.record(key, entity)).await.unwrap();
        }
        let subject = ports.record("e1", "person").subject;
        assert_eq!(
            store.erased_at(&subject).await.unwrap(),
            None,
            "{}",
            ports.name
        );
        assert_eq!(
            store
                .erase_subject(&subject, 42, 4_000_000_000)
                .await
                .unwrap()
                .records,
            2,
            "{}",
            ports.name
        );
        assert_eq!(
            store.erased_at(&subject).await.unwrap(),
            Some(42),
            "{}: the tombstone",
            ports.name
        );
        let other = ports.record("e3", "someone-else").subject;
        assert_eq!(
            store.erased_at(&other).await.unwrap(),
            None,
            "{}",
            ports.name
        );
        for key in ["e1", "e2"] {
            let erased = store.get(key).await.unwrap().unwrap();
            assert_eq!(
                (erased.body.as_str(), erased.detail.as_deref()),
                ("", None),
                "{}",
                ports.name
            );
            assert_eq!(erased.erased_at_ms, Some(42), "{}", ports.name);
        }
        assert!(
            !store.get("e3").await.unwrap().unwrap().body.is_empty(),
            "{}",
            ports.name
        );
    }
}

/// A record that names a person (a list, a booking) is linked to them, and erasing the person
/// reaches it as it reaches the records about them; the count says what was still there.
#[tokio::test]
async fn erasure_reaches_the_records_linked_to_the_person_and_counts_what_it_emptied() {
    for ports in all_pairs().await {
        let store = &ports.store;
        let name = ports.name;
        let now = ports.now();
        let person = ports.record("about", "person").subject;
        for (key, entity) in [("about", "person"), ("naming", "list"), ("unlinked", "x")] {
            store.put_new(&ports.record(key, entity)).await.unwrap();
        }
        // The record about the person was processed: it holds a detail too.
        let lease = now + 60_000;
        assert!(matches!(
            store.claim("about", now, lease).await.unwrap(),
            Claim::Claimed(_)
        ));
        let processed = Outcome::Processed {
            detail: Some(r#"{"name":"Ben"}"#.into()),
        };
        assert!(store.finish("about", lease, &processed, now).await.unwrap());
        for _ in 0..2 {
            store
                .link_persons("naming", std::slice::from_ref(&person), now / 1000 + 3600)
                .await
                .unwrap();
        }
        assert_eq!(
            store.subject_records(&person).await.unwrap(),
            ["about", "naming"],
            "{name}: what an erasure would reach"
        );
        assert_eq!(store.erased_at(&person).await.unwrap(), None, "{name}");
        let erased = store
            .erase_subject(&person, now, now / 1000 + 3600)
            .await
            .unwrap();
        assert_eq!(
            erased,
            Erased {
                records: 2,
                bodies: 2,
                details: 1
            },
            "{name}"
        );
        for key in ["about", "naming"] {
            let record = store.get(key).await.unwrap().unwrap();
            assert_eq!(
                (record.body.as_str(), record.detail),
                ("", None),
                "{name}: {key}"
            );
            assert_eq!(record.erased_at_ms, Some(now), "{name}: {key}");
        }
        assert!(
            !store
                .get("unlinked")
                .await
                .unwrap()
                .unwrap()
                .body
                .is_empty(),
            "{name}"
        );
        let again = store
            .erase_subject(&person, now, now / 1000 + 3600)
            .await
            .unwrap();
        assert_eq!(
            again,
            Erased {
                records: 2,
                bodies: 0,
                details: 0
            },
            "{name}: nothing left"
        );
        assert_eq!(
            store.erase_record("missing", now).await.unwrap(),
            Erased::default(),
            "{name}"
        );
    }
}

/// A record stored already erased (a delivery about an erased person) stays so.
#[tokio::test]
async fn a_record_stored_erased_keeps_its_erasure_time() {
    for ports in all_pairs().await {
        let record = Record {
            body: String::new(),
            erased_at_ms: Some(7),
            ..ports.record("stored-erased", "person")
        };
        ports.store.put_new(&record).await.unwrap();
        let stored = ports.store.get("stored-erased").await.unwrap().unwrap();
        assert_eq!(
            (stored.body.as_str(), stored.erased_at_ms),
            ("", Some(7)),
            "{}",
            ports.name
        );
    }
}

/// A key's calls are handed out an interval apart and no slot twice, however many processors
/// ask at once; a slot further away than the caller will wait is not reserved, and the callers
/// turned away are given times to come back one after another.
#[tokio::test]
async fn a_pacer_spaces_a_keys_calls_and_never_hands_out_a_slot_twice() {
    for ports in all_pairs().await {
        let (pacer, name, now) = (&ports.pacer, ports.name, ports.now());
        let key = unique_name("pace");
        let reserve =
            |calls, at, max_wait| reserve_at(pacer.as_ref(), &key, 100, calls, at, max_wait);
        let granted = |at| Reservation::Granted { first_at_ms: at };
        assert_eq!(reserve(1, now, 1000).await, granted(now), "{name}");
        assert_eq!(reserve(3, now, 1000).await, granted(now + 100), "{name}");
        let back_at = |at| Reservation::Full { back_at_ms: at };
        assert_eq!(
            reserve(1, now, 300).await,
            back_at(now + 400),
            "{name}: too far"
        );
        assert_eq!(
            reserve(2, now, 300).await,
            back_at(now + 500),
            "{name}: turned away in turn"
        );
        assert_eq!(
            reserve(1, now, 1000).await,
            granted(now + 400),
            "{name}: no call was reserved"
        );
        assert_eq!(
            reserve(1, now, 300).await,
            back_at(now + 700),
            "{name}: after the turns given"
        );
        assert_eq!(
            reserve(1, now + 60_000, 0).await,
            granted(now + 60_000),
            "{name}: idle"
        );
        let other = unique_name("pace");
        assert_eq!(
            reserve_at(pacer.as_ref(), &other, 100, 1, now, 0).await,
            granted(now),
            "{name}: keys apart"
        );

        let crowded = unique_name("pace");
        let asked = (0..12).map(|_| reserve_at(pacer.as_ref(), &crowded, 50, 1, now, 60_000));
        let mut slots: Vec<i64> = futures::future::join_all(asked)
            .await
            .into_iter()
            .map(|reservation| match reservation {
                Reservation::Granted { first_at_ms } => first_at_ms,
                full => panic!("{name}: {full:?}"),
            })
            .collect();
        slots.sort_unstable();
        let expected: Vec<i64> = (0..12).map(|n| now + 50 * n).collect();
        assert_eq!(slots, expected, "{name}: each slot once, an interval apart");
    }
}

/// What `pacer` answers `calls` calls of `key` asked at `at` (epoch ms).
async fn reserve_at(
    pacer: &dyn Pacer,
    key: &str,
    interval_ms: i64,
    calls: u32,
    at: i64,
    max_wait_ms: i64,
) -> Reservation {
    let clock: SharedClock = ManualClock::starting_at(at);
    pacer
        .reserve(key, interval_ms, calls, &clock, max_wait_ms)
        .await
        .unwrap()
}

/// What an operator pauses stays paused, since its first time, until resumed.
#[tokio::test]
async fn a_paused_scope_stays_paused_until_it_is_resumed() {
    for ports in all_pairs().await {
        let (pacer, name) = (&ports.pacer, ports.name);
        let held = |scope: &str, since_ms| Paused {
            scope: scope.into(),
            since_ms,
        };
        assert_eq!(pacer.paused().await.unwrap(), [], "{name}");
        pacer.set_paused("egym", true, 5).await.unwrap();
        pacer.set_paused("egym", true, 9).await.unwrap();
        pacer
            .set_paused("magicline#studio-1", true, 7)
            .await
            .unwrap();
        assert_eq!(
            pacer.paused().await.unwrap(),
            [held("egym", 5), held("magicline#studio-1", 7)],
            "{name}: sorted, each since its first pause"
        );
        pacer.set_paused("egym", false, 11).await.unwrap();
        pacer.set_paused("timify", false, 11).await.unwrap();
        assert_eq!(
            pacer.paused().await.unwrap(),
            [held("magicline#studio-1", 7)],
            "{name}"
        );
    }
}

/// A signal is new once per provider and tenant: its first time is kept, its last time,
/// example and expiry follow the latest sighting; one whose example expired is not listed, and
/// seen again it is new.
#[tokio::test]
async fn a_sighting_is_new_once_and_follows_its_latest_example() {
    for ports in all_pairs().await {
        let (sightings, name) = (&ports.sightings, ports.name);
        let seen = |tenant: &str, signal: &str, at: i64, key: &str| Sighting {
            provider: "timify".into(),
            tenant: tenant.into(),
            signal: signal.into(),
            first_ms: at,
            last_ms: at,
            example_key: key.into(),
            expires_at: 1_000,
        };
        assert_eq!(sightings.sightings(None, 0).await.unwrap(), [], "{name}");
        let field = seen("app-1", "field:/data/newThing", 10, "timify#app-1#a");
        assert!(sightings.sight(&field).await.unwrap(), "{name}: new");
        let again = Sighting {
            expires_at: 2_000,
            ..seen("app-1", "field:/data/newThing", 30, "timify#app-1#b")
        };
        assert!(
            !sightings.sight(&again).await.unwrap(),
            "{name}: seen before"
        );
        let other_tenant = seen("app-2", "field:/data/newThing", 40, "timify#app-2#d");
        assert!(
            sightings.sight(&other_tenant).await.unwrap(),
            "{name}: per tenant"
        );
        let other_provider = Sighting {
            provider: "egym".into(),
            ..seen("gym-1", "type:NEW_TYPE", 50, "egym#gym-1#e")
        };
        assert!(sightings.sight(&other_provider).await.unwrap(), "{name}");
        assert_eq!(
            sightings.sightings(Some("timify"), 0).await.unwrap(),
            [
                Sighting {
                    first_ms: 10,
                    ..again.clone()
                },
                other_tenant.clone(),
            ],
            "{name}: the first time, the latest example"
        );
        assert_eq!(
            sightings.sightings(None, 0).await.unwrap().len(),
            3,
            "{name}: every provider's"
        );
        assert_eq!(
            sightings.sightings(None, 1_500_000).await.unwrap(),
            [Sighting {
                first_ms: 10,
                ..again
            }],
            "{name}: gone with the records they name"
        );
    }
}

#[tokio::test]
async fn a_batch_delete_removes_exactly_the_messages_named() {
    for ports in all_pairs().await {
        ports.send_keys(&["d1", "d2", "d3"]).await;
        let received = ports.receive(Duration::from_secs(1)).await;
        assert_eq!(received.len(), 3, "{}", ports.name);
        let keep = received.iter().find(|m| key_of(m) == "d2").unwrap();
        let done: Vec<String> = received
            .iter()
            .filter(|m| m.id != keep.id)
            .map(|m| m.receipt_handle.clone().unwrap())
            .collect();
        ports.consumer.delete_all(&done).await.unwrap();
        ports.wait(Duration::from_millis(1300)).await;
        let again = ports.receive(Duration::from_secs(30)).await;
        assert_eq!(again.len(), 1, "{}", ports.name);
        assert_eq!(again[0].id, keep.id, "{}", ports.name);
    }
}

#[tokio::test]
async fn received_messages_stay_hidden_until_deleted_or_their_visibility_ends() {
    for ports in all_pairs().await {
        ports.send_keys(&["m1", "m2", "m3"]).await;
        let first = ports.receive(Duration::from_secs(30)).await;
        assert_eq!(first.len(), 3, "{}", ports.name);
        assert!(first.iter().all(|m| m.receive_count == 1), "{}", ports.name);
        let keys: Vec<String> = first.iter().map(key_of).collect();
        assert_eq!(keys.len(), 3);
        assert!(ports.receive(Duration::from_secs(30)).await.is_empty());
        let receipts: Vec<String> = first
            .iter()
            .map(|m| m.receipt_handle.clone().unwrap())
            .collect();
        ports.consumer.delete_all(&receipts).await.unwrap();

        ports.send_keys(&["m4"]).await;
        let once = ports.receive(Duration::from_secs(1)).await;
        assert_eq!(once.len(), 1, "{}", ports.name);
        ports.wait(Duration::from_millis(1300)).await;
        let again = ports.receive(Duration::from_secs(1)).await;
        assert_eq!(
            again.len(),
            1,
            "{}: redelivered after its visibility timeout",
            ports.name
        );
        assert_eq!(again[0].receive_count, 2, "{}", ports.name);
        assert_eq!(again[0].id, once[0].id, "{}", ports.name);
    }
}

#[tokio::test]
async fn a_message_received_max_receives_times_moves_to_the_dead_letters() {
    for ports in all_pairs().await {
        ports.queue.send(&message("dead")).await.unwrap();
        for attempt in 1..=MAX_RECEIVES {
            let received = ports.receive(Duration::from_secs(1)).await;
            assert_eq!(received.len(), 1, "{}: attempt {attempt}", ports.name);
            assert_eq!(received[0].receive_count, attempt, "{}", ports.name);
            ports.wait(Duration::from_millis(1200)).await;
        }
        assert!(
            ports.receive(Duration::from_secs(1)).await.is_empty(),
            "{}: not delivered a third time",
            ports.name
        );
        let dead = ports
            .dead_letters
            .receive(10, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(dead.len(), 1, "{}", ports.name);
        assert_eq!(key_of(&dead[0]), "dead");
    }
}

#[tokio::test]
async fn retry_after_hides_a_received_message_longer() {
    // Longer than the receive's 1 s visibility, short enough to keep the test quick.
    const RETRY_AFTER: Duration = Duration::from_secs(3);
    for ports in all_pairs().await {
        ports.queue.send(&message("later")).await.unwrap();
        let received = ports
            .consumer
            .receive(1, Duration::from_secs(1))
            .await
            .unwrap();
        let asked = std::time::Instant::now();
        ports
            .queue
            .retry_after(
                received[0].receipt_handle.as_deref().unwrap(),
                RETRY_AFTER.as_secs() as u32,
            )
            .await
            .unwrap();
        ports.wait(Duration::from_millis(1300)).await;
        assert!(
            ports
                .consumer
                .receive(1, Duration::from_secs(1))
                .await
                .unwrap()
                .is_empty(),
            "{}: hidden past the receive's visibility",
            ports.name
        );
        let back = match &ports.manual {
            Some(_) => {
                ports.wait(RETRY_AFTER - Duration::from_millis(1200)).await;
                ports.receive(Duration::from_secs(1)).await
            }
            // The wire endpoint keeps its own time: look until the message is back.
            None => {
                let back = loop {
                    let back = ports.receive(Duration::from_secs(1)).await;
                    if !back.is_empty() || asked.elapsed() > Duration::from_secs(15) {
                        break back;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                };
                assert!(
                    asked.elapsed() >= RETRY_AFTER,
                    "{}: back after {:?}",
                    ports.name,
                    asked.elapsed()
                );
                back
            }
        };
        assert_eq!(
            back.iter().map(key_of).collect::<Vec<_>>(),
            ["later"],
            "{}: visible again once its wait is over",
            ports.name
        );
    }
}

#[tokio::test]
async fn the_outbox_queues_a_stored_record_and_marks_it_queued() {
    for ports in all_pairs().await {
        let stored = ports.record("o1", "a");
        ports.store.put_new(&stored).await.unwrap();
        ports.outbox.enqueue(&stored.message()).await.unwrap();
        assert_eq!(
            ports.store.get("o1").await.unwrap().unwrap().status,
            Status::Queued,
            "{}",
            ports.name
        );
        let received = ports.receive(Duration::from_secs(30)).await;
        assert_eq!(received.len(), 1, "{}", ports.name);
        assert_eq!(
            serde_json::from_str::<QueueMessage>(&received[0].body).unwrap(),
            stored.message(),
            "{}",
            ports.name
        );
        assert!(
            ports
                .store
                .pending(ports.now() + 3_600_000, 10)
                .await
                .unwrap()
                .is_empty(),
            "{}: nothing left for the sweeper",
            ports.name
        );
    }
}

#[tokio::test]
async fn single_records_are_erased_and_quarantined_ones_kept_apart() {
    for ports in all_pairs().await {
        let store = &ports.store;
        store.put_new(&ports.record("r1", "a")).await.unwrap();
        store.erase_record("r1", 7).await.unwrap();
        let erased = store.get("r1").await.unwrap().unwrap();
        assert_eq!(
            (erased.body.as_str(), erased.erased_at_ms),
            ("", Some(7)),
            "{}",
            ports.name
        );
        store.erase_record("missing", 7).await.unwrap();

        let quarantined = Record {
            status: Status::Quarantined,
            last_error: Some("malformed body: uuid missing".into()),
            subject: String::new(),
            unauthenticated: true,
            ..ports.record("q1", "")
        };
        store.put_new(&quarantined).await.unwrap();
        assert_eq!(
            store.get("q1").await.unwrap().unwrap(),
            quarantined,
            "{}",
            ports.name
        );
        let now = ports.now();
        assert_eq!(
            store.claim("q1", now, now + 1000).await.unwrap(),
            Claim::Finished(Status::Quarantined),
            "{}: never processed",
            ports.name
        );
        let pending = store.pending(now + 3_600_000, 10).await.unwrap();
        assert!(
            pending.iter().all(|p| p.message.key != "q1"),
            "{}: never swept",
            ports.name
        );
    }
}

/// A body of 50 KiB (of a kind a webhook may carry), under a key shaped as real keys are.
fn large_record(now: i64, key: &str) -> Record {
    let items: Vec<String> = (0..600)
        .map(|i| format!(r#"{{"id":{i},"name":"member {i}","checkedIn":true}}"#))
        .collect();
    let body = format!(r#"{{"accountId":"a","items":[{}]}}"#, items.join(","));
    assert!(body.len() > 20_000);
    Record {
        body,
        ..record_at(now, key, "a")
    }
}

#[tokio::test]
async fn a_large_body_comes_back_whole_until_its_record_is_erased() {
    for ports in all_pairs().await {
        let store = &ports.store;
        let key = "egym#gym-1#large-1";
        let stored = large_record(ports.now(), key);
        assert_eq!(
            store.put_new(&stored).await.unwrap(),
            PutOutcome::Created,
            "{}",
            ports.name
        );
        let copy = Record {
            body: r#"{"accountId":"a","a copy":"that must not replace the first"}"#.into(),
            ..stored.clone()
        };
        assert!(
            matches!(store.put_new(&copy).await.unwrap(), PutOutcome::Exists(_)),
            "{}",
            ports.name
        );
        assert_eq!(
            store.get(key).await.unwrap().unwrap().body,
            stored.body,
            "{}: get",
            ports.name
        );
        let now = ports.now();
        let Claim::Claimed(claimed) = store.claim(key, now, now + 60_000).await.unwrap() else {
            panic!("{}: not claimed", ports.name)
        };
        assert_eq!(claimed.body, stored.body, "{}: claim", ports.name);
        let outcome = Outcome::Processed {
            detail: Some("{}".into()),
        };
        assert!(store
            .finish(key, now + 60_000, &outcome, now)
            .await
            .unwrap());
        let finished = store.get(key).await.unwrap().unwrap();
        assert_eq!(
            (finished.status, finished.body.as_str()),
            (Status::Processed, stored.body.as_str()),
            "{}: finished",
            ports.name
        );
        store.erase_record(key, 9).await.unwrap();
        let erased = store.get(key).await.unwrap().unwrap();
        assert_eq!(
            (
                erased.body.as_str(),
                erased.detail.as_deref(),
                erased.erased_at_ms
            ),
            ("", None, Some(9)),
            "{}: erased",
            ports.name
        );
    }
}

/// On DynamoDB the claim and the finish rewrite the whole item and are billed by its size:
/// a large body is kept in an item of its own, written once, and the record stays under one
/// write unit through its life. Erasure empties both.
#[tokio::test]
async fn dynamodb_keeps_a_large_body_out_of_the_record_it_rewrites() {
    let backend = Backend::new().await;
    let ports = backend.ports();
    let store = ports.store;
    let now = ports.clock.now_ms();
    let key = "egym#gym-1#large-2";
    let stored = large_record(now, key);
    store.put_new(&stored).await.unwrap();
    store.claim(key, now, now + 60_000).await.unwrap();
    let outcome = Outcome::Processed {
        detail: Some(r#"{"name":"A"}"#.into()),
    };
    assert!(store
        .finish(key, now + 60_000, &outcome, now)
        .await
        .unwrap());

    let items = backend
        .dynamodb
        .scan()
        .table_name(&backend.table)
        .send()
        .await
        .unwrap();
    let items = items.items();
    assert_eq!(items.len(), 2, "the record and its body's item");
    let size =
        |item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>| {
            item.iter()
                .map(|(name, value)| name.len() + value.as_s().map_or(8, String::len))
                .sum::<usize>()
        };
    let pk = |item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>| {
        item["pk"].as_s().unwrap().clone()
    };
    let record = items.iter().find(|item| pk(item) == key).unwrap();
    assert!(!record.contains_key("body"));
    assert!(size(record) < 1024, "the record is {} bytes", size(record));
    let body = items.iter().find(|item| pk(item) != key).unwrap();
    assert!(
        pk(body).starts_with("egym#"),
        "under the provider's keys: {}",
        pk(body)
    );
    assert_eq!(body["body"].as_s().unwrap(), &stored.body);

    store.erase_record(key, 9).await.unwrap();
    let body = backend
        .dynamodb
        .get_item()
        .table_name(&backend.table)
        .key("pk", body["pk"].clone())
        .send()
        .await
        .unwrap();
    assert!(!body.item().unwrap().contains_key("body"), "erased");
}

/// Records of two providers, tenants and days, in every state an operator filters by, and
/// one past its retention that no TTL has deleted yet (`l-expired`).
async fn stored_for_listing(ports: &Ports) -> i64 {
    let now = ports.now();
    let day = 86_400_000;
    let cases = [
        ("l-old", "egym", "gym-1", now - 2 * day, None),
        ("l-new", "egym", "gym-1", now - 1000, None),
        ("l-other-tenant", "egym", "gym-2", now - 2000, None),
        ("l-magicline", "magicline", "studio-1", now - 3000, None),
        (
            "l-failed",
            "egym",
            "gym-1",
            now - 4000,
            Some(Status::Failed),
        ),
        (
            "l-quarantined",
            "egym",
            "gym-1",
            now - 5000,
            Some(Status::Quarantined),
        ),
        ("l-expired", "egym", "gym-1", now - 6000, None),
    ];
    for (key, provider, tenant, received, status) in cases {
        let record = Record {
            provider: provider.into(),
            tenant: tenant.into(),
            received_at_ms: received,
            status: if status == Some(Status::Quarantined) {
                Status::Quarantined
            } else {
                Status::Received
            },
            expires_at: if key == "l-expired" {
                now / 1000 - 1
            } else {
                now / 1000 + 3600
            },
            ..record_at(received, key, "a")
        };
        ports.store.put_new(&record).await.unwrap();
        if status == Some(Status::Failed) {
            ports.store.claim(key, now, now + 1000).await.unwrap();
            let failed = Outcome::Failed {
                reason: "404".into(),
            };
            assert!(ports
                .store
                .finish(key, now + 1000, &failed, now)
                .await
                .unwrap());
        }
    }
    now
}

fn listing(now: i64) -> EventFilter {
    EventFilter {
        providers: vec!["egym".into(), "magicline".into()],
        tenant: None,
        status: None,
        since_ms: now - 3 * 86_400_000,
        until_ms: now + 1,
        limit: 100,
        live_at_ms: now,
        unfinished_only: false,
    }
}

fn keys(records: &[Record]) -> Vec<&str> {
    records.iter().map(|r| r.key.as_str()).collect()
}

#[tokio::test]
async fn listings_are_newest_first_filtered_and_without_bodies() {
    for ports in all_pairs().await {
        let now = stored_for_listing(&ports).await;
        let store = &ports.store;
        let all = store.list(&listing(now)).await.unwrap();
        assert_eq!(
            keys(&all),
            [
                "l-new",
                "l-other-tenant",
                "l-magicline",
                "l-failed",
                "l-quarantined",
                "l-old"
            ],
            "{}",
            ports.name
        );
        assert!(
            all.iter().all(|r| r.body.is_empty() && r.detail.is_none()),
            "{}: summaries only",
            ports.name
        );
        let egym_gym_1 = EventFilter {
            providers: vec!["egym".into()],
            tenant: Some("gym-1".into()),
            limit: 2,
            ..listing(now)
        };
        assert_eq!(
            keys(&store.list(&egym_gym_1).await.unwrap()),
            ["l-new", "l-failed"],
            "{}",
            ports.name
        );
        for (status, expected) in [
            (Status::Failed, "l-failed"),
            (Status::Quarantined, "l-quarantined"),
        ] {
            let by_status = EventFilter {
                status: Some(status),
                ..listing(now)
            };
            let found = store.list(&by_status).await.unwrap();
            assert_eq!(keys(&found), [expected], "{}", ports.name);
            assert_eq!(found[0].status, status);
        }
        let recent = EventFilter {
            since_ms: now - 86_400_000,
            status: Some(Status::Received),
            ..listing(now)
        };
        assert_eq!(
            keys(&store.list(&recent).await.unwrap()),
            ["l-new", "l-other-tenant", "l-magicline"],
            "{}",
            ports.name
        );
        let expired_too = EventFilter {
            since_ms: now - 10_000,
            status: Some(Status::Received),
            live_at_ms: i64::MIN,
            ..listing(now)
        };
        assert_eq!(
            keys(&store.list(&expired_too).await.unwrap()),
            ["l-new", "l-other-tenant", "l-magicline", "l-expired"],
            "{}: expired records only where asked for",
            ports.name
        );
    }
}

#[tokio::test]
async fn a_replay_reopens_a_record_once_and_never_one_in_flight_or_quarantined() {
    for ports in all_pairs().await {
        let now = stored_for_listing(&ports).await;
        let store = &ports.store;
        assert!(
            !store.reopen("l-new", now, now + 10_000).await.unwrap(),
            "{}: a live ingest lease",
            ports.name
        );
        assert!(!store
            .reopen("l-quarantined", now, now + 10_000)
            .await
            .unwrap());
        assert!(!store.reopen("missing", now, now + 10_000).await.unwrap());
        assert!(
            store.reopen("l-failed", now, now + 10_000).await.unwrap(),
            "{}",
            ports.name
        );
        let reopened = store.get("l-failed").await.unwrap().unwrap();
        assert_eq!(
            (reopened.status, reopened.last_error.clone()),
            (Status::Received, None),
            "{}",
            ports.name
        );
        assert!(
            !store.reopen("l-failed", now, now + 20_000).await.unwrap(),
            "{}: the second replay finds it in flight",
            ports.name
        );
        let failed_ones = EventFilter {
            status: Some(Status::Failed),
            ..listing(now)
        };
        assert!(
            store.list(&failed_ones).await.unwrap().is_empty(),
            "{}",
            ports.name
        );
        ports.outbox.enqueue(&reopened.message()).await.unwrap();
        assert_eq!(
            ports.receive(Duration::from_secs(30)).await.len(),
            1,
            "{}",
            ports.name
        );
    }
}

#[tokio::test]
async fn a_released_quarantine_is_resolved_once() {
    for ports in all_pairs().await {
        let now = stored_for_listing(&ports).await;
        let store = &ports.store;
        assert!(
            store
                .resolve_quarantine("l-quarantined", r#"{"released_as":"k"}"#, now)
                .await
                .unwrap(),
            "{}",
            ports.name
        );
        let released = store.get("l-quarantined").await.unwrap().unwrap();
        assert_eq!(released.status, Status::Processed, "{}", ports.name);
        assert_eq!(released.detail.as_deref(), Some(r#"{"released_as":"k"}"#));
        assert!(!store
            .resolve_quarantine("l-quarantined", "x", now)
            .await
            .unwrap());
        assert!(!store.resolve_quarantine("l-new", "x", now).await.unwrap());
        let quarantined = EventFilter {
            status: Some(Status::Quarantined),
            ..listing(now)
        };
        assert!(
            store.list(&quarantined).await.unwrap().is_empty(),
            "{}",
            ports.name
        );
    }
}

/// A listing that stops at its limit, or filters out most of what it reads, still gives the
/// newest matching records in order — across every shard and page of the listing index.
#[tokio::test]
async fn a_limited_or_filtered_listing_gives_the_newest_matching_records() {
    for ports in all_pairs().await {
        let now = ports.now();
        for n in 0..60 {
            let record = Record {
                tenant: format!("gym-{}", n % 3),
                received_at_ms: now - 1000 * (60 - n),
                ..ports.record(&format!("many-{n:02}"), &format!("a{n}"))
            };
            ports.store.put_new(&record).await.unwrap();
        }
        let newest = |limit: usize, tenant: Option<&str>| EventFilter {
            providers: vec!["egym".into()],
            tenant: tenant.map(str::to_string),
            limit,
            ..listing(now)
        };
        let expected = |limit: usize, step: usize| -> Vec<String> {
            (0..60)
                .rev()
                .filter(|n| n % 3 == step)
                .take(limit)
                .map(|n| format!("many-{n:02}"))
                .collect()
        };
        let five = ports.store.list(&newest(5, None)).await.unwrap();
        let all_of_five: Vec<String> = (55..60).rev().map(|n| format!("many-{n:02}")).collect();
        assert_eq!(keys(&five), all_of_five, "{}: the five newest", ports.name);
        let one_tenant = ports.store.list(&newest(7, Some("gym-1"))).await.unwrap();
        assert_eq!(
            keys(&one_tenant),
            expected(7, 1),
            "{}: filtered",
            ports.name
        );
    }
}

/// Each item of a split event is counted done once, however often it is told; failed ones too.
#[tokio::test]
async fn an_item_is_counted_done_once() {
    for ports in all_pairs().await {
        let (store, name) = (&ports.store, ports.name);
        let parent = unique_name("split");
        let done = |done, failed| ItemsDone { done, failed };
        assert_eq!(
            store
                .item_done(&parent, 0, false, 4_000_000_000)
                .await
                .unwrap(),
            done(1, 0),
            "{name}"
        );
        assert_eq!(
            store
                .item_done(&parent, 0, false, 4_000_000_000)
                .await
                .unwrap(),
            done(1, 0),
            "{name}: again"
        );
        assert_eq!(
            store
                .item_done(&parent, 2, true, 4_000_000_000)
                .await
                .unwrap(),
            done(2, 1),
            "{name}"
        );
        assert_eq!(
            store
                .item_done(&parent, 2, true, 4_000_000_000)
                .await
                .unwrap(),
            done(2, 1),
            "{name}: again"
        );
        let other = unique_name("split");
        assert_eq!(
            store
                .item_done(&other, 0, false, 4_000_000_000)
                .await
                .unwrap(),
            done(1, 0),
            "{name}: apart"
        );
    }
}

/// A delivery naming an id too long for a DynamoDB key (the `by_subject` index's: 2,048 bytes),
/// or whose dedup key escaping makes long, is stored on every adapter under the same key and
/// subject, both bounded, and erasing the person reaches it; a tenant id that would make every
/// key too long is refused when the configuration is loaded, named by its place, not its value.
#[tokio::test]
async fn keys_and_subjects_too_long_for_dynamodb_are_bounded_alike_on_every_adapter() {
    use webhook_core::key::{subject_of, MAX_KEY_BYTES, MAX_TENANT_ID_BYTES};
    let tenants = |id: &str| {
        let document =
            serde_json::json!({"tenants": [{"id": id, "webhook_secrets": ["long-ids"]}]});
        webhook_core::tenants::TenantDirectory::from_json(&document.to_string())
    };
    let too_long = "t".repeat(MAX_TENANT_ID_BYTES + 1);
    let refused = tenants(&too_long).unwrap_err().to_string();
    assert!(
        refused.contains("tenant 1 ") && !refused.contains(&too_long),
        "{refused}"
    );

    let tenant = "t".repeat(MAX_TENANT_ID_BYTES);
    let account = "a".repeat(3000);
    let bodies = [
        format!(r#"{{"accountId":"{account}","timestamp":1,"type":"GYM_CHECKIN"}}"#),
        format!(
            r#"{{"accountId":"{}","timestamp":{},"type":"{}"}}"#,
            "b".repeat(200),
            "9".repeat(200),
            "#".repeat(200)
        ),
    ];
    let subject = subject_of("egym", &tenant, &format!("account:{account}"));
    assert!(subject.len() <= MAX_KEY_BYTES, "{}", subject.len());
    let mut keys_seen = Vec::new();
    for ports in all_pairs().await {
        let name = ports.name;
        let ingest = webhook_core::Ingest::new(
            webhook_core::providers::by_name("egym").unwrap(),
            tenants(&tenant).unwrap(),
            webhook_core::ports::Ports {
                store: ports.store.clone(),
                queue: ports.queue.clone(),
                outbox: ports.outbox.clone(),
                pacer: ports.pacer.clone(),
                sightings: ports.sightings.clone(),
                clock: ports.clock.clone(),
            },
            webhook_core::IngestSettings::default(),
        );
        let mut keys = Vec::new();
        for body in &bodies {
            let request = || tests::post("egym", &[("x-api-key", "long-ids")], body);
            let response = ingest.handle(request()).await;
            let answer = tests::response_json(&response);
            assert_eq!(response.status(), 202, "{name}: {answer}");
            let key = answer["id"].as_str().unwrap().to_string();
            assert!(key.len() <= MAX_KEY_BYTES, "{name}: {}", key.len());
            let copy = ingest.handle(request()).await;
            assert_eq!(copy.status(), 200, "{name}: a copy is a duplicate");
            keys.push(key);
        }
        let record = ports.store.get(&keys[0]).await.unwrap().unwrap();
        assert_eq!(record.subject, subject, "{name}");
        let expires = ports.now() / 1000 + 3600;
        let erased = ports.store.erase_subject(&subject, ports.now(), expires);
        assert_eq!(erased.await.unwrap().records, 1, "{name}");
        keys_seen.push(keys);
    }
    assert!(
        keys_seen.windows(2).all(|pair| pair[0] == pair[1]),
        "the same keys on every adapter: {keys_seen:?}"
    );
}

/// Records still unfinished a day after they came are listed as stuck (from an index of their
/// own, not a scan), and the reconciler may put each back on its way once in its life: a
/// `QUEUED` one or one whose processing lease ended, never one being worked on or finished.
#[tokio::test]
async fn stuck_records_are_listed_and_put_back_once() {
    for ports in all_pairs().await {
        let name = ports.name;
        let store = &ports.store;
        let now = ports.now();
        let day = 86_400_000;
        let old = now - 2 * day;
        for key in ["s-queued", "s-lapsed", "s-working", "s-done", "s-received"] {
            let record = Record {
                expires_at: now / 1000 + 3600,
                ..record_at(old, key, key)
            };
            store.put_new(&record).await.unwrap();
        }
        let recent = record_at(now - 1000, "s-recent", "s-recent");
        store.put_new(&recent).await.unwrap();
        for key in ["s-queued", "s-recent"] {
            store.mark_queued(key).await.unwrap();
        }
        let claimed = |key, lease| store.claim(key, now, lease);
        assert!(matches!(
            claimed("s-lapsed", now - 1).await.unwrap(),
            Claim::Claimed(_)
        ));
        assert!(matches!(
            claimed("s-working", now + day).await.unwrap(),
            Claim::Claimed(_)
        ));
        assert!(matches!(
            claimed("s-done", now + 1000).await.unwrap(),
            Claim::Claimed(_)
        ));
        let done = Outcome::Processed { detail: None };
        assert!(store
            .finish("s-done", now + 1000, &done, now)
            .await
            .unwrap());

        let stuck = EventFilter {
            until_ms: now - day,
            unfinished_only: true,
            ..listing(now)
        };
        let mut listed = keys(&store.list(&stuck).await.unwrap())
            .into_iter()
            .map(str::to_string)
            .collect::<Vec<_>>();
        listed.sort();
        assert_eq!(
            listed,
            ["s-lapsed", "s-queued", "s-received", "s-working"],
            "{name}"
        );

        let lease = now + 60_000;
        for (key, expected) in [
            ("s-queued", true),
            ("s-queued", false),
            ("s-lapsed", true),
            ("s-working", false),
            ("s-done", false),
            ("s-received", false),
            ("missing", false),
        ] {
            let requeued = store.requeue_stuck(key, now, lease).await.unwrap();
            assert_eq!(requeued, expected, "{name}: {key}");
        }
        let requeued = store.get("s-queued").await.unwrap().unwrap();
        assert_eq!(requeued.status, Status::Received, "{name}");
        let pending = store.pending(lease + 1, 100).await.unwrap();
        let pending: Vec<&str> = pending.iter().map(|p| p.message.key.as_str()).collect();
        assert!(
            pending.contains(&"s-queued") && pending.contains(&"s-lapsed"),
            "{name}: the sweeper sends them if the reconciler's send fails: {pending:?}"
        );
        // Claimed and back in the queue (a retry), it still cannot be put back a second time.
        assert!(matches!(
            claimed("s-queued", now + 1000).await.unwrap(),
            Claim::Claimed(_)
        ));
        let retry = Outcome::Retry {
            reason: "503".into(),
        };
        assert!(store
            .finish("s-queued", now + 1000, &retry, now)
            .await
            .unwrap());
        assert!(
            !store.requeue_stuck("s-queued", now, lease).await.unwrap(),
            "{name}"
        );
    }
}

/// A replay starts the record over: what it comes to this time is all it says — a replay that
/// fails shows FAILED with its reason, not the detail and processed time of the time before.
#[tokio::test]
async fn a_replay_starts_the_record_over() {
    for ports in all_pairs().await {
        let name = ports.name;
        let store = &ports.store;
        let now = ports.now();
        store
            .put_new(&record_at(now, "r-over", "r-over"))
            .await
            .unwrap();
        assert!(matches!(
            store.claim("r-over", now, now + 1000).await.unwrap(),
            Claim::Claimed(_)
        ));
        let fetched = Outcome::Processed {
            detail: Some(r#"{"name":"before"}"#.into()),
        };
        assert!(store
            .finish("r-over", now + 1000, &fetched, now)
            .await
            .unwrap());
        assert!(store.reopen("r-over", now, now + 2000).await.unwrap());
        let reopened = store.get("r-over").await.unwrap().unwrap();
        assert_eq!(
            (
                reopened.status,
                reopened.detail.clone(),
                reopened.processed_at_ms
            ),
            (Status::Received, None, None),
            "{name}"
        );
        assert!(matches!(
            store.claim("r-over", now + 2001, now + 3000).await.unwrap(),
            Claim::Claimed(_)
        ));
        let refused = Outcome::Failed {
            reason: "404".into(),
        };
        assert!(store
            .finish("r-over", now + 3000, &refused, now + 2001)
            .await
            .unwrap());
        let failed = store.get("r-over").await.unwrap().unwrap();
        assert_eq!(failed.status, Status::Failed, "{name}");
        assert_eq!(failed.detail, None, "{name}: nothing of the time before");
        assert_eq!(failed.processed_at_ms, None, "{name}");
        assert_eq!(failed.last_error.as_deref(), Some("404"), "{name}");
    }
}
