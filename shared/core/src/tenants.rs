//! Tenants and their webhook credentials: loaded once per cold start, looked up per request.
//!
//! Keys are found in O(1) through an index of their SHA-256 digests and then confirmed with a
//! constant-time comparison. A tenant may hold several valid secrets at once (rotation).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Notify;

use crate::clock::SharedClock;
use crate::config::TenantsSource;

/// A credential. Its `Debug` output never shows the value, so it cannot leak into a log line.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where and how the processor reads event details from the provider's API for a tenant.
/// Which fields a provider needs is its own business (`Provider::check_tenant`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiAccess {
    /// The API's origin, without a trailing path: `https://<studio>.open-api.magicline.com`,
    /// `https://mms.api.egym.com`, `https://api.timify.com`, `https://flybuy.radiusnetworks.com`,
    /// `https://api.waitwhile.com`. Only `https://`, except on loopback.
    pub base_url: String,
    /// The API key or token sent with every request (Magicline, EGYM, FlyBuy, Waitwhile).
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// App id and secret exchanged for an access token (TIMIFY).
    #[serde(default)]
    pub app_id: Option<String>,
    #[serde(default)]
    pub app_secret: Option<Secret>,
    /// The company the requests are about (TIMIFY's `company-id` header).
    #[serde(default)]
    pub company_id: Option<String>,
    /// Further companies an app installed for several (a TIMIFY enterprise account) may fetch
    /// for, when an authenticated delivery names one in its `companyId`.
    #[serde(default)]
    pub companies: Vec<String>,
    /// Send the access token bare instead of as `Bearer <token>` (TIMIFY's older API).
    #[serde(default)]
    pub bare_token: bool,
    /// Detail paths that replace the provider's defaults, by event family (where the
    /// documentation is unconfirmed); `{id}` stands for the entity id.
    #[serde(default)]
    pub paths: std::collections::BTreeMap<String, String>,
    /// The rate this tenant's API key may be called at, where it is not the provider's
    /// published one (or the provider publishes none).
    #[serde(default)]
    pub rate: Option<RateSetting>,
}

/// `{"calls": 60, "per_seconds": 10}`: at most 60 calls in any 10 seconds.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateSetting {
    pub calls: u32,
    pub per_seconds: u32,
}

impl RateSetting {
    pub fn rate(&self) -> crate::model::Rate {
        crate::model::Rate {
            calls: self.calls,
            per_ms: i64::from(self.per_seconds) * 1000,
        }
    }
}

/// How a signing key is written in the tenant document.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyEncoding {
    /// Not pinned: a signature made with the key's text or with its Base64-decoded bytes is
    /// accepted, and the delivery's facts say which (`signature_key`), so that the first real
    /// delivery tells which to pin (FlyBuy does not document it; FACTS.md §4).
    #[default]
    Either,
    /// The key's text is the key.
    Raw,
    /// The key is Base64; its decoded bytes are the key.
    Base64,
}

/// JSON pointers naming the fields of an envelope whose shape is not confirmed by the provider.
/// Unset ones take the provider's documented default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventPointers {
    pub delivery_id: Option<String>,
    pub event_type: Option<String>,
    pub object_id: Option<String>,
    pub updated_at: Option<String>,
}

/// What processing does with an event of a given name, where a tenant says (see
/// `Tenant::events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventAction {
    /// Fetch the booking the event is about.
    FetchBooking,
    /// Erase the person the event is about, everywhere.
    Erase,
    /// Keep the event as it came; fetch nothing.
    Store,
}

