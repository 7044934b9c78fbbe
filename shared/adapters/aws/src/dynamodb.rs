//! The event store port on Amazon DynamoDB: conditional puts and updates on one table, with
//! the `by_subject` index for erasure, the sparse `pending_by_lease` index for the sweeper and
//! the `by_day` and sparse `by_attention` indexes for listings (failed and quarantined records,
//! and unfinished ones for the reconciler of stuck records). Beside the records the table
//! holds erasure tombstones, bodies kept apart, and links from a person a record names to
//! the record (in the `by_subject` index under that person, so erasing them is one query).
//!
//! DynamoDB bills every write by the size of the whole item, before or after, whichever is
//! larger. A record is written three times (stored, claimed, finished), so a body over one
//! write unit is kept in an item of its own, written once with the record in one transaction
//! (see [`body_apart`]).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::KeysAndAttributes;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use sha2::{Digest, Sha256};
use webhook_core::model::{
    history_of, history_text, Claim, Erased, EventFilter, Existing, ItemsDone, Outcome, Pending,
    PutOutcome, QueueMessage, Record, Status, Tried,
};
use webhook_core::ports::{Claims, Deliveries, Erasing, Handover, Operating, StoreError};

pub struct DynamoStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoStore {
    /// The pacer on the same table.
    pub fn pacer(&self) -> crate::DynamoPacer {
        crate::DynamoPacer::new(self.client.clone(), &self.table)
    }

    pub fn sightings(&self) -> crate::DynamoSightings {
        crate::DynamoSightings::new(self.client.clone(), &self.table)
    }

    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
        }
    }

    /// Opens the TLS connection during cold start rather than on the first webhook, with a
    /// read of `key` (one the function may read: a webhook function only its provider's keys).
    pub async fn warm_up(&self, key: &str) {
        let _ = self.get(key).await;
    }

    async fn conditional_update(
        &self,
        key: &str,
        update: &str,
        condition: &str,
        values: &[(&str, AttributeValue)],
    ) -> Result<bool, StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(key))
            .update_expression(update)
            .condition_expression(condition)
            .expression_attribute_names("#status", "status");
        for (name, value) in values {
            request = request.expression_attribute_values(*name, value.clone());
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(error) => Err(store_error(&error)),
        }
    }
}

/// A conditional write whose condition did not hold is no failure here (the item is there
/// already, or not there to change); any other error is.
fn unless_condition_failed<T, E, R>(result: Result<T, SdkError<E, R>>) -> Result<(), StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Err(error) if error.code() != Some("ConditionalCheckFailedException") => {
            Err(store_error(&error))
        }
        _ => Ok(()),
    }
}

/// A refusal DynamoDB will repeat (a value it cannot hold) apart from a passing failure.
pub(crate) fn store_error<E, R>(error: &SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let text = DisplayErrorContext(error).to_string();
    match error.code() {
        Some("ValidationException") => StoreError::Rejected(text),
        _ => StoreError::Unavailable(text),
    }
}

impl DynamoStore {
    /// The next page of `cursor`'s partition of a listing index, newest first, received in
    /// the filter's window.
    async fn read_page(
        &self,
        index: &str,
        attribute: &str,
        cursor: &mut Cursor,
        filter: &EventFilter,
    ) -> Result<(), StoreError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .key_condition_expression(
                "#partition = :partition AND received_at BETWEEN :since AND :until",
            )
            .expression_attribute_names("#partition", attribute)
            .expression_attribute_values(":partition", s(&cursor.partition))
            .expression_attribute_values(":since", n(filter.since_ms))
            .expression_attribute_values(":until", n(filter.until_ms.saturating_sub(1)))
            .scan_index_forward(false)
            .limit(LISTING_PAGE.min(filter.limit.max(1)) as i32)
            .set_exclusive_start_key(cursor.next.take())
            .send()
            .await
            .map_err(|e| store_error(&e))?;
        cursor.buffered.extend(
            output
                .items()
                .iter()
                .map(|item| (get_s(item, "pk"), get_n(item, "received_at"))),
        );
        cursor.next = output.last_evaluated_key;
        cursor.done = cursor.next.is_none();
        Ok(())
    }

    /// The records of a listing index's `partitions` that `filter` matches, newest first, at
    /// most `filter.limit`: the partitions read a page at a time and merged as they are read
    /// (a partition's next page is read before any older key is taken), and the records read
    /// 100 keys at a time in that order — so a listing reads about what it shows.
    async fn list_partitions(
        &self,
        index: &str,
        attribute: &str,
        partitions: impl Iterator<Item = String>,
        filter: &EventFilter,
    ) -> Result<Vec<Record>, StoreError> {
        let mut cursors: Vec<Cursor> = partitions.map(Cursor::new).collect();
        let mut found = Vec::new();
        let mut keys = Vec::new();
        loop {
            let unread = cursors
                .iter_mut()
                .filter(|cursor| cursor.buffered.is_empty() && !cursor.done)
                .map(|cursor| self.read_page(index, attribute, cursor, filter));
            futures::future::try_join_all(unread).await?;
            let newest = cursors
                .iter_mut()
                .filter(|cursor| !cursor.buffered.is_empty())
                .max_by(|a, b| a.head_order().cmp(&b.head_order()));
            let Some(newest) = newest else { break };
            keys.extend(newest.buffered.pop_front());
            if keys.len() == 100 {
                self.collect(std::mem::take(&mut keys), filter, &mut found)
                    .await?;
                if found.len() >= filter.limit {
                    break;
                }
            }
        }
        self.collect(keys, filter, &mut found).await?;
        Ok(filter.newest(found))
    }

    /// Reads the records of `keys` (without body and detail) and keeps those the filter
    /// matches.
    async fn collect(
        &self,
        keys: Vec<(String, i64)>,
        filter: &EventFilter,
        found: &mut Vec<Record>,
    ) -> Result<(), StoreError> {
        if keys.is_empty() || found.len() >= filter.limit {
            return Ok(());
        }
        let records = self
            .get_many(keys.iter().map(|(key, _)| key.as_str()))
            .await?;
        found.extend(records.into_iter().filter(|r| filter.matches(r)));
        Ok(())
    }

    async fn get_many(&self, keys: impl Iterator<Item = &str>) -> Result<Vec<Record>, StoreError> {
        let keys: Vec<HashMap<String, AttributeValue>> = keys
            .map(|key| HashMap::from([("pk".to_string(), s(key))]))
            .collect();
        let request = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .projection_expression(SUMMARY_ATTRIBUTES)
            .expression_attribute_names("#status", "status")
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        batch_get(&self.client, &self.table, request)
            .await?
            .iter()
            .map(from_item)
            .collect()
    }
}

