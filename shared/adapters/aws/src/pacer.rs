//! The [`Pacer`] port on DynamoDB: each key's next free slot (and the time the next message
//! turned away comes back) in an item of its own in the
//! events table (`pace#…`, outside every provider's keys and every index, kept a day past its
//! last use), moved on by a conditional update, so that concurrent processors never take the
//! same slot.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::AttributeValue;
use webhook_core::clock::SharedClock;
use webhook_core::model::{next_slot, PaceState, Paused, Reservation};
use webhook_core::ports::{Pacer, StoreError};

use crate::dynamodb::store_error;

pub struct DynamoPacer {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoPacer {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoPacer {
            client,
            table: table.into(),
        }
    }

    async fn state(&self, pk: &str) -> Result<PaceState, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error(&e))?;
        let number = |name: &str| {
            output
                .item()
                .and_then(|item| item.get(name))
                .and_then(|value| value.as_n().ok())
                .and_then(|n| n.parse().ok())
        };
        Ok(PaceState {
            next_free_ms: number("next_free"),
            next_back_ms: number("next_back"),
        })
    }
}

fn number(n: i64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

/// A pace item outlives its last reservation by a day (DynamoDB TTL, epoch seconds).
const KEEP_SECONDS: i64 = 86_400;

/// The one item that holds what is paused (`paused`: scope -> since), read by every processor
/// once a batch: a few scopes at most, so one small item.
const PAUSED: &str = "control#paused";

#[async_trait]
impl Pacer for DynamoPacer {
    async fn set_paused(&self, scope: &str, paused: bool, now_ms: i64) -> Result<(), StoreError> {
        let item = || {
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(PAUSED.to_string()))
        };
        if paused {
            // The map first (nothing changes once it is there), then the scope in it.
            item()
                .update_expression("SET paused = if_not_exists(paused, :empty)")
                .expression_attribute_values(":empty", AttributeValue::M(Default::default()))
                .send()
                .await
                .map_err(|e| store_error(&e))?;
            item()
                .update_expression("SET paused.#scope = if_not_exists(paused.#scope, :since)")
                .expression_attribute_names("#scope", scope)
                .expression_attribute_values(":since", AttributeValue::N(now_ms.to_string()))
                .send()
                .await
                .map_err(|e| store_error(&e))?;
        } else {
            item()
                .update_expression("REMOVE paused.#scope")
                .expression_attribute_names("#scope", scope)
                .send()
                .await
                .map_err(|e| store_error(&e))?;
        }
        Ok(())
    }

    async fn paused(&self) -> Result<Vec<Paused>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(PAUSED.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error(&e))?;
        let Some(scopes) = output
            .item()
            .and_then(|item| item.get("paused"))
            .and_then(|value| value.as_m().ok())
        else {
            return Ok(Vec::new());
        };
        let mut paused: Vec<Paused> = scopes
            .iter()
            .map(|(scope, since)| Paused {
                scope: scope.clone(),
                since_ms: since.as_n().ok().and_then(|n| n.parse().ok()).unwrap_or(0),
            })
            .collect();
        paused.sort_by(|a, b| a.scope.cmp(&b.scope));
        Ok(paused)
    }

    async fn reserve(
        &self,
        key: &str,
        interval_ms: i64,
        calls: u32,
        clock: &SharedClock,
        max_wait_ms: i64,
    ) -> Result<Reservation, StoreError> {
        let pk = format!("pace#{key}");
        // A failed condition means another processor reserved meanwhile, moving the next free
        // slot or the next time to come back on: read again and decide again.
        loop {
            let seen = self.state(&pk).await?;
            let now_ms = clock.now_ms();
            let (reservation, after) = next_slot(seen, interval_ms, calls, now_ms, max_wait_ms);
            let last = after.next_free_ms.max(after.next_back_ms).unwrap_or(now_ms);
            let mut update = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(pk.clone()))
                .expression_attribute_values(":expires", number(last / 1000 + KEEP_SECONDS));
            let mut sets = vec!["expires_at = :expires".to_string()];
            let mut conditions = Vec::new();
            for (name, seen, after) in [
                ("next_free", seen.next_free_ms, after.next_free_ms),
                ("next_back", seen.next_back_ms, after.next_back_ms),
            ] {
                if let Some(after) = after {
                    sets.push(format!("{name} = :{name}"));
                    update = update.expression_attribute_values(format!(":{name}"), number(after));
                }
                conditions.push(match seen {
                    Some(seen) => {
                        update = update
                            .expression_attribute_values(format!(":seen_{name}"), number(seen));
                        format!("{name} = :seen_{name}")
                    }
                    None => format!("attribute_not_exists({name})"),
                });
            }
            let update = update
                .update_expression(format!("SET {}", sets.join(", ")))
                .condition_expression(conditions.join(" AND "));
            match update.send().await {
                Ok(_) => return Ok(reservation),
                Err(error) if error.code() == Some("ConditionalCheckFailedException") => continue,
                Err(error) => return Err(store_error(&error)),
            }
        }
    }
}
