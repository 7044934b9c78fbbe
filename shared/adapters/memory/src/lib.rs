//! The store and queue ports in memory, with the semantics of the real ones: conditional puts
//! and leases as in DynamoDB, visibility timeouts, receive counts and a dead-letter list as in
//! SQS with a redrive policy. Time comes from the injected clock, so tests advance it instead
//! of sleeping. For tests and benchmarks; nothing here survives the process.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use webhook_core::clock::{after, SharedClock};
use webhook_core::model::{
    next_slot, Claim, Erased, EventFilter, Existing, InboundMessage, ItemsDone, Outcome, PaceState,
    Paused, Pending, PutOutcome, QueueMessage, Record, Reservation, Sighting, Status, Tried,
    MAX_DELAY_SECONDS, MAX_VISIBILITY_SECONDS,
};
use webhook_core::outbox::SendThenMark;
use webhook_core::ports::{
    Claims, Deliveries, Erasing, Handover, Operating, Pacer, Ports, Queue, QueueConsumer,
    QueueError, Sightings, StoreError,
};

/// Records by key, the tombstones of erased subjects and the persons records name.
#[derive(Default)]
pub struct MemoryStore {
    records: Mutex<HashMap<String, Record>>,
    tombstones: Mutex<HashMap<String, i64>>,
    /// Record keys by the person (subject) they name.
    links: Mutex<HashMap<String, std::collections::BTreeSet<String>>>,
    /// Items done, by the record they are items of: item -> whether it failed.
    items: Mutex<HashMap<String, std::collections::BTreeMap<u32, bool>>>,
    /// Records the reconciler put back on their way once (`requeue_stuck`).
    requeued: Mutex<std::collections::HashSet<String>>,
}

impl MemoryStore {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Record>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every record, for tests and benchmarks that look inside.
    pub fn records(&self) -> Vec<Record> {
        self.lock().values().cloned().collect()
    }