/// The items `request` names (at most 100 keys), asking again for those DynamoDB left
/// unprocessed.
pub(crate) async fn batch_get(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    request: KeysAndAttributes,
) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
    let mut request = Some(request);
    let mut items = Vec::new();
    while let Some(keys) = request.take() {
        let output = client
            .batch_get_item()
            .request_items(table, keys)
            .send()
            .await
            .map_err(|e| store_error(&e))?;
        let found = output.responses().and_then(|r| r.get(table));
        items.extend(found.into_iter().flatten().cloned());
        request = output
            .unprocessed_keys()
            .and_then(|unprocessed| unprocessed.get(table))
            .cloned();
    }
    Ok(items)
}

/// Keys read from a listing partition at once, at most.
const LISTING_PAGE: usize = 1000;

/// One partition of a listing index being read, newest first.
struct Cursor {
    partition: String,
    buffered: std::collections::VecDeque<(String, i64)>,
    next: Option<HashMap<String, AttributeValue>>,
    done: bool,
}

impl Cursor {
    fn new(partition: String) -> Cursor {
        Cursor {
            partition,
            buffered: Default::default(),
            next: None,
            done: false,
        }
    }

    /// Where its next key stands in a listing's order: newer first, then the greater key.
    fn head_order(&self) -> Option<(i64, &str)> {
        self.buffered
            .front()
            .map(|(key, received_at)| (*received_at, key.as_str()))
    }
}

/// Everything of a record but its body and detail: what a listing shows.
const SUMMARY_ATTRIBUTES: &str = "pk, provider, tenant, event_type, entity_id, subject, facts, \
     received_at, #status, lease_until, expires_at, attempts, processed_at, last_error, \
     erased_at, unauthenticated";

/// Shards of the `by_day` listing index per provider. Every webhook writes it once, and one
/// DynamoDB partition takes about 1,000 writes a second: a provider at 10,000 webhooks a second
/// writes each shard about 625 times a second. A listing reads every shard, merged.
const LISTING_SHARDS: u64 = 16;

/// A record's partition of the listing index (the attribute keeps its first name, `day`; the
/// partition is a provider and a shard, whatever the day: a listing reads a few pages of each
/// shard newest first, however far back its window reaches).
fn listing_key(provider: &str, shard: u64) -> String {
    format!("{provider}#{shard}")
}

/// Shards of the sparse `by_attention` index per status: a provider whose every webhook is
/// quarantined (its envelope changed) or failed (its API refuses them) writes it once each.
const ATTENTION_SHARDS: u64 = 16;

/// A failed or quarantined record's partition of the `by_attention` index.
fn attention_key(status: Status, key: &str) -> String {
    sharded(status.as_str(), shard_of(key, ATTENTION_SHARDS))
}

/// Shards of the `by_attention` index's unfinished records (`OPEN#…`): every webhook writes
/// one twice (put on the ack, removed when it is finished), as many as the pending index.
const OPEN_SHARDS: u64 = 32;
const OPEN: &str = "OPEN";

