//! FlyBuy: optional `Authorization: Token token="<token>"` (one webhook per project), with an
//! optional `signature="<Base64 HMAC-SHA256>"` part when the project has an HMAC key; order
//! updates in `{"data": {...}}`. No delivery id: an update is identified by order id +
//! updated_at. Details: `GET /api/v1/orders/{id}` with the API token (not the webhook token).

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::{
    api_key_header, check_id, dedup_suffix, parse_json, segment, Contract, ParsedEvent,
    PersonField, Processing, Provider, Text,
};
use crate::check::Sample;
use crate::fetch::ApiCredentials;
use crate::model::{Rate, Record};
use crate::register::Registration;
use crate::response::IngestError;
use crate::tenants::{ApiAccess, KeyEncoding, Tenant};
use crate::verify::{sole, Auth, AuthScheme, SignatureCheck, TenantSignature};
use crate::WebhookRequest;

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
    pub id: Text,
    pub updated_at: String,
    /// What happened (`order_updated` is the one value documented).
    pub event: Option<String>,
    pub state: Option<String>,
    pub customer_state: Option<String>,
    pub arrived_at: Option<String>,
    pub eta_at: Option<String>,
    pub created_at: Option<String>,
    pub partner_identifier: Option<String>,
    pub redemption_code: Option<String>,
    pub area_name: Option<String>,
    pub customer_id: Option<Text>,
    pub site_id: Option<Text>,
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

/// The parts of a FlyBuy `Authorization` header.
#[derive(Debug, PartialEq, Eq)]
pub struct Credential<'a> {
    pub token: &'a str,
    pub signature: Option<&'a str>,
}

/// `Token token="<token>"`, optionally followed (after spaces or a comma) by
/// `signature="<signature>"`: scheme and parameter names case-insensitive, quotes required,
/// each parameter at most once, anything else refused.
pub fn parse_authorization(value: &str) -> Option<Credential<'_>> {
    let (scheme, mut rest) = value.trim().split_once([' ', '\t'])?;
    if !scheme.eq_ignore_ascii_case("token") {
        return None;
    }
    let (mut token, mut signature) = (None, None);
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            break;
        }
        let (name, after) = rest.split_once('=')?;
        let quoted = after.strip_prefix('"')?;
        let end = quoted.find('"')?;
        let value = &quoted[..end];
        rest = &quoted[end + 1..];
        if !(rest.is_empty() || rest.starts_with([' ', '\t', ','])) || value.is_empty() {
            return None;
        }
        let slot = if name.eq_ignore_ascii_case("token") {
            &mut token
        } else if name.eq_ignore_ascii_case("signature") {
            &mut signature
        } else {
            return None;
        };
        if slot.replace(value).is_some() {
            return None;
        }
    }
    Some(Credential {
        token: token?,
        signature,
    })
}

/// The token of a FlyBuy `Authorization` header (see [`parse_authorization`]).
pub fn token_from_authorization(value: &str) -> Option<&str> {
    parse_authorization(value).map(|credential| credential.token)
}

/// The forms a tenant's HMAC key is tried in, as its encoding says: its text, its
/// Base64-decoded bytes, or — not pinned — both, the text first.
fn key_forms(tenant: &Tenant) -> Vec<(&'static str, Vec<u8>)> {
    let Some(key) = tenant.signing_key.as_ref() else {
        return Vec::new();
    };
    let raw = ("raw", key.expose().as_bytes().to_vec());
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(key.expose().trim())
        .ok()
        .map(|bytes| ("base64", bytes));
    match tenant.signing_key_encoding {
        KeyEncoding::Raw => vec![raw],
        KeyEncoding::Base64 => decoded.into_iter().collect(),
        KeyEncoding::Either => std::iter::once(raw).chain(decoded).collect(),
    }
}

/// HMAC-SHA256 over the `Date` header's value, a newline and the raw body.
fn date_body_mac(key: &[u8], date: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(date.as_bytes());
    mac.update(b"\n");
    mac.update(body);
    mac
}

