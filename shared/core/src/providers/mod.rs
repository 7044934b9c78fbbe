//! One file per provider: how its requests prove their origin, its body, its dedup key, and
//! what processing each of its events means. Shared code only ever sees the [`Provider`] trait.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::check::Sample;
use crate::fetch::ApiCredentials;
use crate::model::{Rate, Record};
use crate::register::Registration;
use crate::response::{Ack, IngestError};
use crate::tenants::{ApiAccess, ConfigError, EventPointers, Tenant, TenantDirectory};
use crate::verify::{Auth, AuthScheme};

pub mod egym;
pub mod flybuy;
pub mod json;
pub mod magicline;
pub mod timify;
pub mod waitwhile;

pub use egym::Egym;
pub use flybuy::Flybuy;
pub use json::{parse_json, pretty_json, Document, Number, Text};
pub use magicline::Magicline;
pub use timify::Timify;
pub use waitwhile::Waitwhile;

/// What processing a stored event means for its provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processing {
    /// GET each path (with its query) below the tenant's API base URL; the answers are the
    /// event's detail.
    Fetch { paths: Vec<String> },
    /// GET `path`; where the provider answers 404 there, GET `otherwise` instead and keep its
    /// answer beside `note` (a JSON object): Magicline's customer who moved to another studio
    /// is no longer visible with this studio's key, so is read cross-studio and marked
    /// detached from this one.
    FetchOr {
        path: String,
        otherwise: String,
        note: String,
    },
    /// Nothing to fetch (test events, objects no API call can read): stored as it came.
    StoreOnly,
    /// The subject's data was deleted at the provider: erase what we hold about it.
    Erase,
    /// A list of objects (a studio's check-outs): each item a call of its own, stored,
    /// fetched, paced, retried and erased on its own; the event is done when all are.
    Items { items: Vec<Item> },
}

/// One item of an event that names a list of objects: its call, and its own part of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub path: String,
    /// The list element it stands for (JSON), `null` where it has none.
    pub content: String,
}

impl Processing {
    pub fn fetch(path: impl Into<String>) -> Processing {
        Processing::Fetch {
            paths: vec![path.into()],
        }
    }
}

/// What the ingest path needs to know about one accepted delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedEvent {
    pub event_type: String,
    /// The id of the thing the event is about (customer, account, order, visit ...).
    pub entity_id: String,
    /// Whom erasure reaches: `<kind>:<id>` (`customer:42`, `employee:42` are different people).
    pub subject: String,
    /// What makes this delivery unique within its tenant: the provider's delivery id where it
    /// has one, else entity + type + event time. Build it with [`dedup_suffix`].
    pub dedup_suffix: String,
    /// Facts of the delivery kept beside the record for operators (a JSON object).
    pub facts: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A field that names a person wherever it appears in a body or a fetched detail: the field
/// names its path ends in, and the kind of person it is (`customer` in `customer:42`). An
/// erasure of that person reaches every record whose body or detail names them so.
#[derive(Debug, Clone, Copy)]
pub struct PersonField {
    pub names: &'static [&'static str],
    pub kind: &'static str,
}

/// Every provider's name.
pub fn names() -> Vec<String> {
    all()
        .iter()
        .map(|provider| provider.name().to_string())
        .collect()
}

/// Every kind of subject `provider`'s records are about or name, sorted, each once: an
/// erasure naming any other kind would reach nothing (a typo, another provider's kind).
pub fn subject_kinds(provider: &dyn Provider) -> Vec<&'static str> {
    let mut kinds = provider.own_subject_kinds();
    kinds.extend(provider.person_fields().iter().map(|field| field.kind));
    kinds.sort_unstable();
    kinds.dedup();
    kinds
}

/// The persons (`<kind>:<id>`) that `json` names through `fields`, each once.
pub fn persons_named(fields: &[PersonField], json: &str) -> Vec<String> {
    let Ok(document) = Document::parse(json.as_bytes()) else {
        return Vec::new();
    };
    let mut persons: Vec<String> = fields
        .iter()
        .flat_map(|field| {
            document
                .texts_under(field.names)
                .into_iter()
                .map(move |id| format!("{}:{id}", field.kind))
        })
        .collect();
    persons.sort_unstable();
    persons.dedup();
    persons
}