/// An unfinished record's partition of the `by_attention` index, where the reconciler finds
/// those still unfinished a day after they came (`list` with `unfinished_only`).
fn open_key(key: &str) -> String {
    sharded(OPEN, shard_of(key, OPEN_SHARDS))
}

/// Which of `shards` the record `key` is in: from a hash of the key, so evenly spread whatever
/// the keys look like, and the same at every write of the record.
fn shard_of(key: &str, shards: u64) -> u64 {
    let digest = Sha256::digest(key.as_bytes());
    let head: [u8; 8] = digest[..8]
        .try_into()
        .expect("a SHA-256 digest has 32 bytes");
    u64::from_be_bytes(head) % shards
}

/// The partition `value` in shard `shard`. Shard 0 is `value` itself, the partition every
/// record had before the shards, so that records stored then are still listed.
fn sharded(value: &str, shard: u64) -> String {
    match shard {
        0 => value.to_string(),
        shard => format!("{value}#{shard}"),
    }
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// What DynamoDB bills one write unit for.
const ONE_WRITE_UNIT: usize = 1024;

/// Whether the record's body goes into an item of its own (its `body_key`): written once by
/// the conditional put, read back where the body is needed, so that the claim and the finish
/// rewrite a record of about one write unit instead of the whole body. A body that alone
/// takes more than a write unit: below that, the record's other attributes decide whether it
/// crosses 1 KB, and a body item would cost a write and a read for a unit saved at best
/// (measured: BENCHMARKS.md, section 5).
fn body_apart(record: &Record) -> bool {
    record.body.len() > ONE_WRITE_UNIT
}

/// Where a record's body is kept when it is kept apart: under the record's provider (the only
/// keys a webhook function may write) with an empty tenant segment, which no record key has
/// (tenant ids are never empty), so it cannot meet a record's key.
fn body_key(key: &str) -> String {
    match key.split_once('#') {
        Some((provider, rest)) => format!("{provider}##body#{rest}"),
        None => format!("##body#{key}"),
    }
}

/// The record key a body's own item belongs to, if `pk` is one (for tools that read the
/// table's items directly).
pub fn body_owner(pk: &str) -> Option<String> {
    let (provider, rest) = pk.split_once("##body#")?;
    Some(if provider.is_empty() {
        rest.to_string()
    } else {
        format!("{provider}#{rest}")
    })
}

/// Marks a record whose body is in its `body_key` item.
const BODY_APART: &str = "body_apart";

/// The body's own item of a record whose body is kept apart.
fn body_image(record: &Record) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_string(), s(&body_key(&record.key))),
        ("body".to_string(), s(&record.body)),
        ("expires_at".to_string(), n(record.expires_at)),
    ])
}

/// The item the conditional put writes for `record` (public for the tests that count the
/// writes each partition of the table and its indexes takes).
pub fn item_image(record: &Record) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::from([
        ("pk".to_string(), s(&record.key)),
        ("provider".to_string(), s(&record.provider)),
        ("tenant".to_string(), s(&record.tenant)),
        ("event_type".to_string(), s(&record.event_type)),
        ("entity_id".to_string(), s(&record.entity_id)),
        ("received_at".to_string(), n(record.received_at_ms)),
        ("status".to_string(), s(record.status.as_str())),
        ("lease_until".to_string(), n(record.lease_until_ms)),
        ("expires_at".to_string(), n(record.expires_at)),
        ("attempts".to_string(), n(record.attempts)),
    ]);
    let shard = shard_of(&record.key, LISTING_SHARDS);
    item.insert("day".to_string(), s(&listing_key(&record.provider, shard)));
    if body_apart(record) {
        item.insert(BODY_APART.to_string(), AttributeValue::Bool(true));
    } else {
        item.insert("body".to_string(), s(&record.body));
    }
    if record.status.needs_attention() {
        let attention = attention_key(record.status, &record.key);
        item.insert("attention".to_string(), s(&attention));
    } else if !record.status.is_finished() {
        item.insert("attention".to_string(), s(&open_key(&record.key)));
    }
    // Sparse: only a record that may still need the sweeper is in the pending index.
    if record.status == Status::Received {
        item.insert("pending".to_string(), s(&pending_shard(&record.key)));
    }
    if let Some(reason) = &record.last_error {
        item.insert("last_error".to_string(), s(reason));
    }
    if record.unauthenticated {
        item.insert("unauthenticated".to_string(), AttributeValue::Bool(true));
    }
    if let Some(at) = record.erased_at_ms {
        item.insert("erased_at".to_string(), n(at));
    }
    // The index key may not be empty; a record without a subject is simply not in the index.
    if !record.subject.is_empty() {
        item.insert("subject".to_string(), s(&record.subject));
    }
    if let Some(facts) = &record.facts {
        item.insert("facts".to_string(), s(facts));
    }
    if let Some(trace_id) = &record.trace_id {
        item.insert("trace_id".to_string(), s(trace_id));
    }
    if let Some(parent) = &record.trace_parent {
        item.insert("trace_parent".to_string(), s(parent));
    }
    if let Some(history) = history_text(&record.history) {
        item.insert("history".to_string(), s(&history));
    }
    item
}

