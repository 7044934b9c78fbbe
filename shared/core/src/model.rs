//! The model the core and its ports speak: records and their states, what a queue message
//! asks, how an attempt ends, what the pacer hands out, what a sighting is. Plain data and the
//! rules that belong to it; the traits the adapters implement are in [`crate::ports`].

use serde::{Deserialize, Serialize};

/// The longest a message can be delayed when sent (SQS's limit, kept by every queue).
pub const MAX_DELAY_SECONDS: u32 = 900;
/// The longest a received message can be hidden (SQS's limit, kept by every queue).
pub const MAX_VISIBILITY_SECONDS: u32 = 43_200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Status {
    #[default]
    /// Stored, not yet confirmed in the queue.
    Received,
    /// In the queue, waiting for the processor.
    Queued,
    Processing,
    Processed,
    Failed,
    /// Authentic but unreadable: kept as it came, never processed, visible to operators.
    Quarantined,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Received,
        Status::Queued,
        Status::Processing,
        Status::Processed,
        Status::Failed,
        Status::Quarantined,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Received => "RECEIVED",
            Status::Queued => "QUEUED",
            Status::Processing => "PROCESSING",
            Status::Processed => "PROCESSED",
            Status::Failed => "FAILED",
            Status::Quarantined => "QUARANTINED",
        }
    }

    pub fn parse(value: &str) -> Option<Status> {
        Status::ALL
            .into_iter()
            .find(|status| status.as_str() == value)
    }

    /// An operator has to look at records in this state (they get an index of their own).
    pub fn needs_attention(self) -> bool {
        matches!(self, Status::Failed | Status::Quarantined)
    }

    /// Done with: processing will not change it without an operator.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            Status::Processed | Status::Failed | Status::Quarantined
        )
    }
}

/// Which records an operator asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter {
    /// The providers to look at; the operations layer names every provider when none is given.
    pub providers: Vec<String>,
    pub tenant: Option<String>,
    pub status: Option<Status>,
    /// Received at or after, epoch milliseconds.
    pub since_ms: i64,
    /// Received before, epoch milliseconds.
    pub until_ms: i64,
    pub limit: usize,
    /// Records expired at this time (epoch milliseconds) are left out: DynamoDB deletes an
    /// expired item only within days, and what is past its retention is no longer ours to show.
    pub live_at_ms: i64,
    /// Only records not finished yet (`RECEIVED`, `QUEUED`, `PROCESSING`), whatever `status`
    /// says: the stuck ones, with `until_ms` a day ago (see `reconcile`).
    pub unfinished_only: bool,
}

impl EventFilter {
    pub fn matches(&self, record: &Record) -> bool {
        self.providers.contains(&record.provider)
            && self.tenant.as_ref().is_none_or(|t| *t == record.tenant)
            && self.status.is_none_or(|s| s == record.status)
            && record.received_at_ms >= self.since_ms
            && record.received_at_ms < self.until_ms
            && !record.expired_at(self.live_at_ms)
            && !(self.unfinished_only && record.status.is_finished())
    }
}