pub trait Provider: Send + Sync + 'static {
    /// Lower-case name used in keys, messages and URLs (`/webhooks/<name>`).
    fn name(&self) -> &'static str;

    /// How its requests prove their origin (see [`crate::verify`]).
    fn auth(&self) -> Auth;

    /// Reads the provider's envelope. Unknown fields and event types are accepted; the raw body
    /// is stored whole by the pipeline.
    fn parse(&self, tenant: &Tenant, body: &[u8]) -> Result<ParsedEvent, IngestError>;

    /// What to do with a stored event: which details to fetch, or what to do instead. An error
    /// names why the event cannot be processed (a body without an id its call needs).
    fn processing(&self, record: &Record, tenant: &Tenant) -> Result<Processing, String>;

    /// Where its bodies and fetched details name persons besides the record's subject (a
    /// check-out list's customers, a booking's customer, a message's visit).
    fn person_fields(&self) -> &'static [PersonField] {
        &[]
    }

    /// The kinds of subject its events are about (`account` of `account:42`); with the kinds of
    /// its person fields, what an operator's erasure may name ([`subject_kinds`]).
    fn own_subject_kinds(&self) -> Vec<&'static str>;

    /// How a tenant's webhook is registered at the provider (`webhooks connect`).
    fn registration(&self) -> Registration;

    /// An ordinary delivery of this provider for `tenant`, built from `sample`'s fresh values
    /// and naming no real person: what `webhooks check` sends (see [`crate::check`]).
    fn sample_delivery(&self, tenant: &Tenant, sample: &Sample) -> serde_json::Value;

    /// What its documentation says its deliveries hold (see [`Contract`]).
    fn contract(&self) -> Contract;

    /// Whether `event_type` is one it documents, or one the tenant configured.
    fn knows_event_type(&self, _tenant: &Tenant, event_type: &str) -> bool {
        self.contract().event_types.contains(&event_type)
    }

    /// The rate its API may be called at per key, as the provider publishes it (a tenant's
    /// `api.rate` replaces it).
    fn api_rate(&self) -> Rate;

    /// How requests to the provider's API authenticate for a tenant; an error names the
    /// setting that is missing.
    fn api_credentials(&self, api: &ApiAccess) -> Result<ApiCredentials, String>;

    /// The credentials for the calls a stored delivery needs: the tenant's, unless the
    /// delivery names something they depend on (an enterprise TIMIFY app's `companyId`).
    fn api_credentials_for(
        &self,
        api: &ApiAccess,
        _record: &Record,
    ) -> Result<ApiCredentials, String> {
        self.api_credentials(api)
    }

    /// Whether its tenants may say what processing does with an event name (`events`):
    /// where the provider's names are not confirmed.
    fn events_configurable(&self) -> bool {
        false
    }

    /// Refuses a tenant configuration this provider cannot verify requests for.
    fn check_tenant(&self, _tenant: &Tenant) -> Result<(), String> {
        Ok(())
    }

    /// The answer the provider expects for an accepted (or duplicate) delivery.
    fn acknowledgement(&self, ack: Ack) -> Ack {
        ack
    }
}