/// Shards of the sparse `pending` index: the attribute exists only while a record is
/// `RECEIVED`, so every webhook writes it twice (put on the ack, removed by the claim): a
/// provider at 10,000 webhooks a second writes each shard about 625 times a second, under a
/// partition's 1,000. Shards 0 to 7 are those of before, so their records are still swept.
const PENDING_SHARDS: u64 = 32;
const _: () = assert!(PENDING_SHARDS >= 8, "the shards of before are swept");

fn pending_shard(key: &str) -> String {
    shard_of(key, PENDING_SHARDS).to_string()
}

fn get_s(item: &HashMap<String, AttributeValue>, name: &str) -> String {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

fn get_n(item: &HashMap<String, AttributeValue>, name: &str) -> i64 {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_default()
}

fn status_of(item: &HashMap<String, AttributeValue>) -> Result<Status, StoreError> {
    let value = get_s(item, "status");
    Status::parse(&value)
        .ok_or_else(|| StoreError::Unavailable(format!("record has unknown status {value:?}")))
}

fn from_item(item: &HashMap<String, AttributeValue>) -> Result<Record, StoreError> {
    Ok(Record {
        key: get_s(item, "pk"),
        provider: get_s(item, "provider"),
        tenant: get_s(item, "tenant"),
        event_type: get_s(item, "event_type"),
        entity_id: get_s(item, "entity_id"),
        subject: get_s(item, "subject"),
        facts: item.get("facts").and_then(|v| v.as_s().ok()).cloned(),
        body: get_s(item, "body"),
        received_at_ms: get_n(item, "received_at"),
        status: status_of(item)?,
        lease_until_ms: get_n(item, "lease_until"),
        expires_at: get_n(item, "expires_at"),
        attempts: get_n(item, "attempts"),
        detail: item.get("detail").and_then(|v| v.as_s().ok()).cloned(),
        processed_at_ms: item
            .get("processed_at")
            .map(|_| get_n(item, "processed_at")),
        last_error: item.get("last_error").and_then(|v| v.as_s().ok()).cloned(),
        erased_at_ms: item.get("erased_at").map(|_| get_n(item, "erased_at")),
        unauthenticated: item
            .get("unauthenticated")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false),
        trace_id: item.get("trace_id").and_then(|v| v.as_s().ok()).cloned(),
        trace_parent: item
            .get("trace_parent")
            .and_then(|v| v.as_s().ok())
            .cloned(),
        history: history_of(
            item.get("history")
                .and_then(|v| v.as_s().ok())
                .map(String::as_str),
        ),
    })
}

