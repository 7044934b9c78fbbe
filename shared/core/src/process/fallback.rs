//! A call with a second way: where the provider answers 404 to the first path, the second is
//! called, and its answer kept beside a note saying why (Magicline: a customer who changed home
//! studio is no longer visible with this studio's key; read cross-studio, and marked detached
//! from this studio).

use crate::fetch::status_named;
use crate::model::{Outcome, Record};
use crate::tenants::Tenant;

use super::{Attempt, Handled, Processor, ProviderTenants};

impl Processor {
    pub(super) async fn fetch_or(
        &self,
        entry: &ProviderTenants,
        tenant: &Tenant,
        record: &Record,
        [path, otherwise]: [String; 2],
        note: &str,
    ) -> Attempt {
        let first = self.fetch(entry, tenant, record, &[path]).await;
        let Attempt::Done(Outcome::Failed { reason }, _) = &first else {
            return first;
        };
        if status_named(reason) != Some(404) {
            return first;
        }
        match self.fetch(entry, tenant, record, &[otherwise]).await {
            Attempt::Done(
                Outcome::Processed {
                    detail: Some(answer),
                },
                label,
            ) => match with_note(note, &answer) {
                Some(detail) => Attempt::Done(
                    Outcome::Processed {
                        detail: Some(detail),
                    },
                    label,
                ),
                None => Attempt::Done(
                    Outcome::Failed {
                        reason: "the cross-studio answer could not be kept beside its note".into(),
                    },
                    Handled::Failed,
                ),
            },
            other => other,
        }
    }
}

/// The note's members and the answer under `cross_studio`, the answer's text kept as it came
/// (parsed into values, numbers would lose digits).
fn with_note(note: &str, answer: &str) -> Option<String> {
    #[derive(serde::Serialize)]
    struct Noted<'a> {
        #[serde(flatten)]
        note: serde_json::Map<String, serde_json::Value>,
        cross_studio: &'a serde_json::value::RawValue,
    }
    let note = serde_json::from_str(note).ok()?;
    let cross_studio = serde_json::from_str(answer).ok()?;
    serde_json::to_string(&Noted { note, cross_studio }).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_is_kept_whole_beside_the_note() {
        let detail = with_note(
            r#"{"detached_from_studio": {"id": 1001}}"#,
            r#"{"id": 18446744073709551617}"#,
        )
        .unwrap();
        assert_eq!(
            detail,
            r#"{"detached_from_studio":{"id":1001},"cross_studio":{"id": 18446744073709551617}}"#
        );
        assert_eq!(with_note("{}", "not json"), None);
    }
}
