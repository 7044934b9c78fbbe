//! Waitwhile: `X-Waitwhile-Signature` = Base64(HMAC-SHA256(secret, registered URL + raw body)).
//! Each tenant (location or account webhook) holds the URL exactly as registered at Waitwhile.
//! The envelope is `{"id", "created", "accountId", "type", "data": {...}}`; the event `id` is
//! the dedup key (else type + object id + updated time). Field names are configurable per
//! tenant, and so are the detail paths, which only third-party code confirms.

use super::{
    api_key_header, detail_path, parse_by_pointers, sample_by_pointers, Contract, Document,
    ParsedEvent, PersonField, PointerDefaults, Processing, Provider,
};
use crate::check::Sample;
use crate::fetch::ApiCredentials;
use crate::model::{Rate, Record};
use crate::register::Registration;
use crate::response::IngestError;
use crate::tenants::{ApiAccess, Tenant};
use crate::verify::{rfc3339_ms, Auth, AuthScheme};
use crate::WebhookRequest;

pub struct Waitwhile;

pub const DEFAULT_POINTERS: PointerDefaults = PointerDefaults {
    delivery_id: &["/id"],
    event_type: &["/type"],
    object_id: &["/data/id"],
    updated_at: &["/data/updated"],
};

/// `visit` of `visit.created`; `location-status` of `location-status.updated`.
fn family(event_type: &str) -> &str {
    event_type.split('.').next().unwrap_or(event_type)
}

/// What `data.id` is: a location-status event's object is its location.
fn subject_kind(event_type: &str) -> String {
    match family(event_type) {
        "location-status" => "location".to_string(),
        other => other.to_string(),
    }
}

/// The envelope's `created` (RFC 3339), which the signature covers with the rest of the body.
fn created(_tenant: &Tenant, request: &WebhookRequest) -> Option<i64> {
    let envelope = Document::parse(request.body()).ok()?;
    rfc3339_ms(&envelope.text_at("/created")?)
}

#[rustfmt::skip]
/// Persons Waitwhile's bodies name: the visit a message was sent about.
const PERSON_FIELDS: &[PersonField] = &[PersonField { names: &["visitId"], kind: "visit" }];