impl DynamoStore {
    /// The conditional put of the record itself.
    async fn put_record(&self, record: &Record) -> Result<PutOutcome, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item_image(record)))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(PutOutcome::Created),
            Err(error) => match error.as_service_error() {
                Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(failed)) => {
                    let old = failed.item().ok_or_else(|| {
                        StoreError::Unavailable("conditional put failed without the existing item".into())
                    })?;
                    Ok(PutOutcome::Exists(Existing {
                        status: status_of(old)?,
                        lease_until_ms: get_n(old, "lease_until"),
                    }))
                }
                _ => Err(store_error(&error)),
            },
        }
    }

    /// Writes the body's own item unless it is there already (an earlier copy of the delivery).
    async fn put_body(&self, record: &Record) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(body_image(record)))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        unless_condition_failed(result)
    }

    /// The conditional puts of the record and of its body's own item in one transaction: both
    /// are written or neither, whatever fails, so that no record is without its body and no
    /// body without its record. A record there already (an earlier copy) is reported as it
    /// is; one left without its body, or a body left without its record, by a write of before
    /// the transaction gets its missing half now.
    async fn put_with_body(&self, record: &Record) -> Result<PutOutcome, StoreError> {
        // The record's old image comes back where it exists; the body's is not needed.
        let conditional_put = |item, old| {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .set_return_values_on_condition_check_failure(old)
                .build()
                .map(|put| TransactWriteItem::builder().put(put).build())
                .map_err(|e| StoreError::Unavailable(e.to_string()))
        };
        let all_old = Some(ReturnValuesOnConditionCheckFailure::AllOld);
        let result = self
            .client
            .transact_write_items()
            .transact_items(conditional_put(item_image(record), all_old)?)
            .transact_items(conditional_put(body_image(record), None)?)
            .send()
            .await;
        let Err(error) = result else {
            return Ok(PutOutcome::Created);
        };
        let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
            error.as_service_error()
        else {
            return Err(store_error(&error));
        };
        let reasons = cancelled.cancellation_reasons();
        let code = |at: usize| reasons.get(at).and_then(|r| r.code()).unwrap_or("None");
        match (code(0), code(1)) {
            ("ConditionalCheckFailed", body) => {
                let old = reasons[0].item().ok_or_else(|| {
                    StoreError::Unavailable(
                        "conditional put failed without the existing item".into(),
                    )
                })?;
                // Erased records keep no body: only a record still marked for one gets it.
                if body == "None" && old.contains_key(BODY_APART) {
                    self.put_body(record).await?;
                }
                Ok(PutOutcome::Exists(Existing {
                    status: status_of(old)?,
                    lease_until_ms: get_n(old, "lease_until"),
                }))
            }
            ("None", "ConditionalCheckFailed") => self.put_record(record).await,
            (first, second) => {
                let text = DisplayErrorContext(&error).to_string();
                if first.starts_with("Validation") || second.starts_with("Validation") {
                    Err(StoreError::Rejected(text))
                } else {
                    Err(StoreError::Unavailable(text))
                }
            }
        }
    }

    /// Sets `erased_at` on the item `pk` and removes `attributes` from it, if the item exists:
    /// the values it removed, or `None` if there was no such item.
    async fn erase_item(
        &self,
        pk: &str,
        attributes: &str,
        now_ms: i64,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .update_expression(format!("SET erased_at = :now REMOVE {attributes}"))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":now", n(now_ms))
            .return_values(ReturnValue::UpdatedOld)
            .send()
            .await;
        match result {
            Ok(output) => Ok(Some(output.attributes.unwrap_or_default())),
            Err(error) if error.code() == Some("ConditionalCheckFailedException") => Ok(None),
            Err(error) => Err(store_error(&error)),
        }
    }

    /// The record of `item`, with its body read from the body's own item where it is kept
    /// apart. `None` when that item holds no body (expired, or read while an erasure runs).
    async fn with_body(
        &self,
        item: &HashMap<String, AttributeValue>,
    ) -> Result<Option<Record>, StoreError> {
        let mut record = from_item(item)?;
        if !item.contains_key(BODY_APART) {
            return Ok(Some(record));
        }
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(&body_key(&record.key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error(&e))?;
        let Some(body) = output.item().and_then(|body| body.get("body")) else {
            return Ok(None);
        };
        record.body = body.as_s().cloned().unwrap_or_default();
        Ok(Some(record))
    }
}

#[async_trait]
impl Deliveries for DynamoStore {
    async fn put_new(&self, record: &Record) -> Result<PutOutcome, StoreError> {
        if body_apart(record) {
            // One call, so the webhook still waits on one write before it sends.
            self.put_with_body(record).await
        } else {
            self.put_record(record).await
        }
    }
    async fn get(&self, key: &str) -> Result<Option<Record>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error(&e))?;
        let Some(item) = output.item() else {
            return Ok(None);
        };
        // A body item gone before its record (both expire together) leaves the record readable.
        match self.with_body(item).await? {
            Some(record) => Ok(Some(record)),
            None => from_item(item).map(Some),
        }
    }
}

#[async_trait]
impl Handover for DynamoStore {
    async fn take_over(
        &self,
        key: &str,
        seen_lease_until_ms: i64,
        new_lease_until_ms: i64,
    ) -> Result<bool, StoreError> {
        self.conditional_update(
            key,
            "SET lease_until = :new",
            "#status = :received AND lease_until = :seen",
            &[
                (":new", n(new_lease_until_ms)),
                (":seen", n(seen_lease_until_ms)),
                (":received", s(Status::Received.as_str())),
            ],
        )
        .await
    }
    async fn release(&self, key: &str, now_ms: i64) -> Result<(), StoreError> {
        self.conditional_update(
            key,
            "SET lease_until = :now",
            "#status = :received",
            &[
                (":now", n(now_ms)),
                (":received", s(Status::Received.as_str())),
            ],
        )
        .await
        .map(drop)
    }
    async fn mark_queued(&self, key: &str) -> Result<(), StoreError> {
        self.conditional_update(
            key,
            "SET #status = :queued REMOVE pending",
            "#status = :received",
            &[
                (":queued", s(Status::Queued.as_str())),
                (":received", s(Status::Received.as_str())),
            ],
        )
        .await
        .map(drop)
    }
    async fn pending(&self, now_ms: i64, limit: usize) -> Result<Vec<Pending>, StoreError> {
        let mut found = Vec::new();
        for shard in 0..PENDING_SHARDS {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(PENDING_INDEX)
                .key_condition_expression("pending = :shard AND lease_until < :now")
                .expression_attribute_values(":shard", s(&shard.to_string()))
                .expression_attribute_values(":now", n(now_ms))
                .limit(limit as i32)
                .send()
                .await
                .map_err(|e| store_error(&e))?;
            found.extend(output.items().iter().map(|item| Pending {
                message: QueueMessage {
                    key: get_s(item, "pk"),
                    provider: get_s(item, "provider"),
                    tenant: get_s(item, "tenant"),
                    event_type: get_s(item, "event_type"),
                    entity_id: get_s(item, "entity_id"),
                    ..QueueMessage::default()
                },
                lease_until_ms: get_n(item, "lease_until"),
            }));
        }
        found.sort_by_key(|p| p.lease_until_ms);
        found.truncate(limit);
        Ok(found)
    }
}

