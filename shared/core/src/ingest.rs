//! The ingest path of one webhook request:
//! limit -> method -> verify -> parse (or quarantine) -> dedupe -> store (or spill to the
//! queue) -> enqueue -> answer.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use http::Method;

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::clock::after;
pub use crate::config::IngestSettings;
use crate::key::{key_of, subject_of};
use crate::metrics::{About, LogLines, Metrics, WebhookLine};
use crate::model::{PutOutcome, QueueMessage, Record, Status, BASE64_BODY_FACTS, MAX_ITEM_BYTES};
use crate::ports::{Ports, StoreError};
use crate::providers::Provider;
use crate::response::{Ack, IngestError};
use crate::tenants::{Tenant, TenantSource};
use crate::verify::{authenticate, replay_refusal};
use crate::{WebhookRequest, WebhookResponse};

/// Everything one provider's webhook function needs, built once per cold start.
pub struct Ingest {
    provider: Arc<dyn Provider>,
    tenants: TenantSource,
    ports: Ports,
    settings: IngestSettings,
    metrics: Arc<dyn Metrics>,
}

/// What the log line of one request says besides the outcome.
#[derive(Default)]
struct Trail {
    tenant: Option<String>,
    event_type: Option<String>,
    key: Option<String>,
    trace_id: Option<String>,
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
            metrics: Arc::new(LogLines),
        }
    }

    /// Writes every answer down in `metrics` (a log line apiece unless told otherwise).
    pub fn with_metrics(mut self, metrics: Arc<dyn Metrics>) -> Self {
        self.metrics = metrics;
        self
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
        self.metrics.webhook(&WebhookLine {
            about: About {
                provider: self.provider.name(),
                tenant: trail.tenant.as_deref().unwrap_or("-"),
                event_type: trail.event_type.as_deref().unwrap_or("-"),
                key: trail.key.as_deref().unwrap_or("-"),
                trace_id: trail.trace_id.as_deref().unwrap_or("-"),
            },
            outcome,
            status: response.status().as_u16(),
            latency: started.elapsed(),
        });
        response
    }

    async fn ingest(
        &self,
        request: &WebhookRequest,
        trail: &mut Trail,
    ) -> Result<Ack, IngestError> {
        let deadlines = Deadlines::from_now(&self.settings);
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
        let auth = self.provider.auth();
        let verified = authenticate(&auth, request, &tenants).ok_or(IngestError::Unauthorized)?;
        // An authentic copy whose signed time is outside the window could be a replay after its
        // record is gone: refused as proving nothing now (401, nothing kept) — a sender that
        // signs a time retries for days, never for the weeks of the retention period.
        let now = self.ports.clock.now_ms();
        if let Some(why) = replay_refusal(
            &auth,
            verified.tenant,
            request,
            now,
            self.settings.retention,
        ) {
            tracing::warn!(tenant = %verified.tenant.id, "delivery refused as a replay: {why}");
            return Err(IngestError::Unauthorized);
        }
        trail.tenant = Some(verified.tenant.id.clone());
        // Authentic from here on: whatever the body is, it is kept.
        let delivery = Delivery {
            provider: self.provider.as_ref(),
            tenant: verified.tenant,
            body,
            declared_json: declares_json(request),
            unauthenticated: !verified.with_credential,
            signature_key: verified.signature_key,
        };
        let mut record = delivery.record(now, &self.settings);
        record.trace_id = Some(crate::trace::of_request(request, now));
        record.trace_parent = crate::trace::parent_of_request(request);
        trail.trace_id = record.trace_id.clone();
        trail.event_type = Some(record.event_type.clone());
        trail.key = Some(record.key.clone());
        if record.item_size() > MAX_ITEM_BYTES {
            return Err(IngestError::PayloadTooLarge {
                limit: self.settings.max_body_bytes.min(MAX_ITEM_BYTES),
            });
        }
        if record.status == Status::Quarantined {
            return self.quarantine(&record, deadlines).await;
        }
        record.lease_until_ms = after(now, self.settings.lease);
        self.store_and_enqueue(&record, deadlines).await
    }

    async fn quarantine(&self, record: &Record, deadlines: Deadlines) -> Result<Ack, IngestError> {
        let reason = record.last_error.clone().unwrap_or_default();
        tracing::warn!(key = %record.key, reason = %reason, "authentic delivery quarantined");
        match self.put(record, deadlines).await {
            Ok(_) => Ok(Ack::Quarantined {
                key: record.key.clone(),
                reason,
            }),
            Err(error) => self.spill(record, error, deadlines).await,
        }
    }

    /// The conditional put, abandoned at the store's deadline as an outage. An abandoned put
    /// may still have been carried out: its record (`RECEIVED` under its lease, or quarantined)
    /// is then there when the processor's put of the spilled delivery comes, which finds it, and
    /// the claim takes it: counted once. Were the spill to fail too, the sweeper sends it once
    /// the lease is over and the provider's retry is a duplicate.
    async fn put(&self, record: &Record, deadlines: Deadlines) -> Result<PutOutcome, StoreError> {
        within(deadlines.store, self.ports.store.put_new(record))
            .await
            .unwrap_or_else(|| {
                Err(StoreError::Unavailable(
                    "no answer within the store's share of the ack budget".into(),
                ))
            })
    }

    async fn store_and_enqueue(
        &self,
        record: &Record,
        deadlines: Deadlines,
    ) -> Result<Ack, IngestError> {
        let key = record.key.clone();
        match self.put(record, deadlines).await {
            Err(error) => return self.spill(record, error, deadlines).await,
            Ok(PutOutcome::Created) => {}
            // Stored before: its first delivery sent the message, or the sweeper sends it once
            // that delivery's lease is over. Either way the promise of a 2xx holds, and only
            // the sweeper re-sends, so copies never multiply messages.
            Ok(PutOutcome::Exists(_)) => return Ok(Ack::Duplicate { key }),
        }
        match within(
            deadlines.answer,
            self.ports.outbox.send_fresh(&record.message()),
        )
        .await
        {
            Some(Ok(())) => Ok(Ack::Accepted { key }),
            // Durably stored: the sweeper enqueues it once its (now released) lease is over.
            Some(Err(error)) => {
                tracing::error!(key = %key, error = %error, "enqueue failed; the sweeper will enqueue the stored record");
                Ok(Ack::Stored { key })
            }
            // Sent or not, stored: the sweeper sends it once the lease is over unless a
            // processor has claimed it by then.
            None => {
                tracing::error!(key = %key, "enqueue did not answer within the ack budget; the sweeper will enqueue the stored record once its lease is over");
                Ok(Ack::Stored { key })
            }
        }
    }

    /// The store did not take the record: a refusal is the sender's answer; an outage sends
    /// the whole delivery to the queue instead, for the processor to store.
    async fn spill(
        &self,
        record: &Record,
        error: StoreError,
        deadlines: Deadlines,
    ) -> Result<Ack, IngestError> {
        let key = record.key.clone();
        if let StoreError::Rejected(reason) = &error {
            tracing::error!(key = %key, error = %reason, "store refused the record");
            return Err(IngestError::Unstorable);
        }
        tracing::error!(key = %key, error = %error, "store write failed; spilling the delivery to the queue");
        let mut message = record.spill();
        // Sealed with the tenant's webhook secret (a tenant without one, whose deliveries need
        // no credential, makes spills that can erase nothing anyway).
        let tenants = self.tenants.current();
        if let Some(secret) = tenants
            .get(&record.tenant)
            .and_then(|tenant| tenant.webhook_secrets.first())
        {
            message.seal(secret.expose());
        }
        if spill_size(&message) > MAX_SPILL_BYTES {
            return Err(IngestError::Unavailable);
        }
        match within(deadlines.answer, self.ports.queue.send(&message)).await {
            Some(Ok(())) => Ok(Ack::Spilled { key }),
            Some(Err(error)) => {
                tracing::error!(key = %key, error = %error, "spill failed: store and queue both unavailable");
                Err(IngestError::Unavailable)
            }
            // Sent or not, the provider retries: a copy of a spilled message is counted once.
            None => {
                tracing::error!(key = %key, "spill did not answer within the ack budget: store and queue both unavailable");
                Err(IngestError::Unavailable)
            }
        }
    }
}

