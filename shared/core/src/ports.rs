//! The ports the core works through: the event store, the work queue, the outbox step that
//! moves a stored record into the queue, the pacer and the sightings (the types they speak are
//! in [`crate::model`]). Adapters (DynamoDB + SQS, SQLite, in memory)
//! implement them and pass one conformance suite (`tests/tests/suite/conformance.rs`).
//!
//! A record is created once per dedup key with a conditional put; a record still `RECEIVED`
//! carries a lease so that only its own delivery enqueues it until the lease ends, then the
//! sweeper. The processor claims
//! a record with a lease of its own (`PROCESSING`) and finishes it only while it holds that lease.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::SharedClock;

use crate::model::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Throttled, down, timed out: try again, or spill.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store refused this write for good (a value it cannot hold): retrying will not help.
    #[error("store refused the write: {0}")]
    Rejected(String),
}

/// Deliveries stored once and read back: what every role needs.
#[async_trait]
pub trait Deliveries: Send + Sync {
    /// Creates the record unless one with its key exists; then reports the existing one.
    async fn put_new(&self, record: &Record) -> Result<PutOutcome, StoreError>;
    async fn get(&self, key: &str) -> Result<Option<Record>, StoreError>;
}

/// The way from the store to the queue (the outbox): leases on `RECEIVED` records, marking
/// them queued, the ones whose lease ended. Ingest and the sweeper.
#[async_trait]
pub trait Handover: Send + Sync {
    /// Takes over a `RECEIVED` record whose lease (as seen) has expired. False if someone else did.
    async fn take_over(
        &self,
        key: &str,
        seen_lease_until_ms: i64,
        new_lease_until_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Ends the lease of a `RECEIVED` record now, so the sweeper takes it over at once.
    async fn release(&self, key: &str, now_ms: i64) -> Result<(), StoreError>;
    /// `RECEIVED` -> `QUEUED`. Leaves the record alone if the processor already moved it on.
    async fn mark_queued(&self, key: &str) -> Result<(), StoreError>;
    /// `RECEIVED` records whose lease ended before `now_ms` (stored but maybe never queued),
    /// oldest lease first, at most `limit`. Served by an index, never a scan.
    async fn pending(&self, now_ms: i64, limit: usize) -> Result<Vec<Pending>, StoreError>;
}

/// Processing a record under a claim: claim, finish, count a split event's items. The
/// processor.
#[async_trait]
pub trait Claims: Send + Sync {
    /// Claims a `RECEIVED`/`QUEUED` record (or one whose processing lease expired) for processing.
    async fn claim(&self, key: &str, now_ms: i64, lease_until_ms: i64)
        -> Result<Claim, StoreError>;
    /// Ends a claim, writing the record's `history` with it where one is given (its attempts,
    /// oldest first, at most [`HISTORY_KEPT`]; `None` leaves them as they are). False if the
    /// lease was lost (another processor took over): nothing written.
    async fn finish_with(
        &self,
        key: &str,
        lease_until_ms: i64,
        outcome: &Outcome,
        now_ms: i64,
        history: Option<&[Tried]>,
    ) -> Result<bool, StoreError>;
    /// [`Claims::finish_with`], writing `history`.
    async fn finish_noted(
        &self,
        key: &str,
        lease_until_ms: i64,
        outcome: &Outcome,
        now_ms: i64,
        history: &[Tried],
    ) -> Result<bool, StoreError> {
        self.finish_with(key, lease_until_ms, outcome, now_ms, Some(history))
            .await
    }
    /// [`Claims::finish_with`], the attempts left as they are.
    async fn finish(
        &self,
        key: &str,
        lease_until_ms: i64,
        outcome: &Outcome,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.finish_with(key, lease_until_ms, outcome, now_ms, None)
            .await
    }
    /// Notes that item `item` of the record `parent` (an event split into items, each
    /// processed on its own) is done — `failed` if it ended `FAILED` — once however often it
    /// is told; kept until `expires_at` (epoch seconds). Returns how many of the parent's items
    /// are done now, and how many of those failed.
    async fn item_done(
        &self,
        parent: &str,
        item: u32,
        failed: bool,
        expires_at: i64,
    ) -> Result<ItemsDone, StoreError>;
}

/// Erasure by person: tombstones, links from records to the people they name, emptying
/// records. The processor and operators.
#[async_trait]
pub trait Erasing: Send + Sync {
    /// Leaves a tombstone for the subject (kept until `tombstone_expires_at`, epoch seconds),
    /// then removes raw bodies and details of every record of it and of every record linked
    /// to it ([`Erasing::link_persons`]); returns what it emptied. Served by an index, never a scan.
    async fn erase_subject(
        &self,
        subject: &str,
        now_ms: i64,
        tombstone_expires_at: i64,
    ) -> Result<Erased, StoreError>;
    /// The records [`Erasing::erase_subject`] would empty: those whose subject is `subject` and
    /// those linked to it ([`Erasing::link_persons`]); their keys, sorted, without erasing any.
    async fn subject_records(&self, subject: &str) -> Result<Vec<String>, StoreError>;
    /// Notes that the record `key` names each of `persons` (subjects other than its own), so
    /// that erasing any of them reaches it; kept until `expires_at` (epoch seconds).
    async fn link_persons(
        &self,
        key: &str,
        persons: &[String],
        expires_at: i64,
    ) -> Result<(), StoreError>;
    /// When the subject was last erased, if it was.
    async fn erased_at(&self, subject: &str) -> Result<Option<i64>, StoreError>;
    /// Removes one record's raw body and detail; says what it emptied.
    async fn erase_record(&self, key: &str, now_ms: i64) -> Result<Erased, StoreError>;
}

/// What operators do to records: list, replay, put stuck ones back, resolve a released
/// quarantine. The admin command line, the dev server's pages, the reconciler.
#[async_trait]
pub trait Operating: Send + Sync {
    /// Records matching `filter`, newest first, at most `filter.limit`, without body and
    /// detail. Served by indexes (by provider and day; failed and quarantined ones by status),
    /// never a scan.
    async fn list(&self, filter: &EventFilter) -> Result<Vec<Record>, StoreError>;
    /// Puts a record back on its way to the processor for a replay: `RECEIVED` under a new
    /// lease, its last error, detail and processed time cleared (what it comes to this time is
    /// all it will say). False if it is quarantined or missing, or someone holds a
    /// live lease on it.
    async fn reopen(&self, key: &str, now_ms: i64, lease_until_ms: i64)
        -> Result<bool, StoreError>;
    /// Puts a stuck record back on its way to the processor, once in its life: `RECEIVED`
    /// under a new lease, its last error kept. False if it is not `QUEUED` nor `PROCESSING`
    /// under an ended lease, or was put back so before.
    async fn requeue_stuck(
        &self,
        key: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<bool, StoreError>;
    /// A quarantined record whose delivery was released under its real key: `PROCESSED` with
    /// `note` as its detail. False if it is not quarantined (released already).
    async fn resolve_quarantine(
        &self,
        key: &str,
        note: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
}

/// Everything a store does; each role needs only some of it, as its IAM policy in
/// template.yaml says: ingest [`Deliveries`] and [`Handover`]; the sweeper [`Handover`] (and
/// [`Operating::requeue_stuck`] for stuck records); the processor [`Deliveries`], [`Claims`]
/// and [`Erasing`]; operators all of them. An adapter implements the five traits and is a
/// `Store`; a part that needs only one role takes that trait ([`crate::outbox::SendThenMark`]
/// takes a [`Handover`]).
pub trait Store: Deliveries + Handover + Claims + Erasing + Operating {}

impl<T: Deliveries + Handover + Claims + Erasing + Operating + ?Sized> Store for T {}

#[derive(Debug, thiserror::Error)]
#[error("queue unavailable: {0}")]
pub struct QueueError(pub String);

#[async_trait]
pub trait Queue: Send + Sync {
    async fn send(&self, message: &QueueMessage) -> Result<(), QueueError>;
    /// Sends a message that becomes visible only after `delay_seconds` (at most 900).
    async fn send_later(
        &self,
        message: &QueueMessage,
        delay_seconds: u32,
    ) -> Result<(), QueueError>;
    /// Makes a received message visible again only after `seconds` (a provider's Retry-After).
    async fn retry_after(&self, receipt_handle: &str, seconds: u32) -> Result<(), QueueError>;
}

/// Receiving side of a queue, for consumers that poll it themselves (the local dev server,
/// tests; in AWS, Lambda's SQS event source does this).
#[async_trait]
pub trait QueueConsumer: Send + Sync {
    /// Up to `max` visible messages, each hidden for `visibility` after this receive.
    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<InboundMessage>, QueueError>;
    /// Deletes received messages (what a consumer has finished with).
    async fn delete_all(&self, receipt_handles: &[String]) -> Result<(), QueueError>;
}

/// The outbox step: puts the message of a stored `RECEIVED` record, whose lease the caller
/// holds, into the queue and marks the record `QUEUED`. If the message could not be queued
/// the lease is released, so that the sweeper takes the record over.
/// Each adapter pair implements it as its store and queue allow: send then mark for SQS and
/// DynamoDB ([`crate::outbox::SendThenMark`]), one transaction for SQLite.
#[async_trait]
pub trait Outbox: Send + Sync {
    async fn enqueue(&self, message: &QueueMessage) -> Result<(), QueueError>;
    /// The webhook's own send, right after it stored the record: where marking the record
    /// `QUEUED` would cost a third round trip, the record may stay `RECEIVED` under its lease —
    /// the sweeper re-sends (and marks) whatever nobody claimed once that lease is over. A
    /// failed send releases the lease, as [`Outbox::enqueue`] does.
    async fn send_fresh(&self, message: &QueueMessage) -> Result<(), QueueError> {
        self.enqueue(message).await
    }
}

/// Paces the calls to a provider's API across every processor that calls it (concurrent
/// Lambdas, the dev server's workers): each key's calls are spaced an interval apart, as the
/// provider allows, by a shared "next free slot" kept in the store. It also holds what an
/// operator has paused.
#[async_trait]
pub trait Pacer: Send + Sync {
    /// Holds (or, `paused` false, releases) processing for `scope`: a provider's name, or
    /// `<provider>#<tenant>`.
    async fn set_paused(&self, scope: &str, paused: bool, now_ms: i64) -> Result<(), StoreError>;

    /// What is paused now, by scope.
    async fn paused(&self) -> Result<Vec<Paused>, StoreError>;

    /// Reserves `calls` consecutive slots of `key`, `interval_ms` apart, the first at or
    /// after now — if the first can be within `max_wait_ms` of now; else reserves no call but
    /// a time to come back (see [`next_slot`]). "Now" is read from `clock` when the store
    /// decides, not when the caller asked: a slot granted in the past would be called late,
    /// together with the next one.
    async fn reserve(
        &self,
        key: &str,
        interval_ms: i64,
        calls: u32,
        clock: &SharedClock,
        max_wait_ms: i64,
    ) -> Result<Reservation, StoreError>;
}

/// What the processors have seen of the providers' contracts, kept once per provider, tenant
/// and signal.
#[async_trait]
pub trait Sightings: Send + Sync {
    /// Notes `sighting` (its `first_ms` is when it was seen now): true if its signal was not
    /// kept for its provider and tenant — then it is kept whole; else its last time, example
    /// and expiry become this one's.
    async fn sight(&self, sighting: &Sighting) -> Result<bool, StoreError>;

    /// Every sighting of `provider` (or of every provider) still kept at `now_ms`, by
    /// provider, tenant and signal.
    async fn sightings(
        &self,
        provider: Option<&str>,
        now_ms: i64,
    ) -> Result<Vec<Sighting>, StoreError>;
}

/// The ports one deployment works through, with the clock they share.
#[derive(Clone)]
pub struct Ports {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub outbox: Arc<dyn Outbox>,
    pub pacer: Arc<dyn Pacer>,
    pub sightings: Arc<dyn Sightings>,
    pub clock: SharedClock,
}
