//! Signs that a provider's contract changed, read from each authentic delivery the processor
//! takes: an event type it does not document (nor the tenant configured), a member of its
//! envelope its documentation does not name, a documented field missing, and which form of a
//! signing key made the signature where that is unconfirmed. Each is kept once per provider,
//! tenant and signal ([`crate::ports::Sightings`]); the first sighting is a metric, an alarm,
//! and a line in `webhooks drift` and on the dev server's Contract page.

use serde_json::Value;

use crate::check::CHECK_FIELD;
use crate::model::Record;
use crate::providers::Provider;
use crate::tenants::Tenant;

/// At most this many new members are read from one delivery (a body of a thousand new members
/// is one change, not a thousand); its type, missing fields and key form are read whatever
/// their number.
const MAX_FIELDS: usize = 16;

/// A member name longer than this is cut (a signal names it, it does not hold it).
const MAX_NAME_CHARS: usize = 64;

/// The signals one stored delivery shows, sorted, each once.
pub fn signals(provider: &dyn Provider, tenant: &Tenant, record: &Record) -> Vec<String> {
    let mut signals = Vec::new();
    let mut fields = Vec::new();
    if !provider.knows_event_type(tenant, &record.event_type) {
        signals.push(format!("type:{}", cut(&record.event_type)));
    }
    if let Some(form) = crate::ingest::signature_key_of(record) {
        signals.push(format!("signature_key:{form}"));
    }
    if let Ok(body) = serde_json::from_str::<Value>(&record.body) {
        let contract = provider.contract();
        for (object, documented) in contract.objects {
            for members in objects_at(&body, object) {
                let new = members
                    .keys()
                    .filter(|name| !documented.contains(&name.as_str()) && *name != CHECK_FIELD)
                    .map(|name| format!("field:{object}/{}", cut(name)));
                fields.extend(new);
            }
        }
        let missing = contract
            .expected
            .iter()
            .filter(|pointer| body.pointer(pointer).is_none_or(Value::is_null))
            .map(|pointer| format!("missing:{pointer}"));
        signals.extend(missing);
    }
    fields.sort();
    fields.dedup();
    fields.truncate(MAX_FIELDS);
    signals.extend(fields);
    signals.sort();
    signals.dedup();
    signals
}

/// The objects a pointer names, `*` standing for every element of a list.
fn objects_at<'v>(body: &'v Value, pointer: &str) -> Vec<&'v serde_json::Map<String, Value>> {
    let mut found = vec![body];
    for step in pointer.split('/').skip(1) {
        found = found
            .into_iter()
            .flat_map(|value| match (step, value) {
                ("*", Value::Array(items)) => items.iter().collect::<Vec<_>>(),
                (name, Value::Object(members)) => members.get(name).into_iter().collect(),
                _ => Vec::new(),
            })
            .collect();
    }
    found.into_iter().filter_map(Value::as_object).collect()
}

/// A name as a signal holds it: cut, its control characters (a sender's escape sequences) as
/// `?`.
fn cut(name: &str) -> String {
    name.chars()
        .take(MAX_NAME_CHARS)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The kind of a signal (`type`, `field`, `missing`, `signature_key`): a metric's dimension.
pub fn kind(signal: &str) -> &str {
    signal.split_once(':').map_or(signal, |(kind, _)| kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::by_name;
    use crate::tenants::TenantDirectory;

    fn tenant() -> Tenant {
        TenantDirectory::from_json(r#"{"tenants": [{"id": "t", "allow_unauthenticated": true}]}"#)
            .unwrap()
            .get("t")
            .unwrap()
            .clone()
    }

    fn record(event_type: &str, body: &str) -> Record {
        Record {
            event_type: event_type.into(),
            body: body.into(),
            ..Record::default()
        }
    }

    #[test]
    fn a_documented_delivery_shows_nothing() {
        let egym = by_name("egym").unwrap();
        let body = r#"{"accountId": "a", "timestamp": 1, "type": "GYM_CHECKIN"}"#;
        assert_eq!(
            signals(egym.as_ref(), &tenant(), &record("GYM_CHECKIN", body)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_new_type_new_members_and_a_missing_field_are_each_a_signal() {
        let magicline = by_name("magicline").unwrap();
        let body = r#"{"entityId": 1, "uuid": "u", "region": "eu", "webhooks_check": "c",
            "payload": [{"timestamp": 1, "type": "CUSTOMER_TELEPORTED", "content": {}, "source": "app"}]}"#;
        assert_eq!(
            signals(
                magicline.as_ref(),
                &tenant(),
                &record("CUSTOMER_TELEPORTED", body)
            ),
            [
                "field:/payload/*/source",
                "field:/region",
                "type:CUSTOMER_TELEPORTED"
            ]
        );
        let waitwhile = by_name("waitwhile").unwrap();
        let body = r#"{"id": "e", "created": null, "type": "visit.created", "data": {"id": "v"}}"#;
        assert_eq!(
            signals(
                waitwhile.as_ref(),
                &tenant(),
                &record("visit.created", body)
            ),
            ["missing:/accountId", "missing:/created"]
        );
    }

    #[test]
    fn a_signature_key_form_and_a_configured_name_are_read_as_such() {
        let flybuy = by_name("flybuy").unwrap();
        let signed = Record {
            facts: Some(r#"{"signature_key": "base64"}"#.into()),
            ..record(
                "order_updated",
                r#"{"data": {"state": "ready", "customer_state": "waiting"}}"#,
            )
        };
        assert_eq!(
            signals(flybuy.as_ref(), &tenant(), &signed),
            ["signature_key:base64"]
        );
        let timify = by_name("timify").unwrap();
        let configured = TenantDirectory::from_json(
            r#"{"tenants": [{"id": "t", "allow_unauthenticated": true, "events": {"customer.deleted": "erase"}}]}"#,
        )
        .unwrap();
        let tenant = configured.get("t").unwrap();
        let body = r#"{"event": "customer.deleted", "data": {"id": "c"}}"#;
        assert_eq!(
            signals(timify.as_ref(), tenant, &record("customer.deleted", body)),
            Vec::<String>::new()
        );
        assert_eq!(
            signals(timify.as_ref(), tenant, &record("customer.merged", body)),
            ["type:customer.merged"]
        );
        assert_eq!(kind("field:/data/x"), "field");
    }

    #[test]
    fn many_new_members_never_hide_a_new_type() {
        let egym = by_name("egym").unwrap();
        let members: Vec<String> = (0..40).map(|n| format!(r#""m{n:02}": 1"#)).collect();
        let body = format!(
            r#"{{"accountId": "a", "timestamp": 1, "type": "GYM_TELEPORT", "e\u001b[31m": 1, {}}}"#,
            members.join(", ")
        );
        let found = signals(egym.as_ref(), &tenant(), &record("GYM_TELEPORT", &body));
        assert!(
            found.contains(&"type:GYM_TELEPORT".to_string()),
            "{found:?}"
        );
        assert_eq!(
            found.iter().filter(|s| s.starts_with("field:")).count(),
            MAX_FIELDS
        );
        assert!(found.iter().all(|s| !s.contains('\u{1b}')), "{found:?}");
    }
}
