//! What operators do with the stored events: find them, replay them through the outbox,
//! release quarantined ones through the current parser, erase a subject, count them. The admin
//! command line and the dev server's pages are thin shells around this.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;

use crate::clock::after;
use crate::config::IngestSettings;
use crate::erasure::{erase_person, preview_person, withhold_erased, Person, Preview, Receipt};
use crate::ingest::Delivery;
use crate::model::{EventFilter, Paused, PutOutcome, Record, Status};
use crate::ports::{Ports, StoreError};
use crate::providers::Provider;
use crate::tenants::TenantDirectory;

/// What an operator can be told went wrong, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum OperateError {
    #[error("no event with the key {0:?}: list events to find its key")]
    UnknownKey(String),
    #[error("{0:?} is not quarantined (it is {1}): only quarantined events are released")]
    NotQuarantined(String, &'static str),
    #[error("no provider is called {0:?}; known: {1}")]
    UnknownProvider(String, String),
    #[error("tenant {0:?} is not in {1}'s configuration: add it, then release again")]
    UnknownTenant(String, String),
    #[error("the body still does not parse: {0}; fix the provider's parser or the tenant's pointers, then release again")]
    StillUnreadable(String),
    /// An erasure that would reach nobody: nothing erased, no tombstone written.
    #[error("{0}")]
    NobodyToErase(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How a replay of one event went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replayed {
    /// Back in the queue, to be processed once more.
    Queued,
    /// Stored for it, but the queue write failed: the sweeper enqueues it.
    LeftToTheSweeper,
    /// Not replayed, and why (quarantined, in flight, unknown).
    Skipped(String),
}

/// How many records a provider has in one status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    pub provider: String,
    pub status: Status,
    pub count: u64,
}

/// Quarantined deliveries are counted up to this many (the newest) for `drift`.
pub const QUARANTINE_COUNTED: usize = 1000;

/// What `webhooks drift` shows: signs of contract drift, and quarantined deliveries by
/// provider and tenant.
pub struct Drift {
    pub sightings: Vec<crate::model::Sighting>,
    pub quarantined: BTreeMap<(String, String), u64>,
}

pub struct Operations {
    ports: Ports,
    settings: IngestSettings,
}

impl Operations {
    pub fn new(ports: Ports, settings: IngestSettings) -> Self {
        Operations { ports, settings }
    }

    /// A filter with every provider when none is named and the retention period when no
    /// start is given.
    pub fn filter(
        &self,
        provider: Option<&str>,
        tenant: Option<&str>,
        status: Option<Status>,
        since_ms: Option<i64>,
        limit: usize,
    ) -> Result<EventFilter, OperateError> {
        let providers = match provider {
            Some(name) => {
                known_provider(name)?;
                vec![name.to_string()]
            }
            None => crate::providers::names(),
        };
        let now = self.ports.clock.now_ms();
        Ok(EventFilter {
            providers,
            tenant: tenant.map(str::to_string),
            status,
            since_ms: since_ms.unwrap_or_else(|| now - self.settings.retention.as_millis() as i64),
            until_ms: now + 1,
            limit,
            live_at_ms: now,
            unfinished_only: false,
        })
    }

    pub async fn list(&self, filter: &EventFilter) -> Result<Vec<Record>, OperateError> {
        Ok(self.ports.store.list(filter).await?)
    }

    pub async fn show(&self, key: &str) -> Result<Record, OperateError> {
        self.ports
            .store
            .get(key)
            .await?
            .ok_or_else(|| OperateError::UnknownKey(key.to_string()))
    }

    /// Sends one event through the outbox again: its record back to `RECEIVED` under a lease
    /// (a conditional write, so two replays of one event queue it once), then queued.
    pub async fn replay(&self, key: &str) -> Result<Replayed, OperateError> {
        let Some(record) = self.ports.store.get(key).await? else {
            return Ok(Replayed::Skipped("no such event".into()));
        };
        if record.status == Status::Quarantined {
            return Ok(Replayed::Skipped("quarantined: release it instead".into()));
        }
        let now = self.ports.clock.now_ms();
        if record.expired_at(now) {
            return Ok(Replayed::Skipped(
                "past its retention period: it is no longer kept to be processed".into(),
            ));
        }
        let lease = after(now, self.settings.lease);
        if !self.ports.store.reopen(key, now, lease).await? {
            return Ok(Replayed::Skipped(format!(
                "{} and being worked on right now",
                record.status.as_str()
            )));
        }
        // Left RECEIVED under the lease like a fresh delivery: a second replay within it is
        // refused, and the sweeper re-sends it if nobody claims it.
        Ok(
            match self.ports.outbox.send_fresh(&record.message()).await {
                Ok(()) => Replayed::Queued,
                Err(_) => Replayed::LeftToTheSweeper,
            },
        )
    }

    /// The quarantined record under `key` (what [`Operations::release`] takes); an error if
    /// there is none or it is not quarantined (released already).
    pub async fn quarantined(&self, key: &str) -> Result<Record, OperateError> {
        let record = self.show(key).await?;
        if record.status != Status::Quarantined {
            return Err(OperateError::NotQuarantined(
                key.to_string(),
                record.status.as_str(),
            ));
        }
        Ok(record)
    }

    /// Runs a quarantined delivery (from [`Operations::quarantined`]) through its provider's
    /// current parser; if it now parses, stores and queues it under its real dedup key
    /// (counted once, like any delivery) and marks the quarantined record as released.
    /// Returns the real key.
    pub async fn release(
        &self,
        quarantined: &Record,
        tenants: &TenantDirectory,
    ) -> Result<String, OperateError> {
        let provider = known_provider(&quarantined.provider)?;
        let tenant = tenants.get(&quarantined.tenant).ok_or_else(|| {
            OperateError::UnknownTenant(quarantined.tenant.clone(), quarantined.provider.clone())
        })?;
        let body = raw_body(quarantined);
        let delivery = Delivery {
            provider: provider.as_ref(),
            tenant,
            body: &body,
            declared_json: true,
            unauthenticated: quarantined.unauthenticated,
            signature_key: crate::ingest::signature_key_of(quarantined),
        };
        let now = self.ports.clock.now_ms();
        let mut record = delivery.record(quarantined.received_at_ms, &self.settings);
        record.trace_id = quarantined.trace_id.clone();
        record.trace_parent = quarantined.trace_parent.clone();
        if record.status == Status::Quarantined {
            return Err(OperateError::StillUnreadable(
                record.last_error.unwrap_or_default(),
            ));
        }
        record.lease_until_ms = after(now, self.settings.lease);
        withhold_erased(&self.ports, provider.as_ref(), &mut record).await?;
        if self.ports.store.put_new(&record).await? == PutOutcome::Created {
            // A failed send leaves it to the sweeper, like a webhook's.
            let _ = self.ports.outbox.enqueue(&record.message()).await;
        }
        let note = serde_json::json!({ RELEASED_AS: record.key }).to_string();
        self.ports
            .store
            .resolve_quarantine(&quarantined.key, &note, now)
            .await?;
        Ok(record.key)
    }

    /// Erases what is held about one person (`<kind>:<id>`, as the provider names it:
    /// `customer:42`) of one tenant — the records about them, those that name them, the
    /// quarantined bodies that hold their id — and returns the receipt.
    /// Erases what is held about `person` (`<kind>:<id>`) of `provider`'s `tenant`: refused
    /// — nothing erased, no tombstone — for an empty id or a kind the provider's records are
    /// never about (unless `any_kind`: a TIMIFY or Waitwhile family that came later).
    pub async fn erase(
        &self,
        provider: &str,
        tenant: &str,
        person: &str,
        any_kind: bool,
    ) -> Result<Receipt, OperateError> {
        let person = checked_person(provider, tenant, person, any_kind)?;
        let now = self.ports.clock.now_ms();
        let keep_tombstone_until = self.settings.expires_at(now);
        Ok(erase_person(&self.ports, &person, keep_tombstone_until).await?)
    }

    /// What [`Operations::erase`] would empty, checked as it checks, nothing erased.
    pub async fn erase_preview(
        &self,
        provider: &str,
        tenant: &str,
        person: &str,
        any_kind: bool,
    ) -> Result<Preview, OperateError> {
        let person = checked_person(provider, tenant, person, any_kind)?;
        Ok(preview_person(&self.ports, &person).await?)
    }

    /// Holds processing of a provider, or of one of its tenants (`resume` false), or lets it go
    /// on again: its webhooks are still acknowledged and stored meanwhile.
    pub async fn pause(
        &self,
        provider: &str,
        tenant: Option<&str>,
        pause: bool,
    ) -> Result<String, OperateError> {
        known_provider(provider)?;
        let scope = match tenant {
            Some(tenant) => crate::key::tenant_scope(provider, tenant),
            None => provider.to_string(),
        };
        let now = self.ports.clock.now_ms();
        self.ports.pacer.set_paused(&scope, pause, now).await?;
        Ok(scope)
    }

    /// What the processors have seen of `provider`'s (or every provider's) contract, and how
    /// many deliveries each tenant has kept quarantined (unreadable) within the retention
    /// period — counted up to [`QUARANTINE_COUNTED`].
    pub async fn drift(&self, provider: Option<&str>) -> Result<Drift, OperateError> {
        let filter = self.filter(
            provider,
            None,
            Some(Status::Quarantined),
            None,
            QUARANTINE_COUNTED,
        )?;
        let mut quarantined: BTreeMap<(String, String), u64> = BTreeMap::new();
        for record in self.ports.store.list(&filter).await? {
            *quarantined
                .entry((record.provider, record.tenant))
                .or_default() += 1;
        }
        Ok(Drift {
            sightings: self
                .ports
                .sightings
                .sightings(provider, self.ports.clock.now_ms())
                .await?,
            quarantined,
        })
    }

    /// What is paused, by scope.
    pub async fn paused(&self) -> Result<Vec<Paused>, OperateError> {
        Ok(self.ports.pacer.paused().await?)
    }

    /// Records per provider and status received since `since_ms` (every provider, every
    /// status, zeros left out).
    pub async fn stats(&self, since_ms: Option<i64>) -> Result<Vec<Count>, OperateError> {
        let filter = self.filter(None, None, None, since_ms, usize::MAX)?;
        let mut counts: BTreeMap<(String, &'static str), Count> = BTreeMap::new();
        for record in self.ports.store.list(&filter).await? {
            counts
                .entry((record.provider.clone(), record.status.as_str()))
                .or_insert(Count {
                    provider: record.provider.clone(),
                    status: record.status,
                    count: 0,
                })
                .count += 1;
        }
        Ok(counts.into_values().collect())
    }
}

/// The provider named `name`, or an error that names the known ones.
fn known_provider(name: &str) -> Result<Arc<dyn Provider>, OperateError> {
    crate::providers::by_name(name).ok_or_else(|| {
        OperateError::UnknownProvider(name.to_string(), crate::providers::names().join(", "))
    })
}

/// Refuses a subject no record of `provider` can be about: without an id, or of a kind it
/// never uses (a typo such as `customr`, another provider's kind) unless `any_kind`.
/// The person an erasure is about, once their provider and kind are known.
fn checked_person(
    provider: &str,
    tenant: &str,
    person: &str,
    any_kind: bool,
) -> Result<Person, OperateError> {
    check_subject(known_provider(provider)?.as_ref(), person, any_kind)?;
    Ok(Person {
        provider: provider.to_string(),
        tenant: tenant.to_string(),
        person: person.to_string(),
    })
}

fn check_subject(
    provider: &dyn Provider,
    subject: &str,
    any_kind: bool,
) -> Result<(), OperateError> {
    let kinds = crate::providers::subject_kinds(provider);
    let refuse = |why: String| Err(OperateError::NobodyToErase(why));
    let Some((kind, id)) = subject.split_once(':') else {
        return refuse(format!(
            "{subject:?} is not <kind>:<id>; {}'s kinds: {}",
            provider.name(),
            kinds.join(", ")
        ));
    };
    if id.trim().is_empty() {
        return refuse(format!(
            "{subject:?} has no id after the ':': nothing erased"
        ));
    }
    if !any_kind && !kinds.contains(&kind) {
        return refuse(format!(
            "{} records are never about a {kind:?}: nothing erased. Its kinds: {} \
             (`webhooks events show KEY` prints a record's subject; --any-kind for a kind \
             of a newer event family)",
            provider.name(),
            kinds.join(", ")
        ));
    }
    Ok(())
}

/// Where a released quarantine's note names the record it was stored as.
const RELEASED_AS: &str = "released_as";

/// The key a quarantined delivery was released as, if this record is one that was released.
pub fn released_as(record: &Record) -> Option<String> {
    let note = record
        .detail
        .as_deref()
        .filter(|_| record.status == Status::Processed)?;
    let note: serde_json::Value = serde_json::from_str(note).ok()?;
    note[RELEASED_AS].as_str().map(str::to_string)
}

/// The body as it came: quarantined bodies that were not UTF-8 are kept Base64-encoded.
pub fn raw_body(record: &Record) -> Vec<u8> {
    if record.body_is_base64() {
        base64::engine::general_purpose::STANDARD
            .decode(&record.body)
            .unwrap_or_default()
    } else {
        record.body.clone().into_bytes()
    }
}