/// One tenant of one provider as configured (studio, gym, app, project, location).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tenant {
    pub id: String,
    /// Every webhook secret currently valid for this tenant (two or more during rotation).
    #[serde(default)]
    pub webhook_secrets: Vec<Secret>,
    /// Accept requests that carry no credential at all (only providers where auth is optional).
    #[serde(default)]
    pub allow_unauthenticated: bool,
    /// Name of the header carrying the secret, where the tenant chooses it.
    #[serde(default)]
    pub header: Option<String>,
    /// The public URL exactly as registered at the provider, where signatures cover it.
    #[serde(default)]
    pub url: Option<String>,
    /// The account the provider names in each delivery's envelope (Waitwhile's `accountId`):
    /// read before the signature is checked, so that only this tenant's secrets are tried
    /// for a request whose registered URL does not name its tenant (`?tenant=`).
    #[serde(default)]
    pub account_id: Option<String>,
    #[serde(default)]
    pub pointers: EventPointers,
    /// A key the provider signs each delivery with, where signing is optional and separate
    /// from the credential (FlyBuy's HMAC key); when set, the signature is required.
    #[serde(default)]
    pub signing_key: Option<Secret>,
    #[serde(default)]
    pub signing_key_encoding: KeyEncoding,
    /// Event name -> what processing does, over the provider's defaults, where the provider's
    /// event names are not confirmed (TIMIFY): a tenant whose deletion event is called
    /// `customer.deleted` maps it to `erase`.
    #[serde(default)]
    pub events: std::collections::BTreeMap<String, EventAction>,
    #[serde(default)]
    pub api: Option<ApiAccess>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantsDocument {
    pub tenants: Vec<Tenant>,
}

/// A tenant configuration that cannot be used. Its text names where the problem is (a JSON
/// path and position, a tenant id, a file), never a configured value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("tenant configuration is not valid: {0}")]
    Json(String),
    #[error("tenant configuration: {0}")]
    Invalid(String),
    #[error("tenant configuration could not be read: {0}")]
    Source(String),
    #[error(
        "no tenant configuration: set {0}TENANTS_JSON, {0}TENANTS_FILE or {0}TENANTS_SECRET_ID"
    )]
    NotConfigured(String),
}

impl ConfigError {
    /// Where a document went wrong, without quoting it: serde's own messages repeat the value
    /// they found ("invalid type: string \"…\""), which may be a secret.
    fn from_json(error: serde_path_to_error::Error<serde_json::Error>) -> ConfigError {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let what = match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                "not well-formed JSON".to_string()
            }
            serde_json::error::Category::Io => "could not be read".to_string(),
            serde_json::error::Category::Data => {
                let message = inner.to_string();
                without_values(message.split(" at line").next().unwrap_or_default())
            }
        };
        ConfigError::Json(format!(
            "{path}: {what} (line {}, column {})",
            inner.line(),
            inner.column()
        ))
    }
}

/// A deserializer's complaint with nothing of the document's values in it: what names only
/// keys (a missing, unknown — with the valid names — or repeated field) is kept; anything else
/// may quote the value it found, which may be a secret.
fn without_values(message: &str) -> String {
    let names_keys_only = ["missing field", "unknown field", "duplicate field"];
    if names_keys_only
        .iter()
        .any(|start| message.starts_with(start))
    {
        message.to_string()
    } else {
        "a value of the wrong type or form".to_string()
    }
}

/// One provider's tenants from a section of any self-describing document — the dev server's
/// TOML (`[[<provider>.tenants]]`) as much as a JSON tenants document — read with the same
/// rules: unknown keys refused with the valid names, every problem named by its path, never
/// by a value.
pub fn tenants_from_section<'de, D>(section: D) -> Result<Vec<Tenant>, ConfigError>
where
    D: serde::Deserializer<'de>,
    D::Error: std::fmt::Display,
{
    let document: TenantsDocument = serde_path_to_error::deserialize(section).map_err(|error| {
        let path = error.path().to_string();
        ConfigError::Json(format!(
            "{path}: {}",
            without_values(&error.into_inner().to_string())
        ))
    })?;
    Ok(document.tenants)
}

