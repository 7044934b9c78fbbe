//! Waitwhile: `X-Waitwhile-Signature` = Base64(HMAC-SHA256(secret, registered URL + raw body)).
//! Each tenant (location or account webhook) holds the URL exactly as registered at Waitwhile.
//! Envelope field names follow Waitwhile's published examples
//! (`{"id", "type": "visit.created", "data": {"id", "updated", ...}}`) and are configurable.

use super::{parse_by_pointers, segment, ParsedEvent, PointerDefaults, Processing, Provider};
use crate::ports::QueueMessage;
use crate::response::IngestError;
use crate::tenants::Tenant;
use crate::verify::{Auth, AuthScheme};

pub struct Waitwhile;

pub const DEFAULT_POINTERS: PointerDefaults = PointerDefaults {
    event_type: "/type",
    object_id: "/data/id",
    updated_at: "/data/updated",
};

impl Provider for Waitwhile {
    fn name(&self) -> &'static str {
        "waitwhile"
    }

    fn auth(&self) -> Auth {
        Auth::required(AuthScheme::UrlBodySignature {
            header: "x-waitwhile-signature",
        })
    }

    /// The object named by the event from the Waitwhile API v2. `visit.removed` erases the
    /// visit's data; a removed location no longer exists to be fetched.
    fn processing(&self, message: &QueueMessage) -> Processing {
        let id = segment(&message.entity_id);
        let path = match message.event_type.as_str() {
            "visit.removed" => return Processing::Erase,
            "location.removed" => return Processing::Skip,
            t if t.starts_with("visit.") => format!("/v2/visits/{id}"),
            t if t.starts_with("message.") => format!("/v2/messages/{id}"),
            t if t.starts_with("location-status.") => format!("/v2/locations/{id}/status"),
            t if t.starts_with("location.") => format!("/v2/locations/{id}"),
            _ => return Processing::Skip,
        };
        Processing::Fetch { path }
    }

    fn api_auth(&self, api_key: &str) -> (&'static str, String) {
        ("apikey", api_key.to_string())
    }

    fn check_tenant(&self, tenant: &Tenant) -> Result<(), String> {
        match tenant.url.as_deref() {
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => Ok(()),
            _ => Err("`url` must hold the webhook URL exactly as registered at Waitwhile".into()),
        }
    }

    fn parse(&self, tenant: &Tenant, body: &[u8]) -> Result<ParsedEvent, IngestError> {
        parse_by_pointers(body, &tenant.pointers, &DEFAULT_POINTERS)
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
                br#"{"id": "0T6H", "type": "visit.created", "accountId": "acc",
                    "data": {"id": "Kk1B", "updated": "2022-05-19T14:06:11.638Z", "firstName": "Ana"}}"#,
            )
            .unwrap();
        assert_eq!(event.event_type, "visit.created");
        assert_eq!(event.entity_id, "Kk1B");
        assert_eq!(
            event.dedup_suffix,
            "visit.created#Kk1B#2022-05-19T14:06:11.638Z"
        );
    }
}
