//! The outbox: a stored record is ours to deliver. `enqueue` moves one record the caller holds
//! the lease of into the queue; the `Sweeper` finds records left `RECEIVED` (their queue write
//! failed, or their function died) once their lease ends and enqueues them.

use std::sync::Arc;
use std::time::Duration;

use crate::ingest::now_ms;
use crate::queue::{Queue, QueueError, QueueMessage};
use crate::store::{Store, StoreError};

/// Sends the message of a record whose lease the caller holds, then marks it `QUEUED`. If the
/// send fails the lease is released at once, so the sweeper (or a retry) can take it over.
pub async fn enqueue(
    store: &dyn Store,
    queue: &dyn Queue,
    message: &QueueMessage,
) -> Result<(), QueueError> {
    if let Err(error) = queue.send(message).await {
        if let Err(release) = store.release(&message.key, now_ms()).await {
            tracing::error!(key = %message.key, error = %release, "lease release failed; the lease will expire");
        }
        return Err(error);
    }
    if queue.send_marks_queued() {
        return Ok(());
    }
    // The message is in the queue: a failed status update only costs a harmless redelivery.
    if let Err(error) = store.mark_queued(&message.key).await {
        tracing::warn!(key = %message.key, error = %error, "record enqueued but not marked QUEUED");
    }
    Ok(())
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    pub found: usize,
    pub enqueued: usize,
    /// Taken over meanwhile by a retry of the same delivery.
    pub skipped: usize,
    pub failed: usize,
}

pub struct Sweeper {
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    lease: Duration,
}

impl Sweeper {
    pub fn new(store: Arc<dyn Store>, queue: Arc<dyn Queue>, lease: Duration) -> Self {
        Sweeper {
            store,
            queue,
            lease,
        }
    }

    /// Enqueues up to `limit` records whose lease has ended.
    pub async fn sweep(&self, limit: usize) -> Result<SweepReport, StoreError> {
        let now = now_ms();
        let mut report = SweepReport::default();
        for pending in self.store.pending(now, limit).await? {
            report.found += 1;
            let lease_until = now_ms() + self.lease.as_millis() as i64;
            if !self
                .store
                .take_over(&pending.key, pending.lease_until_ms, lease_until)
                .await?
            {
                report.skipped += 1;
                continue;
            }
            let message = QueueMessage {
                provider: pending.provider,
                tenant: pending.tenant,
                key: pending.key,
                event_type: pending.event_type,
                entity_id: pending.entity_id,
            };
            match enqueue(self.store.as_ref(), self.queue.as_ref(), &message).await {
                Ok(()) => {
                    report.enqueued += 1;
                    tracing::info!(key = %message.key, provider = %message.provider, "swept into the queue");
                }
                Err(error) => {
                    report.failed += 1;
                    tracing::error!(key = %message.key, error = %error, "sweeper could not enqueue; will try again");
                }
            }
        }
        Ok(report)
    }

    /// Sweeps until nothing is left (or `budget` runs out); for the scheduled function.
    pub async fn sweep_all(&self, budget: Duration) -> Result<SweepReport, StoreError> {
        let started = std::time::Instant::now();
        let mut total = SweepReport::default();
        loop {
            let report = self.sweep(100).await?;
            total.found += report.found;
            total.enqueued += report.enqueued;
            total.skipped += report.skipped;
            total.failed += report.failed;
            if report.enqueued == 0 || started.elapsed() > budget {
                return Ok(total);
            }
        }
    }
}