/// All tenants of one provider, indexed for constant-time-per-request lookup.
#[derive(Debug)]
pub struct TenantDirectory {
    tenants: Vec<Tenant>,
    by_id: HashMap<String, usize>,
    by_secret_digest: HashMap<[u8; 32], usize>,
    /// Distinct tenant-chosen header names, lower-case.
    header_names: Vec<String>,
    by_account: HashMap<String, usize>,
    /// Tenants with a registered URL that names no tenant and no `account_id`: nothing in a
    /// request tells them apart (see [`TenantDirectory::unnamed`]).
    unnamed: Vec<usize>,
}

impl TenantDirectory {
    pub fn from_json(json: &str) -> Result<Self, ConfigError> {
        let mut deserializer = serde_json::Deserializer::from_str(json);
        let document: TenantsDocument =
            serde_path_to_error::deserialize(&mut deserializer).map_err(ConfigError::from_json)?;
        Self::new(document.tenants)
    }

    pub fn new(mut tenants: Vec<Tenant>) -> Result<Self, ConfigError> {
        let mut by_id = HashMap::new();
        let mut by_secret_digest = HashMap::new();
        let mut header_names: Vec<String> = Vec::new();
        let mut by_account = HashMap::new();
        let mut unnamed = Vec::new();
        for (index, tenant) in tenants.iter_mut().enumerate() {
            // Every key of its records starts with it: too long, and DynamoDB refuses them all.
            if tenant.id.len() > crate::key::MAX_TENANT_ID_BYTES {
                return Err(ConfigError::Invalid(format!(
                    "tenant {} (counting from 1): its id is {} bytes long, over the {} allowed",
                    index + 1,
                    tenant.id.len(),
                    crate::key::MAX_TENANT_ID_BYTES
                )));
            }
            if tenant.id.is_empty() || tenant.id.contains('#') {
                return Err(ConfigError::Invalid(format!(
                    "tenant id {:?} must be non-empty and must not contain '#'",
                    tenant.id
                )));
            }
            if by_id.insert(tenant.id.clone(), index).is_some() {
                return Err(ConfigError::Invalid(format!(
                    "tenant id {:?} appears twice",
                    tenant.id
                )));
            }
            for secret in &tenant.webhook_secrets {
                if secret.expose().is_empty() {
                    return Err(ConfigError::Invalid(format!(
                        "tenant {:?} has an empty webhook secret",
                        tenant.id
                    )));
                }
                if let Some(other) = by_secret_digest.insert(digest(secret.expose()), index) {
                    if other != index {
                        return Err(ConfigError::Invalid(format!(
                            "tenants {:?} and {:?} share a webhook secret",
                            tenants_id(&by_id, other),
                            tenant.id
                        )));
                    }
                }
            }
            if let Some(header) = &mut tenant.header {
                *header = header.to_ascii_lowercase();
                if !header_names.contains(header) {
                    header_names.push(header.clone());
                }
            }
            match (&tenant.account_id, &tenant.url) {
                (Some(account), _) => {
                    if let Some(other) = by_account.insert(account.clone(), index) {
                        return Err(ConfigError::Invalid(format!(
                            "tenants {:?} and {:?} have the same account_id: register their URLs with ?tenant=<id> instead",
                            tenants_id(&by_id, other),
                            tenant.id
                        )));
                    }
                }
                (None, Some(url)) if !names_a_tenant(url) => unnamed.push(index),
                (None, _) => {}
            }
        }
        Ok(TenantDirectory {
            tenants,
            by_id,
            by_secret_digest,
            header_names,
            by_account,
            unnamed,
        })
    }

    /// A directory without tenants.
    pub fn empty() -> Self {
        TenantDirectory {
            tenants: Vec::new(),
            by_id: HashMap::new(),
            by_secret_digest: HashMap::new(),
            header_names: Vec::new(),
            by_account: HashMap::new(),
            unnamed: Vec::new(),
        }
    }

    pub fn get(&self, id: &str) -> Option<&Tenant> {
        self.by_id.get(id).map(|&index| &self.tenants[index])
    }

