//! One conformance suite for the store and queue ports, run against both adapter pairs:
//! DynamoDB + SQS (local wire endpoint) and the embedded SQLite database. If the two drift
//! apart, one of them fails here.

use std::sync::Arc;
use std::time::Duration;

use e2e::{unique_name, Backend};
use shared::embedded::{Database, SqliteQueue, SqliteStore};
use shared::ingest::now_ms;
use shared::queue::{InboundMessage, Queue, QueueConsumer, QueueMessage, SqsQueue};
use shared::store::{Claim, Outcome, PutOutcome, Record, Status, Store};

const MAX_RECEIVES: u32 = 2;

struct Ports {
    name: &'static str,
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    consumer: Arc<dyn QueueConsumer>,
    dead_letters: Arc<dyn QueueConsumer>,
}

async fn both() -> Vec<Ports> {
    let backend = Backend::with_dead_letter_queue(MAX_RECEIVES).await;
    let sqs = Arc::new(backend.queue());
    let dead = Arc::new(SqsQueue::new(
        backend.sqs.clone(),
        backend.dead_letter_url.clone().unwrap(),
    ));
    let path = std::env::temp_dir().join(format!("{}.db", unique_name("conformance")));
    let database = Database::open(&path).unwrap();
    let sqlite_queue = Arc::new(SqliteQueue::new(database.clone(), MAX_RECEIVES));
    vec![
        Ports {
            name: "dynamodb+sqs",
            store: Arc::new(backend.store()),
            queue: sqs.clone(),
            consumer: sqs,
            dead_letters: dead,
        },
        Ports {
            name: "sqlite",
            store: Arc::new(SqliteStore::new(database.clone())),
            queue: sqlite_queue.clone(),
            consumer: sqlite_queue,
            dead_letters: Arc::new(DeadLetterTable(database)),
        },
    ]
}

/// The SQLite dead-letter table seen through the consumer port, like the SQS dead-letter queue.
struct DeadLetterTable(Database);

#[async_trait::async_trait]
impl QueueConsumer for DeadLetterTable {
    async fn receive(
        &self,
        _max: usize,
        _visibility: Duration,
    ) -> Result<Vec<InboundMessage>, shared::queue::QueueError> {
        Ok(self
            .0
            .dead_letters()
            .await?
            .into_iter()
            .map(|message| InboundMessage {
                id: message.key.clone(),
                body: serde_json::to_string(&message).unwrap(),
                receive_count: 0,
                receipt_handle: None,
            })
            .collect())
    }

    async fn delete(&self, _receipt_handle: &str) -> Result<(), shared::queue::QueueError> {
        Ok(())
    }
}

fn record(key: &str, entity: &str) -> Record {
    let now = now_ms();
    Record {
        key: key.into(),
        provider: "egym".into(),
        tenant: "gym-1".into(),
        event_type: "GYM_CHECKIN".into(),
        entity_id: entity.into(),
        body: r#"{"accountId":"a","name":"Grüße"}"#.into(),
        received_at_ms: now,
        status: Status::Received,
        lease_until_ms: now + 60_000,
        expires_at: now / 1000 + 3600,
        ..Record::default()
    }
}

impl Ports {
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
    }
}

