//! A call with a second way: where the provider answers 404 to the first path, the second is
//! called, and its answer kept beside a note saying why (Magicline: a customer who changed home
//! studio is no longer visible with this studio's key; read cross-studio, and marked detached
//! from this studio).

use crate::fetch::status_named;
use crate::ports::{Outcome, Record};
use crate::tenants::Tenant;

use super::{Attempt, Processor, ProviderTenants};

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
            ) => {
                // The answer as its text came: parsed, numbers would lose digits.
                let note = note.trim_end_matches('}');
                let detail = format!(r#"{note},"cross_studio":{answer}}}"#);
                Attempt::Done(
                    Outcome::Processed {
                        detail: Some(detail),
                    },
                    label,
                )
            }
            other => other,
        }
    }
}