/// When the calls of one request's write path are abandoned, from its start: the put at the
/// store's budget, the call after it at the whole ack budget ([`IngestSettings::ack_budget`]);
/// never without one.
#[derive(Clone, Copy)]
struct Deadlines {
    store: Option<tokio::time::Instant>,
    answer: Option<tokio::time::Instant>,
}

impl Deadlines {
    fn from_now(settings: &IngestSettings) -> Self {
        let start = tokio::time::Instant::now();
        Deadlines {
            store: settings.store_budget().map(|budget| start + budget),
            answer: settings.ack_budget.map(|budget| start + budget),
        }
    }
}

/// The output of `call` if it comes by `deadline`; else the call is dropped, unfinished.
async fn within<T>(
    deadline: Option<tokio::time::Instant>,
    call: impl Future<Output = T>,
) -> Option<T> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, call).await.ok(),
        None => Some(call.await),
    }
}

/// SQS takes messages up to 1 MiB (the template sets `MaximumMessageSize`).
const MAX_SPILL_BYTES: usize = 1024 * 1024;

fn spill_size(message: &QueueMessage) -> usize {
    serde_json::to_vec(message).map_or(usize::MAX, |body| body.len())
}

/// Which form of the signing key signed a stored delivery, as its facts say.
pub fn signature_key_of(record: &Record) -> Option<&'static str> {
    let facts: serde_json::Value = serde_json::from_str(record.facts.as_deref()?).ok()?;
    ["raw", "base64"]
        .into_iter()
        .find(|form| facts["signature_key"] == *form)
}