/// A tenant with an HMAC key accepts only requests whose signature it verifies, with any form
/// of the key its encoding allows; every form is checked (each in constant time), so the time
/// taken does not say which one matched.
fn verify_signature(tenant: &Tenant, request: &WebhookRequest) -> SignatureCheck {
    if tenant.signing_key.is_none() {
        return SignatureCheck::NotAsked;
    }
    let headers = request.headers();
    let text = |name: &str| sole(headers, name).flatten().and_then(|v| v.to_str().ok());
    let (Some(authorization), Some(date)) = (text("authorization"), text("date")) else {
        return SignatureCheck::Refused;
    };
    let Some(signature) = parse_authorization(authorization).and_then(|c| c.signature) else {
        return SignatureCheck::Refused;
    };
    let Ok(signature) = base64::engine::general_purpose::STANDARD.decode(signature) else {
        return SignatureCheck::Refused;
    };
    let matched: Vec<&'static str> = key_forms(tenant)
        .into_iter()
        .filter(|(_, key)| {
            date_body_mac(key, date, request.body())
                .verify_slice(&signature)
                .is_ok()
        })
        .map(|(form, _)| form)
        .collect();
    let unpinned = tenant.signing_key_encoding == KeyEncoding::Either;
    match matched.first() {
        Some(form) => SignatureCheck::Matched(unpinned.then_some(*form)),
        None => SignatureCheck::Refused,
    }
}

/// The sender's side: signs with the time of sending as `Date`, as FlyBuy does (a signed
/// time is checked for age: [`signed_date`]).
fn sign(tenant: &Tenant, mut headers: Vec<(String, String)>, body: &[u8]) -> Vec<(String, String)> {
    let Some((_, key)) = key_forms(tenant).into_iter().next() else {
        return headers;
    };
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let signature = base64::engine::general_purpose::STANDARD
        .encode(date_body_mac(&key, &date, body).finalize().into_bytes());
    for (name, value) in &mut headers {
        if name.eq_ignore_ascii_case("authorization") {
            value.push_str(&format!(" signature=\"{signature}\""));
        }
    }
    headers.push(("date".into(), date));
    headers
}

/// The `Date` header of a tenant with an HMAC key, whose signature covers it; a token alone
/// signs no time.
fn signed_date(tenant: &Tenant, request: &WebhookRequest) -> Option<i64> {
    tenant.signing_key.as_ref()?;
    let date = sole(request.headers(), "date")??.to_str().ok()?;
    let at = httpdate::parse_http_date(date).ok()?;
    let since_epoch = at.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(since_epoch.as_millis()).ok()
}

#[rustfmt::skip]
/// Persons FlyBuy's bodies and answers name: an order's customer.
const PERSON_FIELDS: &[PersonField] = &[PersonField { names: &["customer_id"], kind: "customer" }];

