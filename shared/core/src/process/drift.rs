//! Noting what each delivery shows of its provider's contract ([`crate::drift`]): a signal is
//! written to the store the first time this processor sees it (and again now and then, so that
//! its last time stays current), and its first sighting anywhere is counted and logged — the
//! "contract changed" alarm. A store that cannot take it never holds the delivery up.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::model::{Record, Sighting};
use crate::providers::Provider;
use crate::tenants::Tenant;

use super::Processor;

/// How often one processor writes a signal it keeps seeing (its last time moves on).
const REWRITE_AFTER: Duration = Duration::from_secs(600);

/// A processor forgets what it wrote once it remembers this many signals.
const REMEMBERED: usize = 10_000;

/// When this processor last wrote each (provider, tenant, signal).
#[derive(Default)]
pub(super) struct Written(Mutex<HashMap<(String, String, String), i64>>);

impl Written {
    /// True if the signal is to be written at `now_ms` (and notes that it is).
    fn due(&self, id: (String, String, String), now_ms: i64) -> bool {
        let mut written = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if written.len() >= REMEMBERED {
            written.clear();
        }
        let due = written
            .get(&id)
            .is_none_or(|at| now_ms - at >= REWRITE_AFTER.as_millis() as i64);
        if due {
            written.insert(id, now_ms);
        }
        due
    }
}

impl Processor {
    /// Notes the signals of a delivery taken for the first time.
    pub(super) async fn note_drift(
        &self,
        provider: &dyn Provider,
        tenant: &Tenant,
        record: &Record,
    ) {
        // A delivery without a credential proves nothing about the provider's contract; an
        // item of a split event is not a delivery (its event was read when it was split).
        if record.attempts > 1 || record.unauthenticated || super::item_of(record).is_some() {
            return;
        }
        let now = self.ports.clock.now_ms();
        for signal in crate::drift::signals(provider, tenant, record) {
            let id = (record.provider.clone(), record.tenant.clone(), signal);
            if !self.drift_written.due(id.clone(), now) {
                continue;
            }
            let (provider, tenant, signal) = id;
            let sighting = Sighting {
                provider,
                tenant,
                signal,
                first_ms: now,
                last_ms: now,
                example_key: record.key.clone(),
                expires_at: record.expires_at,
            };
            match self.ports.sightings.sight(&sighting).await {
                Ok(true) => self.metrics.contract_changed(&sighting),
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(error = %error, "could not note a sign of contract drift")
                }
            }
        }
    }
}
