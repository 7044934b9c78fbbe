//! Magicline: `x-api-key` header (one key per studio), delivery id in the body's `uuid`.
//! The body only notifies; details come later from the Magicline Open API, through the call
//! each event type's `entityId` (and `content`) names (FACTS.md §1.2).

use serde::Deserialize;

use super::{
    api_key_header, check_id, dedup_suffix, parse_json, segment, Contract, Document, Item, Number,
    ParsedEvent, PersonField, Processing, Provider,
};
use crate::check::Sample;
use crate::fetch::ApiCredentials;
use crate::model::{Rate, Record};
use crate::register::Registration;
use crate::response::IngestError;
use crate::tenants::{ApiAccess, Tenant};
use crate::verify::{Auth, AuthScheme};

pub struct Magicline;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub entity_id: Number,
    pub uuid: String,
    pub payload: Vec<NotificationEvent>,
}

#[derive(Debug, Deserialize)]
pub struct NotificationEvent {
    pub timestamp: Number,
    #[serde(rename = "type")]
    pub event_type: String,
}

/// What an event type's `entityId` names, and what processing it means.
struct Rule {
    event_type: &'static str,
    /// The kind of thing `entityId` is (whom an erasure reaches).
    entity: &'static str,
    action: Action,
}

enum Action {
    /// GET these paths; `{entityId}` and `{<field>}` (a field of the event's `content`) are
    /// filled in.
    Fetch(&'static [&'static str]),
    /// GET the path once per element of the `content` list named, filling in its fields.
    FetchEach {
        list: &'static str,
        path: &'static str,
    },
    /// Personal data deleted or no longer ours to read: erase, call nothing.
    Erase,
    /// The customer, or — no longer visible with this studio's key — the customer read
    /// cross-studio, marked detached from the studio the event names as its source.
    FetchOrCrossStudio,
}

use Action::{Erase, Fetch, FetchEach, FetchOrCrossStudio};

const CUSTOMER: &[&str] = &["/v1/customers/{entityId}"];
const CROSS_STUDIO_CUSTOMER: &str = "/v1/cross-studio/customers/{entityId}";
const CONTRACTS: &[&str] = &["/v1/customers/{entityId}/contracts"];
const CHECKINS: &[&str] = &["/v1/customers/{entityId}/activities/checkins"];
const APPOINTMENT_BOOKING: &[&str] = &["/v1/appointments/booking/{entityId}"];
const CLASS_BOOKING: &[&str] = &["/v1/classes/booking/{entityId}"];
const CLASS_SLOT: &[&str] = &["/v1/classes/{classId}/slots/{entityId}"];
const MODULE_CONTRACT: &[&str] =
    &["/v1/memberships/{contractId}/self-service/additional-module-contracts/{moduleContractId}"];
const IDLE_PERIOD: &[&str] =
    &["/v1/memberships/{contractId}/self-service/idle-periods/{idlePeriodId}"];
const EMPLOYEE: &[&str] = &["/v1/employees/{entityId}"];

const fn rule(event_type: &'static str, entity: &'static str, action: Action) -> Rule {
    Rule {
        event_type,
        entity,
        action,
    }
}

