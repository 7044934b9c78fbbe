//! The [`Sightings`] port on DynamoDB: an item per provider, tenant and signal
//! (`drift#<provider>#<tenant>#<signal>`, outside every provider's keys), written by one
//! UpdateItem that keeps its first time and moves its last time and example on, and expiring
//! with its example record (`expires_at`, the table's TTL). A provider's sightings are listed
//! through the subject index under `drift#<provider>`, a subject no record has (theirs begin
//! with a provider's name).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, ReturnValue};
use webhook_core::model::Sighting;
use webhook_core::ports::{Sightings, StoreError};

use crate::dynamodb::{batch_get, keys_of_subject, store_error};

pub struct DynamoSightings {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoSightings {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoSightings {
            client,
            table: table.into(),
        }
    }

    async fn read(&self, keys: Vec<String>) -> Result<Vec<Sighting>, StoreError> {
        let mut found = Vec::new();
        // BatchGetItem reads at most 100 keys a request.
        for chunk in keys.chunks(100) {
            let keys = chunk
                .iter()
                .map(|pk| HashMap::from([("pk".to_string(), s(pk))]))
                .collect();
            let request = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            let items = batch_get(&self.client, &self.table, request).await?;
            found.extend(items.iter().map(sighting_of));
        }
        Ok(found)
    }
}

const PREFIX: &str = "drift#";

/// The subject under which a provider's sightings are listed.
fn listing(provider: &str) -> String {
    format!("{PREFIX}{provider}")
}

fn s(text: &str) -> AttributeValue {
    AttributeValue::S(text.to_string())
}

fn n(number: i64) -> AttributeValue {
    AttributeValue::N(number.to_string())
}

fn sighting_of(item: &HashMap<String, AttributeValue>) -> Sighting {
    let text = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    };
    let number = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    Sighting {
        provider: text("provider"),
        tenant: text("tenant"),
        signal: text("signal"),
        first_ms: number("first"),
        last_ms: number("last"),
        example_key: text("example"),
        expires_at: number("expires_at"),
    }
}

#[async_trait]
impl Sightings for DynamoSightings {
    async fn sight(&self, sighting: &Sighting) -> Result<bool, StoreError> {
        let pk = format!(
            "{PREFIX}{}#{}#{}",
            sighting.provider, sighting.tenant, sighting.signal
        );
        let output = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(&pk))
            .update_expression(
                "SET subject = :subject, #provider = :provider, #tenant = :tenant, \
                 #signal = :signal, #first = if_not_exists(#first, :at), #last = :at, \
                 #example = :example, expires_at = :expires",
            )
            // Each a DynamoDB reserved word, or may become one.
            .expression_attribute_names("#provider", "provider")
            .expression_attribute_names("#tenant", "tenant")
            .expression_attribute_names("#signal", "signal")
            .expression_attribute_names("#first", "first")
            .expression_attribute_names("#last", "last")
            .expression_attribute_names("#example", "example")
            .expression_attribute_values(":subject", s(&listing(&sighting.provider)))
            .expression_attribute_values(":provider", s(&sighting.provider))
            .expression_attribute_values(":tenant", s(&sighting.tenant))
            .expression_attribute_values(":signal", s(&sighting.signal))
            .expression_attribute_values(":at", n(sighting.first_ms))
            .expression_attribute_values(":example", s(&sighting.example_key))
            .expression_attribute_values(":expires", n(sighting.expires_at))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| store_error(&e))?;
        Ok(!output
            .attributes()
            .is_some_and(|old| old.contains_key("first")))
    }

    async fn sightings(
        &self,
        provider: Option<&str>,
        now_ms: i64,
    ) -> Result<Vec<Sighting>, StoreError> {
        let providers: Vec<String> = match provider {
            Some(provider) => vec![provider.to_string()],
            None => webhook_core::providers::names(),
        };
        let mut all = Vec::new();
        for provider in providers {
            let keys = keys_of_subject(&self.client, &self.table, &listing(&provider)).await?;
            all.extend(self.read(keys).await?);
        }
        // DynamoDB deletes an expired item only within days.
        all.retain(|sighting| sighting.live_at(now_ms));
        all.sort_by(|a, b| {
            (&a.provider, &a.tenant, &a.signal).cmp(&(&b.provider, &b.tenant, &b.signal))
        });
        Ok(all)
    }
}