impl EventFilter {
    /// The records a listing answers: newest first (ties by key, descending), at most `limit`.
    pub fn newest(&self, mut records: Vec<Record>) -> Vec<Record> {
        records.sort_by(|a, b| (b.received_at_ms, &b.key).cmp(&(a.received_at_ms, &a.key)));
        records.truncate(self.limit);
        records
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// The dedup key: `<provider>#<tenant>#<delivery id or entity#type#time>`.
    pub key: String,
    pub provider: String,
    pub tenant: String,
    pub event_type: String,
    pub entity_id: String,
    /// Whom erasure reaches: `<provider>#<tenant>#<kind>:<id>` (see [`subject_of`]).
    pub subject: String,
    /// Facts of the delivery kept for operators (a JSON object), where the provider has any.
    pub facts: Option<String>,
    /// The request body exactly as received (unknown fields included).
    pub body: String,
    pub received_at_ms: i64,
    pub status: Status,
    /// While `RECEIVED`: until when the delivery that stored it owns the right to enqueue it.
    pub lease_until_ms: i64,
    /// DynamoDB TTL, epoch seconds.
    pub expires_at: i64,
    /// Processing attempts so far.
    pub attempts: i64,
    /// The details fetched from the provider's API (JSON), or a note of what was done instead.
    pub detail: Option<String>,
    pub processed_at_ms: Option<i64>,
    /// Why the last attempt failed (kept while retrying; the final reason when `FAILED`).
    pub last_error: Option<String>,
    /// Set when personal data of this record was erased.
    pub erased_at_ms: Option<i64>,
    /// Accepted without a credential (a tenant with `allow_unauthenticated`): such a delivery
    /// never erases anything.
    pub unauthenticated: bool,
    /// Its processing attempts, oldest first, at most [`HISTORY_KEPT`].
    pub history: Vec<Tried>,
    /// The trace the webhook's request belongs to (`1-<8 hex>-<24 hex>`, see [`crate::trace`]),
    /// followed in every log line and the downstream event of its processing.
    pub trace_id: Option<String>,
    /// The segment of that trace the webhook function ran in (16 hex digits; only for a
    /// sampled trace): the provider call and the publication are reported under it.
    pub trace_parent: Option<String>,
}

/// One processing attempt, as a record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Tried {
    /// When it ended, epoch milliseconds.
    pub at_ms: i64,
    /// What it came to, in the processor's words (`fetched`, `retry`, `throttled`, `failed`…).
    pub outcome: String,
    pub latency_ms: i64,
    /// The provider API's HTTP status, where an answer said why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How many attempts a record keeps (the newest).
pub const HISTORY_KEPT: usize = 20;

/// `history` with `tried` after it, the oldest dropped beyond [`HISTORY_KEPT`].
pub fn with_attempt(history: &[Tried], tried: Tried) -> Vec<Tried> {
    let skip = (history.len() + 1).saturating_sub(HISTORY_KEPT);
    history.iter().skip(skip).cloned().chain([tried]).collect()
}

/// A history as the stores keep it: JSON text (`None` for none).
pub fn history_text(history: &[Tried]) -> Option<String> {
    (!history.is_empty()).then(|| serde_json::to_string(history).unwrap_or_default())
}

/// A history from its stored text (none where it is missing or unreadable).
pub fn history_of(text: Option<&str>) -> Vec<Tried> {
    text.and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default()
}

/// The facts of a quarantined record whose body was not UTF-8 and is kept Base64-encoded.
pub const BASE64_BODY_FACTS: &str = r#"{"body_encoding":"base64"}"#;

impl Record {
    /// True if the record is past its retention at `now_ms` (whether or not DynamoDB's TTL
    /// has deleted it yet); a record without an expiry never is.
    pub fn expired_at(&self, now_ms: i64) -> bool {
        self.expires_at != 0 && self.expires_at.saturating_mul(1000) <= now_ms
    }

    /// Whether the body is kept Base64-encoded (see [`BASE64_BODY_FACTS`]).
    pub fn body_is_base64(&self) -> bool {
        self.facts
            .as_deref()
            .and_then(|facts| serde_json::from_str::<serde_json::Value>(facts).ok())
            .is_some_and(|facts| facts["body_encoding"] == "base64")
    }

    /// What the processor needs to find this record again.
    pub fn message(&self) -> QueueMessage {
        QueueMessage {
            provider: self.provider.clone(),
            tenant: self.tenant.clone(),
            key: self.key.clone(),
            event_type: self.event_type.clone(),
            entity_id: self.entity_id.clone(),
            trace_id: self.trace_id.clone(),
            trace_parent: self.trace_parent.clone(),
            ..QueueMessage::default()
        }
    }

    /// The message that carries this whole record, for when the store cannot take it: the
    /// processor stores it first (with the same conditional put), then processes it.
    pub fn spill(&self) -> QueueMessage {
        QueueMessage {
            work: Work::StoreThenProcess(Box::new(Spilled {
                body: self.body.clone(),
                received_at_ms: self.received_at_ms,
                expires_at: self.expires_at,
                subject: self.subject.clone(),
                facts: self.facts.clone(),
                quarantined: (self.status == Status::Quarantined)
                    .then(|| self.last_error.clone().unwrap_or_default()),
                unauthenticated: self.unauthenticated,
                trace_id: self.trace_id.clone(),
                trace_parent: self.trace_parent.clone(),
                seal: None,
            })),
            ..self.message()
        }
    }

