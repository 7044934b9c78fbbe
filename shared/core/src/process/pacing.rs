//! Being a good API citizen: each tenant's API key is called at the rate its provider
//! publishes (or the tenant's `api.rate`), paced across every processor through the store's
//! [`crate::ports::Pacer`]; a call whose slot is further away than a short wait, and a provider
//! that asks us to wait (a 429, or a 503 with `Retry-After`), are waited out in a delayed copy
//! of the message, which never uses up one of its attempts — however often it happens.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::model::{Outcome, QueueMessage, Reservation, MAX_DELAY_SECONDS};
use crate::providers::Provider;
use crate::tenants::ApiAccess;

use super::{Attempt, Processor};

/// How long a processor waits in place for its calls' slot; a slot further away is waited for
/// in a delayed copy of the message instead (a Lambda waiting is a Lambda paid for).
const WAIT_IN_PLACE: Duration = Duration::from_secs(2);

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
    /// Reserves the slots of `calls` calls to the tenant's API (when each may start, epoch
    /// ms); a slot further away than [`WAIT_IN_PLACE`] makes the attempt wait for its rate.
    pub(super) async fn pace(
        &self,
        provider: &dyn Provider,
        api: &ApiAccess,
        calls: usize,
    ) -> Result<Vec<i64>, Attempt> {
        let rate = api
            .rate
            .map_or_else(|| provider.api_rate(), |rate| rate.rate());
        let interval = rate.interval_ms();
        let calls = u32::try_from(calls).unwrap_or(u32::MAX);
        let max_wait = WAIT_IN_PLACE.as_millis() as i64;
        let key = pace_key(provider, api);
        // A batch's messages asking at once would mostly lose the store's conditional update
        // to each other and ask again: a read and a write each time, paid for and slow.
        let turn = self.pacing_turns.of(&key);
        let turn = turn.lock().await;
        let reservation = self
            .ports
            .pacer
            .reserve(&key, interval, calls, &self.ports.clock, max_wait)
            .await;
        drop(turn);
        match reservation {
            Ok(Reservation::Granted { first_at_ms }) => Ok((0..i64::from(calls))
                .map(|n| first_at_ms + n * interval)
                .collect()),
            Ok(Reservation::Full { back_at_ms }) => Err(Attempt::Throttled {
                reason: format!(
                    "pacing: the API key's rate ({} calls per {} s) is taken",
                    rate.calls,
                    rate.per_ms / 1000
                ),
                wait: Some(come_back_after(back_at_ms - self.ports.clock.now_ms())),
            }),
            Err(error) => Err(Attempt::store_unavailable(error)),
        }
    }

    /// Waits until `at_ms` (epoch ms) on the processor's clock.
    pub(super) async fn wait_until(&self, at_ms: i64) {
        let wait = at_ms - self.ports.clock.now_ms();
        if wait > 0 {
            self.ports
                .clock
                .sleep(Duration::from_millis(wait as u64))
                .await;
        }
    }

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

/// One lock per pace key, so that a processor's messages ask the store for one key in turn
/// while other keys' go on.
#[derive(Default)]
pub(super) struct Turns(std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl Turns {
    fn of(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut turns = self.0.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(turns.entry(key.to_string()).or_default())
    }
}

/// The whole seconds a turned-away message is delayed (SQS's unit): rounded down, so that it
/// is back by its turn and waits the rest in place (less than [`WAIT_IN_PLACE`]).
fn come_back_after(ms: i64) -> u32 {
    u32::try_from(ms / 1000).unwrap_or(u32::MAX).max(1)
}

/// Whose calls share a rate: one API key (or app and company) of one provider at one base URL,
/// hashed, so that no credential is kept in the store.
fn pace_key(provider: &dyn Provider, api: &ApiAccess) -> String {
    let mut hash = Sha256::new();
    for part in [
        Some(api.base_url.as_str()),
        api.api_key.as_ref().map(|key| key.expose()),
        api.app_id.as_deref(),
        api.company_id.as_deref(),
    ] {
        hash.update(part.unwrap_or_default().as_bytes());
        hash.update([0]);
    }
    format!(
        "{}#{}",
        provider.name(),
        hex::encode(&hash.finalize()[..16])
    )
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