#[async_trait]
impl Claims for DynamoStore {
    async fn claim(
        &self,
        key: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<Claim, StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(key))
            .update_expression(
                "SET #status = :processing, lease_until = :lease REMOVE pending ADD attempts :one",
            )
            .condition_expression(
                "attribute_exists(pk) AND (#status IN (:received, :queued) \
                 OR (#status = :processing AND lease_until < :now))",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":processing", s(Status::Processing.as_str()))
            .expression_attribute_values(":received", s(Status::Received.as_str()))
            .expression_attribute_values(":queued", s(Status::Queued.as_str()))
            .expression_attribute_values(":lease", n(lease_until_ms))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":one", n(1))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => {
                let item = output
                    .attributes()
                    .ok_or_else(|| StoreError::Unavailable("claim returned no attributes".into()))?;
                let record = self.with_body(item).await?.ok_or_else(|| {
                    StoreError::Unavailable(format!("the body of {key} is not stored yet"))
                })?;
                Ok(Claim::Claimed(Box::new(record)))
            }
            Err(error) => match error.as_service_error() {
                Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    match failed.item() {
                        None => Ok(Claim::Missing),
                        Some(old) => match status_of(old)? {
                            Status::Processing => Ok(Claim::Busy),
                            status => Ok(Claim::Finished(status)),
                        },
                    }
                }
                _ => Err(store_error(&error)),
            },
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
        let history = history.and_then(history_text);
        let mut values = vec![
            (":processing", s(Status::Processing.as_str())),
            (":lease", n(lease_until_ms)),
            (":status", s(outcome.status().as_str())),
        ];
        let mut set = vec!["#status = :status"];
        let mut remove = vec!["lease_until"];
        if let Some(at) = outcome.processed_at(now_ms) {
            values.push((":now", n(at)));
            set.push("processed_at = :now");
        }
        if let Some(detail) = outcome.detail() {
            values.push((":detail", s(detail)));
            set.push("detail = :detail");
        }
        match outcome.error() {
            Some(reason) => {
                values.push((":reason", s(reason)));
                set.push("last_error = :reason");
            }
            None => remove.push("last_error"),
        }
        if outcome.status().needs_attention() {
            values.push((":attention", s(&attention_key(outcome.status(), key))));
            set.push("attention = :attention");
        } else if outcome.status().is_finished() {
            remove.push("attention");
        }
        if let Some(history) = &history {
            values.push((":history", s(history)));
            set.push("history = :history");
        }
        let update = format!("SET {} REMOVE {}", set.join(", "), remove.join(", "));
        self.conditional_update(
            key,
            &update,
            "#status = :processing AND lease_until = :lease",
            &values,
        )
        .await
    }
    async fn item_done(
        &self,
        parent: &str,
        item: u32,
        failed: bool,
        expires_at: i64,
    ) -> Result<ItemsDone, StoreError> {
        // A small item of its own beside the parent: every item's update rewrites it, and a
        // write is billed by the size of the whole item (the parent holds the list's body).
        let set = AttributeValue::Ns(vec![item.to_string()]);
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&format!("items#{parent}")))
            .expression_attribute_values(":item", set)
            .expression_attribute_values(":expires", n(expires_at))
            .return_values(ReturnValue::AllNew);
        update = if failed {
            update.update_expression("ADD done :item, failed :item SET expires_at = :expires")
        } else {
            update.update_expression("ADD done :item SET expires_at = :expires")
        };
        let output = update.send().await.map_err(|e| store_error(&e))?;
        let count = |name: &str| {
            output
                .attributes()
                .and_then(|item| item.get(name))
                .and_then(|value| value.as_ns().ok())
                .map_or(0, Vec::len)
        };
        Ok(ItemsDone {
            done: count("done"),
            failed: count("failed"),
        })
    }
}

