//! What handling a queue message came to, named once: the label its log line and its record's
//! history show, the outcome its metric counts, and whether a processed event is published.

/// What handling a queue message came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// The details were fetched from the provider's API and stored.
    Fetched,
    /// Stored as it came: nothing to fetch for its type.
    StoredWithoutFetch,
    /// A deletion: the person's data erased.
    Erased,
    /// The second pass of an erasure found what the indexes showed late.
    ErasedAgain,
    /// A deletion that may not erase (an unauthenticated delivery): stored, nothing erased.
    ErasureRefused,
    /// The second pass of an erasure failed; counted on every try.
    ErasurePassFailed,
    /// Its subject was erased before or while it was processed: emptied, not fetched.
    SubjectErased,
    /// Older than the retention: not fetched.
    Expired,
    /// A `webhooks check` sample: finished without a call, not counted.
    Check,
    /// Failed for good (a 404, a refused answer, a limit).
    Failed,
    /// The provider's rate limit was waited out without using up an attempt.
    Throttled,
    /// To be tried again after a backoff.
    Retry,
    /// A setting that does not work: retried, then left in the dead-letter queue.
    Configuration,
    StoreUnavailable,
    UnknownProvider,
    /// A spilled delivery without its webhook function's seal.
    Unsealed,
    /// A spilled delivery that could not be parsed: stored in quarantine.
    Quarantined,
    /// A redelivery of a message already done with.
    AlreadyFinished,
    /// Another processor holds its claim.
    Busy,
    RecordMissing,
    /// Another processor took the claim over before the result was written.
    ClaimLost,
    /// Its provider or tenant is paused: held back.
    Paused,
    /// A multi-event delivery split into its items.
    FannedOut,
    /// A publication retried on its own went out.
    PublishedAgain,
}

impl Handled {
    /// Its name in log lines and in a record's history.
    pub fn label(self) -> &'static str {
        match self {
            Handled::Fetched => "fetched",
            Handled::StoredWithoutFetch => "stored_without_fetch",
            Handled::Erased => "erased",
            Handled::ErasedAgain => "erased_again",
            Handled::ErasureRefused => "erasure_refused",
            Handled::ErasurePassFailed => "erasure_pass_failed",
            Handled::SubjectErased => "subject_erased",
            Handled::Expired => "expired",
            Handled::Check => "check",
            Handled::Failed => "failed",
            Handled::Throttled => "throttled",
            Handled::Retry => "retry",
            Handled::Configuration => "configuration",
            Handled::StoreUnavailable => "store_unavailable",
            Handled::UnknownProvider => "unknown_provider",
            Handled::Unsealed => "unsealed",
            Handled::Quarantined => "quarantined",
            Handled::AlreadyFinished => "already_finished",
            Handled::Busy => "busy",
            Handled::RecordMissing => "record_missing",
            Handled::ClaimLost => "claim_lost",
            Handled::Paused => "paused",
            Handled::FannedOut => "fanned_out",
            Handled::PublishedAgain => "published_again",
        }
    }

    /// The `Outcome` dimension of its `Processed` metric; `None`: nothing to count.
    pub fn counted(self, dead_lettered: bool) -> Option<&'static str> {
        Some(match self {
            Handled::Fetched => "fetched",
            Handled::StoredWithoutFetch
            | Handled::ErasureRefused
            | Handled::SubjectErased
            | Handled::Expired => "stored_without_fetch",
            Handled::Erased | Handled::ErasedAgain => "erased",
            Handled::Throttled => "throttled",
            Handled::Failed => "failed",
            // A check (`webhooks check`) is not traffic: its record shows how it went; the
            // others are redeliveries.
            Handled::AlreadyFinished
            | Handled::Quarantined
            | Handled::PublishedAgain
            | Handled::Check => return None,
            Handled::Paused => "paused",
            Handled::FannedOut => "fanned_out",
            // Counted on every try, the last one included: its alarm does not wait for the DLQ.
            Handled::ErasurePassFailed => "erasure_pass_failed",
            _ if dead_lettered => "dead_lettered",
            Handled::Configuration => "configuration",
            _ => "retried",
        })
    }

    /// Whether the record it finished `PROCESSED` has an event for downstream consumers: what
    /// was fetched or stored, and erasures (done or refused); never a record whose data was
    /// erased.
    pub fn publishes(self) -> bool {
        matches!(
            self,
            Handled::Fetched
                | Handled::StoredWithoutFetch
                | Handled::Erased
                | Handled::ErasureRefused
        )
    }
}
