//! Holding a provider, or one tenant of it, while its API is down or its key is being rotated:
//! webhooks are still acknowledged and stored, and the processor puts each of their messages
//! back as a delayed copy — no claim, no call, no receive used up — until an operator resumes
//! it; then they are processed at the paced rate.

use std::time::Duration;

use crate::model::QueueMessage;
use crate::ports::StoreError;

use super::{Handled, Processor, Verdict};

/// How long a held message waits before it is looked at again.
const HOLD_FOR: Duration = Duration::from_secs(30);

impl Processor {
    /// Reads what is paused, once per batch.
    pub(super) async fn refresh_paused(&self) -> Result<(), StoreError> {
        let paused = self.ports.pacer.paused().await?;
        *self.paused.lock().unwrap_or_else(|e| e.into_inner()) =
            paused.into_iter().map(|paused| paused.scope).collect();
        Ok(())
    }

    /// True if the message's provider or tenant is paused.
    pub(super) fn is_paused(&self, message: &QueueMessage) -> bool {
        let paused = self.paused.lock().unwrap_or_else(|e| e.into_inner());
        let tenant = crate::key::tenant_scope(&message.provider, &message.tenant);
        paused
            .iter()
            .any(|scope| *scope == message.provider || *scope == tenant)
    }

    /// Puts a paused provider's message back for later, without using up a receive.
    pub(super) async fn hold(&self, message: &QueueMessage) -> (Verdict, Handled) {
        let again = QueueMessage {
            work: message.work.stored(),
            ..message.clone()
        };
        match self
            .ports
            .queue
            .send_later(&again, HOLD_FOR.as_secs() as u32)
            .await
        {
            Ok(()) => (Verdict::Done, Handled::Paused),
            Err(error) => {
                tracing::warn!(key = %message.key, error = %error, "could not hold the message; it comes back on its own");
                (Verdict::TryAgain, Handled::Paused)
            }
        }
    }
}