#[async_trait]
impl Erasing for DynamoStore {
    async fn erase_subject(
        &self,
        subject: &str,
        now_ms: i64,
        tombstone_expires_at: i64,
    ) -> Result<Erased, StoreError> {
        // The tombstone first: whatever is stored or finished after it sees it.
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(&tombstone_key(subject)))
            .item("erased_at", n(now_ms))
            .item("expires_at", n(tombstone_expires_at))
            .send()
            .await
            .map_err(|e| store_error(&e))?;
        let mut erased = Erased::default();
        for key in &self.subject_records(subject).await? {
            erased += self.erase_record(key, now_ms).await?;
        }
        Ok(erased)
    }
    async fn subject_records(&self, subject: &str) -> Result<Vec<String>, StoreError> {
        let mut keys: Vec<String> = keys_of_subject(&self.client, &self.table, subject)
            .await?
            .into_iter()
            .map(|pk| linked_record(&pk).map_or_else(|| pk.clone(), str::to_string))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }
    async fn link_persons(
        &self,
        key: &str,
        persons: &[String],
        expires_at: i64,
    ) -> Result<(), StoreError> {
        for person in persons {
            self.client
                .put_item()
                .table_name(&self.table)
                .item("pk", s(&link_key(person, key)))
                .item("subject", s(person))
                .item("expires_at", n(expires_at))
                .send()
                .await
                .map_err(|e| store_error(&e))?;
        }
        Ok(())
    }
    async fn erased_at(&self, subject: &str) -> Result<Option<i64>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(&tombstone_key(subject)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error(&e))?;
        Ok(output.item().map(|item| get_n(item, "erased_at")))
    }
    async fn erase_record(&self, key: &str, now_ms: i64) -> Result<Erased, StoreError> {
        let Some(removed) = self
            .erase_item(key, "body, detail, body_apart", now_ms)
            .await?
        else {
            return Ok(Erased::default());
        };
        // The body's own item, where there is one; an update, not a delete, keeps the
        // functions' permissions as they are (an erasure is rare; what it writes does not matter).
        let apart = self.erase_item(&body_key(key), "body", now_ms).await?;
        let had = |item: &HashMap<String, AttributeValue>, name: &str| {
            item.get(name)
                .and_then(|value| value.as_s().ok())
                .is_some_and(|text| !text.is_empty())
        };
        let had_body = had(&removed, "body") || apart.is_some_and(|item| had(&item, "body"));
        Ok(Erased::record(had_body, had(&removed, "detail")))
    }
}

