//! The processing path: for each queued event, claim its record, fetch the details from the
//! provider's API (or erase, or skip), and finish the record. Messages that should be tried
//! again are reported as failed so that only they return to the queue.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use serde_json::json;

use crate::clock::after;
pub use crate::config::ProcessorSettings;
use crate::fetch::{DetailClient, FetchError};
use crate::ports::{Claim, InboundMessage, Outcome, Ports, QueueMessage};
use crate::providers::{Processing, Provider};
use crate::tenants::TenantSource;

/// A provider and its tenants, as the processor needs them.
pub struct ProviderTenants {
    pub provider: Arc<dyn Provider>,
    pub tenants: TenantSource,
}

pub struct Processor {
    providers: HashMap<&'static str, ProviderTenants>,
    ports: Ports,
    client: DetailClient,
    settings: ProcessorSettings,
}

/// Whether a message is done with (deleted from the queue) or must come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Done,
    TryAgain,
}

impl Processor {
    pub fn new(
        providers: Vec<ProviderTenants>,
        ports: Ports,
        client: DetailClient,
        settings: ProcessorSettings,
    ) -> Self {
        Processor {
            providers: providers
                .into_iter()
                .map(|entry| (entry.provider.name(), entry))
                .collect(),
            ports,
            client,
            settings,
        }
    }

    pub fn settings(&self) -> &ProcessorSettings {
        &self.settings
    }

    /// Processes a batch with bounded concurrency; returns the ids of messages to retry.
    pub async fn process_batch(&self, messages: Vec<InboundMessage>) -> Vec<String> {
        futures::stream::iter(messages)
            .map(|message| async move {
                let verdict = self.process(&message).await;
                (message.id, verdict)
            })
            .buffer_unordered(self.settings.concurrency)
            .filter_map(|(id, verdict)| async move { (verdict == Verdict::TryAgain).then_some(id) })
            .collect()
            .await
    }

    pub async fn process(&self, inbound: &InboundMessage) -> Verdict {
        let started = Instant::now();
        let message: QueueMessage = match serde_json::from_str(&inbound.body) {
            Ok(message) => message,
            Err(error) => {
                // Left to the redrive policy: it ends in the dead-letter queue, not dropped.
                tracing::error!(message_id = %inbound.id, error = %error, "unreadable queue message");
                return Verdict::TryAgain;
            }
        };
        let (verdict, outcome) = self.process_message(&message, inbound).await;
        tracing::info!(
            provider = %message.provider,
            tenant = %message.tenant,
            event_type = %message.event_type,
            key = %message.key,
            outcome,
            attempt = inbound.receive_count,
            retry = verdict == Verdict::TryAgain,
            latency_ms = started.elapsed().as_millis() as u64,
            "processed"
        );
        verdict
    }

