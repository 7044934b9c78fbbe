//! FlyBuy: optional `Authorization: Token token="<token>"` (one webhook per project), order
//! updates in `{"data": {...}}`. No delivery id: an update is identified by order id + updated_at.

use serde::Deserialize;

use super::{dedup_suffix, parse_json, segment, ParsedEvent, Processing, Provider};
use crate::ports::QueueMessage;
use crate::response::IngestError;
use crate::tenants::Tenant;
use crate::verify::{Auth, AuthScheme};

pub struct Flybuy;

#[derive(Debug, Deserialize)]
pub struct Webhook {
    pub data: Order,
}

/// The documented order fields. Personal data (`customer_name`, car, licence plate) is never logged.
#[derive(Debug, Deserialize)]
pub struct Order {
    #[serde(rename = "type")]
    pub object_type: String,
    pub id: ObjectId,
    pub updated_at: String,
    pub state: Option<String>,
    pub customer_state: Option<String>,
    pub arrived_at: Option<String>,
    pub eta_at: Option<String>,
    pub created_at: Option<String>,
    pub partner_identifier: Option<String>,
    pub redemption_code: Option<String>,
    pub area_name: Option<String>,
    pub customer_id: Option<i64>,
    pub site_id: Option<i64>,
    pub site_partner_identifier: Option<String>,
    pub customer_name: Option<String>,
    pub customer_car_type: Option<String>,
    pub customer_car_color: Option<String>,
    pub customer_license_plate: Option<String>,
    pub pickup_window: Option<serde_json::Value>,
    pub customer_state_changed: Option<bool>,
    pub state_changed: Option<bool>,
    /// Fields FlyBuy adds later.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// Documented as a number; a string id is accepted too.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ObjectId {
    Number(i64),
    Text(String),
}

impl std::fmt::Display for ObjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ObjectId::Number(n) => write!(f, "{n}"),
            ObjectId::Text(t) => f.write_str(t),
        }
    }
}

/// The token in `Token token="<token>"`: scheme and parameter name case-insensitive, the
/// quotes required, whitespace around the whole value tolerated, anything else refused.
pub fn token_from_authorization(value: &str) -> Option<&str> {
    let (scheme, parameter) = value.trim().split_once([' ', '\t'])?;
    if !scheme.eq_ignore_ascii_case("token") {
        return None;
    }
    let (name, quoted) = parameter.trim_start().split_once('=')?;
    if !name.eq_ignore_ascii_case("token") {
        return None;
    }
    let token = quoted.strip_prefix('"')?.strip_suffix('"')?;
    (!token.is_empty() && !token.contains('"')).then_some(token)
}

impl Provider for Flybuy {
    fn name(&self) -> &'static str {
        "flybuy"
    }

    fn auth(&self) -> Auth {
        Auth::optional(AuthScheme::Authorization {
            extract: token_from_authorization,
            present: |token| format!("Token token=\"{token}\""),
        })
    }

    /// The latest state of the order.
    fn processing(&self, message: &QueueMessage) -> Processing {
        Processing::Fetch {
            path: format!("/api/v1/orders/{}", segment(&message.entity_id)),
        }
    }

    fn api_auth(&self, api_key: &str) -> (&'static str, String) {
        ("authorization", format!("Token token=\"{api_key}\""))
    }

    fn parse(&self, _tenant: &Tenant, body: &[u8]) -> Result<ParsedEvent, IngestError> {
        let Webhook { data } = parse_json(body)?;
        let id = data.id.to_string();
        if id.is_empty() || data.updated_at.is_empty() || data.object_type.is_empty() {
            return Err(IngestError::MalformedBody(
                "data.type, data.id and data.updated_at must not be empty".into(),
            ));
        }
        Ok(ParsedEvent {
            dedup_suffix: dedup_suffix(&[&data.object_type, &id, &data.updated_at]),
            event_type: data.object_type,
            entity_id: id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenants::TenantDirectory;

    #[test]
    fn token_header_is_parsed_strictly() {
        let accepted = [
            (r#"Token token="FFCPUG2A""#, "FFCPUG2A"),
            (r#"token token="FFCPUG2A""#, "FFCPUG2A"),
            (r#"TOKEN Token="FFCPUG2A""#, "FFCPUG2A"),
            (r#"  Token   token="FFCPUG2A"  "#, "FFCPUG2A"),
        ];
        for (header, token) in accepted {
            assert_eq!(token_from_authorization(header), Some(token), "{header}");
        }
        let refused = [
            "Token token=FFCPUG2A",
            r#"Token token="FFCPUG2A"#,
            r#"Token token="""#,
            r#"Bearer token="FFCPUG2A""#,
            r#"Token secret="FFCPUG2A""#,
            r#"Token token ="FFCPUG2A""#,
            r#"Token token="FF"CP""#,
            "FFCPUG2A",
            "",
        ];
        for header in refused {
            assert_eq!(token_from_authorization(header), None, "{header}");
        }
    }

    fn tenant() -> Tenant {
        TenantDirectory::from_json(
            r#"{"tenants": [{"id": "project-7", "webhook_secrets": ["t"]}]}"#,
        )
        .unwrap()
        .get("project-7")
        .unwrap()
        .clone()
    }

    #[test]
    fn keys_on_type_id_and_updated_at_and_keeps_unknown_fields() {
        let body = br#"{"data": {"type": "order", "id": 187, "state": "completed", "customer_state": "nearby",
            "updated_at": "2019-02-26T17:55:20.442Z", "arrived_at": null, "pickup_window": null,
            "brand_new_field": [1, 2]}}"#;
        let event = Flybuy.parse(&tenant(), body).unwrap();
        assert_eq!(event.dedup_suffix, "order#187#2019-02-26T17:55:20.442Z");
        assert_eq!(event.entity_id, "187");
        assert_eq!(event.event_type, "order");
        let Webhook { data } = parse_json(body).unwrap();
        assert!(data.other.contains_key("brand_new_field"));
        assert_eq!(data.arrived_at, None);
    }

    #[test]
    fn names_missing_and_mistyped_fields() {
        for (body, field) in [
            (
                &br#"{"data": {"type": "order", "id": 1}}"#[..],
                "updated_at",
            ),
            (br#"{"data": {"id": 1, "updated_at": "x"}}"#, "type"),
            (br#"{"order": {}}"#, "data"),
            (
                br#"{"data": {"type": "order", "id": 1, "updated_at": "x", "site_id": "forty"}}"#,
                "data.site_id",
            ),
        ] {
            let error = Flybuy.parse(&tenant(), body).unwrap_err().to_string();
            assert!(error.contains(field), "{error} should name {field}");
        }
    }
}
