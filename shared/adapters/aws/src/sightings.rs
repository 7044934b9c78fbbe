//! The [`Sightings`] port on DynamoDB: one item per provider (`drift#<provider>`, outside
//! every provider's keys and every index) holding a map from `<tenant>#<signal>` to when it
//! was first and last seen and the record it was first seen in. A provider's contract has
//! few surprises, and the processors write one only the first time they see it (and its
//! last time now and then), so one small item per provider serves every reader in one read.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::AttributeValue;
use shared::ports::{Sighting, Sightings, StoreError};

use crate::dynamodb::store_error;

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

    fn item(
        &self,
        provider: &str,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(format!("{PREFIX}{provider}")))
    }
}

const PREFIX: &str = "drift#";

fn number(n: i64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

#[async_trait]
impl Sightings for DynamoSightings {
    async fn sight(&self, sighting: &Sighting) -> Result<bool, StoreError> {
        let entry = format!("{}#{}", sighting.tenant, sighting.signal);
        // The map first (nothing changes once it is there), then the entry in it.
        self.item(&sighting.provider)
            .update_expression("SET seen = if_not_exists(seen, :empty)")
            .expression_attribute_values(":empty", AttributeValue::M(HashMap::new()))
            .send()
            .await
            .map_err(|e| store_error(&e))?;
        let first = AttributeValue::M(HashMap::from([
            ("first".to_string(), number(sighting.first_ms)),
            ("last".to_string(), number(sighting.first_ms)),
            (
                "key".to_string(),
                AttributeValue::S(sighting.example_key.clone()),
            ),
        ]));
        let new = self
            .item(&sighting.provider)
            .update_expression("SET seen.#entry = :first")
            .condition_expression("attribute_not_exists(seen.#entry)")
            .expression_attribute_names("#entry", &entry)
            .expression_attribute_values(":first", first)
            .send()
            .await;
        match new {
            Ok(_) => return Ok(true),
            Err(error) if error.code() == Some("ConditionalCheckFailedException") => {}
            Err(error) => return Err(store_error(&error)),
        }
        let later = self
            .item(&sighting.provider)
            .update_expression("SET seen.#entry.#last = :at")
            .condition_expression("seen.#entry.#last < :at")
            .expression_attribute_names("#entry", &entry)
            .expression_attribute_names("#last", "last")
            .expression_attribute_values(":at", number(sighting.first_ms))
            .send()
            .await;
        match later {
            Ok(_) => Ok(false),
            Err(error) if error.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(error) => Err(store_error(&error)),
        }
    }

    async fn sightings(&self, provider: Option<&str>) -> Result<Vec<Sighting>, StoreError> {
        let providers: Vec<String> = match provider {
            Some(provider) => vec![provider.to_string()],
            None => shared::providers::names(),
        };
        let mut all = Vec::new();
        for provider in providers {
            let output = self
                .client
                .get_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(format!("{PREFIX}{provider}")))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| store_error(&e))?;
            let Some(seen) = output
                .item()
                .and_then(|item| item.get("seen"))
                .and_then(|value| value.as_m().ok())
            else {
                continue;
            };
            for (entry, value) in seen {
                let (Some((tenant, signal)), Ok(fields)) = (entry.split_once('#'), value.as_m())
                else {
                    continue;
                };
                let number = |name: &str| {
                    fields
                        .get(name)
                        .and_then(|v| v.as_n().ok())
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0)
                };
                all.push(Sighting {
                    provider: provider.clone(),
                    tenant: tenant.to_string(),
                    signal: signal.to_string(),
                    first_ms: number("first"),
                    last_ms: number("last"),
                    example_key: fields
                        .get("key")
                        .and_then(|v| v.as_s().ok())
                        .cloned()
                        .unwrap_or_default(),
                });
            }
        }
        all.sort_by(|a, b| {
            (&a.provider, &a.tenant, &a.signal).cmp(&(&b.provider, &b.tenant, &b.signal))
        });
        Ok(all)
    }
}