    /// About how many bytes the record takes as a DynamoDB item (names and values).
    pub fn item_size(&self) -> usize {
        const NUMBERS_AND_NAMES: usize = 200;
        [
            self.key.len() * 2, // the key, and the pending index's copy of it
            self.provider.len(),
            self.tenant.len(),
            self.event_type.len(),
            self.entity_id.len(),
            self.subject.len(),
            self.facts.as_ref().map_or(0, String::len),
            self.body.len(),
            self.detail.as_ref().map_or(0, String::len),
            self.last_error.as_ref().map_or(0, String::len),
            self.trace_id.as_ref().map_or(0, String::len),
            self.trace_parent.as_ref().map_or(0, String::len),
            history_text(&self.history).map_or(0, |text| text.len()),
            NUMBERS_AND_NAMES,
        ]
        .iter()
        .sum()
    }
}

/// The largest item DynamoDB stores (400 KB), less a margin for what [`Record::item_size`]
/// does not count exactly.
pub const MAX_ITEM_BYTES: usize = 400 * 1024 - 4 * 1024;

/// A delivery the webhook function could not store, carried whole in its queue message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spilled {
    pub body: String,
    pub received_at_ms: i64,
    pub expires_at: i64,
    pub subject: String,
    pub facts: Option<String>,
    /// Why it was quarantined, when it was.
    pub quarantined: Option<String>,
    #[serde(default)]
    pub unauthenticated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_parent: Option<String>,
    /// The webhook function's seal over the whole message (see [`QueueMessage::seal`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<String>,
}

/// The bytes a spill's seal covers: every field of the message the processor acts on.
fn sealed_bytes(message: &QueueMessage) -> Vec<u8> {
    // The trace's parent only names where X-Ray spans hang, and is left out so that a
    // processor of the version before it still accepts a spill sealed by this one (a deploy).
    let spilled = message.work.spilled().map(|spilled| Spilled {
        seal: None,
        trace_parent: None,
        ..spilled.clone()
    });
    let fields = (
        &message.provider,
        &message.tenant,
        &message.key,
        &message.event_type,
        &message.entity_id,
        spilled,
    );
    serde_json::to_vec(&fields).unwrap_or_default()
}

fn seal_mac(secret: &str, message: &QueueMessage) -> hmac::Hmac<sha2::Sha256> {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(&sealed_bytes(message));
    mac
}

impl QueueMessage {
    /// Seals a spill with a webhook secret of its tenant, which only that provider's webhook
    /// function and the processor hold: any function may send to the queue, but only the one
    /// that authenticated the delivery can make a spill the processor will store.
    pub fn seal(&mut self, secret: &str) {
        use hmac::Mac;
        let seal = hex::encode(seal_mac(secret, self).finalize().into_bytes());
        if let Work::StoreThenProcess(spilled) = &mut self.work {
            spilled.seal = Some(seal);
        }
    }

    /// True if the spill carries a seal made with one of `secrets` (compared in constant time).
    pub fn sealed_with<'a>(&self, secrets: impl IntoIterator<Item = &'a str>) -> bool {
        use hmac::Mac;
        let Some(seal) = self
            .work
            .spilled()
            .and_then(|spilled| spilled.seal.as_deref())
            .and_then(|seal| hex::decode(seal).ok())
        else {
            return false;
        };
        secrets
            .into_iter()
            .any(|secret| seal_mac(secret, self).verify_slice(&seal).is_ok())
    }
}

