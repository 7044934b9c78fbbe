//! Erasure follows the person, not the record: a deletion empties every record whose subject
//! is the person, every record that names them (the links written when records are processed,
//! see [`crate::providers::PersonField`]) and every quarantined body of their tenant that holds
//! their id; it leaves a tombstone that later deliveries, fetches and publications respect; and
//! it ends with a receipt of what it emptied.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::downstream::DownstreamEvent;
use crate::key::subject_of;
use crate::model::{Erased, EventFilter, Record, Status};
use crate::ports::{Ports, StoreError};
use crate::providers::{persons_named, Provider};

/// Whom an erasure is about: one person (`<kind>:<id>`) of one tenant of one provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub provider: String,
    pub tenant: String,
    /// `customer:42`.
    pub person: String,
}

impl Person {
    /// The person a subject (`<provider>#<tenant>#<kind>:<id>`) names; tenant ids hold no `#`.
    pub fn from_subject(subject: &str) -> Option<Person> {
        let parts = crate::key::KeyParts::of(subject)?;
        parts.rest.contains(':').then(|| Person {
            provider: parts.provider.to_string(),
            tenant: parts.tenant.to_string(),
            person: parts.rest.to_string(),
        })
    }

    pub fn subject(&self) -> String {
        subject_of(&self.provider, &self.tenant, &self.person)
    }

    /// The id as the provider writes it (`42` of `customer:42`).
    pub fn id(&self) -> &str {
        self.person.split_once(':').map_or("", |(_, id)| id)
    }
}

/// One erasure's account: whom, what it emptied, when. Published as `erasure.completed` and
/// printed by `webhooks erase`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The deletion event that asked for it (none when an operator did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub provider: String,
    pub tenant: String,
    pub person: String,
    pub records: usize,
    pub bodies: usize,
    pub details: usize,
    /// Epoch milliseconds.
    pub erased_at: i64,
}

impl Receipt {
    /// The downstream event of this receipt.
    pub fn event(&self) -> DownstreamEvent {
        DownstreamEvent {
            source: format!("webhooks.{}", self.provider),
            detail_type: "erasure.completed".to_string(),
            detail: json!(self),
        }
    }
}

/// The persons (subjects) the record's body or `detail` names besides its own subject.
pub fn named_persons(
    provider: &dyn Provider,
    record: &Record,
    detail: Option<&str>,
) -> Vec<String> {
    let fields = provider.person_fields();
    let mut persons: Vec<String> = [Some(record.body.as_str()), detail]
        .into_iter()
        .flatten()
        .flat_map(|json| persons_named(fields, json))
        .map(|person| subject_of(&record.provider, &record.tenant, &person))
        .filter(|subject| *subject != record.subject)
        .collect();
    persons.sort_unstable();
    persons.dedup();
    persons
}

/// Empties `record` before it is stored when its subject, or a person its body names, has
/// been erased: a spilled or released delivery about an erased person keeps nothing. True if
/// it did.
pub async fn withhold_erased(
    ports: &Ports,
    provider: &dyn Provider,
    record: &mut Record,
) -> Result<bool, StoreError> {
    let mut persons = named_persons(provider, record, None);
    persons.push(record.subject.clone());
    for person in persons.iter().filter(|person| !person.is_empty()) {
        if ports.store.erased_at(person).await?.is_some() {
            record.body.clear();
            record.erased_at_ms = Some(ports.clock.now_ms());
            return Ok(true);
        }
    }
    Ok(false)
}

/// The most quarantined records of one tenant an erasure looks through (they are few: a
/// quarantine is an alarm).
const MAX_QUARANTINED: usize = 10_000;

