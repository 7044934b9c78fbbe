//! The outbox: a stored record is ours to deliver. [`SendThenMark`] is the outbox step for a
//! store and a queue that share no transaction (DynamoDB and SQS, the in-memory pair); the
//! [`Sweeper`] finds records left `RECEIVED` (their queue write failed, or their function died)
//! once their lease ends and enqueues them.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::clock::{after, SharedClock};
use crate::metrics::{LogLines, Metrics};
use crate::model::QueueMessage;
use crate::ports::{Handover, Outbox, Ports, Queue, QueueError, StoreError};

/// Sends the message, then marks the record `QUEUED`. If the send fails the lease is released
/// at once, so the sweeper can take it over.
pub struct SendThenMark {
    /// Only the hand-over from store to queue: leases and marking queued.
    store: Arc<dyn Handover>,
    queue: Arc<dyn Queue>,
    clock: SharedClock,
}

impl SendThenMark {
    pub fn new(store: Arc<dyn Handover>, queue: Arc<dyn Queue>, clock: SharedClock) -> Self {
        SendThenMark {
            store,
            queue,
            clock,
        }
    }
}

impl SendThenMark {
    /// Sends; if that fails, releases the lease at once so that the sweeper can
    /// take the record over.
    async fn send(&self, message: &QueueMessage) -> Result<(), QueueError> {
        if let Err(error) = self.queue.send(message).await {
            if let Err(release) = self.store.release(&message.key, self.clock.now_ms()).await {
                tracing::error!(key = %message.key, error = %release, "lease release failed; the lease will expire");
            }
            return Err(error);
        }
        Ok(())
    }
}

#[async_trait]
impl Outbox for SendThenMark {
    async fn enqueue(&self, message: &QueueMessage) -> Result<(), QueueError> {
        self.send(message).await?;
        // The message is in the queue: a failed status update only costs a harmless redelivery.
        if let Err(error) = self.store.mark_queued(&message.key).await {
            tracing::warn!(key = %message.key, error = %error, "record enqueued but not marked QUEUED");
        }
        Ok(())
    }

    /// Two round trips on the ack path (put, send): the record stays `RECEIVED` under its
    /// lease; the sweeper re-sends and marks it only if no processor claimed it by then.
    async fn send_fresh(&self, message: &QueueMessage) -> Result<(), QueueError> {
        self.send(message).await
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    pub found: usize,
    pub enqueued: usize,
    /// Taken over meanwhile by a retry of the same delivery.
    pub skipped: usize,
    pub failed: usize,
}

impl SweepReport {
    fn add(&mut self, other: SweepReport) {
        self.found += other.found;
        self.enqueued += other.enqueued;
        self.skipped += other.skipped;
        self.failed += other.failed;
    }
}

pub struct Sweeper {
    ports: Ports,
    /// The lease the sweeper takes on a record while it enqueues it (the ingest lease).
    lease: Duration,
    metrics: Arc<dyn Metrics>,
}

impl Sweeper {
    pub fn new(ports: Ports, lease: Duration) -> Self {
        Sweeper {
            ports,
            lease,
            metrics: Arc::new(LogLines),
        }
    }

    /// Counts what every sweep did in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<dyn Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Enqueues up to `limit` records whose lease has ended.
    pub async fn sweep(&self, limit: usize) -> Result<SweepReport, StoreError> {
        let now = self.ports.clock.now_ms();
        let mut report = SweepReport::default();
        for pending in self.ports.store.pending(now, limit).await? {
            report.found += 1;
            let message = pending.message;
            let lease_until = after(self.ports.clock.now_ms(), self.lease);
            if !self
                .ports
                .store
                .take_over(&message.key, pending.lease_until_ms, lease_until)
                .await?
            {
                report.skipped += 1;
                continue;
            }
            match self.ports.outbox.enqueue(&message).await {
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
        if report.enqueued > 0 {
            self.metrics.swept("enqueued", report.enqueued);
        }
        if report.failed > 0 {
            self.metrics.swept("failed", report.failed);
        }
        Ok(report)
    }

    /// Sweeps until nothing is left (or `budget` runs out); for the scheduled function.
    pub async fn sweep_all(&self, budget: Duration) -> Result<SweepReport, StoreError> {
        let started = std::time::Instant::now();
        let mut total = SweepReport::default();
        loop {
            let report = self.sweep(100).await?;
            total.add(report);
            if report.enqueued == 0 || started.elapsed() > budget {
                return Ok(total);
            }
        }
    }
}
