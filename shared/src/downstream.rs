//! Telling the users' own services: every event that reaches `PROCESSED` (an erasure
//! included) is published once it is written and its subject's tombstone checked — at least
//! once: a failed publication is retried on its own (never with a new fetch), and a retry may
//! publish it twice; consumers deduplicate by `key`. A record whose personal data was erased
//! is never published.

use async_trait::async_trait;
use serde_json::{json, Value};

use crate::ports::Record;

/// One event for downstream consumers.
#[derive(Debug, Clone, PartialEq)]
pub struct DownstreamEvent {
    /// `webhooks.<provider>`.
    pub source: String,
    /// The provider's event type.
    pub detail_type: String,
    pub detail: Value,
}

#[async_trait]
pub trait Publisher: Send + Sync {
    /// Publishes one event; the error says why not (it is retried).
    async fn publish(&self, event: &DownstreamEvent) -> Result<(), String>;
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
        Some(text) => serde_json::from_str(text).unwrap_or(Value::Null),
        None => Value::Null,
    };
    DownstreamEvent {
        source: format!("webhooks.{}", record.provider),
        detail_type: record.event_type.clone(),
        detail: json!({
            "key": record.key,
            "provider": record.provider,
            "tenant": record.tenant,
            "event_type": record.event_type,
            "entity_id": record.entity_id,
            "received_at": record.received_at_ms,
            "detail": detail_value,
        }),
    }
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
}
