//! One file per provider: how its requests prove their origin, its body, its dedup key.
//! Shared code only ever sees the [`Provider`] trait.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::ports::QueueMessage;
use crate::response::{Ack, IngestError};
use crate::tenants::{ConfigError, EventPointers, Tenant, TenantDirectory};
use crate::verify::Auth;

pub mod egym;
pub mod flybuy;
pub mod magicline;
pub mod timify;
pub mod waitwhile;

pub use egym::Egym;
pub use flybuy::Flybuy;
pub use magicline::Magicline;
pub use timify::Timify;
pub use waitwhile::Waitwhile;

/// What processing a queued event means for its provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processing {
    /// GET this path below the tenant's API base URL.
    Fetch { path: String },
    /// Nothing to fetch (test events, objects that no longer exist at the provider).
    Skip,
    /// The subject's data was deleted at the provider: erase what we hold about it.
    Erase,
}

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

    /// How its requests prove their origin (see [`crate::verify`]).
    fn auth(&self) -> Auth;

    /// Reads the provider's envelope. Unknown fields and event types are accepted; the raw body
    /// is stored whole by the pipeline.
    fn parse(&self, tenant: &Tenant, body: &[u8]) -> Result<ParsedEvent, IngestError>;

    /// Which detail to fetch for a queued event (or what to do instead). See the README for
    /// the endpoint each event type maps to, and which mappings are unconfirmed.
    fn processing(&self, message: &QueueMessage) -> Processing;

    /// The header that carries the tenant's API key on detail requests.
    fn api_auth(&self, api_key: &str) -> (&'static str, String);

    /// Refuses a tenant configuration this provider cannot verify requests for.
    fn check_tenant(&self, _tenant: &Tenant) -> Result<(), String> {
        Ok(())
    }

    /// The answer the provider expects for an accepted (or duplicate) delivery.
    fn acknowledgement(&self, ack: Ack) -> Ack {
        ack
    }
}

/// The provider serving `/webhooks/<name>`.
pub fn by_name(name: &str) -> Option<Arc<dyn Provider>> {
    all().into_iter().find(|provider| provider.name() == name)
}

pub fn all() -> Vec<Arc<dyn Provider>> {
    vec![
        Arc::new(Magicline),
        Arc::new(Egym),
        Arc::new(Timify),
        Arc::new(Flybuy),
        Arc::new(Waitwhile),
    ]
}

/// Checks every tenant at start-up, so a configuration mistake fails the cold start loudly
/// instead of answering 401 to every webhook.
pub fn check_tenants(
    provider: &dyn Provider,
    tenants: &TenantDirectory,
) -> Result<(), ConfigError> {
    for tenant in tenants.iter() {
        let no_secret = tenant.webhook_secrets.is_empty();
        if no_secret && !(tenant.allow_unauthenticated && provider.auth().credential_optional) {
            return Err(ConfigError::Invalid(format!(
                "{} tenant {:?} has no webhook secret",
                provider.name(),
                tenant.id
            )));
        }
        provider.check_tenant(tenant).map_err(|problem| {
            ConfigError::Invalid(format!(
                "{} tenant {:?}: {problem}",
                provider.name(),
                tenant.id
            ))
        })?;
    }
    Ok(())
}

/// Deserializes a JSON body, naming the offending field in the error (`payload[0].type: ...`).
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, IngestError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let mut path = error.path().to_string();
        if path.chars().count() > 64 {
            // Deeply nested input: the start of the path says enough.
            path = path.chars().take(64).chain(['…']).collect();
        }
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

/// Percent-encodes an id for use as one path segment.
pub fn segment(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Default JSON pointers of an envelope whose field names are configurable per tenant.
pub struct PointerDefaults {
    pub event_type: &'static str,
    pub object_id: &'static str,
    pub updated_at: &'static str,
}

/// Reads event type, object id and version from a JSON body through the tenant's pointers
/// (or the provider's defaults). The version is the updated-at value, or the body's SHA-256
/// when the body has none, so that an identical redelivery is still recognised.
pub fn parse_by_pointers(
    body: &[u8],
    pointers: &EventPointers,
    defaults: &PointerDefaults,
) -> Result<ParsedEvent, IngestError> {
    let value: serde_json::Value = parse_json(body)?;
    let text_at = |pointer: &str| -> Option<String> {
        match value.pointer(pointer)? {
            serde_json::Value::String(text) if !text.is_empty() => Some(text.clone()),
            serde_json::Value::Number(number) => Some(number.to_string()),
            _ => None,
        }
    };
    let required = |pointer: &str| {
        text_at(pointer).ok_or_else(|| {
            IngestError::MalformedBody(format!(
                "{pointer}: missing, empty or not a string or number"
            ))
        })
    };
    let event_type = required(
        pointers
            .event_type
            .as_deref()
            .unwrap_or(defaults.event_type),
    )?;
    let object_id = required(pointers.object_id.as_deref().unwrap_or(defaults.object_id))?;
    let version = text_at(
        pointers
            .updated_at
            .as_deref()
            .unwrap_or(defaults.updated_at),
    )
    .unwrap_or_else(|| format!("sha256:{}", hex::encode(Sha256::digest(body))));
    Ok(ParsedEvent {
        dedup_suffix: dedup_suffix(&[&event_type, &object_id, &version]),
        event_type,
        entity_id: object_id,
    })
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
    fn tenants_are_checked_against_what_the_provider_can_verify() {
        let check = |provider: &str, json: &str| {
            check_tenants(
                by_name(provider).unwrap().as_ref(),
                &TenantDirectory::from_json(json).unwrap(),
            )
        };
        let open = r#"{"tenants": [{"id": "t", "allow_unauthenticated": true}]}"#;
        assert!(check("flybuy", open).is_ok());
        assert!(check("timify", open).is_ok());
        assert!(check("magicline", open).is_err());
        assert!(check("flybuy", r#"{"tenants": [{"id": "t"}]}"#).is_err());
        let secret_only = r#"{"tenants": [{"id": "t", "webhook_secrets": ["s"]}]}"#;
        assert!(check("egym", secret_only).is_ok());
        assert!(
            check("waitwhile", secret_only).is_err(),
            "needs the registered URL"
        );
        assert!(
            check("timify", secret_only).is_err(),
            "needs the header name"
        );
    }

    #[test]
    fn every_provider_is_found_by_its_name() {
        for provider in all() {
            assert_eq!(by_name(provider.name()).unwrap().name(), provider.name());
        }
        assert!(by_name("nope").is_none());
    }
}
