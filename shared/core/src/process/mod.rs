//! The processing path: for each queued event, claim its record, fetch the details from the
//! provider's API (or erase, or skip), and finish the record. Messages that should be tried
//! again are reported as failed so that only they return to the queue.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use serde_json::json;

use crate::clock::after;
pub use crate::config::ProcessorSettings;
use crate::downstream::Publisher;
use crate::fetch::{DetailClient, FetchError, MAX_DETAIL_BYTES};
use crate::metrics::{About, LogLines, MessageLine, Metrics};
use crate::model::{
    Claim, InboundMessage, Outcome, QueueMessage, Record, Status, Work, MAX_ITEM_BYTES,
};
use crate::ports::{Ports, QueueConsumer, QueueError, StoreError};
use crate::providers::{Processing, Provider};
use crate::spans::Spans;
use crate::tenants::{Tenant, TenantSource};

mod drift;
mod erasure;
mod fallback;
mod fanout;
mod handled;
mod history;
mod pacing;
mod pause;
mod publish;
mod traced;

pub use handled::Handled;
use pacing::rate_limit_wait;

/// A provider and its tenants, as the processor needs them.
pub struct ProviderTenants {
    pub provider: Arc<dyn Provider>,
    pub tenants: TenantSource,
}

pub struct Processor {
    providers: HashMap<&'static str, ProviderTenants>,
    ports: Ports,
    client: DetailClient,
    settings: ProcessorSettings,
    metrics: Arc<dyn Metrics>,
    publisher: Option<Arc<dyn Publisher>>,
    /// What an operator has paused (providers, `<provider>#<tenant>`), read once per batch.
    paused: std::sync::Mutex<Vec<String>>,
    /// This processor's messages ask the pacer for one key one at a time (see [`pacing`]).
    pacing_turns: pacing::Turns,
    /// The signs of contract drift this processor has written (see [`drift`]).
    drift_written: drift::Written,
    /// Where its calls out are reported as parts of the webhook's trace.
    spans: Option<Arc<dyn Spans>>,
}

/// What a message's handling tells its log line besides its outcome.
#[derive(Default)]
struct Told {
    /// The downstream event: `published` or `failed`, where one was due.
    publication: Option<&'static str>,
    /// The trace of the webhook the record came from.
    trace_id: Option<String>,
}

/// Whether a message is done with (deleted from the queue) or must come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Done,
    TryAgain,
}

impl Processor {
    pub fn new(
        providers: Vec<ProviderTenants>,
        ports: Ports,
        client: DetailClient,
        settings: ProcessorSettings,
    ) -> Self {
        Processor {
            providers: providers
                .into_iter()
                .map(|entry| (entry.provider.name(), entry))
                .collect(),
            ports,
            client,
            settings,
            metrics: Arc::new(LogLines),
            publisher: None,
            paused: std::sync::Mutex::default(),
            pacing_turns: pacing::Turns::default(),
            drift_written: drift::Written::default(),
            spans: None,
        }
    }

    /// Reports each provider call and publication as a span of its webhook's trace.
    pub fn with_spans(mut self, spans: Arc<dyn Spans>) -> Self {
        self.spans = Some(spans);
        self
    }