    pub fn iter(&self) -> impl Iterator<Item = &Tenant> {
        self.tenants.iter()
    }

    /// These tenants with their API access from a document of its own (the processor's
    /// `<PROVIDER>_API_SECRET_ID`, which the webhook functions cannot read):
    /// `{"tenants": [{"id": "<tenant>", "api": {…}}]}`. An entry replaces the tenant's `api`
    /// (one still in the tenants document, from before the split, is used otherwise); one
    /// naming no tenant of the tenants document is an error, named by its place.
    pub fn with_api(self, json: &str) -> Result<TenantDirectory, ConfigError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Entry {
            id: String,
            api: ApiAccess,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Document {
            tenants: Vec<Entry>,
        }
        let mut deserializer = serde_json::Deserializer::from_str(json);
        let document: Document =
            serde_path_to_error::deserialize(&mut deserializer).map_err(ConfigError::from_json)?;
        let mut tenants = self.tenants;
        for (place, entry) in document.tenants.into_iter().enumerate() {
            let tenant = tenants
                .iter_mut()
                .find(|t| t.id == entry.id)
                .ok_or_else(|| {
                    ConfigError::Invalid(format!(
                    "API access document: tenants[{place}] names no tenant of the tenants document"
                ))
                })?;
            tenant.api = Some(entry.api);
        }
        TenantDirectory::new(tenants)
    }

    pub fn len(&self) -> usize {
        self.tenants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tenants.is_empty()
    }

    /// The tenant owning this presented secret, if any. The digest index finds the candidate;
    /// a constant-time comparison against each of its secrets confirms it.
    pub fn by_secret(&self, presented: &[u8]) -> Option<&Tenant> {
        let tenant = &self.tenants[*self.by_secret_digest.get(&digest_bytes(presented))?];
        let matched = tenant
            .webhook_secrets
            .iter()
            .fold(subtle::Choice::from(0), |found, secret| {
                found | secret.expose().as_bytes().ct_eq(presented)
            });
        bool::from(matched).then_some(tenant)
    }

    /// The tenant whose `account_id` is `account`.
    pub fn by_account(&self, account: &str) -> Option<&Tenant> {
        self.by_account
            .get(account)
            .map(|&index| &self.tenants[index])
    }

    /// Tenants whose registered URL names no tenant (`?tenant=`) and who have no
    /// `account_id`: a signed request naming neither can only be tried against each of them,
    /// so a provider that signs URLs allows one at most (`providers::check_tenants`).
    pub fn unnamed(&self) -> impl Iterator<Item = &Tenant> {
        self.unnamed.iter().map(|&index| &self.tenants[index])
    }

    /// The distinct header names tenants chose for their secret, lower-case.
    pub fn header_names(&self) -> &[String] {
        &self.header_names
    }

    /// The tenant that accepts requests without credentials: the one named (by the registered
    /// URL's `?tenant=`), else the only one configured so, since nothing else tells them apart.
    pub fn unauthenticated(&self, named: Option<&str>) -> Option<&Tenant> {
        if let Some(id) = named {
            return self.get(id).filter(|tenant| tenant.allow_unauthenticated);
        }
        let mut open = self.open_tenants();
        let first = open.next()?;
        open.next().is_none().then_some(first)
    }

    /// Tenants allowing unauthenticated requests, so start-up can warn about each.
    pub fn open_tenants(&self) -> impl Iterator<Item = &Tenant> {
        self.tenants.iter().filter(|t| t.allow_unauthenticated)
    }
}

/// True if a registered URL's query names its tenant (`?tenant=<id>`), as requests to it will.
pub fn names_a_tenant(url: &str) -> bool {
    url.split_once('?')
        .is_some_and(|(_, query)| query.split('&').any(|pair| pair.starts_with("tenant=")))
}

fn tenants_id(by_id: &HashMap<String, usize>, index: usize) -> String {
    by_id
        .iter()
        .find(|(_, &i)| i == index)
        .map(|(id, _)| id.clone())
        .unwrap_or_default()
}

