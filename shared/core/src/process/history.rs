//! The attempts a record keeps (see [`crate::model::Tried`]): each finish writes the record's
//! history with the attempt it ends after it.

use super::Handled;
use crate::model::{with_attempt, Outcome, Record, Tried};

/// The room one more attempt takes in the record's history, at most.
pub(super) const ATTEMPT_BYTES: usize = 512;

/// An attempt's error is kept cut to this many characters (the record's `last_error` whole).
const ERROR_CHARS: usize = 300;

/// `record`'s attempts with the one claimed at `claimed_at` and ending now in `outcome` (an
/// outcome turned into a failure at the finish — too large, refused — is a failure, whatever
/// `label` the attempt had).
pub(super) fn with_this_attempt(
    record: &Record,
    outcome: &Outcome,
    label: Handled,
    claimed_at: i64,
    now: i64,
) -> Vec<Tried> {
    let error = outcome
        .error()
        .map(|error| error.chars().take(ERROR_CHARS).collect::<String>());
    let label = match outcome {
        Outcome::Failed { .. } => Handled::Failed,
        _ => label,
    };
    let tried = Tried {
        at_ms: now,
        outcome: label.label().to_string(),
        latency_ms: now - claimed_at,
        http_status: error.as_deref().and_then(crate::fetch::status_named),
        error,
    };
    with_attempt(&record.history, tried)
}
