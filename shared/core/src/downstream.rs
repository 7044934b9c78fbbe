//! Telling the users' own services: every event that reaches `PROCESSED` (an erasure
//! included) is published once it is written and its subject's tombstone checked — at least
//! once: a failed publication is retried on its own (never with a new fetch), and a retry may
//! publish it twice; consumers deduplicate by `key`. A record whose personal data was erased
//! is never published.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::model::Record;

/// One event for downstream consumers.
#[derive(Debug, Clone, PartialEq)]
pub struct DownstreamEvent {
    /// `webhooks.<provider>`.
    pub source: String,
    /// The provider's event type.
    pub detail_type: String,
    pub detail: Value,
}

/// Why an event was not published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishError {
    /// The bus cannot be reached or did not take it now: retried on its own.
    Unavailable(String),
    /// The bus refuses this event for good (its content, not the moment): not retried — counted
    /// and logged as a refused publication.
    Refused(String),
}

impl std::fmt::Display for PublishError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PublishError::Unavailable(why) => write!(f, "bus unavailable: {why}"),
            PublishError::Refused(why) => write!(f, "refused by the bus: {why}"),
        }
    }
}

#[async_trait]
pub trait Publisher: Send + Sync {
    /// Publishes one event; the error says why not and whether a retry could help.
    async fn publish(&self, event: &DownstreamEvent) -> Result<(), PublishError>;
}

/// EventBridge's `DetailType` takes 1 to 128 characters.
pub const MAX_DETAIL_TYPE_CHARS: usize = 128;

/// A provider's event type as a `DetailType` the bus takes: as it is when it fits; `unknown`
/// for none; a longer one cut, with a hash of the whole so different ones stay apart. The
/// detail always carries the type as it came (`event_type`).
pub fn detail_type(event_type: &str) -> String {
    if event_type.is_empty() {
        return "unknown".to_string();
    }
    if event_type.chars().count() <= MAX_DETAIL_TYPE_CHARS {
        return event_type.to_string();
    }
    let digest = hex::encode(Sha256::digest(event_type.as_bytes()));
    let kept: String = event_type
        .chars()
        .take(MAX_DETAIL_TYPE_CHARS - 17)
        .collect();
    format!("{kept}~{}", &digest[..16])
}

/// EventBridge takes entries up to 256 KB; a larger detail is replaced by a pointer to the
/// record (its key), for the consumer to read.
pub const MAX_PUBLISHED_DETAIL_BYTES: usize = 240 * 1024;

/// The event for a record that reached `PROCESSED` with `detail` (the provider's answer, an
/// erasure note, or nothing).
pub fn processed(record: &Record, detail: Option<&str>) -> DownstreamEvent {
    let detail_value = match detail {
        Some(text) if text.len() > MAX_PUBLISHED_DETAIL_BYTES => {
            json!({ "omitted": true, "bytes": text.len() })
        }
        Some(text) => published(text).unwrap_or(Value::Null),
        None => Value::Null,
    };
    DownstreamEvent {
        source: format!("webhooks.{}", record.provider),
        detail_type: detail_type(&record.event_type),
        detail: json!({
            "key": record.key,
            "provider": record.provider,
            "tenant": record.tenant,
            "event_type": record.event_type,
            "entity_id": record.entity_id,
            "received_at": record.received_at_ms,
            "trace_id": record.trace_id,
            "detail": detail_value,
        }),
    }
}

/// The stored detail as the bus carries it: its values, each number a number where one holds
/// it unchanged — an integer EventBridge takes (PutEvents refuses one outside ±2^63), any
/// other number whose value a double holds (`-0.10` goes out as `-0.1`) — else a string of its
/// exact text (`"18446744073709551617"`, `"1e400"`): no digit is lost, and the bus refuses no
/// event for a number. The stored detail keeps the text as it came. `None` if it is not JSON.
fn published(text: &str) -> Option<Value> {
    let raw: &RawValue = serde_json::from_str(text).ok()?;
    value_of(raw)
}