/// What a provider's documentation says its deliveries hold. What a delivery holds beyond it,
/// or lacks of it, is a sign that the contract changed ([`crate::drift`]).
pub struct Contract {
    /// The event types it documents.
    pub event_types: &'static [&'static str],
    /// The objects of its envelope whose members are documented — a JSON pointer (`""` the
    /// body itself, `*` every element of a list) — each with those members.
    pub objects: &'static [(&'static str, &'static [&'static str])],
    /// Fields every delivery is documented to carry, beyond those its parser requires.
    pub expected: &'static [&'static str],
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
        if !tenant.events.is_empty() && !provider.events_configurable() {
            return Err(ConfigError::Invalid(format!(
                "{} tenant {:?}: `events` is not a setting of this provider (its event names \
                 are documented)",
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
    // Signatures over URL and body: a request that names neither its tenant nor a configured
    // account would have to be tried against every such tenant's secrets.
    if let AuthScheme::UrlBodySignature { .. } = provider.auth().scheme {
        let mut unnamed = tenants.unnamed();
        if let (Some(first), Some(second)) = (unnamed.next(), unnamed.next()) {
            return Err(ConfigError::Invalid(format!(
                "{} tenants {:?} and {:?} are both registered at a URL without ?tenant=<id> and have no account_id: give each one or the other",
                provider.name(),
                first.id,
                second.id
            )));
        }
    }
    Ok(())
}

/// Joins the parts of a dedup key with `#`, escaping `%` and `#` inside parts so that two
/// different part lists never give the same key.
pub fn dedup_suffix(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|part| bounded(part).replace('%', "%25").replace('#', "%23"))
        .collect::<Vec<_>>()
        .join("#")
}

/// Longest key part kept as sent; longer ones are replaced by their SHA-256, so that a key
/// stays far inside DynamoDB's 2,048-byte limit whatever a sender puts in a field.
pub const MAX_KEY_PART_BYTES: usize = 200;

fn bounded(part: &str) -> std::borrow::Cow<'_, str> {
    if part.len() <= MAX_KEY_PART_BYTES {
        part.into()
    } else {
        format!("sha256:{}", hex::encode(Sha256::digest(part.as_bytes()))).into()
    }
}

/// Refuses, at parse time, an id that goes into a provider API's URL but could not stand as
/// one path segment there: the providers' ids are numbers (any JSON number's text), UUIDs and
/// alphanumeric tokens with `-` or `_`, so anything else — `/`, `?`, `#`, `%` (`%2e%2e` decodes
/// to `..`), spaces, non-ASCII — or an id of only dots (`.`, `..`: the URL parser removes them
/// and the call goes to the parent path with the tenant's API key) is not an id. The delivery
/// is quarantined; the reason names the field, never the value.
pub fn check_id(field: &str, id: &str) -> Result<(), IngestError> {
    let allowed =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'+');
    if id.bytes().all(allowed) && !only_dots(id) {
        return Ok(());
    }
    Err(IngestError::MalformedBody(format!(
        "{field}: not an id (letters, digits and - _ . ~ + only, not only dots)"
    )))
}

/// Empty, `.`, `..` or more dots: no path segment can carry it (the URL parser treats `%2E`
/// as a dot too).
fn only_dots(id: &str) -> bool {
    id.bytes().all(|b| b == b'.')
}

/// Percent-encodes an id as one path segment (or query value): every byte but letters, digits,
/// `-`, `_` and `~` — `.` and `%` included, so no id becomes a dot segment or another id once
/// decoded. An id of only dots (or none) cannot be a segment at all, however encoded (the URL
/// parser reads `%2E%2E` as `..`): refused, without quoting it.
pub fn segment(id: &str) -> Result<String, String> {
    if only_dots(id) {
        return Err("the id is empty or only dots: not a path segment".into());
    }
    Ok(id
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect())
}

/// The API key of tenants whose provider sends one key per request.
pub fn api_key_header(
    api: &ApiAccess,
    header: &'static str,
    present: impl Fn(&str) -> String,
) -> Result<ApiCredentials, String> {
    let key = api
        .api_key
        .as_ref()
        .ok_or("the tenant's `api.api_key` is not set")?;
    Ok(ApiCredentials::Headers(vec![(
        header,
        present(key.expose()),
    )]))
}

/// The detail path of an event family: the tenant's own template for it (`api.paths`, where
/// the provider's documentation is unconfirmed), else the provider's default; `{id}` is
/// filled with the percent-encoded id ([`segment`]).
pub fn detail_path(
    tenant: &Tenant,
    family: &str,
    default: &str,
    id: &str,
) -> Result<String, String> {
    let template = tenant
        .api
        .as_ref()
        .and_then(|api| api.paths.get(family))
        .map_or(default, String::as_str);
    Ok(template.replace("{id}", &segment(id)?))
}

/// Default JSON pointers of an envelope whose field names are configurable per tenant. Each
/// default lists pointers tried in turn.
pub struct PointerDefaults {
    /// The provider's own id of the delivery, where it sends one: then it alone is the key.
    pub delivery_id: &'static [&'static str],
    pub event_type: &'static [&'static str],
    pub object_id: &'static [&'static str],
    pub updated_at: &'static [&'static str],
}