impl QueueMessage {
    /// The record a spill message carries, as the webhook function would have stored it; the
    /// message being in the queue already, it is stored `QUEUED`.
    pub fn spilled_record(&self) -> Option<Record> {
        let spilled = self.work.spilled()?;
        Some(Record {
            key: self.key.clone(),
            provider: self.provider.clone(),
            tenant: self.tenant.clone(),
            event_type: self.event_type.clone(),
            entity_id: self.entity_id.clone(),
            subject: spilled.subject.clone(),
            facts: spilled.facts.clone(),
            body: spilled.body.clone(),
            received_at_ms: spilled.received_at_ms,
            expires_at: spilled.expires_at,
            status: if spilled.quarantined.is_some() {
                Status::Quarantined
            } else {
                Status::Queued
            },
            last_error: spilled.quarantined.clone(),
            unauthenticated: spilled.unauthenticated,
            trace_id: spilled.trace_id.clone(),
            trace_parent: spilled.trace_parent.clone(),
            ..Record::default()
        })
    }
}

/// A stored record that may not be in the queue yet: what the sweeper needs to enqueue it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub message: QueueMessage,
    pub lease_until_ms: i64,
}

/// What a processor's claim on a record found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Ours until the lease ends; the record as it is now.
    Claimed(Box<Record>),
    /// Already `PROCESSED`, `FAILED` or `QUARANTINED`: nothing to do.
    Finished(Status),
    /// Another processor holds a live lease.
    Busy,
    Missing,
}

/// How a claimed record ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `PROCESSED`, with the fetched detail or a note.
    Processed { detail: Option<String> },
    /// `FAILED` for good (the provider said no: 4xx, over-size answer).
    Failed { reason: String },
    /// Back to `QUEUED` for the next delivery of the message; the reason is kept.
    Retry { reason: String },
    /// `QUEUED` until its items are done (see [`Store::item_done`]), with `note` as its detail.
    Waiting { note: String },
}

impl Outcome {
    /// The status a record ends in: the one mapping every adapter applies.
    pub fn status(&self) -> Status {
        match self {
            Outcome::Processed { .. } => Status::Processed,
            Outcome::Failed { .. } => Status::Failed,
            Outcome::Retry { .. } | Outcome::Waiting { .. } => Status::Queued,
        }
    }

    /// What `last_error` holds afterwards (`None` clears it).
    pub fn error(&self) -> Option<&str> {
        match self {
            Outcome::Processed { .. } | Outcome::Waiting { .. } => None,
            Outcome::Failed { reason } | Outcome::Retry { reason } => Some(reason),
        }
    }

    /// When the record was processed, if this outcome processes it.
    pub fn processed_at(&self, now_ms: i64) -> Option<i64> {
        matches!(self, Outcome::Processed { .. }).then_some(now_ms)
    }

    /// The detail to store, where there is one.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Outcome::Processed { detail } => detail.as_deref(),
            Outcome::Waiting { note } => Some(note),
            _ => None,
        }
    }
}

/// What an earlier delivery left behind (the conditional put reports it; the ingest path
/// answers any copy as a duplicate whatever it says).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Existing {
    pub status: Status,
    pub lease_until_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Created,
    Exists(Existing),
}

/// How far the items of a record split into items have come.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ItemsDone {
    pub done: usize,
    pub failed: usize,
}

/// What an erasure emptied: records reached, and of them the raw bodies and the fetched
/// details that were still there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erased {
    pub records: usize,
    pub bodies: usize,
    pub details: usize,
}

impl Erased {
    /// One record reached, with what it still held.
    pub fn record(had_body: bool, had_detail: bool) -> Erased {
        Erased {
            records: 1,
            bodies: usize::from(had_body),
            details: usize::from(had_detail),
        }
    }
}

impl std::ops::AddAssign for Erased {
    fn add_assign(&mut self, other: Erased) {
        self.records += other.records;
        self.bodies += other.bodies;
        self.details += other.details;
    }
}

/// What the processor needs to find and enrich a stored event. Never carries credentials.
/// On the queue it is [`WireMessage`]: the kinds of work as flags, as messages already in a
/// queue or its dead letters were written.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(from = "WireMessage", into = "WireMessage")]
pub struct QueueMessage {
    pub provider: String,
    pub tenant: String,
    pub key: String,
    pub event_type: String,
    pub entity_id: String,
    /// How often this event has waited out the provider's rate limit (429) so far.
    pub throttled: u32,
    pub work: Work,
    /// The webhook's trace, for the queue to link the message to it (SQS's `AWSTraceHeader`).
    /// The processor reads the trace from the stored record, never from here.
    pub trace_id: Option<String>,
    pub trace_parent: Option<String>,
}

