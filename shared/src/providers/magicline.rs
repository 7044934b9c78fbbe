//! Magicline: `x-api-key` header (one key per studio), delivery id in the body's `uuid`.
//! The body only notifies; details come later from the Magicline Open API.

use serde::Deserialize;

use super::{dedup_suffix, parse_json, segment, ParsedEvent, Processing, Provider};
use crate::ports::QueueMessage;
use crate::response::IngestError;
use crate::tenants::Tenant;
use crate::verify::{Auth, AuthScheme};

pub struct Magicline;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub entity_id: i64,
    pub uuid: String,
    pub payload: Vec<NotificationEvent>,
}

#[derive(Debug, Deserialize)]
pub struct NotificationEvent {
    pub timestamp: i64,
    #[serde(rename = "type")]
    pub event_type: String,
}

impl Provider for Magicline {
    fn name(&self) -> &'static str {
        "magicline"
    }

    fn auth(&self) -> Auth {
        Auth::required(AuthScheme::HeaderSecret {
            header: "x-api-key",
        })
    }

    /// Open API: customer events -> the customer. Other types have no confirmed endpoint yet,
    /// so they are stored without a fetch.
    fn processing(&self, message: &QueueMessage) -> Processing {
        if message.event_type.starts_with("CUSTOMER_") {
            Processing::Fetch {
                path: format!("/v1/customers/{}", segment(&message.entity_id)),
            }
        } else {
            Processing::Skip
        }
    }

    fn api_auth(&self, api_key: &str) -> (&'static str, String) {
        ("x-api-key", api_key.to_string())
    }

    fn parse(&self, _tenant: &Tenant, body: &[u8]) -> Result<ParsedEvent, IngestError> {
        let notification: Notification = parse_json(body)?;
        if notification.uuid.trim().is_empty() {
            return Err(IngestError::MalformedBody("uuid: must not be empty".into()));
        }
        // The payload may list several events about the same entity; the first one names the record.
        let first = notification.payload.first().ok_or_else(|| {
            IngestError::MalformedBody("payload: must hold at least one event".into())
        })?;
        Ok(ParsedEvent {
            event_type: first.event_type.clone(),
            entity_id: notification.entity_id.to_string(),
            dedup_suffix: dedup_suffix(&[&notification.uuid]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenants::TenantDirectory;

    fn tenant() -> Tenant {
        TenantDirectory::from_json(r#"{"tenants": [{"id": "studio-1", "webhook_secrets": ["k"]}]}"#)
            .unwrap()
            .get("studio-1")
            .unwrap()
            .clone()
    }

    #[test]
    fn reads_the_documented_body_and_keys_on_uuid() {
        let event = Magicline
            .parse(
                &tenant(),
                br#"{"entityId": 7893459, "uuid": "095be615-a8ad-4c33-8e9c-c7612fbf6c9f",
                    "payload": [{"timestamp": 1642779144176, "type": "CUSTOMER_CREATED"}]}"#,
            )
            .unwrap();
        assert_eq!(event.event_type, "CUSTOMER_CREATED");
        assert_eq!(event.entity_id, "7893459");
        assert_eq!(event.dedup_suffix, "095be615-a8ad-4c33-8e9c-c7612fbf6c9f");
    }

    #[test]
    fn accepts_unknown_types_and_fields() {
        let event = Magicline
            .parse(
                &tenant(),
                br#"{"entityId": 1, "uuid": "u", "newField": {"x": 1},
                    "payload": [{"timestamp": 1, "type": "SOMETHING_NEW", "extra": true}]}"#,
            )
            .unwrap();
        assert_eq!(event.event_type, "SOMETHING_NEW");
    }

    #[test]
    fn names_missing_and_wrong_fields() {
        let cases: [(&[u8], &str); 4] = [
            (br#"{"entityId": 1, "payload": []}"#, "uuid"),
            (br#"{"entityId": 1, "uuid": "u", "payload": []}"#, "payload"),
            (
                br#"{"entityId": "x", "uuid": "u", "payload": []}"#,
                "entityId",
            ),
            (
                br#"{"entityId": 1, "uuid": "u", "payload": [{"timestamp": 1}]}"#,
                "type",
            ),
        ];
        for (body, field) in cases {
            let error = Magicline.parse(&tenant(), body).unwrap_err().to_string();
            assert!(error.contains(field), "{error} should name {field}");
        }
    }

    #[test]
    fn authenticates_by_x_api_key() {
        let tenants = TenantDirectory::from_json(
            r#"{"tenants": [{"id": "studio-1", "webhook_secrets": ["k1"]}]}"#,
        )
        .unwrap();
        let request = |key: Option<&str>| {
            let mut builder = http::Request::builder().method("POST");
            if let Some(key) = key {
                builder = builder.header("x-api-key", key);
            }
            builder.body(bytes::Bytes::new()).unwrap()
        };
        let auth = Magicline.auth();
        let found =
            |key| crate::verify::authenticate(&auth, &request(key), &tenants).map(|t| t.id.clone());
        assert_eq!(found(Some("k1")).as_deref(), Some("studio-1"));
        assert_eq!(found(Some("k2")), None);
        assert_eq!(found(None), None);
    }
}