fn digest(value: &str) -> [u8; 32] {
    digest_bytes(value.as_bytes())
}

fn digest_bytes(value: &[u8]) -> [u8; 32] {
    Sha256::digest(value).into()
}

/// Reloads a tenant directory (from wherever the entry point reads it).
pub type Loader = Arc<
    dyn Fn() -> futures::future::BoxFuture<'static, Result<TenantDirectory, ConfigError>>
        + Send
        + Sync,
>;

/// The tenants a function works with now. A refreshing source reloads them in the background
/// once they are older than its TTL, so that a rotated key reaches warm functions within the
/// TTL rather than at their next cold start; a failed reload keeps the last good directory.
#[derive(Clone)]
pub struct TenantSource {
    inner: Arc<SourceInner>,
}

struct SourceInner {
    current: RwLock<Arc<TenantDirectory>>,
    loaded_at_ms: AtomicI64,
    refreshing: AtomicBool,
    settled: Notify,
    refresh: Option<Refresh>,
}

struct Refresh {
    ttl: Duration,
    loader: Loader,
    clock: SharedClock,
}

impl TenantSource {
    pub fn fixed(directory: TenantDirectory) -> Self {
        Self::build(directory, None, 0)
    }

    pub fn refreshing(
        directory: TenantDirectory,
        ttl: Duration,
        loader: Loader,
        clock: SharedClock,
    ) -> Self {
        let now = clock.now_ms();
        Self::build(directory, Some(Refresh { ttl, loader, clock }), now)
    }

    /// No tenants until `loader` succeeds: the first look starts a load, and a failed one is
    /// tried again after [`RETRY_FAILED_LOAD`]. For the processor, where one provider's broken
    /// document must hold back only that provider's events, which wait and retry meanwhile.
    pub fn loading(ttl: Duration, loader: Loader, clock: SharedClock) -> Self {
        let never = i64::MIN / 2;
        Self::build(
            TenantDirectory::empty(),
            Some(Refresh { ttl, loader, clock }),
            never,
        )
    }

    fn build(directory: TenantDirectory, refresh: Option<Refresh>, now_ms: i64) -> Self {
        TenantSource {
            inner: Arc::new(SourceInner {
                current: RwLock::new(Arc::new(directory)),
                loaded_at_ms: AtomicI64::new(now_ms),
                refreshing: AtomicBool::new(false),
                settled: Notify::new(),
                refresh,
            }),
        }
    }

    /// The current directory; starts a background reload when it is older than the TTL.
    pub fn current(&self) -> Arc<TenantDirectory> {
        let directory = Arc::clone(&self.inner.current.read().unwrap_or_else(|e| e.into_inner()));
        if let Some(refresh) = &self.inner.refresh {
            let age = refresh.clock.now_ms() - self.inner.loaded_at_ms.load(Ordering::Acquire);
            let stale = age >= refresh.ttl.as_millis() as i64;
            if stale && !self.inner.refreshing.swap(true, Ordering::AcqRel) {
                let inner = Arc::clone(&self.inner);
                let load = (refresh.loader)();
                tokio::spawn(async move { inner.reload(load).await });
            }
        }
        directory
    }

    /// Returns once no reload is under way (for tests and orderly shutdowns).
    pub async fn settled(&self) {
        loop {
            let notified = self.inner.settled.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.inner.refreshing.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }
}

impl SourceInner {
    async fn reload(
        &self,
        load: futures::future::BoxFuture<'static, Result<TenantDirectory, ConfigError>>,
    ) {
        match load.await {
            Ok(fresh) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
                tracing::info!("tenant configuration reloaded");
            }
            Err(error) => {
                tracing::error!(error = %error, "tenant reload failed; keeping the last good configuration");
                if let Some(refresh) = &self.refresh {
                    // Looked at again after RETRY_FAILED_LOAD rather than a whole TTL.
                    let retry = refresh.ttl.saturating_sub(RETRY_FAILED_LOAD);
                    self.loaded_at_ms.store(
                        refresh.clock.now_ms() - retry.as_millis() as i64,
                        Ordering::Release,
                    );
                }
                self.refreshing.store(false, Ordering::Release);
                self.settled.notify_waiters();
                return;
            }
        }
        if let Some(refresh) = &self.refresh {
            self.loaded_at_ms
                .store(refresh.clock.now_ms(), Ordering::Release);
        }
        self.refreshing.store(false, Ordering::Release);
        self.settled.notify_waiters();
    }
}

