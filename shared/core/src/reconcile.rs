//! The reconciler: every acknowledged delivery ends `PROCESSED`, `FAILED` or `QUARANTINED`
//! within a day, whatever went wrong on its way — a message lost, one that expired from the
//! dead-letter queue, a lease nobody came back to. Run with the sweeper, it finds the records
//! still unfinished a day after they arrived, counts them (the stuck-events alarm) and sends
//! each back to the queue — once in its life, so that one that fails again waits for an
//! operator (`webhooks events list --stuck`) instead of going round for ever.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::after;
use crate::metrics::{LogLines, Metrics};
use crate::model::{EventFilter, Status};
use crate::ports::{Ports, StoreError};
use crate::providers;

/// How long a delivery may take to be finished before it counts as stuck.
pub const STUCK_AFTER: Duration = Duration::from_secs(24 * 3600);

/// What one reconciliation found and did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Unfinished a day or more after they arrived.
    pub stuck: usize,
    /// Sent back to the queue (each once in its life).
    pub requeued: usize,
}

pub struct Reconciler {
    ports: Ports,
    /// The lease a re-queued record is left under (the ingest lease): if its send fails, the
    /// sweeper sends it once the lease ends.
    lease: Duration,
    metrics: Arc<dyn Metrics>,
}

/// `filter` narrowed to the stuck records: received over [`STUCK_AFTER`] before `now_ms` and
/// not finished (what the reconciler looks at and `webhooks events list --stuck` lists).
pub fn only_stuck(filter: EventFilter, now_ms: i64) -> EventFilter {
    EventFilter {
        until_ms: now_ms - STUCK_AFTER.as_millis() as i64,
        unfinished_only: true,
        ..filter
    }
}

/// Every provider's records received since `since_ms`, at most `limit`, stuck at `now_ms`.
fn stuck_filter(now_ms: i64, since_ms: i64, limit: usize) -> EventFilter {
    let every_record = EventFilter {
        providers: providers::names(),
        tenant: None,
        status: None,
        since_ms,
        until_ms: now_ms,
        limit,
        live_at_ms: now_ms,
        unfinished_only: false,
    };
    only_stuck(every_record, now_ms)
}

impl Reconciler {
    pub fn new(ports: Ports, lease: Duration) -> Self {
        Reconciler {
            ports,
            lease,
            metrics: Arc::new(LogLines),
        }
    }

    pub fn with_metrics(mut self, metrics: Arc<dyn Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Looks at up to `limit` stuck records (oldest kept `retention` ago) and re-queues those
    /// that can be: `QUEUED`, or `PROCESSING` under a lease that ended, and never re-queued
    /// before. A `RECEIVED` one is the sweeper's. Always counts what it found, zero included,
    /// so that the alarm on it also sees that the reconciler ran.
    pub async fn reconcile(
        &self,
        retention: Duration,
        limit: usize,
    ) -> Result<ReconcileReport, StoreError> {
        let now = self.ports.clock.now_ms();
        let since = now - retention.as_millis() as i64;
        let stuck = self
            .ports
            .store
            .list(&stuck_filter(now, since, limit))
            .await?;
        let mut report = ReconcileReport {
            stuck: stuck.len(),
            requeued: 0,
        };
        for record in stuck {
            if record.status == Status::Received {
                continue;
            }
            let lease = after(self.ports.clock.now_ms(), self.lease);
            if !self
                .ports
                .store
                .requeue_stuck(&record.key, now, lease)
                .await?
            {
                continue;
            }
            match self.ports.outbox.send_fresh(&record.message()).await {
                Ok(()) => {
                    report.requeued += 1;
                    tracing::warn!(key = %record.key, status = record.status.as_str(), "stuck for a day: sent to the queue once more");
                }
                Err(error) => {
                    tracing::error!(key = %record.key, error = %error, "stuck record not sent; the sweeper sends it when its lease ends");
                }
            }
        }
        self.metrics.swept("stuck", report.stuck);
        if report.requeued > 0 {
            self.metrics.swept("requeued", report.requeued);
        }
        Ok(report)
    }
}