/// Erases what is held about `person` (see the module): a tombstone kept until
/// `tombstone_expires_at` (epoch seconds), then every record of or naming them emptied.
pub async fn erase_person(
    ports: &Ports,
    person: &Person,
    tombstone_expires_at: i64,
) -> Result<Receipt, StoreError> {
    let now = ports.clock.now_ms();
    let mut erased = ports
        .store
        .erase_subject(&person.subject(), now, tombstone_expires_at)
        .await?;
    erased += erase_quarantined_naming(ports, person, now).await?;
    Ok(Receipt {
        key: None,
        provider: person.provider.clone(),
        tenant: person.tenant.clone(),
        person: person.person.clone(),
        records: erased.records,
        bodies: erased.bodies,
        details: erased.details,
        erased_at: now,
    })
}

/// What an erasure of a person would reach, found without erasing anything or leaving a
/// tombstone (`webhooks erase --dry-run`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Preview {
    pub provider: String,
    pub tenant: String,
    pub person: String,
    /// Records about the person or naming them.
    pub records: Vec<String>,
    /// Quarantined deliveries of their tenant whose raw body holds their id.
    pub quarantined: Vec<String>,
}

/// What [`erase_person`] would empty now.
pub async fn preview_person(ports: &Ports, person: &Person) -> Result<Preview, StoreError> {
    Ok(Preview {
        provider: person.provider.clone(),
        tenant: person.tenant.clone(),
        person: person.person.clone(),
        records: ports.store.subject_records(&person.subject()).await?,
        quarantined: quarantined_naming(ports, person).await?,
    })
}

/// Quarantined records of the person's tenant whose raw body holds their id.
async fn erase_quarantined_naming(
    ports: &Ports,
    person: &Person,
    now: i64,
) -> Result<Erased, StoreError> {
    let mut erased = Erased::default();
    for key in quarantined_naming(ports, person).await? {
        erased += ports.store.erase_record(&key, now).await?;
    }
    Ok(erased)
}

/// The keys of the quarantined records of the person's tenant whose raw body holds their id:
/// read through the quarantine's own index, never a scan.
async fn quarantined_naming(ports: &Ports, person: &Person) -> Result<Vec<String>, StoreError> {
    let filter = EventFilter {
        providers: vec![person.provider.clone()],
        tenant: Some(person.tenant.clone()),
        status: Some(Status::Quarantined),
        since_ms: 0,
        until_ms: i64::MAX,
        limit: MAX_QUARANTINED,
        // Expired or not: whatever is still stored about them goes.
        live_at_ms: i64::MIN,
        unfinished_only: false,
    };
    let mut keys = Vec::new();
    for listed in ports.store.list(&filter).await? {
        let Some(record) = ports.store.get(&listed.key).await? else {
            continue;
        };
        if holds_id(&record.body, person.id()) {
            keys.push(record.key);
        }
    }
    Ok(keys)
}

/// Whether `body` holds `id` as a whole token, not inside a longer one (`42` is not in `1420`).
fn holds_id(body: &str, id: &str) -> bool {
    if id.is_empty() {
        return false;
    }
    let part_of_a_token = |c: char| c.is_alphanumeric() || c == '-' || c == '_';
    body.match_indices(id).any(|(at, _)| {
        let before = body[..at].chars().next_back();
        let after = body[at + id.len()..].chars().next();
        !before.is_some_and(part_of_a_token) && !after.is_some_and(part_of_a_token)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_names_provider_tenant_and_person() {
        let person = Person::from_subject("magicline#studio-1#customer:7#8").unwrap();
        assert_eq!(
            (
                person.provider.as_str(),
                person.tenant.as_str(),
                person.id()
            ),
            ("magicline", "studio-1", "7#8")
        );
        assert_eq!(person.subject(), "magicline#studio-1#customer:7#8");
        assert_eq!(Person::from_subject("magicline#studio-1"), None);
    }

    #[test]
    fn an_id_is_found_only_as_a_whole_token() {
        assert!(holds_id(r#"{"customerId": 42}"#, "42"));
        assert!(holds_id(r#"{"id": "c-42"}"#, "c-42"));
        assert!(!holds_id(r#"{"customerId": 1420}"#, "42"));
        assert!(!holds_id(r#"{"id": "c-421"}"#, "c-42"));
        assert!(!holds_id("anything", ""));
    }
}
