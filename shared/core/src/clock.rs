//! The one clock of the system, injected wherever time decides something (leases, visibility,
//! backoff, retention), so that tests advance it instead of sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;

    /// Lets `duration` pass: a real wait, or a moved clock in tests.
    fn sleep(&self, duration: Duration) -> futures::future::BoxFuture<'static, ()>;
}

pub type SharedClock = Arc<dyn Clock>;

/// The operating system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default()
    }

    fn sleep(&self, duration: Duration) -> futures::future::BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// The wall clock as a shared handle.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that moves only when told to, for tests.
#[derive(Debug)]
pub struct ManualClock {
    now_ms: AtomicI64,
}

impl ManualClock {
    pub fn starting_at(now_ms: i64) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            now_ms: AtomicI64::new(now_ms),
        })
    }

    /// Starts at the wall clock's present.
    pub fn now() -> Arc<ManualClock> {
        Self::starting_at(SystemClock.now_ms())
    }

    pub fn advance(&self, by: Duration) {
        self.now_ms
            .fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }

    /// Moves the clock on at once.
    fn sleep(&self, duration: Duration) -> futures::future::BoxFuture<'static, ()> {
        self.advance(duration);
        Box::pin(std::future::ready(()))
    }
}

/// `now + duration` in epoch milliseconds.
pub fn after(now_ms: i64, duration: Duration) -> i64 {
    now_ms.saturating_add(duration.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced() {
        let clock = ManualClock::starting_at(1_000);
        assert_eq!(clock.now_ms(), 1_000);
        clock.advance(Duration::from_secs(2));
        assert_eq!(clock.now_ms(), 3_000);
    }
}