/// How soon a failed load is tried again.
pub const RETRY_FAILED_LOAD: Duration = Duration::from_secs(30);

impl From<TenantDirectory> for TenantSource {
    fn from(directory: TenantDirectory) -> Self {
        TenantSource::fixed(directory)
    }
}

/// Where a secret named by `TENANTS_SECRET_ID` is read (AWS Secrets Manager in the Lambdas).
#[async_trait::async_trait]
pub trait SecretReader: Send + Sync {
    /// The secret's string value; the error says why not, without the value.
    async fn read(&self, secret_id: &str) -> Result<String, String>;
}

/// No secret store: a `TENANTS_SECRET_ID` is a configuration error (the dev server, tests).
pub struct NoSecrets;

#[async_trait::async_trait]
impl SecretReader for NoSecrets {
    async fn read(&self, secret_id: &str) -> Result<String, String> {
        Err(format!(
            "secret {secret_id}: no secret store here; use TENANTS_JSON or TENANTS_FILE"
        ))
    }
}

/// Reads a tenants document from where `source` says.
pub async fn load(
    source: &TenantsSource,
    secrets: &dyn SecretReader,
) -> Result<TenantDirectory, ConfigError> {
    match source {
        TenantsSource::Json(json) => TenantDirectory::from_json(json),
        TenantsSource::File(path) => {
            let json = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::Source(format!("{path}: {}", e.kind())))?;
            TenantDirectory::from_json(&json)
        }
        TenantsSource::Secret(id) => {
            let json = secrets.read(id).await.map_err(ConfigError::Source)?;
            TenantDirectory::from_json(&json)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A JSON tenants document with a misspelt key is refused with its path and the valid
    /// names, and without the value under it.
    #[test]
    fn an_unknown_key_is_refused_with_its_path_and_the_valid_names() {
        let json = r#"{"tenants": [{"id": "a", "webhook_secret": ["s3cr3t-json"]}]}"#;
        let error = TenantDirectory::from_json(json).unwrap_err().to_string();
        assert!(
            error.contains("tenants[0]")
                && error.contains("unknown field `webhook_secret`")
                && error.contains("webhook_secrets"),
            "{error}"
        );
        assert!(!error.contains("s3cr3t-json"), "{error}");
    }

    #[tokio::test]
    async fn a_refreshing_source_picks_up_a_rotated_key_after_its_ttl() {
        let version = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&version);
        let loader: Loader = Arc::new(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                TenantDirectory::from_json(&format!(
                    r#"{{"tenants": [{{"id": "s", "webhook_secrets": ["key-{n}"]}}]}}"#
                ))
            })
        });
        let first = TenantDirectory::from_json(
            r#"{"tenants": [{"id": "s", "webhook_secrets": ["key-start"]}]}"#,
        )
        .unwrap();
        let clock = crate::clock::ManualClock::now();
        let source =
            TenantSource::refreshing(first, Duration::from_secs(300), loader, clock.clone());
        assert!(source.current().by_secret(b"key-start").is_some());
        clock.advance(Duration::from_secs(299));
        let _ = source.current();
        source.settled().await;
        assert_eq!(version.load(Ordering::SeqCst), 0, "not stale yet");
        clock.advance(Duration::from_secs(1));
        let _ = source.current(); // stale: reload starts in the background
        source.settled().await;
        assert!(source.current().by_secret(b"key-0").is_some());
        assert!(source.current().by_secret(b"key-start").is_none());
        assert_eq!(version.load(Ordering::SeqCst), 1, "one reload per TTL");
    }

    fn directory() -> TenantDirectory {
        TenantDirectory::from_json(
            r#"{"tenants": [
                {"id": "studio-1", "webhook_secrets": ["old-key-1", "new-key-1"]},
                {"id": "studio-2", "webhook_secrets": ["key-2"]},
                {"id": "app-3", "webhook_secrets": ["key-3"], "header": "X-Custom-Auth"},
                {"id": "open", "allow_unauthenticated": true}
            ]}"#,
        )
        .unwrap()
    }

    #[test]
    fn finds_the_tenant_of_each_valid_secret_during_rotation() {
        let tenants = directory();
        assert_eq!(tenants.by_secret(b"old-key-1").unwrap().id, "studio-1");
        assert_eq!(tenants.by_secret(b"new-key-1").unwrap().id, "studio-1");
        assert_eq!(tenants.by_secret(b"key-2").unwrap().id, "studio-2");
    }

    #[test]
    fn refuses_unknown_partial_and_padded_secrets() {
        let tenants = directory();
        for presented in [&b"key-"[..], b"key-22", b" key-2", b"KEY-2", b""] {
            assert!(tenants.by_secret(presented).is_none(), "{presented:?}");
        }
    }

    #[test]
    fn one_open_tenant_is_found_two_are_ambiguous() {
        assert_eq!(directory().unauthenticated(None).unwrap().id, "open");
        assert_eq!(
            directory().unauthenticated(Some("open")).unwrap().id,
            "open"
        );
        assert!(directory().unauthenticated(Some("studio-1")).is_none());
        let two = TenantDirectory::from_json(
            r#"{"tenants": [{"id": "a", "allow_unauthenticated": true}, {"id": "b", "allow_unauthenticated": true}]}"#,
        )
        .unwrap();
        assert!(two.unauthenticated(None).is_none());
        assert_eq!(two.unauthenticated(Some("b")).unwrap().id, "b");
    }

    #[test]
    fn rejects_shared_secrets_duplicate_ids_and_bad_ids() {
        for json in [
            r#"{"tenants": [{"id": "a", "webhook_secrets": ["s"]}, {"id": "b", "webhook_secrets": ["s"]}]}"#,
            r#"{"tenants": [{"id": "a"}, {"id": "a"}]}"#,
            r#"{"tenants": [{"id": "a#b"}]}"#,
            r#"{"tenants": [{"id": "a", "webhook_secrets": [""]}]}"#,
        ] {
            assert!(TenantDirectory::from_json(json).is_err(), "{json}");
        }
    }

    #[test]
    fn debug_output_hides_secrets() {
        let printed = format!("{:?}", directory());
        assert!(!printed.contains("key-2"));
        assert!(printed.contains("Secret(***)"));
    }

    #[test]
    fn a_broken_document_is_located_without_quoting_its_values() {
        for (json, path) in [
            (
                r#"{"tenants": [{"id": "a", "webhook_secrets": "sekrit-value-1"}]}"#,
                "tenants[0].webhook_secrets",
            ),
            (
                r#"{"tenants": [{"id": "a", "webhook_secrets": [42]}, {"id": 7}]}"#,
                "tenants[0].webhook_secrets[0]",
            ),
            (
                r#"{"tenants": [{"id": "a", "api": {"base_url": "x", "api_key": ["sekrit-value-2"]}}]}"#,
                "tenants[0].api.api_key",
            ),
            (
                r#"{"tenants": [{"webhook_secrets": ["sekrit-value-3"]}]}"#,
                "tenants[0]",
            ),
            (r#"{"tenants": [{"id": "sekrit-value-4"#, "tenants[0].id"),
        ] {
            let error = TenantDirectory::from_json(json).unwrap_err().to_string();
            assert!(error.contains(path), "{error} should name {path}");
            assert!(error.contains("line 1"), "{error} should give the position");
            assert!(!error.contains("sekrit"), "{error} quotes a value");
        }
    }

    #[tokio::test]
    async fn a_source_that_fails_to_load_has_no_tenants_and_tries_again_soon() {
        let attempts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&attempts);
        let loader: Loader = Arc::new(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                if n == 0 {
                    TenantDirectory::from_json("{broken")
                } else {
                    TenantDirectory::from_json(r#"{"tenants": [{"id": "s"}]}"#)
                }
            })
        });
        let clock = crate::clock::ManualClock::now();
        let source = TenantSource::loading(Duration::from_secs(300), loader, clock.clone());
        assert!(source.current().is_empty(), "nothing until a load succeeds");
        source.settled().await;
        assert!(source.current().is_empty(), "the first load failed");
        source.settled().await;
        assert_eq!(attempts.load(Ordering::SeqCst), 1, "not again at once");
        clock.advance(RETRY_FAILED_LOAD);
        let _ = source.current();
        source.settled().await;
        assert!(source.current().get("s").is_some());
        assert_eq!(attempts.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn api_access_comes_from_a_document_of_its_own() {
        let tenants = TenantDirectory::from_json(
            r#"{"tenants": [{"id": "a", "webhook_secrets": ["sa"]},
                            {"id": "b", "webhook_secrets": ["sb"], "api": {"base_url": "https://b.test", "api_key": "old-b"}}]}"#,
        )
        .unwrap();
        let merged = tenants
            .with_api(r#"{"tenants": [{"id": "a", "api": {"base_url": "https://a.test", "api_key": "key-a"}}]}"#)
            .unwrap();
        let api = |id: &str| merged.get(id).unwrap().api.clone().unwrap();
        assert_eq!(api("a").base_url, "https://a.test");
        assert!(
            api("b").api_key.is_some(),
            "one left in the tenants document still counts"
        );
        assert!(
            merged.by_secret(b"sa").is_some(),
            "the webhook side is kept"
        );
        let nobody = TenantDirectory::from_json(r#"{"tenants": [{"id": "a"}]}"#)
            .unwrap()
            .with_api(r#"{"tenants": [{"id": "z", "api": {"base_url": "https://z.test", "api_key": "secret-z"}}]}"#)
            .unwrap_err()
            .to_string();
        assert!(
            nobody.contains("tenants[0]") && !nobody.contains("secret-z"),
            "{nobody}"
        );
        let unknown = TenantDirectory::from_json(r#"{"tenants": [{"id": "a"}]}"#)
            .unwrap()
            .with_api(r#"{"tenants": [{"id": "a", "webhook_secrets": ["x"]}]}"#)
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("tenants[0]"), "{unknown}");
    }

    #[test]
    fn tenants_are_found_by_their_account_which_only_one_may_hold() {
        let tenants = TenantDirectory::from_json(
            r#"{"tenants": [
                {"id": "a", "url": "https://h/w", "account_id": "acc-a", "webhook_secrets": ["sa"]},
                {"id": "b", "url": "https://h/w?x=1&tenant=b", "webhook_secrets": ["sb"]},
                {"id": "c", "url": "https://h/w?x=1", "webhook_secrets": ["sc"]}
            ]}"#,
        )
        .unwrap();
        assert_eq!(tenants.by_account("acc-a").unwrap().id, "a");
        assert!(tenants.by_account("acc-b").is_none());
        let unnamed: Vec<&str> = tenants.unnamed().map(|t| t.id.as_str()).collect();
        assert_eq!(unnamed, ["c"]);
        let error = TenantDirectory::from_json(
            r#"{"tenants": [{"id": "a", "account_id": "acc-dup"}, {"id": "b", "account_id": "acc-dup"}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("account_id") && !error.contains("acc-dup"),
            "{error}"
        );
    }
}