/// Reads event type, object id and version from a JSON body through the tenant's pointers (or
/// the provider's defaults), keeping every value's exact text. The key is the delivery id where
/// the body has one, else type + object + version, where the version is the updated-at value
/// or the body's SHA-256, so that an identical redelivery is still recognised.
pub fn parse_by_pointers(
    body: &[u8],
    pointers: &EventPointers,
    defaults: &PointerDefaults,
    subject_kind: impl Fn(&str) -> String,
) -> Result<ParsedEvent, IngestError> {
    let document = Document::parse(body)?;
    // The value found and the pointer it was found at, else the pointers tried.
    let first = |configured: &Option<String>, defaults: &[&str]| {
        let candidates: Vec<&str> = match configured {
            Some(pointer) => vec![pointer.as_str()],
            None => defaults.to_vec(),
        };
        candidates
            .iter()
            .find_map(|p| document.text_at(p).map(|text| (text, p.to_string())))
            .ok_or_else(|| candidates.join(" or "))
    };
    let required = |configured: &Option<String>, defaults: &[&str]| {
        first(configured, defaults).map_err(|tried| {
            IngestError::MalformedBody(format!("{tried}: missing, empty or not a string or number"))
        })
    };
    let (event_type, _) = required(&pointers.event_type, defaults.event_type)?;
    let (object_id, at) = required(&pointers.object_id, defaults.object_id)?;
    check_id(&at, &object_id)?;
    let dedup = match first(&pointers.delivery_id, defaults.delivery_id) {
        Ok((delivery_id, _)) => dedup_suffix(&[&delivery_id]),
        Err(_) => {
            let version = first(&pointers.updated_at, defaults.updated_at)
                .map(|(text, _)| text)
                .unwrap_or_else(|_| format!("sha256:{}", hex::encode(Sha256::digest(body))));
            dedup_suffix(&[&event_type, &object_id, &version])
        }
    };
    Ok(ParsedEvent {
        subject: format!("{}:{object_id}", subject_kind(&event_type)),
        dedup_suffix: dedup,
        event_type,
        entity_id: object_id,
        facts: None,
    })
}

/// A sample delivery for a provider read through pointers: `event_type`, the sample's id as
/// the object (and delivery, where there is one) id and its time as the version, each written
/// where the tenant's pointer (or the provider's first default) reads it.
pub fn sample_by_pointers(
    pointers: &EventPointers,
    defaults: &PointerDefaults,
    event_type: &str,
    sample: &Sample,
) -> serde_json::Value {
    let mut body = serde_json::json!({});
    let at = |configured: &Option<String>, defaults: &[&'static str]| {
        configured
            .clone()
            .or_else(|| defaults.first().map(|p| p.to_string()))
    };
    let fields = [
        (at(&pointers.event_type, defaults.event_type), event_type),
        (
            at(&pointers.object_id, defaults.object_id),
            sample.id.as_str(),
        ),
        (
            at(&pointers.updated_at, defaults.updated_at),
            sample.now.as_str(),
        ),
        (
            at(&pointers.delivery_id, defaults.delivery_id),
            sample.id.as_str(),
        ),
    ];
    for (pointer, value) in fields {
        if let Some(pointer) = pointer {
            put_at(&mut body, &pointer, value.into());
        }
    }
    body
}