/// What a queue message asks of the processor. Whatever it asks, what is done is decided by
/// the stored record (a spill's by its seal).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Work {
    /// Process the stored record.
    #[default]
    Process,
    /// Store this whole delivery first (its webhook function could not), then process it.
    StoreThenProcess(Box<Spilled>),
    /// The second pass of an erasure, once the subject index has caught up.
    EraseAgain,
    /// Only publish the record again, already `PROCESSED`.
    PublishAgain,
}

impl Work {
    /// The same work once its delivery is stored: a spill is processed like any other.
    pub fn stored(&self) -> Work {
        match self {
            Work::StoreThenProcess(_) => Work::Process,
            other => other.clone(),
        }
    }

    /// The delivery a spill carries.
    pub fn spilled(&self) -> Option<&Spilled> {
        match self {
            Work::StoreThenProcess(spilled) => Some(spilled),
            _ => None,
        }
    }
}

/// A [`QueueMessage`] as the queue carries it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WireMessage {
    pub provider: String,
    pub tenant: String,
    pub key: String,
    pub event_type: String,
    pub entity_id: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub throttled: u32,
    /// The whole delivery, when the webhook function could not store it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spilled: Option<Box<Spilled>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub erase_again: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub publish_again: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_parent: Option<String>,
}

impl From<WireMessage> for QueueMessage {
    fn from(wire: WireMessage) -> QueueMessage {
        let work = match (wire.spilled, wire.erase_again, wire.publish_again) {
            (_, true, _) => Work::EraseAgain,
            (_, _, true) => Work::PublishAgain,
            (Some(spilled), _, _) => Work::StoreThenProcess(spilled),
            (None, _, _) => Work::Process,
        };
        QueueMessage {
            provider: wire.provider,
            tenant: wire.tenant,
            key: wire.key,
            event_type: wire.event_type,
            entity_id: wire.entity_id,
            throttled: wire.throttled,
            work,
            trace_id: wire.trace_id,
            trace_parent: wire.trace_parent,
        }
    }
}

impl From<QueueMessage> for WireMessage {
    fn from(message: QueueMessage) -> WireMessage {
        let mut wire = WireMessage {
            provider: message.provider,
            tenant: message.tenant,
            key: message.key,
            event_type: message.event_type,
            entity_id: message.entity_id,
            throttled: message.throttled,
            trace_id: message.trace_id,
            trace_parent: message.trace_parent,
            ..WireMessage::default()
        };
        match message.work {
            Work::Process => {}
            Work::StoreThenProcess(spilled) => wire.spilled = Some(spilled),
            Work::EraseAgain => wire.erase_again = true,
            Work::PublishAgain => wire.publish_again = true,
        }
        wire
    }
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

/// A received queue message as the processor sees it, whatever queue it came from.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    pub id: String,
    pub body: String,
    /// How many times the queue has delivered it, this time included.
    pub receive_count: u32,
    pub receipt_handle: Option<String>,
}

/// The least a rate's window is widened by (see [`Rate::interval_ms`]).
const WINDOW_SLACK_MS: u64 = 150;

/// A provider API's published rate: at most `calls` calls per `per_ms` milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub calls: u32,
    pub per_ms: i64,
}

impl Rate {
    pub const fn per_second(calls: u32) -> Rate {
        Rate {
            calls,
            per_ms: 1000,
        }
    }

    /// The time between two calls that keeps any window of `per_ms` at `calls` or fewer:
    /// calls spaced evenly, the window widened by 5 % or 150 ms, whichever is more — a
    /// request's travel time varies, the provider counts arrivals, and in a one-second window
    /// 5 % is 50 ms, less than a busy machine's or network's jitter.
    pub fn interval_ms(&self) -> i64 {
        let per_ms = self.per_ms.max(0) as u64;
        let widened = (per_ms * 105).div_ceil(100).max(per_ms + WINDOW_SLACK_MS);
        widened.div_ceil(u64::from(self.calls.max(1))) as i64
    }
}

