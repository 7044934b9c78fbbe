//! Events that name a list of objects (a studio's automatic check-out of its customers) are
//! split into items: each stored as a record of its own and queued like a fresh delivery, then
//! fetched, paced, retried, erased and published on its own — so that a 429 on one never
//! repeats the others and no answer adds up past a record's size. The event's own record
//! waits (`QUEUED`, its detail saying how many items) and is finished once every item is:
//! `PROCESSED`, or `FAILED` naming how many of them failed.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::clock::after;
use crate::model::{Claim, Outcome, PutOutcome, Record, Status};
use crate::ports::StoreError;
use crate::providers::{persons_named, Item, Provider};

use super::{Attempt, Handled, Processor};

/// How long an item's record is left to the send that follows its store before the sweeper
/// re-sends it (as a webhook's).
const ITEM_LEASE_MS: i64 = 60_000;

/// What an item's record carries (as its facts) to be processed on its own.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct ItemOf {
    /// The key of the event's record.
    pub item_of: String,
    pub item: u32,
    /// How many items the event has.
    pub of: u32,
    pub path: String,
}

impl ItemOf {
    /// The item a stored record is, if it is one.
    pub(super) fn of_record(record: &Record) -> Option<ItemOf> {
        serde_json::from_str(record.facts.as_deref()?).ok()
    }
}

/// An item's key: apart from every delivery's (no tenant is empty, so `<provider>##…` is never
/// a delivery's key) and unique per event and item.
fn item_key(parent: &Record, item: u32) -> String {
    let rest = parent
        .key
        .strip_prefix(&format!("{}#", parent.provider))
        .unwrap_or(&parent.key);
    format!("{}##item#{item}#{rest}", parent.provider)
}

impl Processor {
    /// Stores and queues each item of `record`; the record then waits for them.
    pub(super) async fn fan_out(
        &self,
        provider: &dyn Provider,
        record: &Record,
        items: Vec<Item>,
    ) -> Attempt {
        let now = self.ports.clock.now_ms();
        let of = u32::try_from(items.len()).unwrap_or(u32::MAX);
        for (item, number) in items.into_iter().zip(0..) {
            let child = item_record(provider, record, item, number, of, after_ms(now));
            match self.ports.store.put_new(&child).await {
                // A failed send leaves it to the sweeper once its lease is over.
                Ok(PutOutcome::Created) => {
                    let _ = self.ports.outbox.send_fresh(&child.message()).await;
                }
                Ok(PutOutcome::Exists(_)) => {}
                Err(error) => return Attempt::store_unavailable(error),
            }
        }
        let note = json!({ "items": of }).to_string();
        Attempt::Done(Outcome::Waiting { note }, Handled::FannedOut)
    }

    /// After an item's record is finished (`status`): counts it done, and finishes its event's
    /// record once every item is. Nothing for a record that is no item.
    pub(super) async fn item_finished(
        &self,
        record: &Record,
        status: Status,
    ) -> Result<(), StoreError> {
        let Some(item) = ItemOf::of_record(record) else {
            return Ok(());
        };
        let failed = status == Status::Failed;
        let store = &self.ports.store;
        let done = store
            .item_done(&item.item_of, item.item, failed, record.expires_at)
            .await?;
        if done.done < item.of as usize {
            return Ok(());
        }
        let now = self.ports.clock.now_ms();
        let lease = after(now, self.settings.lease);
        // Two last items may finish at once: the claim lets one of them finish the event.
        let Claim::Claimed(_) = store.claim(&item.item_of, now, lease).await? else {
            return Ok(());
        };
        let outcome = match done.failed {
            0 => Outcome::Processed {
                detail: Some(json!({ "items": item.of }).to_string()),
            },
            failed => Outcome::Failed {
                reason: format!(
                    "{failed} of its {} items failed (each item's record says why)",
                    item.of
                ),
            },
        };
        store.finish(&item.item_of, lease, &outcome, now).await?;
        Ok(())
    }

    /// A redelivered message whose record is done: if the record is an item, it is counted
    /// done again (harmless), so that an event whose count was interrupted is still finished.
    pub(super) async fn recount_item(&self, key: &str) -> Result<(), StoreError> {
        match self.ports.store.get(key).await? {
            Some(record) if ItemOf::of_record(&record).is_some() => {
                self.item_finished(&record, record.status).await
            }
            _ => Ok(()),
        }
    }
}

fn after_ms(now: i64) -> i64 {
    now + ITEM_LEASE_MS
}

/// The record of item `number` of `of` of `parent`: about the person the item names where it
/// names one (so that erasing them reaches it), holding its part of the body.
fn item_record(
    provider: &dyn Provider,
    parent: &Record,
    item: Item,
    number: u32,
    of: u32,
    lease_until_ms: i64,
) -> Record {
    let person = persons_named(provider.person_fields(), &item.content)
        .into_iter()
        .next();
    let facts = ItemOf {
        item_of: parent.key.clone(),
        item: number,
        of,
        path: item.path,
    };
    Record {
        key: item_key(parent, number),
        provider: parent.provider.clone(),
        tenant: parent.tenant.clone(),
        event_type: parent.event_type.clone(),
        entity_id: person
            .as_deref()
            .and_then(|person| person.split_once(':'))
            .map_or_else(|| parent.entity_id.clone(), |(_, id)| id.to_string()),
        subject: person.map_or_else(String::new, |person| {
            crate::key::subject_of(&parent.provider, &parent.tenant, &person)
        }),
        facts: serde_json::to_string(&facts).ok(),
        body: item.content,
        received_at_ms: parent.received_at_ms,
        status: Status::Received,
        lease_until_ms,
        expires_at: parent.expires_at,
        unauthenticated: parent.unauthenticated,
        trace_id: parent.trace_id.clone(),
        trace_parent: parent.trace_parent.clone(),
        ..Record::default()
    }
}