impl Provider for Waitwhile {
    fn name(&self) -> &'static str {
        "waitwhile"
    }

    fn auth(&self) -> Auth {
        Auth::required(AuthScheme::UrlBodySignature {
            header: "x-waitwhile-signature",
            account: "/accountId",
        })
        .with_signed_time(created)
    }

    /// 5 requests a second per user (FACTS.md, help.waitwhile.com … waitwhile-rate-limits).
    fn api_rate(&self) -> Rate {
        Rate::per_second(5)
    }

    fn person_fields(&self) -> &'static [PersonField] {
        PERSON_FIELDS
    }

    /// In the location's settings (FACTS.md §5); account-wide webhooks only through Waitwhile's
    /// API, whose paths for it are not confirmed here.
    fn registration(&self) -> Registration {
        Registration::Manual(
            "1. In Waitwhile, Settings, Integrations, API & Webhooks: add a webhook to {url} exactly \
(the signature covers the URL), with the events and locations you need.
2. Put the secret Waitwhile shows beside the tenant's: webhooks … tenants rotate waitwhile {tenant} \
--secret <secret>, and the URL: webhooks … tenants set waitwhile {tenant} url={url}
3. Account-wide webhooks exist only through Waitwhile's API (its paths are not confirmed here): \
register one there with the same URL and set the tenant's account_id.",
        )
    }

    /// A made-up visit created now (the signature covers `created`), in the tenant's account.
    fn sample_delivery(&self, tenant: &Tenant, sample: &Sample) -> serde_json::Value {
        let mut body =
            sample_by_pointers(&tenant.pointers, &DEFAULT_POINTERS, "visit.created", sample);
        body["created"] = sample.now.clone().into();
        if let Some(account) = &tenant.account_id {
            body["accountId"] = account.clone().into();
        }
        body
    }

    /// FACTS.md §5: the envelope and its six event types; `data` is the API's whole object,
    /// whose members are not listed here.
    fn contract(&self) -> Contract {
        Contract {
            event_types: &[
                "visit.created",
                "visit.updated",
                "visit.removed",
                "location-status.updated",
                "message.created",
                "message.updated",
            ],
            objects: &[("", &["id", "created", "accountId", "type", "data"])],
            expected: &["/id", "/created", "/accountId"],
        }
    }

    fn own_subject_kinds(&self) -> Vec<&'static str> {
        vec!["visit", "location", "message", "customer"]
    }

    /// The object named by the event from the Waitwhile API v2. `visit.removed` erases the
    /// visit's data; a removed location no longer exists to be fetched.
    fn processing(&self, record: &Record, tenant: &Tenant) -> Result<Processing, String> {
        let default = match record.event_type.as_str() {
            "visit.removed" => return Ok(Processing::Erase),
            "location.removed" => return Ok(Processing::StoreOnly),
            t => match family(t) {
                "visit" => "/v2/visits/{id}",
                "message" => "/v2/messages/{id}",
                "location-status" => "/v2/location-status/{id}",
                "location" => "/v2/locations/{id}",
                _ => return Ok(Processing::StoreOnly),
            },
        };
        let family = family(&record.event_type);
        Ok(Processing::fetch(detail_path(
            tenant,
            family,
            default,
            &record.entity_id,
        )?))
    }

    fn api_credentials(&self, api: &ApiAccess) -> Result<ApiCredentials, String> {
        api_key_header(api, "apikey", str::to_string)
    }

    fn check_tenant(&self, tenant: &Tenant) -> Result<(), String> {
        match tenant.url.as_deref() {
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => Ok(()),
            _ => Err("`url` must hold the webhook URL exactly as registered at Waitwhile".into()),
        }
    }

    fn parse(&self, tenant: &Tenant, body: &[u8]) -> Result<ParsedEvent, IngestError> {
        parse_by_pointers(body, &tenant.pointers, &DEFAULT_POINTERS, subject_kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenants::TenantDirectory;

    #[test]
    fn reads_the_published_envelope() {
        let tenants = TenantDirectory::from_json(
            r#"{"tenants": [{"id": "loc-1", "url": "https://x/webhooks/waitwhile", "webhook_secrets": ["s"]}]}"#,
        )
        .unwrap();
        let event = Waitwhile
            .parse(
                tenants.get("loc-1").unwrap(),
                br#"{"id": "0T6H", "created": "2022-05-19T14:06:11.640Z", "type": "visit.created",
                    "accountId": "acc",
                    "data": {"id": "Kk1B", "updated": "2022-05-19T14:06:11.638Z", "firstName": "Ana"}}"#,
            )
            .unwrap();
        assert_eq!(event.event_type, "visit.created");
        assert_eq!(event.entity_id, "Kk1B");
        assert_eq!(event.subject, "visit:Kk1B");
        assert_eq!(event.dedup_suffix, "0T6H", "the event id alone");
        let without_id = Waitwhile
            .parse(
                tenants.get("loc-1").unwrap(),
                br#"{"type": "visit.created", "data": {"id": 18446744073709551617, "updated": "u"}}"#,
            )
            .unwrap();
        assert_eq!(
            without_id.dedup_suffix,
            "visit.created#18446744073709551617#u"
        );
    }

    #[test]
    fn detail_paths_default_to_api_v2_and_follow_the_tenants_overrides() {
        let tenants = TenantDirectory::from_json(
            r#"{"tenants": [
                {"id": "a", "url": "https://x/w", "webhook_secrets": ["s1"]},
                {"id": "b", "url": "https://x/w", "webhook_secrets": ["s2"],
                 "api": {"base_url": "https://api.waitwhile.com", "api_key": "k",
                         "paths": {"location-status": "/v2/locations/{id}/status"}}}
            ]}"#,
        )
        .unwrap();
        let record = |event_type: &str| Record {
            event_type: event_type.into(),
            entity_id: "L 1".into(),
            ..Record::default()
        };
        let a = tenants.get("a").unwrap();
        let b = tenants.get("b").unwrap();
        let fetch = Processing::fetch;
        assert_eq!(
            Waitwhile.processing(&record("location-status.updated"), a),
            Ok(fetch("/v2/location-status/L%201"))
        );
        assert_eq!(
            Waitwhile.processing(&record("location-status.updated"), b),
            Ok(fetch("/v2/locations/L%201/status"))
        );
        assert_eq!(
            Waitwhile.processing(&record("message.updated"), a),
            Ok(fetch("/v2/messages/L%201"))
        );
        assert_eq!(
            Waitwhile.processing(&record("visit.removed"), a),
            Ok(Processing::Erase)
        );
        assert_eq!(
            Waitwhile.processing(&record("location.removed"), a),
            Ok(Processing::StoreOnly)
        );
    }

    /// Two deliveries whose ids differ only beyond 2^64 once shared a key through `f64`.
    #[test]
    fn ids_beyond_two_to_the_64_keep_their_digits() {
        let tenants = TenantDirectory::from_json(
            r#"{"tenants": [{"id": "a", "url": "https://x/w", "webhook_secrets": ["s"]}]}"#,
        )
        .unwrap();
        let key = |id: &str| {
            let body =
                format!(r#"{{"type": "visit.updated", "data": {{"id": {id}, "updated": "u"}}}}"#);
            Waitwhile
                .parse(tenants.get("a").unwrap(), body.as_bytes())
                .unwrap()
                .dedup_suffix
        };
        assert_eq!(
            key("18446744073709551617"),
            "visit.updated#18446744073709551617#u"
        );
        assert_ne!(key("18446744073709551617"), key("18446744073709551618"));
    }
}