/// Every event type of Magicline's published table (44), with its call. Types not listed
/// (new ones) are stored without a call.
#[rustfmt::skip]
const RULES: &[Rule] = &[
    rule("ADDITIONAL_INFORMATION_FIELDS_UPDATED",         "studio",                        Fetch(&["/v1/customers/additional-information-fields"])),
    rule("AGGREGATOR_MEMBER_CREATED",                     "customer",                      Fetch(CUSTOMER)),
    rule("APPOINTMENT_BOOKING_CANCELLED",                 "appointment-booking",           Fetch(APPOINTMENT_BOOKING)),
    rule("APPOINTMENT_BOOKING_CREATED",                   "appointment-booking",           Fetch(APPOINTMENT_BOOKING)),
    rule("APPOINTMENT_BOOKING_UPDATED",                   "appointment-booking",           Fetch(APPOINTMENT_BOOKING)),
    rule("AUTOMATIC_CUSTOMER_CHECKOUT",                   "studio",                        FetchEach { list: "checkouts", path: "/v1/customers/{customerId}/activities/checkins" }),
    rule("CONTRACT_ADDITIONAL_MODULE_CREATED",            "customer",                      Fetch(MODULE_CONTRACT)),
    rule("CONTRACT_ADDITIONAL_MODULE_UPDATED",            "customer",                      Fetch(MODULE_CONTRACT)),
    rule("CONTRACT_ADDITIONAL_MODULE_CANCELLED",          "customer",                      Fetch(MODULE_CONTRACT)),
    rule("CONTRACT_ADDITIONAL_MODULE_DELETED",            "customer",                      Fetch(CONTRACTS)),
    rule("CONTRACT_CREATED",                              "customer",                      Fetch(CONTRACTS)),
    rule("CONTRACT_UPDATED",                              "customer",                      Fetch(CONTRACTS)),
    rule("CONTRACT_CANCELLED",                            "customer",                      Fetch(CONTRACTS)),
    rule("CONTRACT_IDLE_PERIOD_CREATED",                  "customer",                      Fetch(IDLE_PERIOD)),
    rule("CONTRACT_IDLE_PERIOD_UPDATED",                  "customer",                      Fetch(IDLE_PERIOD)),
    rule("CONTRACT_IDLE_PERIOD_CANCELLED",                "customer",                      Fetch(&["/v1/memberships/{contractId}/self-service/idle-periods"])),
    rule("CUSTOMER_ACCESS_MEDIUM_CREATED",                "customer",                      Fetch(CUSTOMER)),
    rule("CUSTOMER_ACCESS_MEDIUM_UPDATED",                "customer",                      Fetch(CUSTOMER)),
    rule("CUSTOMER_ACCESS_MEDIUM_DELETED",                "customer",                      Fetch(CUSTOMER)),
    rule("CUSTOMER_ACCESS_RESTRICTION_CREATED",           "customer",                      Fetch(CUSTOMER)),
    rule("CUSTOMER_ACCESS_RESTRICTION_DELETED",           "customer",                      Fetch(CUSTOMER)),
    rule("CUSTOMER_CHECKIN",                              "customer",                      Fetch(CHECKINS)),
    rule("CUSTOMER_CHECKOUT",                             "customer",                      Fetch(CHECKINS)),
    rule("CUSTOMER_CHECKIN_STUDIOS_UPDATED",              "customer",                      Fetch(CONTRACTS)),
    rule("CUSTOMER_CREATED",                              "customer",                      Fetch(CUSTOMER)),
    rule("CUSTOMER_UPDATED",                              "customer",                      Fetch(CUSTOMER)),
    rule("CUSTOMER_DELETED",                              "customer",                      Erase),
    rule("CUSTOMER_COMMUNICATION_PREFERENCES_UPDATED",    "customer",                      Fetch(&["/v1/communications/{entityId}/communication-preferences"])),
    rule("CUSTOMER_ACCESS_DISABLED",                      "customer",                      Erase),
    rule("CUSTOMER_HOME_STUDIO_UPDATED",                  "customer",                      FetchOrCrossStudio),
    rule("CLASS_BOOKING_CREATED",                         "class-booking",                 Fetch(CLASS_BOOKING)),
    rule("CLASS_BOOKING_UPDATED",                         "class-booking",                 Fetch(CLASS_BOOKING)),
    rule("CLASS_BOOKING_CANCELLED",                       "class-booking",                 Fetch(CLASS_BOOKING)),
    rule("CLASS_SLOT_UPDATED",                            "class-slot",                    Fetch(CLASS_SLOT)),
    rule("CLASS_SLOT_CANCELLED",                          "class-slot",                    Fetch(CLASS_SLOT)),
    rule("DEVICE_CREATED",                                "device",                        Fetch(&["/v1/devices"])),
    rule("EMPLOYEE_CREATED",                              "employee",                      Fetch(EMPLOYEE)),
    rule("EMPLOYEE_UPDATED",                              "employee",                      Fetch(EMPLOYEE)),
    rule("EMPLOYEE_DELETED",                              "employee",                      Erase),
    rule("FINANCE_DEBT_COLLECTION_RUN_CREATED",           "debt-collection-run",           Fetch(&[ "/v1/debt-collection/{entityId}/debtors", "/v1/debt-collection/{entityId}/details", ])),
    rule("FINANCE_DEBT_COLLECTION_CONFIGURATION_UPDATED", "debt-collection-configuration", Fetch(&["/v1/debt-collection/configuration"])),
    rule("FINANCE_DEBT_COLLECTION_CASE_UPDATED",          "debt-collection-case",          Fetch(&["/v1/debt-collection/cases?caseAdjustmentRequestId={entityId}"])),
    rule("STUDIO_OPENING_HOURS_UPDATED",                  "studio",                        Fetch(&["/v1/studios/information"])),
    rule("TAX_ADVISOR_EXPORT_CREATED",                    "tax-advisor-export",            Fetch(&["/v1/taxadvisor/exports/{entityId}"])),
];