/// What [`Pacer::reserve`] came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// The calls are ours: the first at `first_at_ms`, each next one interval later.
    Granted { first_at_ms: i64 },
    /// No call reserved: the next free slot is further away than allowed. The caller should
    /// come back at `back_at_ms`, a time of its own: the callers turned away are sent back one
    /// after another, as the slots free up, not all at once to find them taken again.
    Full { back_at_ms: i64 },
}

/// A key's pacing as the store keeps it: the next free call slot, and when the next caller
/// turned away should come back (`None`: not yet).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PaceState {
    pub next_free_ms: Option<i64>,
    pub next_back_ms: Option<i64>,
}

/// Processing held for a provider (`egym`) or one of its tenants (`egym#gym-x`) since a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paused {
    pub scope: String,
    pub since_ms: i64,
}

/// What a pacer answers, and the key's state after it. A caller turned away is given the
/// time its calls would be due if every caller turned away before it came back in turn — never
/// earlier than the next free slot — so that a backlog returns at the rate it can be served.
pub fn next_slot(
    seen: PaceState,
    interval_ms: i64,
    calls: u32,
    now_ms: i64,
    max_wait_ms: i64,
) -> (Reservation, PaceState) {
    let first = seen.next_free_ms.unwrap_or(now_ms).max(now_ms);
    let span = interval_ms * i64::from(calls);
    if first - now_ms > max_wait_ms {
        let back_at = seen.next_back_ms.unwrap_or(first).max(first);
        // A turn further away than a delayed message can wait is not taken: the caller comes
        // back sooner and asks again, rather than leave a turn unused behind it.
        let within_reach = back_at - now_ms <= i64::from(MAX_DELAY_SECONDS) * 1000;
        let after = match within_reach {
            true => PaceState {
                next_back_ms: Some(back_at + span),
                ..seen
            },
            false => seen,
        };
        return (
            Reservation::Full {
                back_at_ms: back_at,
            },
            after,
        );
    }
    let after = PaceState {
        next_free_ms: Some(first + span),
        ..seen
    };
    (Reservation::Granted { first_at_ms: first }, after)
}

/// A sign that a provider's deliveries differ from what is known of its contract (see
/// [`crate::drift`]), for one tenant: when it was first and last seen, and the latest record it
/// was seen in, with whose retention it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    pub provider: String,
    pub tenant: String,
    /// `type:<event type>`, `field:<pointer>`, `missing:<pointer>`, `signature_key:<form>`.
    pub signal: String,
    pub first_ms: i64,
    pub last_ms: i64,
    pub example_key: String,
    /// The example record's expiry (epoch seconds, its TTL; 0 for none): the sighting is kept
    /// no longer than the record it names.
    pub expires_at: i64,
}