impl Provider for Flybuy {
    fn name(&self) -> &'static str {
        "flybuy"
    }

    fn auth(&self) -> Auth {
        Auth::optional(AuthScheme::Authorization {
            extract: token_from_authorization,
            present: |token| format!("Token token=\"{token}\""),
        })
        .with_tenant_signature(TenantSignature {
            verify: verify_signature,
            sign,
        })
        .with_signed_time(signed_date)
        .secret_chosen_by_receiver()
    }

    /// Unconfirmed (no published limit found): a conservative 5 a second; `api.rate` per tenant.
    fn api_rate(&self) -> Rate {
        Rate::per_second(5)
    }

    fn person_fields(&self) -> &'static [PersonField] {
        PERSON_FIELDS
    }

    /// In the project's webhook settings of the FlyBuy portal (FACTS.md §4).
    fn registration(&self) -> Registration {
        Registration::Manual(
            "1. In the FlyBuy portal open the webhook settings of the project of tenant {tenant}: URL {url}.
2. Authorization token: the tenant's newest webhook secret (shown when it was added or rotated; \
webhooks … tenants rotate flybuy {tenant} makes and shows a new one). HMAC key: empty, or the \
tenant's signing_key.
3. Press Send: the sample delivery shows in webhooks … events list --provider flybuy --tenant {tenant}",
        )
    }

    /// A made-up order updated.
    fn sample_delivery(&self, _tenant: &Tenant, sample: &Sample) -> serde_json::Value {
        serde_json::json!({ "data": {
            "type": "order",
            "id": sample.id,
            "event": "order_updated",
            "state": "created",
            "customer_state": "created",
            "updated_at": sample.now,
        } })
    }

    /// FACTS.md §4: `{"data": <the order>}` with the order's documented fields; the one
    /// `event` value documented (an order without one is typed by its object type).
    fn contract(&self) -> Contract {
        Contract {
            event_types: &["order_updated", "order"],
            objects: &[
                ("", &["data"]),
                (
                    "/data",
                    &[
                        "type",
                        "id",
                        "order_id",
                        "state",
                        "order_state",
                        "customer_state",
                        "customer_id",
                        "customer_name",
                        "site_id",
                        "site_partner_identifier",
                        "partner_identifier",
                        "partner_identifier_for_crew",
                        "partner_identifier_for_customer",
                        "eta_at",
                        "arrived_at",
                        "created_at",
                        "updated_at",
                        "pickup_type",
                        "pickup_window",
                        "customer_car_type",
                        "customer_car_color",
                        "customer_license_plate",
                        "area_name",
                        "possible_areas",
                        "tag_ids",
                        "spot_identifier",
                        "redemption_code",
                        "event",
                        "state_changed",
                        "customer_state_changed",
                    ],
                ),
            ],
            expected: &["/data/state", "/data/customer_state"],
        }
    }

    fn own_subject_kinds(&self) -> Vec<&'static str> {
        vec!["order"]
    }

    /// The latest state of the order.
    fn processing(&self, record: &Record, _tenant: &Tenant) -> Result<Processing, String> {
        Ok(Processing::fetch(format!(
            "/api/v1/orders/{}",
            segment(&record.entity_id)?
        )))
    }

    fn api_credentials(&self, api: &ApiAccess) -> Result<ApiCredentials, String> {
        api_key_header(api, "authorization", |token| {
            format!("Token token=\"{token}\"")
        })
    }

    fn check_tenant(&self, tenant: &Tenant) -> Result<(), String> {
        if tenant.signing_key.is_some() && key_forms(tenant).is_empty() {
            return Err("`signing_key` is not valid Base64 (signing_key_encoding = base64)".into());
        }
        Ok(())
    }

    fn parse(&self, _tenant: &Tenant, body: &[u8]) -> Result<ParsedEvent, IngestError> {
        let Webhook { data } = parse_json(body)?;
        let id = data.id.0;
        if id.is_empty() || data.updated_at.is_empty() || data.object_type.is_empty() {
            return Err(IngestError::MalformedBody(
                "data.type, data.id and data.updated_at must not be empty".into(),
            ));
        }
        check_id("data.id", &id)?;
        let mut facts = serde_json::Map::new();
        for (name, value) in [
            ("event", data.event.clone().map(serde_json::Value::from)),
            (
                "state_changed",
                data.state_changed.map(serde_json::Value::from),
            ),
            (
                "customer_state_changed",
                data.customer_state_changed.map(serde_json::Value::from),
            ),
            ("state", data.state.clone().map(serde_json::Value::from)),
            (
                "customer_state",
                data.customer_state.clone().map(serde_json::Value::from),
            ),
        ] {
            if let Some(value) = value {
                facts.insert(name.to_string(), value);
            }
        }
        Ok(ParsedEvent {
            dedup_suffix: dedup_suffix(&[&data.object_type, &id, &data.updated_at]),
            event_type: data
                .event
                .filter(|event| !event.is_empty())
                .unwrap_or(data.object_type),
            subject: format!("order:{id}"),
            entity_id: id,
            facts: (!facts.is_empty()).then_some(facts),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
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

    /// A delivery signed as FlyBuy would with `key`'s bytes.
    fn signed_with(key: &[u8], body: &str) -> WebhookRequest {
        let date = "Sat, 05 Dec 2026 03:00:00 GMT";
        let tag = date_body_mac(key, date, body.as_bytes())
            .finalize()
            .into_bytes();
        let signature = base64::engine::general_purpose::STANDARD.encode(tag);
        http::Request::post("/webhooks/flybuy")
            .header(
                "authorization",
                format!("Token token=\"t\" signature=\"{signature}\""),
            )
            .header("date", date)
            .body(bytes::Bytes::from(body.to_string()))
            .unwrap()
    }

    fn keyed(encoding: &str) -> Tenant {
        // "a2V5LWJ5dGVz" is Base64 for "key-bytes".
        let encoding = match encoding {
            "" => String::new(),
            pinned => format!(r#", "signing_key_encoding": "{pinned}""#),
        };
        let json = format!(
            r#"{{"tenants": [{{"id": "p", "webhook_secrets": ["t"], "signing_key": "a2V5LWJ5dGVz"{encoding}}}]}}"#
        );
        TenantDirectory::from_json(&json)
            .unwrap()
            .get("p")
            .unwrap()
            .clone()
    }

    #[test]
    fn an_unpinned_key_accepts_either_form_and_says_which_made_the_signature() {
        let body = r#"{"data": {}}"#;
        let by_text = signed_with(b"a2V5LWJ5dGVz", body);
        let by_bytes = signed_with(b"key-bytes", body);
        let by_other = signed_with(b"another-key", body);
        let unpinned = keyed("");
        assert_eq!(unpinned.signing_key_encoding, KeyEncoding::Either);
        assert_eq!(
            verify_signature(&unpinned, &by_text),
            SignatureCheck::Matched(Some("raw"))
        );
        assert_eq!(
            verify_signature(&unpinned, &by_bytes),
            SignatureCheck::Matched(Some("base64"))
        );
        assert_eq!(
            verify_signature(&unpinned, &by_other),
            SignatureCheck::Refused
        );
        let raw = keyed("raw");
        assert_eq!(
            verify_signature(&raw, &by_text),
            SignatureCheck::Matched(None),
            "pinned: nothing to tell"
        );
        assert_eq!(verify_signature(&raw, &by_bytes), SignatureCheck::Refused);
        let base64 = keyed("base64");
        assert_eq!(verify_signature(&base64, &by_text), SignatureCheck::Refused);
        assert_eq!(
            verify_signature(&base64, &by_bytes),
            SignatureCheck::Matched(None)
        );
        assert_eq!(
            verify_signature(&tenant(), &by_other),
            SignatureCheck::NotAsked
        );
    }

    #[test]
    fn keys_on_type_id_and_updated_at_and_keeps_unknown_fields() {
        let body = br#"{"data": {"type": "order", "id": 187, "state": "completed", "customer_state": "nearby",
            "updated_at": "2019-02-26T17:55:20.442Z", "arrived_at": null, "pickup_window": null,
            "brand_new_field": [1, 2]}}"#;
        let event = Flybuy.parse(&tenant(), body).unwrap();
        assert_eq!(event.dedup_suffix, "order#187#2019-02-26T17:55:20.442Z");
        assert_eq!(event.entity_id, "187");
        assert_eq!(event.event_type, "order", "no data.event: the object type");
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
                br#"{"data": {"type": "order", "id": 1, "updated_at": "x", "site_id": [40]}}"#,
                "data.site_id",
            ),
        ] {
            let error = Flybuy.parse(&tenant(), body).unwrap_err().to_string();
            assert!(error.contains(field), "{error} should name {field}");
        }
    }

    #[test]
    fn the_optional_signature_part_is_parsed_and_repeats_refused() {
        assert_eq!(
            parse_authorization(r#"Token token="T1" signature="c2ln""#),
            Some(Credential {
                token: "T1",
                signature: Some("c2ln")
            })
        );
        assert_eq!(
            parse_authorization(r#"Token token="T1", Signature="c2ln""#)
                .unwrap()
                .signature,
            Some("c2ln")
        );
        for refused in [
            r#"Token token="T1" token="T2""#,
            r#"Token signature="c2ln""#,
            r#"Token token="T1" signature=c2ln"#,
            r#"Token token="T1" other="x""#,
            r#"Token token="T1"signature="c2ln""#,
        ] {
            assert_eq!(parse_authorization(refused), None, "{refused}");
        }
    }

    /// Computed independently with Python:
    /// `base64.b64encode(hmac.new(key, (date + "\n").encode() + body, hashlib.sha256).digest())`.
    #[test]
    fn a_tenant_with_an_hmac_key_requires_a_valid_signature() {
        let tenants = TenantDirectory::from_json(
            r#"{"tenants": [{"id": "p", "webhook_secrets": ["TOK"], "signing_key": "hmac-demo-key"}]}"#,
        )
        .unwrap();
        let date = "Wed, 25 Nov 2026 19:00:00 GMT";
        let body =
            r#"{"data": {"type": "order", "id": 1, "updated_at": "t", "event": "order_updated"}}"#;
        let expected = "dr8W8uecwtVawo2OFdt4o+mPcLUknulhlP42B51sAVI=";
        let request = |authorization: &str, date: Option<&str>| {
            let mut builder = http::Request::builder()
                .method("POST")
                .header("authorization", authorization);
            if let Some(date) = date {
                builder = builder.header("date", date);
            }
            builder
                .body(bytes::Bytes::copy_from_slice(body.as_bytes()))
                .unwrap()
        };
        let auth = Flybuy.auth();
        let found = |r: &WebhookRequest| crate::verify::authenticate(&auth, r, &tenants).is_some();
        let signed = format!(r#"Token token="TOK" signature="{expected}""#);
        assert!(found(&request(&signed, Some(date))));
        assert!(
            !found(&request(r#"Token token="TOK""#, Some(date))),
            "unsigned"
        );
        assert!(!found(&request(&signed, None)), "no Date");
        assert!(!found(&request(
            &signed,
            Some("Thu, 26 Nov 2026 19:00:00 GMT")
        )));
        let tenant = tenants.get("p").unwrap();
        let headers = auth.credential_headers(tenant, "TOK", "", body.as_bytes());
        let header = |name: &str| headers.iter().find(|(n, _)| n == name).unwrap().1.as_str();
        let sent = request(header("authorization"), Some(header("date")));
        assert!(found(&sent), "a sender's headers are accepted");
        let signed_at = signed_date(tenant, &sent).unwrap();
        let now = crate::clock::SystemClock.now_ms();
        assert!((now - 60_000..=now).contains(&signed_at), "signed now");
    }

    #[test]
    fn only_a_date_an_hmac_key_signs_is_a_signed_time() {
        let tenants = TenantDirectory::from_json(
            r#"{"tenants": [{"id": "signed", "webhook_secrets": ["A"], "signing_key": "k"},
                            {"id": "token-only", "webhook_secrets": ["B"]}]}"#,
        )
        .unwrap();
        let request = |date: &str| {
            http::Request::builder()
                .header("date", date)
                .body(bytes::Bytes::new())
                .unwrap()
        };
        let signed = tenants.get("signed").unwrap();
        let date = request("Wed, 25 Nov 2026 19:00:00 GMT");
        assert_eq!(signed_date(signed, &date), Some(1_795_633_200_000));
        assert_eq!(signed_date(tenants.get("token-only").unwrap(), &date), None);
        assert_eq!(signed_date(signed, &request("yesterday")), None);
    }

    #[test]
    fn the_event_field_is_the_type_and_the_change_flags_are_kept() {
        let body = br#"{"data": {"type": "order", "id": 18446744073709551617, "updated_at": "t",
            "event": "order_updated", "state_changed": false, "customer_state_changed": true}}"#;
        let event = Flybuy.parse(&tenant(), body).unwrap();
        assert_eq!(event.event_type, "order_updated");
        assert_eq!(event.entity_id, "18446744073709551617");
        let facts = event.facts.unwrap();
        assert_eq!(facts["customer_state_changed"], true);
        assert_eq!(facts["event"], "order_updated");
    }
}
