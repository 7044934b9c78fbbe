//! The ingest path of one webhook request:
//! limit -> method -> verify -> parse -> dedupe -> store -> enqueue -> answer.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lambda_http::http::Method;
use lambda_http::{Body, Request, Response};

use crate::http::{Ack, IngestError};
use crate::outbox;
use crate::providers::Provider;
use crate::queue::{Queue, QueueMessage};
use crate::secrets::TenantSource;
use crate::store::{PutOutcome, Record, Status, Store};
use crate::verify::authenticate;

#[derive(Debug, Clone)]
pub struct IngestSettings {
    pub max_body_bytes: usize,
    /// How long a delivery that stored a record owns the right to enqueue it. Longer than the
    /// function timeout, so a live delivery is never overtaken.
    pub lease: Duration,
    /// How long records are kept (DynamoDB TTL).
    pub retention: Duration,
}

impl Default for IngestSettings {
    fn default() -> Self {
        IngestSettings {
            max_body_bytes: 256 * 1024,
            lease: Duration::from_secs(10),
            retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

impl IngestSettings {
    /// Defaults, overridden by `MAX_BODY_BYTES`, `LEASE_SECONDS` and `RETENTION_DAYS`.
    pub fn from_env() -> Self {
        let number = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        let defaults = IngestSettings::default();
        IngestSettings {
            max_body_bytes: number("MAX_BODY_BYTES")
                .map(|v| v as usize)
                .unwrap_or(defaults.max_body_bytes),
            lease: number("LEASE_SECONDS")
                .map(Duration::from_secs)
                .unwrap_or(defaults.lease),
            retention: number("RETENTION_DAYS")
                .map(|days| Duration::from_secs(days * 24 * 3600))
                .unwrap_or(defaults.retention),
        }
    }
}

/// Everything one provider's webhook function needs, built once per cold start.
pub struct Ingest {
    provider: Arc<dyn Provider>,
    tenants: TenantSource,
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
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
        store: Arc<dyn Store>,
        queue: Arc<dyn Queue>,
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
            store,
            queue,
            settings,
        }
    }

    pub fn provider(&self) -> &dyn Provider {
        self.provider.as_ref()
    }

    /// Handles one request; never fails: every outcome is an HTTP answer.
    pub async fn handle(&self, request: Request) -> Response<Body> {
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

    async fn ingest(&self, request: &Request, trail: &mut Trail) -> Result<Ack, IngestError> {
        let body: &[u8] = request.body().as_ref();
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

        let now = now_ms();
        let lease_until = now + self.settings.lease.as_millis() as i64;
        let record = Record {
            key: key.clone(),
            provider: self.provider.name().to_string(),
            tenant: tenant.id.clone(),
            event_type: event.event_type.clone(),
            entity_id: event.entity_id.clone(),
            // parse() accepted the body as JSON, so it is UTF-8.
            body: String::from_utf8_lossy(body).into_owned(),
            received_at_ms: now,
            status: Status::Received,
            lease_until_ms: lease_until,
            expires_at: (now / 1000) + self.settings.retention.as_secs() as i64,
            ..Record::default()
        };
        match self.store.put_new(&record).await.map_err(|error| {
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

        let message = QueueMessage {
            provider: record.provider,
            tenant: record.tenant,
            key: key.clone(),
            event_type: record.event_type,
            entity_id: record.entity_id,
        };
        if let Err(error) =
            outbox::enqueue(self.store.as_ref(), self.queue.as_ref(), &message).await
        {
            // Durably stored: the sweeper enqueues it once its (now released) lease is over.
            tracing::error!(key = %key, error = %error, "enqueue failed; the sweeper will enqueue the stored record");
            return Ok(Ack::Stored { key });
        }
        Ok(Ack::Accepted { key })
    }
}

/// Every provider posts JSON. A body declared as something else is refused; a request without
/// a content-type is read as JSON.
fn declares_json(request: &Request) -> bool {
    let Some(value) = request
        .headers()
        .get(lambda_http::http::header::CONTENT_TYPE)
    else {
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

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