/// Writes `value` at a JSON pointer of objects, making the objects on the way.
fn put_at(body: &mut serde_json::Value, pointer: &str, value: serde_json::Value) {
    let mut place = body;
    for name in pointer.split('/').skip(1) {
        let name = name.replace("~1", "/").replace("~0", "~");
        if !place.is_object() {
            *place = serde_json::json!({});
        }
        place = place
            .as_object_mut()
            .expect("made an object above")
            .entry(name)
            .or_insert(serde_json::Value::Null);
    }
    *place = value;
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
    fn long_key_parts_are_hashed_to_a_bounded_length() {
        let long = "x".repeat(5000);
        let other = format!("{}y", "x".repeat(4999));
        let key = dedup_suffix(&[&long, &long]);
        assert!(key.len() < 2 * (MAX_KEY_PART_BYTES + 1), "{}", key.len());
        assert_ne!(key, dedup_suffix(&[&other, &long]));
        let edge = "z".repeat(MAX_KEY_PART_BYTES);
        assert_eq!(dedup_suffix(&[&edge]), edge, "kept as sent up to the limit");
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
        let events =
            r#"{"tenants": [{"id": "t", "webhook_secrets": ["s"], "events": {"x": "erase"}}]}"#;
        let refused = check("egym", events).unwrap_err().to_string();
        assert!(refused.contains("`events` is not a setting"), "{refused}");
    }

    #[test]
    fn every_provider_is_found_by_its_name() {
        for provider in all() {
            assert_eq!(by_name(provider.name()).unwrap().name(), provider.name());
        }
        assert!(by_name("nope").is_none());
    }

    #[test]
    fn ids_that_are_not_one_path_segment_are_refused_naming_the_field_only() {
        for id in [
            "7893459",
            "-12",
            "1e400",
            "1.5E+3",
            "3f1c0a2e-9d1b-4c7e-8a3f-0b6e2d9c4a11",
            "Kk1B_x-y~z",
        ] {
            assert!(check_id("data.id", id).is_ok(), "{id}");
        }
        for id in [
            "", ".", "..", "...", "%2e%2e", "/", "a/../b", "?", "a?b=1", "#", "a b", "ü", "a\\b",
        ] {
            let error = check_id("data.id", id).unwrap_err().to_string();
            assert!(
                error.starts_with("malformed body: data.id: not an id"),
                "{id}: {error}"
            );
            assert!(id.len() < 3 || !error.contains(id), "{error} quotes {id}");
        }
    }

    /// Whatever the id, its segment stays one segment through the URL parser reqwest uses,
    /// which removes `.` and `..` segments, `%2E` ones included.
    #[test]
    fn every_id_is_sent_as_one_path_segment_or_not_at_all() {
        for dots in ["", ".", "..", "..."] {
            assert!(segment(dots).is_err(), "{dots:?}");
        }
        let ids = [
            "a.b", ".a", "%2e%2e", "%2E.", "/", "..%2f..", "?x", "#", "a b", "ü", ".\u{0}.",
        ];
        for id in ids {
            let segment = segment(id).unwrap();
            let url = url::Url::parse(&format!("https://api.test/base/{segment}/tail")).unwrap();
            let segments: Vec<&str> = url.path_segments().unwrap().collect();
            assert_eq!(segments, ["base", segment.as_str(), "tail"], "{id}");
            assert!(url.query().is_none() && url.fragment().is_none(), "{id}");
        }
        assert_eq!(segment("a.b").unwrap(), "a%2Eb");
        assert_eq!(segment("%2e%2e").unwrap(), "%252e%252e");
    }

    #[test]
    fn a_stored_id_of_only_dots_is_fetched_by_no_provider() {
        let fetching = [
            ("magicline", "CUSTOMER_CREATED"),
            ("egym", "GYM_CHECKIN"),
            ("timify", "event.created"),
            ("flybuy", "order_updated"),
            ("waitwhile", "visit.created"),
        ];
        let tenant = TenantDirectory::from_json(r#"{"tenants": [{"id": "t"}]}"#).unwrap();
        let tenant = tenant.get("t").unwrap();
        for (name, event_type) in fetching {
            for id in ["..", "."] {
                let record = Record {
                    event_type: event_type.into(),
                    entity_id: id.into(),
                    body: format!(
                        r#"{{"entityId": 1, "uuid": "u", "payload": [{{"timestamp": 1, "type": "{event_type}"}}]}}"#
                    ),
                    ..Record::default()
                };
                let processing = by_name(name).unwrap().processing(&record, tenant);
                let error = processing.expect_err(name);
                assert!(error.contains("not"), "{name}: {error}");
            }
        }
    }

    #[test]
    fn signed_urls_naming_neither_tenant_nor_account_are_allowed_once() {
        let check = |tenants: &str| {
            check_tenants(
                by_name("waitwhile").unwrap().as_ref(),
                &TenantDirectory::from_json(&format!(r#"{{"tenants": [{tenants}]}}"#)).unwrap(),
            )
        };
        let tenant = |id: &str, extra: &str| {
            format!(
                r#"{{"id": "{id}", "url": "https://h/webhooks/waitwhile{extra}", "webhook_secrets": ["s-{id}"]}}"#
            )
        };
        let (a, b) = (tenant("a", ""), tenant("b", ""));
        assert!(check(&a).is_ok());
        let error = check(&format!("{a}, {b}")).unwrap_err().to_string();
        assert!(
            error.contains("account_id") && error.contains("\"b\""),
            "{error}"
        );
        let named = tenant("b", "?tenant=b");
        assert!(check(&format!("{a}, {named}")).is_ok());
        let with_account = tenant("b", "").replace(r#""id""#, r#""account_id": "acc-b", "id""#);
        assert!(check(&format!("{a}, {with_account}")).is_ok());
    }
}
