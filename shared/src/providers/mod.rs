//! One file per provider: how its requests prove their origin, its body, its dedup key.
//! Shared code only ever sees the [`Provider`] trait.

use lambda_http::http::HeaderMap;
use serde::de::DeserializeOwned;

use crate::http::{Ack, IngestError};
use crate::secrets::{Tenant, TenantDirectory};

pub mod egym;
pub mod magicline;

pub use egym::Egym;
pub use magicline::Magicline;

/// What the ingest path needs to know about one accepted delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedEvent {
    pub event_type: String,
    /// The id of the thing the event is about (customer, account, order, visit ...).
    pub entity_id: String,
    /// What makes this delivery unique within its tenant: the provider's delivery id where it
    /// has one, else entity + type + event time. Build it with [`dedup_suffix`].
    pub dedup_suffix: String,
}

pub trait Provider: Send + Sync + 'static {
    /// Lower-case name used in keys, messages and URLs (`/webhooks/<name>`).
    fn name(&self) -> &'static str;

    /// The tenant whose credential this request carries, or `None` (answered 401, no detail).
    fn authenticate<'t>(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        tenants: &'t TenantDirectory,
    ) -> Option<&'t Tenant>;

    /// Reads the provider's envelope. Unknown fields and event types are accepted; the raw body
    /// is stored whole by the pipeline.
    fn parse(&self, tenant: &Tenant, body: &[u8]) -> Result<ParsedEvent, IngestError>;

    /// The answer for a newly accepted event.
    fn acknowledgement(&self, _event: &ParsedEvent, key: String) -> Ack {
        Ack::Accepted { key }
    }
}

/// The provider serving `/webhooks/<name>`.
pub fn by_name(name: &str) -> Option<std::sync::Arc<dyn Provider>> {
    all().into_iter().find(|provider| provider.name() == name)
}

pub fn all() -> Vec<std::sync::Arc<dyn Provider>> {
    vec![std::sync::Arc::new(Magicline), std::sync::Arc::new(Egym)]
}

/// Deserializes a JSON body, naming the offending field in the error (`payload[0].type: ...`).
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, IngestError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if path == "." {
            IngestError::MalformedBody(inner.to_string())
        } else {
            IngestError::MalformedBody(format!("{path}: {inner}"))
        }
    })?;
    deserializer
        .end()
        .map_err(|error| IngestError::MalformedBody(error.to_string()))?;
    Ok(value)
}

/// Joins the parts of a dedup key with `#`, escaping `%` and `#` inside parts so that two
/// different part lists never give the same key.
pub fn dedup_suffix(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|part| part.replace('%', "%25").replace('#', "%23"))
        .collect::<Vec<_>>()
        .join("#")
}

/// The value of a header as a string, if present and visible ASCII.
pub fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name)?.to_str().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Envelope {
        items: Vec<Item>,
    }
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Item {
        name: String,
    }

    #[test]
    fn parse_errors_name_the_field() {
        let error = parse_json::<Envelope>(br#"{"items": [{"nam": 1}]}"#).unwrap_err();
        assert!(error.to_string().contains("items[0]"), "{error}");
        assert!(
            error.to_string().contains("missing field `name`"),
            "{error}"
        );
        let error = parse_json::<Envelope>(br#"{"items": [{"name": 5}]}"#).unwrap_err();
        assert!(error.to_string().contains("items[0].name"), "{error}");
    }

    #[test]
    fn parse_rejects_malformed_and_trailing_data() {
        assert!(parse_json::<Envelope>(br#"{"items": [}"#).is_err());
        assert!(parse_json::<Envelope>(br#"{"items": []} x"#).is_err());
        assert!(parse_json::<Envelope>(b"\xff\xfe").is_err());
    }

    #[test]
    fn dedup_parts_cannot_collide() {
        assert_ne!(dedup_suffix(&["a#b", "c"]), dedup_suffix(&["a", "b#c"]));
        assert_eq!(dedup_suffix(&["a", "b", "1"]), "a#b#1");
    }

    #[test]
    fn every_provider_is_found_by_its_name() {
        for provider in all() {
            assert_eq!(by_name(provider.name()).unwrap().name(), provider.name());
        }
        assert!(by_name("nope").is_none());
    }
}
