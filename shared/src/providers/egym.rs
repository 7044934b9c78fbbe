//! EGYM: `x-api-key` header (one or more webhooks per gym). No delivery id, so a delivery is
//! identified by account + type + timestamp.

use serde::Deserialize;

use super::{dedup_suffix, parse_json, segment, ParsedEvent, Processing, Provider};
use crate::ports::QueueMessage;
use crate::response::IngestError;
use crate::tenants::Tenant;
use crate::verify::{Auth, AuthScheme};

pub struct Egym;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub account_id: String,
    /// UTC milliseconds.
    pub timestamp: i64,
    #[serde(rename = "type")]
    pub event_type: String,
}

impl Provider for Egym {
    fn name(&self) -> &'static str {
        "egym"
    }

    fn auth(&self) -> Auth {
        Auth::required(AuthScheme::HeaderSecret {
            header: "x-api-key",
        })
    }

    /// The member's account (endpoint unconfirmed). `TEST` is stored without a fetch;
    /// `MEMBERSHIP_DELETE` erases what we hold about the account.
    fn processing(&self, message: &QueueMessage) -> Processing {
        match message.event_type.as_str() {
            "TEST" => Processing::Skip,
            "MEMBERSHIP_DELETE" => Processing::Erase,
            _ => Processing::Fetch {
                path: format!("/v2/accounts/{}", segment(&message.entity_id)),
            },
        }
    }

    fn api_auth(&self, api_key: &str) -> (&'static str, String) {
        ("x-api-key", api_key.to_string())
    }

    fn parse(&self, _tenant: &Tenant, body: &[u8]) -> Result<ParsedEvent, IngestError> {
        let notification: Notification = parse_json(body)?;
        if notification.account_id.trim().is_empty() {
            return Err(IngestError::MalformedBody(
                "accountId: must not be empty".into(),
            ));
        }
        Ok(ParsedEvent {
            dedup_suffix: dedup_suffix(&[
                &notification.account_id,
                &notification.event_type,
                &notification.timestamp.to_string(),
            ]),
            event_type: notification.event_type,
            entity_id: notification.account_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenants::TenantDirectory;

    fn tenant() -> Tenant {
        TenantDirectory::from_json(r#"{"tenants": [{"id": "gym-1"}]}"#)
            .unwrap()
            .get("gym-1")
            .unwrap()
            .clone()
    }

    #[test]
    fn keys_on_account_type_and_timestamp() {
        let event = Egym
            .parse(
                &tenant(),
                br#"{"accountId": "3f1c", "timestamp": 1667921312188, "type": "GYM_CHECKIN"}"#,
            )
            .unwrap();
        assert_eq!(event.dedup_suffix, "3f1c#GYM_CHECKIN#1667921312188");
        assert_eq!(event.entity_id, "3f1c");
        assert_eq!(event.event_type, "GYM_CHECKIN");
    }

    #[test]
    fn names_missing_fields() {
        for (body, field) in [
            (&br#"{"timestamp": 1, "type": "TEST"}"#[..], "accountId"),
            (br#"{"accountId": "a", "type": "TEST"}"#, "timestamp"),
            (br#"{"accountId": "a", "timestamp": 1}"#, "type"),
            (
                br#"{"accountId": "", "timestamp": 1, "type": "TEST"}"#,
                "accountId",
            ),
        ] {
            let error = Egym.parse(&tenant(), body).unwrap_err().to_string();
            assert!(error.contains(field), "{error} should name {field}");
        }
    }
}
