//! EGYM: `x-api-key` header (one or more webhooks per gym). No delivery id, so a delivery is
//! identified by account + type + timestamp. Details from the MMS API v2:
//! `GET /api/v2/accounts/{accountId}` on `https://mms.api.egym.com` with the gym's API key.

use serde::Deserialize;

use super::{
    api_key_header, check_id, dedup_suffix, parse_json, segment, Contract, Number, ParsedEvent,
    PersonField, Processing, Provider,
};
use crate::check::Sample;
use crate::fetch::ApiCredentials;
use crate::model::{Rate, Record};
use crate::register::{Registration, RegistrationApi};
use crate::response::IngestError;
use crate::tenants::{ApiAccess, Tenant};
use crate::verify::{Auth, AuthScheme};

pub struct Egym;

/// EGYM's endpoint check: nothing says it names an account.
const TEST: &str = "TEST";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// Absent or null only on `TEST`.
    #[serde(default)]
    pub account_id: Option<String>,
    /// UTC milliseconds.
    pub timestamp: Number,
    #[serde(rename = "type")]
    pub event_type: String,
}

#[rustfmt::skip]
/// Persons EGYM's bodies and answers name: a member's account.
const PERSON_FIELDS: &[PersonField] = &[PersonField { names: &["accountId"], kind: "account" }];

impl Provider for Egym {
    fn name(&self) -> &'static str {
        "egym"
    }

    fn auth(&self) -> Auth {
        Auth::required(AuthScheme::HeaderSecret {
            header: "x-api-key",
        })
        .secret_chosen_by_receiver()
    }

    /// 60 requests in 10 s per API key (FACTS.md §2, developer.egym.com/mms-api-v2/rate-limits).
    fn api_rate(&self) -> Rate {
        Rate {
            calls: 60,
            per_ms: 10_000,
        }
    }

    fn person_fields(&self) -> &'static [PersonField] {
        PERSON_FIELDS
    }

    /// EGYM's management API (FACTS.md §2: `/api/v2/webhooks`, `{url, secret}`, 409 for a URL
    /// registered already, `…/trigger` sends a `TEST`).
    fn registration(&self) -> Registration {
        Registration::Api(RegistrationApi {
            create: "/api/v2/webhooks",
            list: "/api/v2/webhooks",
            update: "/api/v2/webhooks/{id}",
            trigger: "/api/v2/webhooks/{id}/trigger",
            test_event_type: "TEST",
        })
    }

    /// A check-in of a made-up account.
    fn sample_delivery(&self, _tenant: &Tenant, sample: &Sample) -> serde_json::Value {
        serde_json::json!({ "accountId": sample.id, "timestamp": sample.now_ms, "type": "GYM_CHECKIN" })
    }

    /// FACTS.md §2: a flat object of three fields.
    fn contract(&self) -> Contract {
        Contract {
            event_types: &[
                "GYM_CHECKIN",
                "GYM_CHECKOUT",
                "EQUIPMENT_CHECKIN",
                "MEMBERSHIP_DELETE",
                "GENIUS_ONBOARDING_COMPLETED",
                TEST,
            ],
            objects: &[("", &["accountId", "timestamp", "type"])],
            expected: &[],
        }
    }

    fn own_subject_kinds(&self) -> Vec<&'static str> {
        vec!["account"]
    }

    /// `TEST` is stored without a call; `MEMBERSHIP_DELETE` erases what we hold about the
    /// account; every other type reads the member's account.
    fn processing(&self, record: &Record, _tenant: &Tenant) -> Result<Processing, String> {
        Ok(match record.event_type.as_str() {
            TEST => Processing::StoreOnly,
            "MEMBERSHIP_DELETE" => Processing::Erase,
            _ => Processing::fetch(format!("/api/v2/accounts/{}", segment(&record.entity_id)?)),
        })
    }

    fn api_credentials(&self, api: &ApiAccess) -> Result<ApiCredentials, String> {
        api_key_header(api, "x-api-key", str::to_string)
    }

    fn parse(&self, _tenant: &Tenant, body: &[u8]) -> Result<ParsedEvent, IngestError> {
        let notification: Notification = parse_json(body)?;
        let account = notification.account_id.filter(|id| !id.trim().is_empty());
        let account = match (account, notification.event_type.as_str()) {
            (Some(account), _) => {
                check_id("accountId", &account)?;
                account
            }
            (None, TEST) => String::new(),
            (None, _) => {
                return Err(IngestError::MalformedBody(
                    "accountId: missing or empty".into(),
                ))
            }
        };
        Ok(ParsedEvent {
            dedup_suffix: dedup_suffix(&[
                &account,
                &notification.event_type,
                notification.timestamp.as_str(),
            ]),
            subject: format!("account:{account}"),
            event_type: notification.event_type,
            entity_id: account,
            facts: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenants::TenantDirectory;

    fn tenant() -> Tenant {
        TenantDirectory::from_json(r#"{"tenants": [{"id": "gym-1"}]}"#)
            .unwrap()
            .get("gym-1")
            .unwrap()
            .clone()
    }

    #[test]
    fn keys_on_account_type_and_timestamp() {
        let event = Egym
            .parse(
                &tenant(),
                br#"{"accountId": "3f1c", "timestamp": 1667921312188, "type": "GYM_CHECKIN"}"#,
            )
            .unwrap();
        assert_eq!(event.dedup_suffix, "3f1c#GYM_CHECKIN#1667921312188");
        assert_eq!(event.entity_id, "3f1c");
        assert_eq!(event.event_type, "GYM_CHECKIN");
    }

    #[test]
    fn names_missing_fields() {
        for (body, field) in [
            (
                &br#"{"timestamp": 1, "type": "GYM_CHECKIN"}"#[..],
                "accountId",
            ),
            (br#"{"accountId": "a", "type": "TEST"}"#, "timestamp"),
            (br#"{"accountId": "a", "timestamp": 1}"#, "type"),
            (
                br#"{"accountId": "", "timestamp": 1, "type": "GYM_CHECKOUT"}"#,
                "accountId",
            ),
        ] {
            let error = Egym.parse(&tenant(), body).unwrap_err().to_string();
            assert!(error.contains(field), "{error} should name {field}");
        }
    }

    #[test]
    fn a_test_event_needs_no_account_and_is_never_fetched() {
        for body in [
            &br#"{"timestamp": 1667921312188, "type": "TEST"}"#[..],
            br#"{"accountId": null, "timestamp": 1667921312188, "type": "TEST"}"#,
        ] {
            let event = Egym.parse(&tenant(), body).unwrap();
            assert_eq!(event.event_type, "TEST");
            assert_eq!(event.dedup_suffix, "#TEST#1667921312188");
        }
        let record = Record {
            event_type: "TEST".into(),
            ..Record::default()
        };
        assert_eq!(
            Egym.processing(&record, &tenant()),
            Ok(Processing::StoreOnly)
        );
    }

    #[test]
    fn accounts_are_read_from_the_mms_api_v2() {
        let record = Record {
            event_type: "GYM_CHECKIN".into(),
            entity_id: "3f1c/2a".into(),
            ..Record::default()
        };
        assert_eq!(
            Egym.processing(&record, &tenant()),
            Ok(Processing::fetch("/api/v2/accounts/3f1c%2F2a"))
        );
    }
}
