//! Being a good API citizen: a provider that asks us to wait (a 429, or a 503 with
//! `Retry-After`) is waited out in a delayed copy of the message, which never uses up one of
//! its attempts — however often it happens; the stuck-event alarm, not the dead-letter queue,
//! is what tells of a provider that never lets an event through.

use crate::ports::{Outcome, QueueMessage, MAX_DELAY_SECONDS};

use super::Processor;

/// The first wait of a 429 without `Retry-After` is up to this long (full jitter), doubling
/// with each further one up to SQS's 15 minutes: Magicline's rate-limit window is one minute.
const RATE_LIMIT_WAIT_SECONDS: u32 = 60;

/// How long to wait out a provider's limit: what it asked for, else a random time up to an
/// exponentially growing cap ("full jitter"), so that the waiting messages do not come back
/// together; at least a second, at most what SQS can delay.
pub(super) fn rate_limit_wait(asked: Option<u32>, waits_so_far: u32) -> u32 {
    let wait = asked.unwrap_or_else(|| {
        let cap = RATE_LIMIT_WAIT_SECONDS.saturating_mul(1 << waits_so_far.min(8));
        fastrand::u32(1..=cap.min(MAX_DELAY_SECONDS))
    });
    wait.clamp(1, MAX_DELAY_SECONDS)
}

impl Processor {
    /// Waits `wait` seconds for the provider's limit in a delayed copy of the message, so that
    /// the wait does not use up an attempt. `None` if the copy could not be queued (then the
    /// message itself is retried).
    pub(super) async fn wait_out_rate_limit(
        &self,
        message: &QueueMessage,
        reason: &str,
        wait: u32,
    ) -> Option<Outcome> {
        let copy = QueueMessage {
            throttled: message.throttled.saturating_add(1),
            ..message.clone()
        };
        if let Err(error) = self.ports.queue.send_later(&copy, wait).await {
            tracing::warn!(key = %message.key, error = %error, "could not queue the delayed copy; retrying the message instead");
            return None;
        }
        Some(Outcome::Retry {
            reason: format!("{reason}: waiting {wait} s for the provider's rate limit"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_is_what_the_provider_asked_or_a_jittered_backoff() {
        assert_eq!(rate_limit_wait(Some(30), 5), 30);
        assert_eq!(rate_limit_wait(Some(0), 0), 1);
        assert_eq!(rate_limit_wait(Some(100_000), 0), MAX_DELAY_SECONDS);
        let first: Vec<u32> = (0..200).map(|_| rate_limit_wait(None, 0)).collect();
        assert!(first.iter().all(|wait| (1..=60).contains(wait)));
        let distinct: std::collections::BTreeSet<_> = first.iter().collect();
        assert!(distinct.len() > 20, "spread out: {distinct:?}");
        let later: Vec<u32> = (0..200).map(|_| rate_limit_wait(None, 3)).collect();
        assert!(later.iter().all(|wait| (1..=480).contains(wait)));
        assert!(later.iter().any(|wait| *wait > 60), "the cap doubles");
        assert!((0..200).all(|_| rate_limit_wait(None, 30) <= MAX_DELAY_SECONDS));
    }
}