fn value_of(raw: &RawValue) -> Option<Value> {
    let text = raw.get();
    Some(match text.as_bytes().first()? {
        b'{' => {
            let members: BTreeMap<String, &RawValue> = serde_json::from_str(text).ok()?;
            let mut object = serde_json::Map::new();
            for (name, member) in members {
                object.insert(name, value_of(member)?);
            }
            Value::Object(object)
        }
        b'[' => {
            let elements: Vec<&RawValue> = serde_json::from_str(text).ok()?;
            let values: Option<Vec<Value>> = elements.into_iter().map(value_of).collect();
            Value::Array(values?)
        }
        b'-' | b'0'..=b'9' => number(text),
        _ => serde_json::from_str(text).ok()?,
    })
}

/// A JSON number as a number if one holds its value, else as its text.
fn number(text: &str) -> Value {
    if !text.contains(['.', 'e', 'E']) {
        return match text.parse::<i64>() {
            Ok(integer) => Value::from(integer),
            Err(_) => Value::String(text.to_string()),
        };
    }
    match text.parse::<f64>() {
        Ok(float)
            if float.is_finite() && decimal(text) == decimal(&Value::from(float).to_string()) =>
        {
            Value::from(float)
        }
        _ => Value::String(text.to_string()),
    }
}

/// The decimal value a number's text denotes: sign, significant digits and the power of ten
/// of the last one (`-0.10` and `-1e-1` alike); zero has no sign. `None` if unreadable.
fn decimal(text: &str) -> Option<(bool, String, i64)> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match rest.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, exponent.parse::<i64>().ok()?),
        None => (rest, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{whole}{fraction}");
    let significant = digits.trim_start_matches('0');
    let trimmed = significant.trim_end_matches('0');
    if trimmed.is_empty() {
        return Some((false, String::new(), 0));
    }
    let power = exponent
        .checked_sub(fraction.len() as i64)?
        .checked_add((significant.len() - trimmed.len()) as i64)?;
    Some((negative, trimmed.to_string(), power))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_detail_too_large_for_one_entry_becomes_a_pointer() {
        let record = Record {
            key: "egym#g#a#GYM_CHECKIN#1".into(),
            provider: "egym".into(),
            event_type: "GYM_CHECKIN".into(),
            ..Record::default()
        };
        let small = processed(&record, Some(r#"{"firstName": "Ben"}"#));
        assert_eq!(small.source, "webhooks.egym");
        assert_eq!(small.detail_type, "GYM_CHECKIN");
        assert_eq!(small.detail["detail"]["firstName"], "Ben");
        assert_eq!(small.detail["key"], "egym#g#a#GYM_CHECKIN#1");
        let big = format!(r#"{{"x": "{}"}}"#, "y".repeat(MAX_PUBLISHED_DETAIL_BYTES));
        let pointer = processed(&record, Some(&big));
        assert_eq!(pointer.detail["detail"]["omitted"], true);
        assert!(pointer.detail.to_string().len() < 1024);
    }

    #[test]
    fn every_event_type_becomes_a_detail_type_the_bus_takes() {
        assert_eq!(detail_type("CUSTOMER_CREATED"), "CUSTOMER_CREATED");
        assert_eq!(detail_type(""), "unknown");
        let long = "é".repeat(300);
        let bounded = detail_type(&long);
        assert_eq!(bounded.chars().count(), MAX_DETAIL_TYPE_CHARS);
        assert_ne!(bounded, detail_type(&"é".repeat(301)), "kept apart");
        let exact = "x".repeat(MAX_DETAIL_TYPE_CHARS);
        assert_eq!(detail_type(&exact), exact);
    }

    #[test]
    fn a_published_number_keeps_its_value_or_goes_out_as_its_exact_text() {
        let detail = r#"{"big":18446744073709551617,"price":-0.10,"huge":1e400,
            "id":9223372036854775807,"fine":[12.50,1e3,-0.0],"long":1.00000000000000000001,
            "nested":{"n":-9223372036854775809,"s":"x"}}"#;
        let event = processed(&Record::default(), Some(detail));
        assert_eq!(
            event.detail["detail"].to_string(),
            r#"{"big":"18446744073709551617","fine":[12.5,1000.0,-0.0],"huge":"1e400","id":9223372036854775807,"long":"1.00000000000000000001","nested":{"n":"-9223372036854775809","s":"x"},"price":-0.1}"#
        );
        assert_eq!(decimal("-0.10"), decimal("-1e-1"));
        assert_eq!(decimal("0.000"), decimal("-0"));
        assert_ne!(decimal("1.5"), decimal("15"));
    }
}