#[async_trait]
impl Operating for DynamoStore {
    async fn list(&self, filter: &EventFilter) -> Result<Vec<Record>, StoreError> {
        if filter.unfinished_only {
            let shards = (0..OPEN_SHARDS).map(|shard| sharded(OPEN, shard));
            return self
                .list_partitions(ATTENTION_INDEX, "attention", shards, filter)
                .await;
        }
        match filter.status.filter(|status| status.needs_attention()) {
            Some(status) => {
                let shards = (0..ATTENTION_SHARDS).map(|shard| sharded(status.as_str(), shard));
                self.list_partitions(ATTENTION_INDEX, "attention", shards, filter)
                    .await
            }
            None => {
                let shards = filter.providers.iter().flat_map(|provider| {
                    (0..LISTING_SHARDS).map(move |shard| listing_key(provider, shard))
                });
                self.list_partitions(DAY_INDEX, "day", shards, filter).await
            }
        }
    }
    async fn reopen(
        &self,
        key: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<bool, StoreError> {
        self.conditional_update(
            key,
            "SET #status = :received, lease_until = :lease, pending = :shard, \
             attention = :open REMOVE last_error, detail, processed_at",
            "#status IN (:queued, :processed, :failed) \
             OR (#status IN (:received, :processing) AND lease_until < :now)",
            &[
                (":received", s(Status::Received.as_str())),
                (":queued", s(Status::Queued.as_str())),
                (":processing", s(Status::Processing.as_str())),
                (":processed", s(Status::Processed.as_str())),
                (":failed", s(Status::Failed.as_str())),
                (":lease", n(lease_until_ms)),
                (":now", n(now_ms)),
                (":shard", s(&pending_shard(key))),
                (":open", s(&open_key(key))),
            ],
        )
        .await
    }
    async fn requeue_stuck(
        &self,
        key: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<bool, StoreError> {
        self.conditional_update(
            key,
            "SET #status = :received, lease_until = :lease, pending = :shard, requeued_at = :now",
            "attribute_not_exists(requeued_at) AND (#status = :queued \
             OR (#status = :processing AND lease_until < :now))",
            &[
                (":received", s(Status::Received.as_str())),
                (":queued", s(Status::Queued.as_str())),
                (":processing", s(Status::Processing.as_str())),
                (":lease", n(lease_until_ms)),
                (":now", n(now_ms)),
                (":shard", s(&pending_shard(key))),
            ],
        )
        .await
    }
    async fn resolve_quarantine(
        &self,
        key: &str,
        note: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.conditional_update(
            key,
            "SET #status = :processed, detail = :note, processed_at = :now REMOVE attention",
            "#status = :quarantined",
            &[
                (":processed", s(Status::Processed.as_str())),
                (":quarantined", s(Status::Quarantined.as_str())),
                (":note", s(note)),
                (":now", n(now_ms)),
            ],
        )
        .await
    }
}

/// The link from `person` to the record `key` that names them: under the person's hash (so
/// that a person's links never collide with another's), then the record's key, which
/// [`linked_record`] reads back. Outside the provider's keys: only the processor writes it.
fn link_key(person: &str, key: &str) -> String {
    let hash = hex::encode(&Sha256::digest(person.as_bytes())[..16]);
    format!("link#{hash}#{key}")
}

/// The record a link item (`pk`) points to, if `pk` is a link's.
pub fn linked_record(pk: &str) -> Option<&str> {
    pk.strip_prefix("link#")?
        .split_once('#')
        .map(|(_, key)| key)
}

/// Where the tombstone of an erased subject is kept (beside the records, outside every index).
fn tombstone_key(subject: &str) -> String {
    format!("erased#{subject}")
}

/// The index of records by subject (provider#tenant#entity), for erasure.
pub const SUBJECT_INDEX: &str = "by_subject";

/// The keys of every item under `subject` in the subject index.
pub(crate) async fn keys_of_subject(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    subject: &str,
) -> Result<Vec<String>, StoreError> {
    let mut keys = Vec::new();
    let mut pages = client
        .query()
        .table_name(table)
        .index_name(SUBJECT_INDEX)
        .key_condition_expression("subject = :subject")
        .expression_attribute_values(":subject", s(subject))
        .into_paginator()
        .items()
        .send();
    while let Some(item) = pages.next().await {
        let item = item.map_err(|e| store_error(&e))?;
        keys.push(get_s(&item, "pk"));
    }
    Ok(keys)
}

/// Every record by provider and shard (`day`, see [`listing_key`]) and time, newest first:
/// what listings read, every shard merged.
pub const DAY_INDEX: &str = "by_day";

/// The sparse index of failed and quarantined records (`attention`, their status and a shard,
/// see [`attention_key`]) by time.
pub const ATTENTION_INDEX: &str = "by_attention";

/// The sparse index of `RECEIVED` records by lease end (`pending` shard, `lease_until`), for the sweeper.
pub const PENDING_INDEX: &str = "pending_by_lease";

/// Creates the events table as template.yaml declares it (for tests, benchmarks and local
/// endpoints): `pk` and its four indexes.
pub async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<(), StoreError> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        Projection, ProjectionType, ScalarAttributeType,
    };
    let attribute = |name: &str, kind: ScalarAttributeType| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
            .expect("name and type are set")
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .expect("name and type are set")
    };
    let by_subject = GlobalSecondaryIndex::builder()
        .index_name(SUBJECT_INDEX)
        .key_schema(key("subject", KeyType::Hash))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::KeysOnly)
                .build(),
        )
        .build()
        .expect("index is complete");
    let pending = GlobalSecondaryIndex::builder()
        .index_name(PENDING_INDEX)
        .key_schema(key("pending", KeyType::Hash))
        .key_schema(key("lease_until", KeyType::Range))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::Include)
                .set_non_key_attributes(Some(
                    ["provider", "tenant", "event_type", "entity_id"]
                        .map(String::from)
                        .to_vec(),
                ))
                .build(),
        )
        .build()
        .expect("index is complete");
    let by_time = |name: &str, partition: &str| {
        GlobalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key(partition, KeyType::Hash))
            .key_schema(key("received_at", KeyType::Range))
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::KeysOnly)
                    .build(),
            )
            .build()
            .expect("index is complete")
    };
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("pk", ScalarAttributeType::S))
        .attribute_definitions(attribute("subject", ScalarAttributeType::S))
        .attribute_definitions(attribute("pending", ScalarAttributeType::S))
        .attribute_definitions(attribute("lease_until", ScalarAttributeType::N))
        .attribute_definitions(attribute("day", ScalarAttributeType::S))
        .attribute_definitions(attribute("attention", ScalarAttributeType::S))
        .attribute_definitions(attribute("received_at", ScalarAttributeType::N))
        .key_schema(key("pk", KeyType::Hash))
        .global_secondary_indexes(by_subject)
        .global_secondary_indexes(pending)
        .global_secondary_indexes(by_time(DAY_INDEX, "day"))
        .global_secondary_indexes(by_time(ATTENTION_INDEX, "attention"))
        .send()
        .await
        .map_err(|e| store_error(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_key_stays_under_its_provider_and_never_meets_a_record_key() {
        for key in ["egym#gym-1#abc", "magicline#t#x#body#y", "bare"] {
            let body = body_key(key);
            assert_ne!(body, key);
            assert_eq!(body_owner(&body).as_deref(), Some(key));
            assert_eq!(body_owner(key), None, "a record key is no body key");
        }
        assert!(body_key("egym#gym-1#abc").starts_with("egym#"));
    }

    #[test]
    fn shard_zero_is_the_partition_records_had_before_the_shards() {
        assert_eq!(listing_key("egym", 15), "egym#15");
        assert_eq!(sharded(Status::Failed.as_str(), 0), "FAILED");
    }
}
