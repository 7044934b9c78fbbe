//! The ingest path of one webhook request:
//! limit -> method -> verify -> parse -> dedupe -> store -> enqueue -> answer.

use std::sync::Arc;
use std::time::Instant;

use http::Method;

use crate::clock::after;
pub use crate::config::IngestSettings;
use crate::ports::{subject_of, Ports, PutOutcome, Record, Status};
use crate::providers::Provider;
use crate::response::{Ack, IngestError};
use crate::tenants::TenantSource;
use crate::verify::authenticate;
use crate::{WebhookRequest, WebhookResponse};

/// Everything one provider's webhook function needs, built once per cold start.
pub struct Ingest {
    provider: Arc<dyn Provider>,
    tenants: TenantSource,
    ports: Ports,
    settings: IngestSettings,
}

/// What the log line of one request says besides the outcome.
#[derive(Default)]
struct Trail {
    tenant: Option<String>,
    event_type: Option<String>,
    key: Option<String>,
}

impl Ingest {
    pub fn new(
        provider: Arc<dyn Provider>,
        tenants: impl Into<TenantSource>,
        ports: Ports,
        settings: IngestSettings,
    ) -> Self {
        let tenants = tenants.into();
        let credential_optional = provider.auth().credential_optional;
        for tenant in tenants.current().open_tenants() {
            if credential_optional {
                tracing::warn!(
                    provider = provider.name(),
                    tenant = %tenant.id,
                    "tenant accepts webhooks without credentials (allow_unauthenticated = true)"
                );
            } else {
                tracing::warn!(
                    provider = provider.name(),
                    tenant = %tenant.id,
                    "allow_unauthenticated is ignored: this provider always sends a credential"
                );
            }
        }
        Ingest {
            provider,
            tenants,
            ports,
            settings,
        }
    }

    pub fn provider(&self) -> &dyn Provider {
        self.provider.as_ref()
    }

    /// Handles one request; never fails: every outcome is an HTTP answer.
    pub async fn handle(&self, request: WebhookRequest) -> WebhookResponse {
        let started = Instant::now();
        let mut trail = Trail::default();
        let result = self.ingest(&request, &mut trail).await;
        let (outcome, response) = match result {
            Ok(ack) => (
                ack.outcome(),
                self.provider.acknowledgement(ack).into_response(),
            ),
            Err(error) => (error.outcome(), error.into_response()),
        };
        tracing::info!(
            provider = self.provider.name(),
            tenant = trail.tenant.as_deref().unwrap_or("-"),
            event_type = trail.event_type.as_deref().unwrap_or("-"),
            key = trail.key.as_deref().unwrap_or("-"),
            outcome,
            status = response.status().as_u16(),
            latency_us = started.elapsed().as_micros() as u64,
            "webhook"
        );
        response
    }

    async fn ingest(
        &self,
        request: &WebhookRequest,
        trail: &mut Trail,
    ) -> Result<Ack, IngestError> {
        let body: &[u8] = request.body();
        if body.len() > self.settings.max_body_bytes {
            return Err(IngestError::PayloadTooLarge {
                limit: self.settings.max_body_bytes,
            });
        }
        if request.method() != Method::POST {
            return Err(IngestError::MethodNotAllowed);
        }
        let tenants = self.tenants.current();
        let tenant = authenticate(&self.provider.auth(), request, &tenants)
            .ok_or(IngestError::Unauthorized)?;
        trail.tenant = Some(tenant.id.clone());
        if !declares_json(request) {
            return Err(IngestError::UnsupportedMediaType);
        }
        let event = self.provider.parse(tenant, body)?;
        trail.event_type = Some(event.event_type.clone());
        let key = format!(
            "{}#{}#{}",
            self.provider.name(),
            tenant.id,
            event.dedup_suffix
        );
        trail.key = Some(key.clone());

        let now = self.ports.clock.now_ms();
        let lease_until = after(now, self.settings.lease);
        let record = Record {
            key: key.clone(),
            provider: self.provider.name().to_string(),
            tenant: tenant.id.clone(),
            event_type: event.event_type.clone(),
            entity_id: event.entity_id.clone(),
            subject: subject_of(self.provider.name(), &tenant.id, &event.subject),
            facts: event
                .facts
                .as_ref()
                .map(|facts| serde_json::Value::Object(facts.clone()).to_string()),
            // parse() accepted the body as JSON, so it is UTF-8.
            body: String::from_utf8_lossy(body).into_owned(),
            received_at_ms: now,
            status: Status::Received,
            lease_until_ms: lease_until,
            expires_at: (now / 1000) + self.settings.retention.as_secs() as i64,
            ..Record::default()
        };
        match self.ports.store.put_new(&record).await.map_err(|error| {
            tracing::error!(key = %key, error = %error, "store write failed");
            IngestError::Unavailable
        })? {
            PutOutcome::Created => {}
            PutOutcome::Exists(existing) if existing.status != Status::Received => {
                return Ok(Ack::Duplicate { key });
            }
            PutOutcome::Exists(existing) if existing.lease_until_ms > now => {
                return Err(IngestError::InFlight);
            }
            PutOutcome::Exists(existing) => {
                let taken = self
                    .ports
                    .store
                    .take_over(&key, existing.lease_until_ms, lease_until)
                    .await
                    .map_err(|error| {
                        tracing::error!(key = %key, error = %error, "lease take-over failed");
                        IngestError::Unavailable
                    })?;
                if !taken {
                    return Err(IngestError::InFlight);
                }
            }
        }

        if let Err(error) = self.ports.outbox.enqueue(&record.message()).await {
            // Durably stored: the sweeper enqueues it once its (now released) lease is over.
            tracing::error!(key = %key, error = %error, "enqueue failed; the sweeper will enqueue the stored record");
            return Ok(Ack::Stored { key });
        }
        Ok(Ack::Accepted { key })
    }
}

/// Every provider posts JSON. A body declared as something else is refused; a request without
/// a content-type is read as JSON.
fn declares_json(request: &WebhookRequest) -> bool {
    let Some(value) = request.headers().get(http::header::CONTENT_TYPE) else {
        return true;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}