#[tokio::test]
async fn conditional_put_reports_what_exists() {
    for ports in both().await {
        let original = record("k1", "a");
        let store = &ports.store;
        assert_eq!(
            store.put_new(&original).await.unwrap(),
            PutOutcome::Created,
            "{}",
            ports.name
        );
        let PutOutcome::Exists(existing) = store.put_new(&record("k1", "other")).await.unwrap()
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
    for ports in both().await {
        let store = &ports.store;
        let original = record("k2", "a");
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
        let now = now_ms();
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
    for ports in both().await {
        let store = &ports.store;
        assert_eq!(
            store.claim("none", 0, 1).await.unwrap(),
            Claim::Missing,
            "{}",
            ports.name
        );
        store.put_new(&record("k3", "a")).await.unwrap();
        store.mark_queued("k3").await.unwrap();
        let now = now_ms();
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

#[tokio::test]
async fn retry_requeues_and_failure_is_final() {
    for ports in both().await {
        let store = &ports.store;
        for key in ["retry", "fail"] {
            store.put_new(&record(key, key)).await.unwrap();
        }
        let now = now_ms();
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
    for ports in both().await {
        let store = &ports.store;
        let now = now_ms();
        let mut expired = record("p1", "a");
        expired.lease_until_ms = now - 5;
        let mut older = record("p0", "b");
        older.lease_until_ms = now - 50;
        let live = record("p2", "c");
        let mut queued = record("p3", "d");
        queued.lease_until_ms = now - 5;
        for r in [&expired, &older, &live, &queued] {
            store.put_new(r).await.unwrap();
        }
        store.mark_queued("p3").await.unwrap();
        let pending = store.pending(now, 10).await.unwrap();
        let keys: Vec<&str> = pending.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["p0", "p1"], "{}: oldest lease first", ports.name);
        assert_eq!(pending[1].provider, "egym", "{}", ports.name);
        assert_eq!(pending[1].entity_id, "a", "{}", ports.name);
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
            .map(|p| p.key)
            .collect();
        assert_eq!(keys, ["p1"], "{}", ports.name);
    }
}

#[tokio::test]
async fn erasure_reaches_every_record_of_the_subject_and_nothing_else() {
    for ports in both().await {
        let store = &ports.store;
        for (key, entity) in [("e1", "person"), ("e2", "person"), ("e3", "someone-else")] {
            store.put_new(&record(key, entity)).await.unwrap();
        }
        let subject = record("e1", "person").subject();
        assert_eq!(
            store.erase_subject(&subject, 42).await.unwrap(),
            2,
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

#[tokio::test]
async fn a_batch_delete_removes_exactly_the_messages_named() {
    for ports in both().await {
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
        tokio::time::sleep(Duration::from_millis(1300)).await;
        let again = ports.receive(Duration::from_secs(30)).await;
        assert_eq!(again.len(), 1, "{}", ports.name);
        assert_eq!(again[0].id, keep.id, "{}", ports.name);
    }
}

#[tokio::test]
async fn received_messages_stay_hidden_until_deleted_or_their_visibility_ends() {
    for ports in both().await {
        ports.send_keys(&["m1", "m2", "m3"]).await;
        let first = ports.receive(Duration::from_secs(30)).await;
        assert_eq!(first.len(), 3, "{}", ports.name);
        assert!(first.iter().all(|m| m.receive_count == 1), "{}", ports.name);
        let keys: Vec<String> = first.iter().map(key_of).collect();
        assert_eq!(keys.len(), 3);
        assert!(ports.receive(Duration::from_secs(30)).await.is_empty());
        for received in &first {
            ports
                .consumer
                .delete(received.receipt_handle.as_deref().unwrap())
                .await
                .unwrap();
        }

        ports.send_keys(&["m4"]).await;
        let once = ports.receive(Duration::from_secs(1)).await;
        assert_eq!(once.len(), 1, "{}", ports.name);
        tokio::time::sleep(Duration::from_millis(1300)).await;
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
    for ports in both().await {
        ports.queue.send(&message("dead")).await.unwrap();
        for attempt in 1..=MAX_RECEIVES {
            let received = ports.receive(Duration::from_secs(1)).await;
            assert_eq!(received.len(), 1, "{}: attempt {attempt}", ports.name);
            assert_eq!(received[0].receive_count, attempt, "{}", ports.name);
            tokio::time::sleep(Duration::from_millis(1200)).await;
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
    for ports in both().await {
        ports.queue.send(&message("later")).await.unwrap();
        let received = ports
            .consumer
            .receive(1, Duration::from_secs(1))
            .await
            .unwrap();
        ports
            .queue
            .retry_after(received[0].receipt_handle.as_deref().unwrap(), 5)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1300)).await;
        assert!(
            ports
                .consumer
                .receive(1, Duration::from_secs(1))
                .await
                .unwrap()
                .is_empty(),
            "{}",
            ports.name
        );
    }
}
