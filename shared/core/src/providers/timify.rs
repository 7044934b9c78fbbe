//! TIMIFY: an optional custom header whose name and secret each subscription chooses.
//! The envelope is not documented publicly, so the fields naming the event type, object id and
//! updated-at are JSON pointers configurable per tenant; the defaults below are our assumption.
//! Its API takes an access token exchanged for the app id and secret (`POST /v1/auth/token`),
//! sent as `Authorization: Bearer <token>` with a `company-id` header; one booking is read with
//! `GET /v1/appointments?ids=<id>`. No GET by id is documented for the other objects.

use super::{
    check_id, parse_by_pointers, sample_by_pointers, segment, Contract, Document, ParsedEvent,
    PersonField, PointerDefaults, Processing, Provider,
};
use crate::check::Sample;
use crate::fetch::{ApiCredentials, TokenExchange};
use crate::model::{Rate, Record};
use crate::register::Registration;
use crate::response::{Ack, IngestError};
use crate::tenants::{ApiAccess, EventAction, Secret, Tenant};
use crate::verify::{Auth, AuthScheme};

pub struct Timify;

/// Unconfirmed defaults, each tried in turn: `{"event": "customers.created", "data": {"id":
/// "...", "updatedAt": "..."}}` or a flat `{"type": ..., "id": ...}`.
pub const DEFAULT_POINTERS: PointerDefaults = PointerDefaults {
    delivery_id: &[],
    event_type: &["/event", "/type"],
    object_id: &["/data/id", "/id"],
    updated_at: &["/data/updatedAt", "/updatedAt"],
};

/// `customers` and `deleted` of `customers.deleted`.
fn family_and_action(event_type: &str) -> (&str, &str) {
    event_type.split_once('.').unwrap_or((event_type, ""))
}

/// The webhook families of the official excerpt (FACTS.md §3), in the plural the default
/// names use, and the booking families.
const KNOWN_FAMILIES: [&str; 11] = [
    "customers",
    "services",
    "resources",
    "companies",
    "managers",
    "enterprises",
    "shifts",
    "event",
    "events",
    "beforeConfirmations",
    "beforeReminders",
];

/// Webhook families about a booking (an appointment in TIMIFY's API).
const BOOKING_FAMILIES: [&str; 4] = ["event", "events", "beforeConfirmations", "beforeReminders"];

/// `customers` -> `customer`: one kind for every event about the same customer.
fn subject_kind(event_type: &str) -> String {
    let (family, _) = family_and_action(event_type);
    if BOOKING_FAMILIES.contains(&family) {
        "booking".to_string()
    } else {
        family.trim_end_matches('s').to_string()
    }
}

/// The token exchange of the tenant's app, its calls made for `company` (else the tenant's
/// `api.company_id`).
fn credentials(api: &ApiAccess, company: Option<&str>) -> Result<ApiCredentials, String> {
    let missing = |field: &str| format!("the tenant's `api.{field}` is not set");
    let app_id = api.app_id.as_deref().ok_or_else(|| missing("app_id"))?;
    let app_secret = api
        .app_secret
        .as_ref()
        .ok_or_else(|| missing("app_secret"))?;
    let company = company
        .or(api.company_id.as_deref())
        .ok_or_else(|| missing("company_id"))?;
    let body = serde_json::json!({ "appid": app_id, "appsecret": app_secret.expose() });
    Ok(ApiCredentials::Token(TokenExchange {
        path: "/v1/auth/token",
        body: Secret::new(body.to_string()),
        bearer: !api.bare_token,
        headers: vec![("company-id", company.to_string())],
    }))
}

/// What an event name means unless the tenant says otherwise (the names are unconfirmed:
/// FACTS.md §3): `customers.deleted` erases the customer, a booking family's events other than
/// deletions fetch the booking, the rest are stored.
fn default_action(event_type: &str) -> EventAction {
    let (family, action) = family_and_action(event_type);
    let deleted = action.eq_ignore_ascii_case("deleted");
    match family {
        "customers" if deleted => EventAction::Erase,
        f if BOOKING_FAMILIES.contains(&f) && !deleted => EventAction::FetchBooking,
        _ => EventAction::Store,
    }
}

#[rustfmt::skip]
/// Persons TIMIFY's answers name: a booking's customer.
const PERSON_FIELDS: &[PersonField] = &[PersonField { names: &["customer", "id"], kind: "customer" }];