/// An authentic delivery of one provider's tenant.
pub struct Delivery<'a> {
    pub provider: &'a dyn Provider,
    pub tenant: &'a Tenant,
    pub body: &'a [u8],
    /// The request declared a JSON body (or none at all).
    pub declared_json: bool,
    /// It carried no credential (its tenant allows that).
    pub unauthenticated: bool,
    /// Which form of the tenant's signing key made its signature, where the tenant asks for
    /// one: kept with the record's facts (`signature_key`) for the key's encoding to be pinned.
    pub signature_key: Option<&'static str>,
}

impl Delivery<'_> {
    /// The record's facts: the provider's, and which form of the signing key signed it.
    fn facts(&self, mut facts: serde_json::Map<String, serde_json::Value>) -> Option<String> {
        if let Some(form) = self.signature_key {
            facts.insert("signature_key".into(), form.into());
        }
        (!facts.is_empty()).then(|| serde_json::Value::Object(facts).to_string())
    }

    /// The record to store: under its dedup key, or quarantined under the hash of its body
    /// when the provider's parser cannot read it.
    pub fn record(&self, now: i64, settings: &IngestSettings) -> Record {
        let name = self.provider.name();
        let parsed = if self.declared_json {
            self.provider.parse(self.tenant, self.body)
        } else {
            Err(IngestError::UnsupportedMediaType)
        };
        let base = Record {
            provider: name.to_string(),
            tenant: self.tenant.id.clone(),
            received_at_ms: now,
            expires_at: settings.expires_at(now),
            unauthenticated: self.unauthenticated,
            ..Record::default()
        };
        match parsed {
            Ok(event) => Record {
                key: key_of(name, &self.tenant.id, &event.dedup_suffix),
                subject: subject_of(name, &self.tenant.id, &event.subject),
                facts: self.facts(event.facts.unwrap_or_default()),
                event_type: event.event_type,
                entity_id: event.entity_id,
                // parse() accepted the body as JSON, so it is UTF-8.
                body: String::from_utf8_lossy(self.body).into_owned(),
                status: Status::Received,
                ..base
            },
            Err(error) => {
                let (body, facts) = match std::str::from_utf8(self.body) {
                    Ok(text) => (
                        text.to_string(),
                        None::<serde_json::Map<String, serde_json::Value>>,
                    ),
                    Err(_) => (
                        base64::engine::general_purpose::STANDARD.encode(self.body),
                        serde_json::from_str(BASE64_BODY_FACTS).ok(),
                    ),
                };
                let facts = self.facts(facts.unwrap_or_default());
                Record {
                    key: crate::key::key_of(
                        name,
                        &self.tenant.id,
                        &format!("quarantine#{}", hex::encode(Sha256::digest(self.body))),
                    ),
                    body,
                    facts,
                    status: Status::Quarantined,
                    last_error: Some(error.to_string()),
                    ..base
                }
            }
        }
    }
}

/// Every provider posts JSON. An authentic body declared as something else is quarantined; a
/// request without a content-type is read as JSON.
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