fn rule_for(event_type: &str) -> Option<&'static Rule> {
    RULES.iter().find(|rule| rule.event_type == event_type)
}

/// The calls one event's rule makes, its placeholders filled from `entityId` and `content`;
/// a list's calls each with the element it stands for.
fn rule_items(
    rule: &Rule,
    entity_id: &str,
    content: Option<&Document<'_>>,
) -> Result<Vec<Item>, String> {
    let plain = |path: String| Item {
        path,
        content: "null".to_string(),
    };
    match &rule.action {
        Erase => Ok(Vec::new()),
        FetchOrCrossStudio => CUSTOMER
            .iter()
            .map(|template| fill(template, entity_id, content).map(plain))
            .collect(),
        Fetch(templates) => templates
            .iter()
            .map(|template| fill(template, entity_id, content).map(plain))
            .collect(),
        FetchEach { list, path } => {
            let elements = content
                .map(|content| content.elements(&format!("/{list}")))
                .unwrap_or_default();
            if elements.is_empty() {
                return Err(format!("the event's content lists no `{list}`"));
            }
            elements
                .iter()
                .map(|element| {
                    Ok(Item {
                        path: fill(path, entity_id, Some(element))?,
                        content: element.as_json().to_string(),
                    })
                })
                .collect()
        }
    }
}

/// An event that is only a customer's change of home studio (FACTS.md §1.2): the customer,
/// else — not visible with this studio's key any more — read cross-studio and marked detached
/// from the source studio.
fn home_studio_change(
    rules: &[(Option<&Rule>, Option<Document<'_>>)],
    items: &[Item],
    entity_id: &str,
) -> Result<Option<Processing>, String> {
    let [(Some(rule), content)] = rules else {
        return Ok(None);
    };
    if !matches!(rule.action, FetchOrCrossStudio) || items.len() != 1 {
        return Ok(None);
    }
    let source: serde_json::Value = content
        .as_ref()
        .and_then(|content| content.at("/sourceStudioId"))
        .and_then(|source| serde_json::from_str(source.as_json()).ok())
        .unwrap_or_default();
    Ok(Some(Processing::FetchOr {
        path: items[0].path.clone(),
        otherwise: fill(CROSS_STUDIO_CUSTOMER, entity_id, None)?,
        note: serde_json::json!({ "detached_from_studio": source }).to_string(),
    }))
}

/// Fills `{entityId}` and `{<field>}` placeholders; a field missing from `fields` is named.
fn fill(template: &str, entity_id: &str, fields: Option<&Document<'_>>) -> Result<String, String> {
    let mut path = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = rest[open..]
            .find('}')
            .map(|i| open + i)
            .ok_or("unclosed placeholder")?;
        path.push_str(&rest[..open]);
        let name = &rest[open + 1..close];
        let value = if name == "entityId" {
            Some(entity_id.to_string())
        } else {
            fields.and_then(|fields| fields.text_at(&format!("/{name}")))
        };
        let value = value.ok_or_else(|| {
            format!("the event's content has no `{name}`, which its API call needs")
        })?;
        let segment = segment(&value).map_err(|_| format!("the event's `{name}` is not an id"))?;
        path.push_str(&segment);
        rest = &rest[close + 1..];
    }
    path.push_str(rest);
    Ok(path)
}

/// The placeholders of a path template: `entityId`, `classId` …
fn placeholders(template: &str) -> impl Iterator<Item = &str> {
    template
        .split('{')
        .skip(1)
        .filter_map(|part| part.split_once('}').map(|(name, _)| name))
}

/// Refuses a delivery any of whose calls would carry a value that is not an id ([`check_id`]):
/// `entityId`, and each field of an event's `content` (or of each element of its list) that
/// the event's call fills in. A field that is missing is left to processing, which names it.
fn check_ids(entity_id: &str, body: &[u8]) -> Result<(), IngestError> {
    check_id("entityId", entity_id)?;
    let document = Document::parse(body)?;
    for (index, event) in document.elements("/payload").iter().enumerate() {
        let Some(rule) = rule_for(&event.text_at("/type").unwrap_or_default()) else {
            continue;
        };
        let content = event.at("/content");
        let check = |fields: &Document<'_>, template: &str, at: &str| {
            placeholders(template)
                .filter(|name| *name != "entityId")
                .filter_map(|name| Some((name, fields.text_at(&format!("/{name}"))?)))
                .try_for_each(|(name, id)| check_id(&format!("{at}.{name}"), &id))
        };
        let at = format!("payload[{index}].content");
        match (&rule.action, &content) {
            (Fetch(templates), Some(content)) => templates
                .iter()
                .try_for_each(|template| check(content, template, &at))?,
            (FetchEach { list, path }, Some(content)) => content
                .elements(&format!("/{list}"))
                .iter()
                .enumerate()
                .try_for_each(|(i, element)| check(element, path, &format!("{at}.{list}[{i}]")))?,
            _ => {}
        }
    }
    Ok(())
}