impl Provider for Timify {
    fn name(&self) -> &'static str {
        "timify"
    }

    fn auth(&self) -> Auth {
        Auth::optional(AuthScheme::TenantChosenHeader).secret_chosen_by_receiver()
    }

    /// Unconfirmed (no published limit found): a conservative 5 a second; `api.rate` per tenant.
    fn api_rate(&self) -> Rate {
        Rate::per_second(5)
    }

    fn person_fields(&self) -> &'static [PersonField] {
        PERSON_FIELDS
    }

    /// In the Developer Platform's UI: no API for it is known (FACTS.md §3).
    fn registration(&self) -> Registration {
        Registration::Manual(
            "1. In TIMIFY's Developer Platform open the app of tenant {tenant}, Webhooks, and add a \
webhook to {url} for the events you need (the app must hold their scopes).
2. Enable \"Include header name\": header {header}, value the tenant's newest webhook secret (shown \
when it was added or rotated; webhooks … tenants rotate timify {tenant} makes and shows a new one).",
        )
    }

    /// A made-up customer created, written where the tenant's pointers read.
    fn sample_delivery(&self, tenant: &Tenant, sample: &Sample) -> serde_json::Value {
        sample_by_pointers(
            &tenant.pointers,
            &DEFAULT_POINTERS,
            "customers.created",
            sample,
        )
    }

    /// Not published (FACTS.md §3): what the defaults read. Every other field it sends shows
    /// as a sighting — which is how its real envelope becomes known.
    fn contract(&self) -> Contract {
        Contract {
            event_types: &[],
            objects: &[
                (
                    "",
                    &["event", "type", "id", "companyId", "data", "updatedAt"],
                ),
                ("/data", &["id", "updatedAt"]),
            ],
            expected: &[],
        }
    }

    /// A name the tenant configured, or one of a documented family (`customers.created`).
    fn knows_event_type(&self, tenant: &Tenant, event_type: &str) -> bool {
        let (family, action) = family_and_action(event_type);
        tenant.events.contains_key(event_type)
            || (KNOWN_FAMILIES.contains(&family)
                && ["created", "updated", "deleted"].contains(&action))
    }

    fn own_subject_kinds(&self) -> Vec<&'static str> {
        // The families of its published events; another family is its name without the
        // plural `s` (README): not known until it comes.
        vec!["booking", "customer", "service", "resource"]
    }

    /// A booking is read by id; a deleted customer is erased; other objects have no
    /// documented GET by id and are stored as they came.
    /// The tenant's `events` first, then the defaults ([`default_action`]).
    fn processing(&self, record: &Record, tenant: &Tenant) -> Result<Processing, String> {
        let action = tenant
            .events
            .get(&record.event_type)
            .copied()
            .unwrap_or_else(|| default_action(&record.event_type));
        Ok(match action {
            EventAction::Erase => Processing::Erase,
            EventAction::FetchBooking => Processing::fetch(format!(
                "/v1/appointments?ids={}",
                segment(&record.entity_id)?
            )),
            EventAction::Store => Processing::StoreOnly,
        })
    }

    fn events_configurable(&self) -> bool {
        true
    }

    fn api_credentials(&self, api: &ApiAccess) -> Result<ApiCredentials, String> {
        credentials(api, None)
    }

    /// An app installed for several companies (an enterprise account) is told which one a
    /// delivery is about by its `companyId` (FACTS.md §6.8): that company's data is fetched —
    /// if the delivery was authenticated and the company is the tenant's own or one of its
    /// `api.companies`. Another company is a configuration to fix, never a fetch for it.
    fn api_credentials_for(
        &self,
        api: &ApiAccess,
        record: &Record,
    ) -> Result<ApiCredentials, String> {
        let named = Document::parse(record.body.as_bytes())
            .ok()
            .and_then(|body| body.text_at("/companyId"));
        let Some(company) = named.filter(|_| !record.unauthenticated) else {
            return credentials(api, None);
        };
        let allowed =
            api.company_id.as_deref() == Some(company.as_str()) || api.companies.contains(&company);
        if !allowed || check_id("companyId", &company).is_err() {
            return Err(
                "the delivery names a companyId that is neither the tenant's `api.company_id` nor \
                 in its `api.companies`: add it there if the app may read that company"
                    .into(),
            );
        }
        credentials(api, Some(&company))
    }

    fn check_tenant(&self, tenant: &Tenant) -> Result<(), String> {
        if tenant.header.is_none() && !tenant.webhook_secrets.is_empty() {
            return Err("`header` must name the custom header set on the subscription".into());
        }
        Ok(())
    }

    fn parse(&self, tenant: &Tenant, body: &[u8]) -> Result<ParsedEvent, IngestError> {
        parse_by_pointers(body, &tenant.pointers, &DEFAULT_POINTERS, subject_kind)
    }

    /// TIMIFY's Sync webhooks (Before Confirmations, Before Reminders) wait for an answer they
    /// read; `{}` means "no change". Which field marks a Sync webhook is unconfirmed, so every
    /// TIMIFY delivery gets that answer: it is a valid acknowledgement for the others too.
    fn acknowledgement(&self, _ack: Ack) -> Ack {
        Ack::EmptyObject
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenants::TenantDirectory;

    fn tenant(json: &str) -> Tenant {
        TenantDirectory::from_json(json)
            .unwrap()
            .iter()
            .next()
            .unwrap()
            .clone()
    }

    #[test]
    fn default_pointers_read_type_id_and_updated_at() {
        let t = tenant(
            r#"{"tenants": [{"id": "app-1", "header": "x-timify-secret", "webhook_secrets": ["s"]}]}"#,
        );
        let event = Timify
            .parse(
                &t,
                br#"{"event": "customers.updated", "data": {"id": "c-7", "updatedAt": "2026-11-25T10:00:00Z"}}"#,
            )
            .unwrap();
        assert_eq!(event.event_type, "customers.updated");
        assert_eq!(event.entity_id, "c-7");
        assert_eq!(
            event.dedup_suffix,
            "customers.updated#c-7#2026-11-25T10:00:00Z"
        );
    }

    #[test]
    fn configured_pointers_win_and_a_missing_updated_at_falls_back_to_the_body_hash() {
        let t = tenant(
            r#"{"tenants": [{"id": "app-1", "allow_unauthenticated": true,
                "pointers": {"event_type": "/webhook/name", "object_id": "/payload/eventId"}}]}"#,
        );
        let body =
            br#"{"webhook": {"name": "event.beforeConfirmation"}, "payload": {"eventId": 99}}"#;
        let event = Timify.parse(&t, body).unwrap();
        assert_eq!(event.event_type, "event.beforeConfirmation");
        assert_eq!(event.entity_id, "99");
        assert!(event
            .dedup_suffix
            .starts_with("event.beforeConfirmation#99#sha256:"));
        assert_eq!(
            event,
            Timify.parse(&t, body).unwrap(),
            "same body, same key"
        );
    }

    #[test]
    fn a_missing_pointer_target_is_named() {
        let t = tenant(r#"{"tenants": [{"id": "app-1", "allow_unauthenticated": true}]}"#);
        let error = Timify
            .parse(&t, br#"{"event": "customers.created", "data": {}}"#)
            .unwrap_err();
        assert!(error.to_string().contains("/data/id or /id"), "{error}");
        let error = Timify.parse(&t, br#"{"data": {"id": "x"}}"#).unwrap_err();
        assert!(error.to_string().contains("/event or /type"), "{error}");
    }

    #[test]
    fn a_flat_envelope_is_read_through_the_second_defaults() {
        let t = tenant(r#"{"tenants": [{"id": "app-1", "allow_unauthenticated": true}]}"#);
        let event = Timify
            .parse(
                &t,
                br#"{"type": "event.created", "id": 123456789012345678901234}"#,
            )
            .unwrap();
        assert_eq!(event.event_type, "event.created");
        assert_eq!(event.entity_id, "123456789012345678901234");
        assert_eq!(event.subject, "booking:123456789012345678901234");
    }

    #[test]
    fn bookings_are_read_by_id_and_deleted_customers_erased() {
        let t = tenant(r#"{"tenants": [{"id": "app-1", "allow_unauthenticated": true}]}"#);
        let record = |event_type: &str| Record {
            event_type: event_type.into(),
            entity_id: "b 1".into(),
            ..Record::default()
        };
        assert_eq!(
            Timify.processing(&record("event.created"), &t),
            Ok(Processing::fetch("/v1/appointments?ids=b%201"))
        );
        assert_eq!(
            Timify.processing(&record("beforeReminders.created"), &t),
            Ok(Processing::fetch("/v1/appointments?ids=b%201"))
        );
        assert_eq!(
            Timify.processing(&record("customers.deleted"), &t),
            Ok(Processing::Erase)
        );
        assert_eq!(
            Timify.processing(&record("customers.updated"), &t),
            Ok(Processing::StoreOnly)
        );
    }

    #[test]
    fn a_tenants_event_names_come_before_the_defaults() {
        let t = tenant(
            r#"{"tenants": [{"id": "app-1", "allow_unauthenticated": true, "events": {
                "customer.deleted": "erase", "customers.deleted": "store",
                "appointment.booked": "fetch_booking", "event.created": "store"}}]}"#,
        );
        let record = |event_type: &str| Record {
            event_type: event_type.into(),
            entity_id: "b1".into(),
            ..Record::default()
        };
        let processing = |event_type: &str| Timify.processing(&record(event_type), &t).unwrap();
        assert_eq!(processing("customer.deleted"), Processing::Erase);
        assert_eq!(processing("customers.deleted"), Processing::StoreOnly);
        assert_eq!(
            processing("appointment.booked"),
            Processing::fetch("/v1/appointments?ids=b1")
        );
        assert_eq!(processing("event.created"), Processing::StoreOnly);
        assert_eq!(
            processing("event.updated"),
            Processing::fetch("/v1/appointments?ids=b1"),
            "the defaults for the rest"
        );
        let unknown =
            TenantDirectory::from_json(r#"{"tenants": [{"id": "a", "events": {"x": "delete"}}]}"#);
        assert!(unknown.is_err(), "an action that is not one");
    }

    #[test]
    fn a_delivery_naming_its_company_is_fetched_for_that_company() {
        let api: ApiAccess = serde_json::from_str(
            r#"{"base_url": "https://api.timify.com", "app_id": "a", "app_secret": "s", "company_id": "c-own", "companies": ["c-9"]}"#,
        )
        .unwrap();
        let company_of = |body: &str| {
            let record = Record {
                body: body.into(),
                ..Record::default()
            };
            let ApiCredentials::Token(exchange) =
                Timify.api_credentials_for(&api, &record).unwrap()
            else {
                panic!("a token exchange");
            };
            exchange.headers[0].1.clone()
        };
        assert_eq!(company_of(r#"{"companyId": "c-9", "event": "x"}"#), "c-9");
        assert_eq!(company_of(r#"{"companyId": "c-own"}"#), "c-own");
        assert_eq!(company_of(r#"{"event": "x"}"#), "c-own");
        let other = Record {
            body: r#"{"companyId": "c-other"}"#.into(),
            ..Record::default()
        };
        let refused = Timify.api_credentials_for(&api, &other).err().unwrap();
        assert!(refused.contains("api.companies"), "{refused}");
        let unauthenticated = Record {
            body: r#"{"companyId": "c-9"}"#.into(),
            unauthenticated: true,
            ..Record::default()
        };
        let ApiCredentials::Token(exchange) =
            Timify.api_credentials_for(&api, &unauthenticated).unwrap()
        else {
            panic!("a token exchange");
        };
        assert_eq!(
            exchange.headers[0].1, "c-own",
            "an unauthenticated delivery chooses nothing"
        );
    }

    #[test]
    fn the_token_exchange_needs_app_credentials_and_a_company() {
        let api: ApiAccess = serde_json::from_str(
            r#"{"base_url": "https://api.timify.com", "app_id": "a", "app_secret": "s", "company_id": "c"}"#,
        )
        .unwrap();
        let ApiCredentials::Token(exchange) = Timify.api_credentials(&api).unwrap() else {
            panic!("a token exchange");
        };
        assert_eq!(exchange.path, "/v1/auth/token");
        assert!(exchange.bearer);
        assert_eq!(exchange.headers, vec![("company-id", "c".to_string())]);
        let no_company: ApiAccess = serde_json::from_str(
            r#"{"base_url": "https://api.timify.com", "app_id": "a", "app_secret": "s"}"#,
        )
        .unwrap();
        let error = Timify.api_credentials(&no_company).err().unwrap();
        assert!(error.contains("company_id"), "{error}");
    }
}