    /// Writes every handled message down in `metrics` (a log line apiece unless told otherwise).
    pub fn with_metrics(mut self, metrics: Arc<dyn Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Publishes every event that reaches `PROCESSED` (see [`crate::downstream`]).
    pub fn with_publisher(mut self, publisher: Arc<dyn Publisher>) -> Self {
        self.publisher = Some(publisher);
        self
    }

    pub fn settings(&self) -> &ProcessorSettings {
        &self.settings
    }

    /// Processes a batch with bounded concurrency; returns the ids of messages to retry.
    pub async fn process_batch(&self, messages: Vec<InboundMessage>) -> Vec<String> {
        if let Err(error) = self.refresh_paused().await {
            tracing::warn!(error = %error, "could not read what is paused; going on as before");
        }
        futures::stream::iter(messages)
            .map(|message| async move {
                let verdict = self.process(&message).await;
                (message.id, verdict)
            })
            .buffer_unordered(self.settings.concurrency)
            .filter_map(|(id, verdict)| async move { (verdict == Verdict::TryAgain).then_some(id) })
            .collect()
            .await
    }

    /// Processes a batch a consumer received from `queue` itself (the dev server, tools; in AWS,
    /// Lambda's event source does this) and deletes every message that is done with; the rest
    /// come back when their visibility ends.
    pub async fn process_received(
        &self,
        queue: &dyn QueueConsumer,
        batch: Vec<InboundMessage>,
    ) -> Result<(), QueueError> {
        let failed = self.process_batch(batch.clone()).await;
        let done: Vec<String> = batch
            .into_iter()
            .filter(|m| !failed.contains(&m.id))
            .filter_map(|m| m.receipt_handle)
            .collect();
        queue.delete_all(&done).await
    }

    pub async fn process(&self, inbound: &InboundMessage) -> Verdict {
        let started = Instant::now();
        let message: QueueMessage = match serde_json::from_str(&inbound.body) {
            Ok(message) => message,
            Err(error) => {
                // Left to the redrive policy: it ends in the dead-letter queue, not dropped.
                tracing::error!(message_id = %inbound.id, error = %error, "unreadable queue message");
                return Verdict::TryAgain;
            }
        };
        let mut told = Told::default();
        let (verdict, outcome) = self.process_message(&message, inbound, &mut told).await;
        let dead_lettered =
            verdict == Verdict::TryAgain && inbound.receive_count >= self.settings.max_receives;
        let latency = started.elapsed();
        self.metrics.processed(&MessageLine {
            about: About {
                provider: &message.provider,
                tenant: &message.tenant,
                event_type: &message.event_type,
                key: &message.key,
                trace_id: told.trace_id.as_deref().unwrap_or("-"),
            },
            outcome: outcome.label(),
            counted: outcome.counted(dead_lettered),
            attempt: inbound.receive_count,
            retry: verdict == Verdict::TryAgain,
            latency,
            publication: told.publication,
        });
        verdict
    }

    /// What became of the message; what its log line tells besides in `told`.
    async fn process_message(
        &self,
        message: &QueueMessage,
        inbound: &InboundMessage,
        told: &mut Told,
    ) -> (Verdict, Handled) {
        let Some(entry) = self.providers.get(message.provider.as_str()) else {
            tracing::error!(provider = %message.provider, "message for a provider this processor does not know");
            return (Verdict::TryAgain, Handled::UnknownProvider);
        };
        if let Some(mut record) = message.spilled_record() {
            match self.authentic_spill(entry, message) {
                Some(unauthenticated) => record.unauthenticated |= unauthenticated,
                None => {
                    tracing::error!(key = %message.key, provider = %message.provider, "a spilled delivery without its webhook function's seal: not stored, left to the dead-letter queue");
                    return (Verdict::TryAgain, Handled::Unsealed);
                }
            }
            match self.store_spilled(entry.provider.as_ref(), record).await {
                Ok(true) => {}
                Ok(false) => return (Verdict::Done, Handled::Quarantined),
                Err(error) => {
                    tracing::error!(key = %message.key, error = %error, "storing a spilled delivery failed");
                    return (Verdict::TryAgain, Handled::StoreUnavailable);
                }
            }
        }
        if self.is_paused(message) {
            return self.hold(message).await;
        }
        match message.work {
            Work::EraseAgain => return self.erase_again(message).await,
            Work::PublishAgain => {
                return self
                    .publish_again(message, inbound, &mut told.publication)
                    .await
            }
            Work::Process | Work::StoreThenProcess(_) => {}
        }
        let now = self.ports.clock.now_ms();
        let lease = after(now, self.settings.lease);
        let record = match self.ports.store.claim(&message.key, now, lease).await {
            Ok(Claim::Claimed(record)) => {
                told.trace_id = record.trace_id.clone();
                record
            }
            Ok(Claim::Finished(_)) => {
                return match self.recount_item(&message.key).await {
                    Ok(()) => (Verdict::Done, Handled::AlreadyFinished),
                    Err(_) => (Verdict::TryAgain, Handled::StoreUnavailable),
                };
            }
            Ok(Claim::Busy) => return (Verdict::TryAgain, Handled::Busy),
            Ok(Claim::Missing) => {
                tracing::error!(key = %message.key, "queued event has no record; leaving it to the dead-letter queue");
                return (Verdict::TryAgain, Handled::RecordMissing);
            }
            Err(error) => {
                tracing::error!(key = %message.key, error = %error, "claim failed");
                return (Verdict::TryAgain, Handled::StoreUnavailable);
            }
        };
        // What is done is decided by the stored record, never by what the message says.
        let Some(entry) = self.providers.get(record.provider.as_str()) else {
            tracing::error!(key = %message.key, "a record of a provider this processor does not know");
            return (Verdict::TryAgain, Handled::UnknownProvider);
        };
        let (outcome, verdict, label) = match self.attempt(entry, &record).await {
            Attempt::Done(outcome, label) => (outcome, Verdict::Done, label),
            Attempt::Throttled { reason, wait } => {
                let wait = rate_limit_wait(wait, message.throttled);
                match self.wait_out_rate_limit(message, &reason, wait).await {
                    Some(outcome) => (outcome, Verdict::Done, Handled::Throttled),
                    None => (
                        self.retry(reason, Some(wait), inbound).await,
                        Verdict::TryAgain,
                        Handled::Retry,
                    ),
                }
            }
            Attempt::Retry {
                reason,
                wait,
                label,
            } => (
                self.retry(reason, wait, inbound).await,
                Verdict::TryAgain,
                label,
            ),
        };
        if let Outcome::Retry { reason } = &outcome {
            if self.last_attempt(inbound) {
                tracing::error!(key = %message.key, reason = %reason, "processing gave up: the message goes to the dead-letter queue");
            } else {
                tracing::warn!(key = %message.key, reason = %reason, "processing will be tried again");
            }
        }
        if label == Handled::Erased {
            self.erase_again_later(message).await;
        }
        let finished = self
            .finish(entry, &record, lease, outcome, now, label)
            .await;
        let done_as = match &finished {
            Ok(Finished::Written(outcome)) if outcome.status() != Status::Queued => {
                Some(outcome.status())
            }
            Ok(Finished::Erased) => Some(Status::Processed),
            _ => None,
        };
        if let Some(status) = done_as {
            if let Err(error) = self.item_finished(&record, status).await {
                tracing::error!(key = %message.key, error = %error, "counting an item done failed");
                return (Verdict::TryAgain, Handled::StoreUnavailable);
            }
        }
        match finished {
            Ok(Finished::Written(Outcome::Processed { detail })) if label.publishes() => {
                let detail = detail.as_deref();
                if self
                    .publish_finished(&record, detail, message, &mut told.publication)
                    .await
                {
                    (verdict, label)
                } else {
                    (Verdict::TryAgain, Handled::Retry)
                }
            }
            Ok(Finished::Written(_)) => (verdict, label),
            Ok(Finished::Erased) => (verdict, Handled::SubjectErased),
            Ok(Finished::Lost) => {
                tracing::warn!(key = %message.key, "claim lost before the result was stored");
                (Verdict::TryAgain, Handled::ClaimLost)
            }
            Err(error) => {
                tracing::error!(key = %message.key, error = %error, "storing the result failed");
                (Verdict::TryAgain, Handled::StoreUnavailable)
            }
        }
    }

    /// Whether a spill was sealed by its provider's webhook function with a webhook secret of
    /// its tenant: `Some(false)` if so; `Some(true)` if its tenant has no secret to seal with
    /// (its deliveries need no credential, so the record counts as unauthenticated and can
    /// erase nothing); `None` if the seal is missing or wrong (another function's role, say,
    /// writing a message of its own).
    fn authentic_spill(&self, entry: &ProviderTenants, message: &QueueMessage) -> Option<bool> {
        let tenants = entry.tenants.current();
        let tenant = tenants.get(&message.tenant)?;
        if tenant.webhook_secrets.is_empty() {
            return Some(true);
        }
        let secrets = tenant.webhook_secrets.iter().map(|secret| secret.expose());
        message.sealed_with(secrets).then_some(false)
    }

    /// Stores a delivery the webhook function spilled, with the same conditional put, so that
    /// it and a direct copy are counted once. False if it was quarantined (nothing to process).
    async fn store_spilled(
        &self,
        provider: &dyn Provider,
        mut record: Record,
    ) -> Result<bool, StoreError> {
        crate::erasure::withhold_erased(&self.ports, provider, &mut record).await?;
        self.ports.store.put_new(&record).await?;
        Ok(record.status != Status::Quarantined)
    }

    /// Writes the outcome under the claim and links the persons the record names. A detail is
    /// kept only if it fits in the record and neither its subject nor a person it names was
    /// erased meanwhile: an erasure that comes after this write finds the record through the
    /// index or the links, one that came before is seen here afterwards.
    async fn finish(
        &self,
        entry: &ProviderTenants,
        record: &Record,
        lease: i64,
        outcome: Outcome,
        claimed_at: i64,
        label: Handled,
    ) -> Result<Finished, StoreError> {
        let outcome = match outcome {
            Outcome::Processed {
                detail: Some(detail),
            } if record.item_size() + detail.len() + history::ATTEMPT_BYTES > MAX_ITEM_BYTES => {
                Outcome::Failed {
                    reason: format!(
                    "the provider's answer ({} bytes) does not fit beside the event in one record",
                    detail.len()
                ),
                }
            }
            outcome => outcome,
        };
        let store = &self.ports.store;
        let now = self.ports.clock.now_ms();
        let history =
            |outcome: &Outcome| history::with_this_attempt(record, outcome, label, claimed_at, now);
        let written = store
            .finish_noted(&record.key, lease, &outcome, now, &history(&outcome))
            .await;
        let (finished, outcome) = match written {
            Err(StoreError::Rejected(reason)) => {
                let failed = Outcome::Failed {
                    reason: format!("the store refused the result: {reason}"),
                };
                let written = store
                    .finish_noted(&record.key, lease, &failed, now, &history(&failed))
                    .await?;
                (written, failed)
            }
            result => (result?, outcome),
        };
        if !finished {
            return Ok(Finished::Lost);
        }
        let named_erased = self
            .link_named_persons(entry.provider.as_ref(), record, outcome.detail())
            .await?;
        let erased_meanwhile =
            label == Handled::Fetched && self.erased_since(record, claimed_at).await?;
        if named_erased || erased_meanwhile {
            store
                .erase_record(&record.key, self.ports.clock.now_ms())
                .await?;
            return Ok(Finished::Erased);
        }
        Ok(Finished::Written(outcome))
    }

    /// What processing the claimed record comes to this time.
    async fn attempt(&self, entry: &ProviderTenants, record: &Record) -> Attempt {
        let tenants = entry.tenants.current();
        let Some(tenant) = tenants.get(&record.tenant) else {
            return Attempt::configuration(format!(
                "tenant {:?} is not configured for {}",
                record.tenant,
                entry.provider.name()
            ));
        };
        if record.erased_at_ms.is_some() {
            return Attempt::Done(erased_before(record), Handled::SubjectErased);
        }
        if record.expired_at(self.ports.clock.now_ms()) {
            return Attempt::Done(expired(), Handled::Expired);
        }
        if let Some(check) = crate::check::check_of(record) {
            return Attempt::Done(crate::check::outcome(&check), Handled::Check);
        }
        self.note_drift(entry.provider.as_ref(), tenant, record)
            .await;
        let processing = match fanout::ItemOf::of_record(record) {
            Some(item) => Processing::fetch(item.path),
            None => match entry.provider.processing(record, tenant) {
                Ok(processing) => processing,
                Err(reason) => return Attempt::Done(Outcome::Failed { reason }, Handled::Failed),
            },
        };
        match self.erased_since(record, i64::MIN).await {
            Ok(false) => {}
            Ok(true) if processing == Processing::Erase => {}
            Ok(true) => return self.drop_erased_body(record).await,
            Err(error) => return Attempt::store_unavailable(error),
        }
        if processing != Processing::Erase {
            match self
                .names_an_erased_person(entry.provider.as_ref(), record)
                .await
            {
                Ok(false) => {}
                Ok(true) => return self.drop_erased_body(record).await,
                Err(error) => return Attempt::store_unavailable(error),
            }
        }
        match processing {
            Processing::StoreOnly => Attempt::Done(
                Outcome::Processed { detail: None },
                Handled::StoredWithoutFetch,
            ),
            Processing::Erase if record.unauthenticated => {
                let note = json!({ "erasure": { "skipped": "delivered without a credential: it may not erase anything" } });
                Attempt::Done(
                    Outcome::Processed {
                        detail: Some(note.to_string()),
                    },
                    Handled::ErasureRefused,
                )
            }
            Processing::Erase => self.erase(record).await,
            Processing::Fetch { paths } => self.fetch(entry, tenant, record, &paths).await,
            Processing::FetchOr {
                path,
                otherwise,
                note,
            } => {
                self.fetch_or(entry, tenant, record, [path, otherwise], &note)
                    .await
            }
            Processing::Items { items } => {
                self.fan_out(entry.provider.as_ref(), record, items).await
            }
        }
    }

    /// GETs each path with the tenant's credentials; one answer is the detail, several are
    /// stored together by path.
    async fn fetch(
        &self,
        entry: &ProviderTenants,
        tenant: &Tenant,
        record: &Record,
        paths: &[String],
    ) -> Attempt {
        let Some(api) = tenant.api.as_ref() else {
            return Attempt::configuration(format!(
                "tenant {:?} has no API access configured (`api`)",
                tenant.id
            ));
        };
        let credentials = match entry.provider.api_credentials_for(api, record) {
            Ok(credentials) => credentials,
            Err(reason) => return Attempt::configuration(reason),
        };
        let tenant_key = crate::key::tenant_scope(entry.provider.name(), &tenant.id);
        let slots = match self.pace(entry.provider.as_ref(), api, paths.len()).await {
            Ok(slots) => slots,
            Err(attempt) => return attempt,
        };
        let mut answers = Vec::with_capacity(paths.len());
        for (path, slot) in paths.iter().zip(slots) {
            self.wait_until(slot).await;
            let get = traced::ApiGet {
                provider: entry.provider.name(),
                base_url: &api.base_url,
                path,
                credentials: &credentials,
                tenant_key: &tenant_key,
            };
            let answer = self.traced_get(record, get).await;
            match answer {
                Ok(detail) => answers.push(detail),
                Err(error) => return Attempt::from(error),
            }
        }
        let detail = match answers.as_slice() {
            [one] => one.clone(),
            _ => {
                // `{"<path>": <answer>, …}` by path, each answer's text as it came (a path
                // given twice keeps its last answer): parsed into values, numbers would lose
                // digits.
                let by_path: std::collections::BTreeMap<&str, &str> = paths
                    .iter()
                    .map(String::as_str)
                    .zip(answers.iter().map(String::as_str))
                    .collect();
                let members: Vec<String> = by_path
                    .into_iter()
                    .map(|(path, answer)| format!("{}:{answer}", serde_json::Value::from(path)))
                    .collect();
                format!("{{{}}}", members.join(","))
            }
        };
        if detail.len() > MAX_DETAIL_BYTES {
            let reason = format!(
                "the provider's answers are {} bytes together, over {MAX_DETAIL_BYTES}",
                detail.len()
            );
            return Attempt::Done(Outcome::Failed { reason }, Handled::Failed);
        }
        Attempt::Done(
            Outcome::Processed {
                detail: Some(detail),
            },
            Handled::Fetched,
        )
    }

    async fn retry(&self, reason: String, wait: Option<u32>, inbound: &InboundMessage) -> Outcome {
        // The last attempt's message is made visible at once: the queue moves it to the
        // dead-letter queue at its next receive, so `dlq list` shows it within seconds.
        let last = self.last_attempt(inbound);
        let wait = match wait {
            _ if last => 0,
            Some(wait) => wait,
            None => self.settings.backoff_seconds(inbound.receive_count),
        };
        if let (true, Some(receipt)) = (wait > 0 || last, inbound.receipt_handle.as_deref()) {
            if let Err(error) = self.ports.queue.retry_after(receipt, wait).await {
                tracing::warn!(error = %error, "could not delay the retry");
            }
        }
        let reason = if last {
            format!(
                "{reason} (attempt {} of {}, the last: its message is moved to the dead-letter queue at the queue's next receive)",
                inbound.receive_count, self.settings.max_receives
            )
        } else {
            format!(
                "{reason} (attempt {} of {})",
                inbound.receive_count, self.settings.max_receives
            )
        };
        Outcome::Retry { reason }
    }
}

impl Processor {
    /// Whether this receive of the message is its last before the dead-letter queue.
    fn last_attempt(&self, inbound: &InboundMessage) -> bool {
        inbound.receive_count >= self.settings.max_receives
    }
}

/// The key of the event a record is an item of (see [`fanout`]), if it is one.
pub fn item_of(record: &Record) -> Option<String> {
    fanout::ItemOf::of_record(record).map(|item| item.item_of)
}

/// A record whose personal data was erased before it was processed: done with, nothing kept,
/// nothing fetched.
fn erased_before(record: &Record) -> Outcome {
    let note = json!({ "erasure": { "subject_erased_before": record.entity_id } });
    Outcome::Processed {
        detail: Some(note.to_string()),
    }
}

/// A record past its retention period (a message that waited longer, or a replay of one the
/// TTL has not yet deleted): nothing fetched and nothing published for it any more.
fn expired() -> Outcome {
    let note = json!({ "skipped": "past its retention period: no longer kept to be processed" });
    Outcome::Processed {
        detail: Some(note.to_string()),
    }
}

/// What writing a claimed record's outcome came to.
enum Finished {
    /// Written as it is (a refused detail turned into `FAILED`).
    Written(Outcome),
    /// Written, then emptied: its subject was erased while it was being processed.
    Erased,
    /// The claim was lost to another processor: nothing written.
    Lost,
}

/// How one attempt at a record ended, before it is written down.
enum Attempt {
    /// `PROCESSED` or `FAILED`: the message is done with.
    Done(Outcome, Handled),
    /// Back to `QUEUED`; the message returns after `wait` (or the backoff) and counts.
    Retry {
        reason: String,
        wait: Option<u32>,
        label: Handled,
    },
    /// The provider's rate limit: wait without using up an attempt — `wait` seconds where the
    /// provider said, else a backoff with full jitter.
    Throttled { reason: String, wait: Option<u32> },
}

impl Attempt {
    fn store_unavailable(error: StoreError) -> Attempt {
        Attempt::Retry {
            reason: error.to_string(),
            wait: None,
            label: Handled::StoreUnavailable,
        }
    }

    /// A setting that does not work: retried, then left in the dead-letter queue to be
    /// redriven once it is fixed.
    fn configuration(reason: String) -> Attempt {
        Attempt::Retry {
            reason: format!("configuration: {reason}"),
            wait: None,
            label: Handled::Configuration,
        }
    }
}

impl From<FetchError> for Attempt {
    fn from(error: FetchError) -> Attempt {
        match error {
            FetchError::Permanent { reason } => {
                Attempt::Done(Outcome::Failed { reason }, Handled::Failed)
            }
            FetchError::Configuration { reason } => Attempt::configuration(reason),
            FetchError::Transient {
                reason,
                retry_after,
                throttled: true,
            } => Attempt::Throttled {
                reason,
                wait: retry_after,
            },
            FetchError::Transient {
                reason,
                retry_after,
                throttled: false,
            } => Attempt::Retry {
                reason,
                wait: retry_after,
                label: Handled::Retry,
            },
        }
    }
}