#[rustfmt::skip]
/// Persons Magicline's bodies and answers name: a check-out list's, a booking's or a debtor
/// list's customers, an employee.
const PERSON_FIELDS: &[PersonField] = &[
    PersonField { names: &["customerId"], kind: "customer" },
    PersonField { names: &["employeeId"], kind: "employee" },
];

impl Provider for Magicline {
    fn name(&self) -> &'static str {
        "magicline"
    }

    fn auth(&self) -> Auth {
        Auth::required(AuthScheme::HeaderSecret {
            header: "x-api-key",
        })
    }

    /// 1,000 calls a minute per endpoint (FACTS.md §1): paced per key, which is stricter.
    fn api_rate(&self) -> Rate {
        Rate {
            calls: 1000,
            per_ms: 60_000,
        }
    }

    fn person_fields(&self) -> &'static [PersonField] {
        PERSON_FIELDS
    }

    /// By e-mail to Magicline, which issues the studio's webhook key (FACTS.md §1.1).
    fn registration(&self) -> Registration {
        Registration::Manual(
            "1. E-mail Magicline (your Sport Alliance contact) to register a webhook for the studio \
of tenant {tenant}: URL {url}, all event types (or those you need; other URLs per type are possible).
2. Magicline answers with the studio's webhook API key (sent as x-api-key; not its Open API key). \
Put it beside the tenant's key: webhooks … tenants rotate magicline {tenant} --secret <key>
3. Once deliveries arrive with it (webhooks … events list --provider magicline --tenant {tenant}), \
drop the older key: webhooks … tenants retire magicline {tenant}",
        )
    }

    /// A made-up customer created.
    fn sample_delivery(&self, _tenant: &Tenant, sample: &Sample) -> serde_json::Value {
        serde_json::json!({
            "entityId": sample.number,
            "uuid": sample.id,
            "payload": [{ "timestamp": sample.now_ms, "type": "CUSTOMER_CREATED" }],
        })
    }

    /// FACTS.md §1.1: `entityId`, `uuid` and a `payload` list of events; the event types of
    /// the published table.
    fn contract(&self) -> Contract {
        Contract {
            event_types: &[],
            objects: &[
                ("", &["entityId", "uuid", "payload"]),
                ("/payload/*", &["timestamp", "type", "content"]),
            ],
            expected: &[],
        }
    }

    fn knows_event_type(&self, _tenant: &Tenant, event_type: &str) -> bool {
        rule_for(event_type).is_some()
    }

    fn own_subject_kinds(&self) -> Vec<&'static str> {
        RULES
            .iter()
            .map(|rule| rule.entity)
            .chain(["entity"])
            .collect()
    }

    /// Every event of the payload gets its call; a deletion among them erases instead (the
    /// person's data goes, so nothing about them is fetched).
    fn processing(&self, record: &Record, _tenant: &Tenant) -> Result<Processing, String> {
        let document = Document::parse(record.body.as_bytes()).map_err(|e| e.to_string())?;
        let events = document.elements("/payload");
        let rules: Vec<(Option<&Rule>, Option<Document<'_>>)> = events
            .iter()
            .map(|event| {
                let event_type = event.text_at("/type").unwrap_or_default();
                (rule_for(&event_type), event.at("/content"))
            })
            .collect();
        if rules
            .iter()
            .any(|(rule, _)| rule.is_some_and(|r| matches!(r.action, Erase)))
        {
            return Ok(Processing::Erase);
        }
        let lists = rules
            .iter()
            .any(|(rule, _)| rule.is_some_and(|r| matches!(r.action, FetchEach { .. })));
        let mut items: Vec<Item> = Vec::new();
        for (rule, content) in &rules {
            let Some(rule) = rule else { continue };
            for item in rule_items(rule, &record.entity_id, content.as_ref())? {
                if !items.iter().any(|known| known.path == item.path) {
                    items.push(item);
                }
            }
        }
        if items.is_empty() {
            return Ok(Processing::StoreOnly);
        }
        if lists {
            return Ok(Processing::Items { items });
        }
        if let Some(moved) = home_studio_change(&rules, &items, &record.entity_id)? {
            return Ok(moved);
        }
        Ok(Processing::Fetch {
            paths: items.into_iter().map(|item| item.path).collect(),
        })
    }

    fn api_credentials(&self, api: &ApiAccess) -> Result<ApiCredentials, String> {
        api_key_header(api, "x-api-key", str::to_string)
    }

    fn parse(&self, _tenant: &Tenant, body: &[u8]) -> Result<ParsedEvent, IngestError> {
        let notification: Notification = parse_json(body)?;
        if notification.uuid.trim().is_empty() {
            return Err(IngestError::MalformedBody("uuid: must not be empty".into()));
        }
        // The payload may list several events about the same entity: a deletion among them
        // names the record (it is what processing does), else the first one does.
        let is_erasure = |event: &&NotificationEvent| {
            rule_for(&event.event_type).is_some_and(|rule| matches!(rule.action, Erase))
        };
        let named = notification
            .payload
            .iter()
            .find(is_erasure)
            .or(notification.payload.first())
            .ok_or_else(|| {
                IngestError::MalformedBody("payload: must hold at least one event".into())
            })?;
        let entity = rule_for(&named.event_type).map_or("entity", |rule| rule.entity);
        let entity_id = notification.entity_id.0;
        check_ids(&entity_id, body)?;
        let facts = (notification.payload.len() > 1).then(|| {
            let types = notification
                .payload
                .iter()
                .map(|event| event.event_type.clone());
            serde_json::Map::from_iter([("events".to_string(), types.collect())])
        });
        Ok(ParsedEvent {
            event_type: named.event_type.clone(),
            subject: format!("{entity}:{entity_id}"),
            entity_id,
            dedup_suffix: dedup_suffix(&[&notification.uuid]),
            facts,
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
                br#"{"entityId": true, "uuid": "u", "payload": []}"#,
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
        let found = |key| {
            crate::verify::authenticate(&auth, &request(key), &tenants).map(|v| v.tenant.id.clone())
        };
        assert_eq!(found(Some("k1")).as_deref(), Some("studio-1"));
        assert_eq!(found(Some("k2")), None);
        assert_eq!(found(None), None);
    }

    fn record(event_type: &str, entity_id: &str, content: &str) -> Record {
        Record {
            event_type: event_type.into(),
            entity_id: entity_id.into(),
            body: format!(
                r#"{{"entityId": {entity_id}, "uuid": "u", "payload": [{{"timestamp": 1, "type": "{event_type}", "content": {content}}}]}}"#
            ),
            ..Record::default()
        }
    }

    fn paths(event_type: &str, entity_id: &str, content: &str) -> Result<Processing, String> {
        Magicline.processing(&record(event_type, entity_id, content), &tenant())
    }

    #[test]
    fn each_entity_id_is_resolved_through_its_own_endpoint() {
        let fetch = |paths: &[&str]| {
            Ok(Processing::Fetch {
                paths: paths.iter().map(|p| p.to_string()).collect(),
            })
        };
        assert_eq!(
            paths(
                "CLASS_SLOT_UPDATED",
                "88",
                r#"{"classId": 12345678901234567890}"#
            ),
            fetch(&["/v1/classes/12345678901234567890/slots/88"])
        );
        assert_eq!(
            paths("APPOINTMENT_BOOKING_CREATED", "9", "null"),
            fetch(&["/v1/appointments/booking/9"])
        );
        assert_eq!(
            paths(
                "AUTOMATIC_CUSTOMER_CHECKOUT",
                "1001",
                r#"{"checkouts": [{"customerId": 5, "checkoutTime": "t"}, {"customerId": 6}]}"#
            ),
            Ok(Processing::Items {
                items: vec![
                    Item {
                        path: "/v1/customers/5/activities/checkins".into(),
                        content: r#"{"customerId": 5, "checkoutTime": "t"}"#.into()
                    },
                    Item {
                        path: "/v1/customers/6/activities/checkins".into(),
                        content: r#"{"customerId": 6}"#.into()
                    },
                ]
            })
        );
        assert_eq!(
            paths("FINANCE_DEBT_COLLECTION_CASE_UPDATED", "77", "null"),
            fetch(&["/v1/debt-collection/cases?caseAdjustmentRequestId=77"])
        );
        assert_eq!(
            paths("CUSTOMER_DELETED", "5", "null"),
            Ok(Processing::Erase)
        );
        assert_eq!(
            paths("SOMETHING_NEW", "5", "null"),
            Ok(Processing::StoreOnly)
        );
    }

    #[test]
    fn every_event_of_a_payload_is_processed_and_a_deletion_among_them_erases() {
        let body = |types: &[&str]| {
            let events: Vec<String> = types
                .iter()
                .map(|t| format!(r#"{{"timestamp": 1, "type": "{t}"}}"#))
                .collect();
            format!(
                r#"{{"entityId": 5, "uuid": "u", "payload": [{}]}}"#,
                events.join(",")
            )
        };
        let processing = |types: &[&str]| {
            let event = Magicline.parse(&tenant(), body(types).as_bytes()).unwrap();
            let record = Record {
                event_type: event.event_type.clone(),
                entity_id: event.entity_id.clone(),
                body: body(types),
                ..Record::default()
            };
            (event, Magicline.processing(&record, &tenant()).unwrap())
        };
        let (event, erase) = processing(&["CUSTOMER_UPDATED", "CUSTOMER_DELETED"]);
        assert_eq!(erase, Processing::Erase);
        assert_eq!(
            (event.event_type.as_str(), event.subject.as_str()),
            ("CUSTOMER_DELETED", "customer:5")
        );
        let facts = serde_json::Value::Object(event.facts.unwrap());
        assert_eq!(
            facts,
            serde_json::json!({"events": ["CUSTOMER_UPDATED", "CUSTOMER_DELETED"]})
        );
        let (_, both) = processing(&["CUSTOMER_UPDATED", "CUSTOMER_CHECKIN", "CUSTOMER_CREATED"]);
        assert_eq!(
            both,
            Processing::Fetch {
                paths: vec![
                    "/v1/customers/5".into(),
                    "/v1/customers/5/activities/checkins".into()
                ]
            }
        );
        let (event, _) = processing(&["CUSTOMER_CREATED"]);
        assert_eq!(event.facts, None, "one event needs no list");
    }

    #[test]
    fn a_missing_content_id_is_named() {
        let error = paths("CLASS_SLOT_CANCELLED", "88", "{}").unwrap_err();
        assert!(error.contains("classId"), "{error}");
        let error = paths("AUTOMATIC_CUSTOMER_CHECKOUT", "1", r#"{"checkouts": []}"#).unwrap_err();
        assert!(error.contains("checkouts"), "{error}");
    }

    #[test]
    fn the_table_names_every_published_type_once() {
        assert_eq!(RULES.len(), 44);
        for rule in RULES {
            assert_eq!(
                RULES
                    .iter()
                    .filter(|r| r.event_type == rule.event_type)
                    .count(),
                1,
                "{}",
                rule.event_type
            );
        }
    }

    #[test]
    fn entity_ids_keep_every_digit_and_subjects_their_kind() {
        let body = br#"{"entityId": 123456789012345678901, "uuid": "u",
            "payload": [{"timestamp": 1, "type": "EMPLOYEE_DELETED"}]}"#;
        let event = Magicline.parse(&tenant(), body).unwrap();
        assert_eq!(event.entity_id, "123456789012345678901");
        assert_eq!(event.subject, "employee:123456789012345678901");
    }
}
