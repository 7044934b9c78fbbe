//! Publishing processed events downstream, only once they are safely written: after the
//! record is finished and its subject's tombstone checked, so that nothing erased is published
//! afterwards. A publication that fails is retried on its own — a copy of the message marked
//! `publish_again`, which reads the stored record and publishes it if it is still processed
//! and not erased — never with a new fetch.

use crate::downstream::{self, DownstreamEvent, PublishError};
use crate::erasure::Receipt;
use crate::model::{InboundMessage, QueueMessage, Record, Status, Work};

use super::{Handled, Processor, Verdict};

impl Processor {
    /// Publishes a finished record's event, where there is a publisher. A failure is retried
    /// by a delayed `publish_again` copy of `message`; true if the event went out or will.
    pub(super) async fn publish_finished(
        &self,
        record: &Record,
        detail: Option<&str>,
        message: &QueueMessage,
        publication: &mut Option<&'static str>,
    ) -> bool {
        let Some(publisher) = &self.publisher else {
            return true;
        };
        let event = event_of(record, detail);
        let error = match self
            .traced_publish(publisher.as_ref(), record, &event)
            .await
        {
            Ok(()) => {
                *publication = Some("published");
                return true;
            }
            Err(PublishError::Refused(why)) => {
                refused(record, &why, publication);
                return true;
            }
            Err(PublishError::Unavailable(error)) => error,
        };
        *publication = Some("failed");
        tracing::warn!(key = %record.key, error = %error, "publishing the processed event failed; it is retried alone");
        let again = QueueMessage {
            work: Work::PublishAgain,
            throttled: 0,
            ..message.clone()
        };
        let wait = self.settings.backoff_seconds(1).max(1);
        match self.ports.queue.send_later(&again, wait).await {
            Ok(()) => true,
            Err(error) => {
                tracing::error!(key = %record.key, error = %error, "could not queue the publication's retry");
                false
            }
        }
    }

    /// A publication retried on its own: the stored record, if it is still `PROCESSED` and
    /// nothing of its subject was erased, is published; nothing is fetched.
    pub(super) async fn publish_again(
        &self,
        message: &QueueMessage,
        inbound: &InboundMessage,
        publication: &mut Option<&'static str>,
    ) -> (Verdict, Handled) {
        let record = match self.ports.store.get(&message.key).await {
            Ok(Some(record)) => record,
            Ok(None) => return (Verdict::Done, Handled::AlreadyFinished),
            Err(_) => return (Verdict::TryAgain, Handled::StoreUnavailable),
        };
        let receipt = receipt_in(record.detail.as_deref());
        let erased = match self.erased_since(&record, i64::MIN).await {
            Ok(erased) => receipt.is_none() && (erased || record.erased_at_ms.is_some()),
            Err(_) => return (Verdict::TryAgain, Handled::StoreUnavailable),
        };
        if record.status != Status::Processed || erased {
            return (Verdict::Done, Handled::AlreadyFinished);
        }
        let Some(publisher) = &self.publisher else {
            return (Verdict::Done, Handled::AlreadyFinished);
        };
        let event = event_of(&record, record.detail.as_deref());
        match self
            .traced_publish(publisher.as_ref(), &record, &event)
            .await
        {
            Ok(()) => {
                *publication = Some("published");
                (Verdict::Done, Handled::PublishedAgain)
            }
            Err(PublishError::Refused(why)) => {
                refused(&record, &why, publication);
                (Verdict::Done, Handled::PublishedAgain)
            }
            Err(PublishError::Unavailable(error)) => {
                *publication = Some("failed");
                tracing::warn!(key = %record.key, error = %error, "publishing the processed event failed again");
                let wait = self.settings.backoff_seconds(inbound.receive_count.max(1));
                if let Some(receipt) = inbound.receipt_handle.as_deref() {
                    let _ = self.ports.queue.retry_after(receipt, wait).await;
                }
                (Verdict::TryAgain, Handled::Retry)
            }
        }
    }
}

/// A publication the bus refuses for good: counted (`Published{Publication=refused}`, its
/// alarm) and logged, never retried — the record stays `PROCESSED` with its detail.
fn refused(record: &Record, why: &str, publication: &mut Option<&'static str>) {
    *publication = Some("refused");
    tracing::error!(key = %record.key, error = %why, "the bus refused the processed event for good; it is not published");
}

/// The downstream event of a finished record: an erasure's receipt (`erasure.completed`), or
/// the processed event with its detail.
fn event_of(record: &Record, detail: Option<&str>) -> DownstreamEvent {
    match receipt_in(detail) {
        Some(receipt) => receipt.event(),
        None => downstream::processed(record, detail),
    }
}

/// The receipt an erasure left as its record's note, if `detail` is one.
fn receipt_in(detail: Option<&str>) -> Option<Receipt> {
    #[derive(serde::Deserialize)]
    struct Note {
        erasure: Receipt,
    }
    serde_json::from_str::<Note>(detail?)
        .ok()
        .map(|note| note.erasure)
}