    async fn process_message(
        &self,
        message: &QueueMessage,
        inbound: &InboundMessage,
    ) -> (Verdict, &'static str) {
        let Some(entry) = self.providers.get(message.provider.as_str()) else {
            tracing::error!(provider = %message.provider, "message for a provider this processor does not know");
            return (Verdict::TryAgain, "unknown_provider");
        };
        let now = self.ports.clock.now_ms();
        let lease = after(now, self.settings.lease);
        match self.ports.store.claim(&message.key, now, lease).await {
            Ok(Claim::Claimed(_)) => {}
            Ok(Claim::Finished(_)) => return (Verdict::Done, "already_finished"),
            Ok(Claim::Busy) => return (Verdict::TryAgain, "busy"),
            Ok(Claim::Missing) => {
                tracing::error!(key = %message.key, "queued event has no record; leaving it to the dead-letter queue");
                return (Verdict::TryAgain, "record_missing");
            }
            Err(error) => {
                tracing::error!(key = %message.key, error = %error, "claim failed");
                return (Verdict::TryAgain, "store_unavailable");
            }
        }

        let (outcome, label) = self.outcome(entry, message, inbound).await;
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(error) => {
                tracing::error!(key = %message.key, error = %error, "processing failed");
                Outcome::Retry { reason: error }
            }
        };
        let verdict = match outcome {
            Outcome::Retry { .. } => Verdict::TryAgain,
            _ => Verdict::Done,
        };
        match self
            .ports
            .store
            .finish(&message.key, lease, &outcome, self.ports.clock.now_ms())
            .await
        {
            Ok(true) => (verdict, label),
            Ok(false) => {
                tracing::warn!(key = %message.key, "claim lost before the result was stored");
                (Verdict::TryAgain, "claim_lost")
            }
            Err(error) => {
                tracing::error!(key = %message.key, error = %error, "storing the result failed");
                (Verdict::TryAgain, "store_unavailable")
            }
        }
    }

    async fn outcome(
        &self,
        entry: &ProviderTenants,
        message: &QueueMessage,
        inbound: &InboundMessage,
    ) -> (Result<Outcome, String>, &'static str) {
        match entry.provider.processing(message) {
            Processing::Skip => (
                Ok(Outcome::Processed { detail: None }),
                "stored_without_fetch",
            ),
            Processing::Erase => {
                let subject = crate::ports::subject_of(
                    &message.provider,
                    &message.tenant,
                    &message.entity_id,
                );
                match self
                    .ports
                    .store
                    .erase_subject(&subject, self.ports.clock.now_ms())
                    .await
                {
                    Ok(records) => {
                        let note = json!({ "erasure": { "subject": message.entity_id, "records_erased": records } });
                        (
                            Ok(Outcome::Processed {
                                detail: Some(note.to_string()),
                            }),
                            "erased",
                        )
                    }
                    Err(error) => (Err(error.to_string()), "store_unavailable"),
                }
            }
            Processing::Fetch { path } => {
                let tenants = entry.tenants.current();
                let Some(api) = tenants.get(&message.tenant).and_then(|t| t.api.as_ref()) else {
                    let reason =
                        format!("tenant {:?} has no API access configured", message.tenant);
                    return (Ok(Outcome::Failed { reason }), "failed");
                };
                let url = format!("{}{path}", api.base_url.trim_end_matches('/'));
                let Some(api_key) = api.api_key.as_ref() else {
                    let reason = format!("tenant {:?} has no API key configured", message.tenant);
                    return (Ok(Outcome::Failed { reason }), "failed");
                };
                let auth = entry.provider.api_auth(api_key.expose());
                match self.client.get_json(&url, auth).await {
                    Ok(detail) => (
                        Ok(Outcome::Processed {
                            detail: Some(detail),
                        }),
                        "fetched",
                    ),
                    Err(FetchError::Permanent { reason }) => {
                        (Ok(Outcome::Failed { reason }), "failed")
                    }
                    Err(FetchError::Transient {
                        reason,
                        retry_after,
                    }) => (Ok(self.retry(reason, retry_after, inbound).await), "retry"),
                }
            }
        }
    }

    async fn retry(
        &self,
        reason: String,
        retry_after: Option<u32>,
        inbound: &InboundMessage,
    ) -> Outcome {
        let wait =
            retry_after.unwrap_or_else(|| self.settings.backoff_seconds(inbound.receive_count));
        if let (true, Some(receipt)) = (wait > 0, inbound.receipt_handle.as_deref()) {
            if let Err(error) = self.ports.queue.retry_after(receipt, wait).await {
                tracing::warn!(error = %error, "could not delay the retry");
            }
        }
        let reason = if inbound.receive_count >= self.settings.max_receives {
            format!(
                "{reason} (attempt {} of {}: the message goes to the dead-letter queue)",
                inbound.receive_count, self.settings.max_receives
            )
        } else {
            format!(
                "{reason} (attempt {} of {})",
                inbound.receive_count, self.settings.max_receives
            )
        };
        Outcome::Retry { reason }
    }
}
