//! The event store port and its DynamoDB adapter.
//!
//! A record is created once per dedup key with a conditional put; a record still `RECEIVED`
//! carries a lease so that only one delivery at a time tries to enqueue it.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Stored, not yet confirmed in the queue.
    Received,
    /// In the queue, waiting for the processor.
    Queued,
    Processing,
    Processed,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Received => "RECEIVED",
            Status::Queued => "QUEUED",
            Status::Processing => "PROCESSING",
            Status::Processed => "PROCESSED",
            Status::Failed => "FAILED",
        }
    }

    pub fn parse(value: &str) -> Option<Status> {
        [
            Status::Received,
            Status::Queued,
            Status::Processing,
            Status::Processed,
            Status::Failed,
        ]
        .into_iter()
        .find(|status| status.as_str() == value)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The dedup key: `<provider>#<tenant>#<delivery id or entity#type#time>`.
    pub key: String,
    pub provider: String,
    pub tenant: String,
    pub event_type: String,
    pub entity_id: String,
    /// The request body exactly as received (unknown fields included).
    pub body: String,
    pub received_at_ms: i64,
    pub status: Status,
    /// While `RECEIVED`: until when the delivery that stored it owns the right to enqueue it.
    pub lease_until_ms: i64,
    /// DynamoDB TTL, epoch seconds.
    pub expires_at: i64,
}

/// What an earlier delivery left behind, as far as the ingest path cares.
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

#[derive(Debug, thiserror::Error)]
#[error("store unavailable: {0}")]
pub struct StoreError(pub String);

#[async_trait]
pub trait Store: Send + Sync {
    /// Creates the record unless one with its key exists; then reports the existing one.
    async fn put_new(&self, record: &Record) -> Result<PutOutcome, StoreError>;
    /// Takes over a `RECEIVED` record whose lease (as seen) has expired. False if someone else did.
    async fn take_over(
        &self,
        key: &str,
        seen_lease_until_ms: i64,
        new_lease_until_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Ends the lease of a `RECEIVED` record now, so the sender's retry can take it over.
    async fn release(&self, key: &str, now_ms: i64) -> Result<(), StoreError>;
    /// `RECEIVED` -> `QUEUED`. Leaves the record alone if the processor already moved it on.
    async fn mark_queued(&self, key: &str) -> Result<(), StoreError>;
    async fn get(&self, key: &str) -> Result<Option<Record>, StoreError>;
}

pub struct DynamoStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
        }
    }

    /// Opens the TLS connection during cold start rather than on the first webhook.
    pub async fn warm_up(&self) {
        let _ = self.get("warm-up#connection").await;
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
            Err(error) => Err(StoreError(DisplayErrorContext(&error).to_string())),
        }
    }
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn to_item(record: &Record) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_string(), s(&record.key)),
        ("provider".to_string(), s(&record.provider)),
        ("tenant".to_string(), s(&record.tenant)),
        ("event_type".to_string(), s(&record.event_type)),
        ("entity_id".to_string(), s(&record.entity_id)),
        ("body".to_string(), s(&record.body)),
        ("received_at".to_string(), n(record.received_at_ms)),
        ("status".to_string(), s(record.status.as_str())),
        ("lease_until".to_string(), n(record.lease_until_ms)),
        ("expires_at".to_string(), n(record.expires_at)),
    ])
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
    Status::parse(&value).ok_or_else(|| StoreError(format!("record has unknown status {value:?}")))
}

fn from_item(item: &HashMap<String, AttributeValue>) -> Result<Record, StoreError> {
    Ok(Record {
        key: get_s(item, "pk"),
        provider: get_s(item, "provider"),
        tenant: get_s(item, "tenant"),
        event_type: get_s(item, "event_type"),
        entity_id: get_s(item, "entity_id"),
        body: get_s(item, "body"),
        received_at_ms: get_n(item, "received_at"),
        status: status_of(item)?,
        lease_until_ms: get_n(item, "lease_until"),
        expires_at: get_n(item, "expires_at"),
    })
}

#[async_trait]
impl Store for DynamoStore {
    async fn put_new(&self, record: &Record) -> Result<PutOutcome, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(record)))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(PutOutcome::Created),
            Err(error) => match error.as_service_error() {
                Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(failed)) => {
                    let old = failed.item().ok_or_else(|| {
                        StoreError("conditional put failed without the existing item".into())
                    })?;
                    Ok(PutOutcome::Exists(Existing {
                        status: status_of(old)?,
                        lease_until_ms: get_n(old, "lease_until"),
                    }))
                }
                _ => Err(StoreError(DisplayErrorContext(&error).to_string())),
            },
        }
    }

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
            "SET #status = :queued",
            "#status = :received",
            &[
                (":queued", s(Status::Queued.as_str())),
                (":received", s(Status::Received.as_str())),
            ],
        )
        .await
        .map(drop)
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
            .map_err(|e| StoreError(DisplayErrorContext(&e).to_string()))?;
        output.item().map(from_item).transpose()
    }
}
