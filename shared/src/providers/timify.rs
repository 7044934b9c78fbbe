//! TIMIFY: an optional custom header whose name and secret each subscription chooses.
//! The envelope is not documented publicly, so the fields naming the event type, object id and
//! updated-at are JSON pointers configurable per tenant; the defaults below are our assumption.

use super::{parse_by_pointers, segment, ParsedEvent, PointerDefaults, Processing, Provider};
use crate::ports::QueueMessage;
use crate::response::{Ack, IngestError};
use crate::tenants::Tenant;
use crate::verify::{Auth, AuthScheme};

pub struct Timify;

/// Unconfirmed defaults: `{"event": "customers.created", "data": {"id": "...", "updatedAt": "..."}}`.
pub const DEFAULT_POINTERS: PointerDefaults = PointerDefaults {
    event_type: "/event",
    object_id: "/data/id",
    updated_at: "/data/updatedAt",
};

impl Provider for Timify {
    fn name(&self) -> &'static str {
        "timify"
    }

    fn auth(&self) -> Auth {
        Auth::optional(AuthScheme::TenantChosenHeader)
    }

    /// The object named by the event, by webhook family (endpoints unconfirmed). A deleted
    /// customer is erased; other deleted objects no longer exist to be fetched.
    fn processing(&self, message: &QueueMessage) -> Processing {
        let (family, action) = message
            .event_type
            .split_once('.')
            .unwrap_or((message.event_type.as_str(), ""));
        if action.eq_ignore_ascii_case("deleted") {
            return if family.eq_ignore_ascii_case("customers") {
                Processing::Erase
            } else {
                Processing::Skip
            };
        }
        let collection = match family {
            "customers" => "customers",
            "event" | "events" | "beforeConfirmations" | "beforeReminders" => "events",
            "services" => "services",
            "resource" => "resources",
            "company" => "companies",
            "manager" => "managers",
            "enterprise" => "enterprises",
            "customerFields" => "customer-fields",
            "shift" => "shifts",
            "notification" => "notifications",
            "serviceGroups" => "service-groups",
            _ => return Processing::Skip,
        };
        Processing::Fetch {
            path: format!("/v1/{collection}/{}", segment(&message.entity_id)),
        }
    }

    fn api_auth(&self, api_key: &str) -> (&'static str, String) {
        ("authorization", api_key.to_string())
    }

    fn check_tenant(&self, tenant: &Tenant) -> Result<(), String> {
        if tenant.header.is_none() && !tenant.webhook_secrets.is_empty() {
            return Err("`header` must name the custom header set on the subscription".into());
        }
        Ok(())
    }

    fn parse(&self, tenant: &Tenant, body: &[u8]) -> Result<ParsedEvent, IngestError> {
        parse_by_pointers(body, &tenant.pointers, &DEFAULT_POINTERS)
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
        assert!(error.to_string().contains("/data/id"), "{error}");
        let error = Timify.parse(&t, br#"{"data": {"id": "x"}}"#).unwrap_err();
        assert!(error.to_string().contains("/event"), "{error}");
    }
}