    /// Forgets every record that `keep` refuses (benchmarks bound their memory with it).
    pub fn retain(&self, keep: impl Fn(&Record) -> bool) {
        self.lock().retain(|_, record| keep(record));
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

#[async_trait]
impl Deliveries for MemoryStore {
    async fn put_new(&self, record: &Record) -> Result<PutOutcome, StoreError> {
        let mut records = self.lock();
        if let Some(existing) = records.get(&record.key) {
            return Ok(PutOutcome::Exists(Existing {
                status: existing.status,
                lease_until_ms: existing.lease_until_ms,
            }));
        }
        records.insert(record.key.clone(), record.clone());
        Ok(PutOutcome::Created)
    }
    async fn get(&self, key: &str) -> Result<Option<Record>, StoreError> {
        Ok(self.lock().get(key).cloned())
    }
}

#[async_trait]
impl Handover for MemoryStore {
    async fn take_over(
        &self,
        key: &str,
        seen_lease_until_ms: i64,
        new_lease_until_ms: i64,
    ) -> Result<bool, StoreError> {
        Ok(match self.lock().get_mut(key) {
            Some(record)
                if record.status == Status::Received
                    && record.lease_until_ms == seen_lease_until_ms =>
            {
                record.lease_until_ms = new_lease_until_ms;
                true
            }
            _ => false,
        })
    }
    async fn release(&self, key: &str, now_ms: i64) -> Result<(), StoreError> {
        if let Some(record) = self.lock().get_mut(key) {
            if record.status == Status::Received {
                record.lease_until_ms = now_ms;
            }
        }
        Ok(())
    }
    async fn mark_queued(&self, key: &str) -> Result<(), StoreError> {
        if let Some(record) = self.lock().get_mut(key) {
            if record.status == Status::Received {
                record.status = Status::Queued;
            }
        }
        Ok(())
    }
    async fn pending(&self, now_ms: i64, limit: usize) -> Result<Vec<Pending>, StoreError> {
        let mut pending: Vec<Pending> = self
            .lock()
            .values()
            .filter(|r| r.status == Status::Received && r.lease_until_ms < now_ms)
            .map(|r| Pending {
                message: r.message(),
                lease_until_ms: r.lease_until_ms,
            })
            .collect();
        pending.sort_by_key(|p| p.lease_until_ms);
        pending.truncate(limit);
        Ok(pending)
    }
}

#[async_trait]
impl Claims for MemoryStore {
    async fn claim(
        &self,
        key: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<Claim, StoreError> {
        let mut records = self.lock();
        let Some(record) = records.get_mut(key) else {
            return Ok(Claim::Missing);
        };
        match record.status {
            Status::Processing if record.lease_until_ms >= now_ms => Ok(Claim::Busy),
            Status::Received | Status::Queued | Status::Processing => {
                record.status = Status::Processing;
                record.lease_until_ms = lease_until_ms;
                record.attempts += 1;
                Ok(Claim::Claimed(Box::new(record.clone())))
            }
            finished => Ok(Claim::Finished(finished)),
        }
    }
    async fn finish_with(
        &self,
        key: &str,
        lease_until_ms: i64,
        outcome: &Outcome,
        now_ms: i64,
        history: Option<&[Tried]>,
    ) -> Result<bool, StoreError> {
        let mut records = self.lock();
        let Some(record) = records.get_mut(key) else {
            return Ok(false);
        };
        if record.status != Status::Processing || record.lease_until_ms != lease_until_ms {
            return Ok(false);
        }
        record.status = outcome.status();
        record.lease_until_ms = 0;
        record.last_error = outcome.error().map(str::to_string);
        if let Some(detail) = outcome.detail() {
            record.detail = Some(detail.to_string());
        }
        if let Some(at) = outcome.processed_at(now_ms) {
            record.processed_at_ms = Some(at);
        }
        if let Some(history) = history {
            record.history = history.to_vec();
        }
        Ok(true)
    }
    async fn item_done(
        &self,
        parent: &str,
        item: u32,
        failed: bool,
        _expires_at: i64,
    ) -> Result<ItemsDone, StoreError> {
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        let done = items.entry(parent.to_string()).or_default();
        *done.entry(item).or_default() |= failed;
        Ok(ItemsDone {
            done: done.len(),
            failed: done.values().filter(|failed| **failed).count(),
        })
    }
}

#[async_trait]
impl Erasing for MemoryStore {
    async fn erase_subject(
        &self,
        subject: &str,
        now_ms: i64,
        _tombstone_expires_at: i64,
    ) -> Result<Erased, StoreError> {
        self.tombstones
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(subject.to_string(), now_ms);
        let reached = self.subject_records(subject).await?;
        let mut erased = Erased::default();
        for (key, record) in self.lock().iter_mut() {
            if reached.binary_search(key).is_ok() {
                erased += erase(record, now_ms);
            }
        }
        Ok(erased)
    }
    async fn subject_records(&self, subject: &str) -> Result<Vec<String>, StoreError> {
        let linked = self
            .links
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(subject)
            .cloned()
            .unwrap_or_default();
        let mut keys: Vec<String> = self
            .lock()
            .values()
            .filter(|record| record.subject == subject || linked.contains(&record.key))
            .map(|record| record.key.clone())
            .collect();
        keys.sort_unstable();
        Ok(keys)
    }
    async fn link_persons(
        &self,
        key: &str,
        persons: &[String],
        _expires_at: i64,
    ) -> Result<(), StoreError> {
        let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        for person in persons {
            links
                .entry(person.clone())
                .or_default()
                .insert(key.to_string());
        }
        Ok(())
    }
    async fn erased_at(&self, subject: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .tombstones
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(subject)
            .copied())
    }
    async fn erase_record(&self, key: &str, now_ms: i64) -> Result<Erased, StoreError> {
        Ok(self
            .lock()
            .get_mut(key)
            .map(|record| erase(record, now_ms))
            .unwrap_or_default())
    }
}

#[async_trait]
impl Operating for MemoryStore {
    async fn list(&self, filter: &EventFilter) -> Result<Vec<Record>, StoreError> {
        let found: Vec<Record> = self
            .lock()
            .values()
            .filter(|record| filter.matches(record))
            .map(|record| Record {
                body: String::new(),
                detail: None,
                ..record.clone()
            })
            .collect();
        Ok(filter.newest(found))
    }
    async fn reopen(
        &self,
        key: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut records = self.lock();
        let Some(record) = records.get_mut(key) else {
            return Ok(false);
        };
        let reopenable = match record.status {
            Status::Quarantined => false,
            Status::Received | Status::Processing => record.lease_until_ms < now_ms,
            Status::Queued | Status::Processed | Status::Failed => true,
        };
        if reopenable {
            record.status = Status::Received;
            record.lease_until_ms = lease_until_ms;
            record.last_error = None;
            record.detail = None;
            record.processed_at_ms = None;
        }
        Ok(reopenable)
    }
    async fn requeue_stuck(
        &self,
        key: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut records = self.lock();
        let Some(record) = records.get_mut(key) else {
            return Ok(false);
        };
        let stuck = match record.status {
            Status::Queued => true,
            Status::Processing => record.lease_until_ms < now_ms,
            _ => false,
        };
        let mut requeued = self.requeued.lock().unwrap_or_else(|e| e.into_inner());
        if !stuck || !requeued.insert(key.to_string()) {
            return Ok(false);
        }
        record.status = Status::Received;
        record.lease_until_ms = lease_until_ms;
        Ok(true)
    }
    async fn resolve_quarantine(
        &self,
        key: &str,
        note: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        Ok(match self.lock().get_mut(key) {
            Some(record) if record.status == Status::Quarantined => {
                record.status = Status::Processed;
                record.detail = Some(note.to_string());
                record.processed_at_ms = Some(now_ms);
                true
            }
            _ => false,
        })
    }
}

fn erase(record: &mut Record, now_ms: i64) -> Erased {
    let erased = Erased::record(!record.body.is_empty(), record.detail.is_some());
    record.body.clear();
    record.detail = None;
    record.erased_at_ms = Some(now_ms);
    erased
}

struct StoredMessage {
    body: String,
    visible_at_ms: i64,
    receive_count: u32,
    receipt: Option<String>,
}

#[derive(Default)]
struct Messages {
    next_id: u64,
    /// By id, so that receiving takes the oldest visible first.
    waiting: BTreeMap<u64, StoredMessage>,
    dead: Vec<QueueMessage>,
}

/// A queue with SQS's redrive semantics: a message received `max_receives` times moves to the
/// dead letters on the next receive instead of being delivered again.
pub struct MemoryQueue {
    messages: Mutex<Messages>,
    max_receives: u32,
    clock: SharedClock,
}

impl MemoryQueue {
    pub fn new(max_receives: u32, clock: SharedClock) -> Self {
        MemoryQueue {
            messages: Mutex::new(Messages::default()),
            max_receives,
            clock,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Messages> {
        self.messages.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Messages moved to the dead letters, oldest first.
    pub fn dead_letters(&self) -> Vec<QueueMessage> {
        self.lock().dead.clone()
    }

    /// Messages waiting (visible or not).
    pub fn len(&self) -> usize {
        self.lock().waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().waiting.is_empty()
    }

    /// Forgets every waiting message (benchmarks bound their memory with it).
    pub fn clear(&self) {
        self.lock().waiting.clear();
    }
}

fn receipt_id(receipt: &str) -> Option<u64> {
    receipt.split(':').next()?.parse().ok()
}

#[async_trait]
impl Queue for MemoryQueue {
    async fn send(&self, message: &QueueMessage) -> Result<(), QueueError> {
        self.send_later(message, 0).await
    }

    async fn send_later(
        &self,
        message: &QueueMessage,
        delay_seconds: u32,
    ) -> Result<(), QueueError> {
        let body = serde_json::to_string(message).map_err(|e| QueueError(e.to_string()))?;
        let now = self.clock.now_ms();
        let visible_at_ms = now + i64::from(delay_seconds.min(MAX_DELAY_SECONDS)) * 1000;
        let mut messages = self.lock();
        messages.next_id += 1;
        let id = messages.next_id;
        messages.waiting.insert(
            id,
            StoredMessage {
                body,
                visible_at_ms,
                receive_count: 0,
                receipt: None,
            },
        );
        Ok(())
    }

    async fn retry_after(&self, receipt_handle: &str, seconds: u32) -> Result<(), QueueError> {
        let now = self.clock.now_ms();
        let mut messages = self.lock();
        if let Some(message) =
            receipt_id(receipt_handle).and_then(|id| messages.waiting.get_mut(&id))
        {
            if message.receipt.as_deref() == Some(receipt_handle) {
                message.visible_at_ms = now + i64::from(seconds.min(MAX_VISIBILITY_SECONDS)) * 1000;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl QueueConsumer for MemoryQueue {
    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<InboundMessage>, QueueError> {
        let now = self.clock.now_ms();
        let mut messages = self.lock();
        let due: Vec<u64> = messages
            .waiting
            .iter()
            .filter(|(_, m)| m.visible_at_ms <= now)
            .map(|(id, _)| *id)
            .take(max)
            .collect();
        let mut received = Vec::new();
        for id in due {
            let Some(message) = messages.waiting.get_mut(&id) else {
                continue;
            };
            if message.receive_count >= self.max_receives {
                let body = messages.waiting.remove(&id).map(|m| m.body);
                if let Some(dead) = body.and_then(|b| serde_json::from_str(&b).ok()) {
                    messages.dead.push(dead);
                }
                continue;
            }
            message.receive_count += 1;
            message.visible_at_ms = after(now, visibility);
            let receipt = format!("{id}:{}:{now}", message.receive_count);
            message.receipt = Some(receipt.clone());
            received.push(InboundMessage {
                id: id.to_string(),
                body: message.body.clone(),
                receive_count: message.receive_count,
                receipt_handle: Some(receipt),
            });
        }
        Ok(received)
    }

    async fn delete_all(&self, receipt_handles: &[String]) -> Result<(), QueueError> {
        let mut messages = self.lock();
        for receipt in receipt_handles {
            if let Some(id) = receipt_id(receipt) {
                if messages.waiting.get(&id).and_then(|m| m.receipt.as_deref()) == Some(receipt) {
                    messages.waiting.remove(&id);
                }
            }
        }
        Ok(())
    }
}

/// Each key's next free slot, and what is paused.
#[derive(Default)]
pub struct MemoryPacer {
    pace: Mutex<HashMap<String, PaceState>>,
    paused: Mutex<std::collections::BTreeMap<String, i64>>,
}

#[async_trait]
impl Pacer for MemoryPacer {
    async fn set_paused(&self, scope: &str, paused: bool, now_ms: i64) -> Result<(), StoreError> {
        let mut held = self.paused.lock().unwrap_or_else(|e| e.into_inner());
        if paused {
            held.entry(scope.to_string()).or_insert(now_ms);
        } else {
            held.remove(scope);
        }
        Ok(())
    }

    async fn paused(&self) -> Result<Vec<Paused>, StoreError> {
        let held = self.paused.lock().unwrap_or_else(|e| e.into_inner());
        Ok(held
            .iter()
            .map(|(scope, since)| Paused {
                scope: scope.clone(),
                since_ms: *since,
            })
            .collect())
    }

    async fn reserve(
        &self,
        key: &str,
        interval_ms: i64,
        calls: u32,
        clock: &SharedClock,
        max_wait_ms: i64,
    ) -> Result<Reservation, StoreError> {
        let now_ms = clock.now_ms();
        let mut pace = self.pace.lock().unwrap_or_else(|e| e.into_inner());
        let seen = pace.get(key).copied().unwrap_or_default();
        let (reservation, after) = next_slot(seen, interval_ms, calls, now_ms, max_wait_ms);
        pace.insert(key.to_string(), after);
        Ok(reservation)
    }
}

/// Sightings in a map by provider, tenant and signal.
#[derive(Default)]
pub struct MemorySightings(Mutex<BTreeMap<(String, String, String), Sighting>>);

#[async_trait]
impl Sightings for MemorySightings {
    async fn sight(&self, sighting: &Sighting) -> Result<bool, StoreError> {
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let id = (
            sighting.provider.clone(),
            sighting.tenant.clone(),
            sighting.signal.clone(),
        );
        match seen.get_mut(&id) {
            Some(known) => {
                known.last_ms = sighting.first_ms;
                known.example_key.clone_from(&sighting.example_key);
                known.expires_at = sighting.expires_at;
                Ok(false)
            }
            None => {
                let first = Sighting {
                    last_ms: sighting.first_ms,
                    ..sighting.clone()
                };
                seen.insert(id, first);
                Ok(true)
            }
        }
    }

    async fn sightings(
        &self,
        provider: Option<&str>,
        now_ms: i64,
    ) -> Result<Vec<Sighting>, StoreError> {
        let seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        Ok(seen
            .values()
            .filter(|s| provider.is_none_or(|p| p == s.provider) && s.live_at(now_ms))
            .cloned()
            .collect())
    }
}

/// A store and a queue in memory, sharing one clock.
#[derive(Clone)]
pub struct Memory {
    pub store: Arc<MemoryStore>,
    pub queue: Arc<MemoryQueue>,
    pub ports: Ports,
}

impl Memory {
    pub fn new(max_receives: u32, clock: SharedClock) -> Memory {
        let store = Arc::new(MemoryStore::default());
        let queue = Arc::new(MemoryQueue::new(max_receives, clock.clone()));
        let ports = Ports {
            outbox: Arc::new(SendThenMark::new(
                store.clone(),
                queue.clone(),
                clock.clone(),
            )),
            store: store.clone(),
            queue: queue.clone(),
            pacer: Arc::new(MemoryPacer::default()),
            sightings: Arc::new(MemorySightings::default()),
            clock,
        };
        Memory {
            store,
            queue,
            ports,
        }
    }
}
