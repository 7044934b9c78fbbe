//! The processor's side of erasure (see [`crate::erasure`]): a deletion event erases its
//! person and schedules a second pass for records the indexes did not show yet; a record whose
//! subject, or a person it names, was erased keeps nothing; and every finished record links
//! the persons it names, so that erasing them later reaches it.

use serde_json::json;

use crate::erasure::{erase_person, named_persons, Person, Receipt};
use crate::model::{Outcome, QueueMessage, Record, Work};
use crate::ports::StoreError;
use crate::providers::Provider;

use super::{erased_before, Attempt, Handled, Processor, Verdict};

/// When an erasure runs its second pass (the subject index is eventually consistent).
const ERASE_AGAIN_AFTER_SECONDS: u32 = 60;

impl Processor {
    /// Erases the person a deletion event is about; its note is the receipt.
    pub(super) async fn erase(&self, record: &Record) -> Attempt {
        let Some(person) = Person::from_subject(&record.subject) else {
            let reason = "a deletion event without a subject: nobody to erase".to_string();
            return Attempt::Done(Outcome::Failed { reason }, Handled::Failed);
        };
        match erase_person(&self.ports, &person, record.expires_at).await {
            Ok(receipt) => Attempt::Done(
                Outcome::Processed {
                    detail: Some(
                        json!({ "erasure": Receipt { key: Some(record.key.clone()), ..receipt } })
                            .to_string(),
                    ),
                },
                Handled::Erased,
            ),
            Err(error) => Attempt::store_unavailable(error),
        }
    }

    /// An erasure is done once more after the indexes have caught up, for records written
    /// just before it.
    pub(super) async fn erase_again_later(&self, message: &QueueMessage) {
        let again = QueueMessage {
            work: Work::EraseAgain,
            throttled: 0,
            ..message.clone()
        };
        if let Err(error) = self
            .ports
            .queue
            .send_later(&again, ERASE_AGAIN_AFTER_SECONDS)
            .await
        {
            tracing::error!(key = %message.key, error = %error, "could not schedule the second erasure pass");
        }
    }

    /// The second pass: the person of the stored deletion record (never of the message), and
    /// only of a record that was an authenticated deletion and erased (its note is a receipt) —
    /// a message naming any other record erases nothing.
    pub(super) async fn erase_again(&self, message: &QueueMessage) -> (Verdict, Handled) {
        let record = match self.ports.store.get(&message.key).await {
            Ok(Some(record)) => record,
            Ok(None) => return (Verdict::Done, Handled::Erased),
            Err(_) => return (Verdict::TryAgain, Handled::ErasurePassFailed),
        };
        let receipt = record.detail.as_deref().is_some_and(|detail| {
            serde_json::from_str::<serde_json::Value>(detail)
                .is_ok_and(|note| note["erasure"]["person"].is_string())
        });
        if !receipt || record.unauthenticated {
            tracing::error!(key = %message.key, "a second erasure pass for a record that erased nobody: nothing erased");
            return (Verdict::Done, Handled::ErasureRefused);
        }
        let Some(person) = Person::from_subject(&record.subject) else {
            return (Verdict::Done, Handled::Erased);
        };
        match erase_person(&self.ports, &person, record.expires_at).await {
            Ok(_) => (Verdict::Done, Handled::ErasedAgain),
            Err(error) => {
                tracing::error!(key = %message.key, error = %error, "the second erasure pass failed; it is tried again");
                (Verdict::TryAgain, Handled::ErasurePassFailed)
            }
        }
    }

    /// A delivery about a subject erased before: its body goes, and nothing is fetched.
    pub(super) async fn drop_erased_body(&self, record: &Record) -> Attempt {
        match self
            .ports
            .store
            .erase_record(&record.key, self.ports.clock.now_ms())
            .await
        {
            Ok(_) => Attempt::Done(erased_before(record), Handled::SubjectErased),
            Err(error) => Attempt::store_unavailable(error),
        }
    }

    /// True if the record's subject was erased at or after `since`.
    pub(super) async fn erased_since(
        &self,
        record: &Record,
        since: i64,
    ) -> Result<bool, StoreError> {
        if record.subject.is_empty() {
            return Ok(false);
        }
        Ok(self
            .ports
            .store
            .erased_at(&record.subject)
            .await?
            .is_some_and(|erased_at| erased_at >= since))
    }

    /// Links every person the record's body or `detail` names (besides its subject) to it;
    /// true if one of them has been erased, so that the record must keep nothing.
    pub(super) async fn link_named_persons(
        &self,
        provider: &dyn Provider,
        record: &Record,
        detail: Option<&str>,
    ) -> Result<bool, StoreError> {
        let persons = named_persons(provider, record, detail);
        if persons.is_empty() {
            return Ok(false);
        }
        self.ports
            .store
            .link_persons(&record.key, &persons, record.expires_at)
            .await?;
        self.any_erased(&persons).await
    }

    /// True if the record's body names a person who has been erased (then nothing about
    /// them is fetched).
    pub(super) async fn names_an_erased_person(
        &self,
        provider: &dyn Provider,
        record: &Record,
    ) -> Result<bool, StoreError> {
        self.any_erased(&named_persons(provider, record, None))
            .await
    }

    async fn any_erased(&self, persons: &[String]) -> Result<bool, StoreError> {
        for person in persons {
            if self.ports.store.erased_at(person).await?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