impl Sighting {
    /// True if it is still kept at `now_ms`.
    pub fn live_at(&self, now_ms: i64) -> bool {
        self.expires_at == 0 || self.expires_at.saturating_mul(1000) > now_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spill_sealed_with_its_trace_parent_is_accepted_without_it() {
        let mut spill = Record {
            key: "k".into(),
            trace_parent: Some("53995c3f42cd8ad8".into()),
            ..Record::default()
        }
        .spill();
        spill.seal("s3cret");
        assert!(spill.sealed_with(["s3cret"]));
        // As the processor of the version before reads it: without the field.
        if let Work::StoreThenProcess(spilled) = &mut spill.work {
            spilled.trace_parent = None;
        }
        assert!(spill.sealed_with(["s3cret"]));
        assert!(!spill.sealed_with(["other"]));
    }

    #[test]
    fn each_kind_of_work_keeps_the_queues_wire_form() {
        let spilled = Record {
            key: "k".into(),
            body: "{}".into(),
            ..Record::default()
        }
        .spill();
        for (message, flag) in [
            (spilled.clone(), "spilled"),
            (
                QueueMessage {
                    work: Work::EraseAgain,
                    ..spilled.clone()
                },
                "erase_again",
            ),
            (
                QueueMessage {
                    work: Work::PublishAgain,
                    ..spilled.clone()
                },
                "publish_again",
            ),
        ] {
            let wire: serde_json::Value = serde_json::to_value(&message).unwrap();
            assert!(wire.get(flag).is_some(), "{wire}");
            assert_eq!(
                serde_json::from_value::<QueueMessage>(wire).unwrap(),
                message
            );
        }
        let plain = serde_json::to_value(Record::default().message()).unwrap();
        assert!(plain.get("spilled").is_none() && plain.get("erase_again").is_none());
        // A second pass queued by an earlier version copied the spill along: it erases again.
        let mut old = serde_json::to_value(&spilled).unwrap();
        old["erase_again"] = true.into();
        let old: QueueMessage = serde_json::from_value(old).unwrap();
        assert_eq!(old.work, Work::EraseAgain);
    }

    #[test]
    fn a_history_keeps_the_newest_attempts() {
        let tried = |at_ms| Tried {
            at_ms,
            outcome: "retry".into(),
            ..Tried::default()
        };
        let mut history = Vec::new();
        for at in 0..25 {
            history = with_attempt(&history, tried(at));
        }
        assert_eq!(history.len(), HISTORY_KEPT);
        assert_eq!((history[0].at_ms, history[19].at_ms), (5, 24));
        let text = history_text(&history).unwrap();
        assert_eq!(history_of(Some(&text)), history);
        assert_eq!(history_text(&[]), None);
        assert_eq!(history_of(Some("not json")), []);
    }

    #[test]
    fn a_rates_window_is_widened_by_5_percent_or_150_ms() {
        let interval = |calls, per_ms| Rate { calls, per_ms }.interval_ms();
        assert_eq!(interval(60, 10_000), 175, "EGYM: 5 % of 10 s");
        assert_eq!(interval(5, 1_000), 230, "Waitwhile: 150 ms of 1 s");
        assert_eq!(interval(1000, 60_000), 63, "Magicline");
    }

    #[test]
    fn callers_turned_away_come_back_one_after_another_as_slots_free() {
        let mut state = PaceState {
            next_free_ms: Some(5_000),
            next_back_ms: None,
        };
        let mut backs = Vec::new();
        for _ in 0..3 {
            let (reservation, after) = next_slot(state, 100, 2, 1_000, 2_000);
            let Reservation::Full { back_at_ms } = reservation else {
                panic!("{reservation:?}");
            };
            assert_eq!(after.next_free_ms, Some(5_000), "no call reserved");
            backs.push(back_at_ms);
            state = after;
        }
        assert_eq!(backs, [5_000, 5_200, 5_400]);
        let (granted, after) = next_slot(state, 100, 1, 4_000, 2_000);
        assert_eq!(granted, Reservation::Granted { first_at_ms: 5_000 });
        assert_eq!(after.next_free_ms, Some(5_100));
        let (_, later) = next_slot(after, 100, 1, 3_000, 1_000);
        assert_eq!(later.next_back_ms, Some(5_700), "the turn queue goes on");
        let (idle, _) = next_slot(state, 100, 1, 60_000, 0);
        assert_eq!(
            idle,
            Reservation::Granted {
                first_at_ms: 60_000
            }
        );
        let far = PaceState {
            next_free_ms: Some(5_000),
            next_back_ms: Some(2_000_000),
        };
        let (reservation, after) = next_slot(far, 100, 1, 1_000, 2_000);
        assert_eq!(
            reservation,
            Reservation::Full {
                back_at_ms: 2_000_000
            }
        );
        assert_eq!(after, far, "out of a delay's reach: no turn taken");
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for status in Status::ALL {
            assert_eq!(Status::parse(status.as_str()), Some(status));
        }
        assert_eq!(Status::parse("DONE"), None);
    }

    #[test]
    fn each_outcome_ends_in_one_status() {
        let processed = Outcome::Processed {
            detail: Some("{}".into()),
        };
        assert_eq!(processed.status(), Status::Processed);
        assert_eq!(processed.detail(), Some("{}"));
        assert_eq!(processed.error(), None);
        let failed = Outcome::Failed { reason: "r".into() };
        assert_eq!(
            (failed.status(), failed.error()),
            (Status::Failed, Some("r"))
        );
        let retry = Outcome::Retry { reason: "t".into() };
        assert_eq!((retry.status(), retry.error()), (Status::Queued, Some("t")));
    }
}
