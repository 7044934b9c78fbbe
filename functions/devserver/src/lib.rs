//! The local dev server: every provider's webhook handler at `POST /webhooks/<provider>`
//! (the very `Ingest` core the Lambdas run, called directly with the request's bytes),
//! processor workers polling the embedded queue (the very `Processor` the processing Lambda
//! runs), a sandbox of the provider APIs, and `/_dev/events` to see what happened. No AWS, no
//! Docker.
//!
//! Two listeners: the webhook one (the address to expose through a tunnel) serves nothing but
//! `POST /webhooks/<provider>`; the admin one, on loopback only, serves the index, the event
//! pages (`/events`, see [`pages`]), `/_dev/…` (raw bodies and fetched customer data, without
//! authentication) and the sandbox, which only the server's own processor calls.
//!
//! With a `[downstream] url = "…"` section in the configuration, every processed or erased
//! event is also POSTed there, in EventBridge's shape (see [`downstream`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use adapter_sqlite::{Database, SqliteQueue};
use axum::body::{to_bytes, Body};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use webhook_core::clock::SharedClock;
use webhook_core::fetch::DetailClient;
use webhook_core::model::Record;
use webhook_core::operate::Operations;
use webhook_core::outbox::Sweeper;
use webhook_core::ports::{Ports, QueueConsumer};
use webhook_core::process::{Processor, ProcessorSettings, ProviderTenants};
use webhook_core::reconcile::Reconciler;
use webhook_core::tenants::{ConfigError, Tenant, TenantDirectory, TenantSource};
use webhook_core::{Ingest, IngestSettings, WebhookRequest};

mod contract;
pub mod downstream;
mod html;
mod pages;
pub mod sandbox;
pub mod send;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Requests over this are refused before the handler sees them, as API Gateway does (10 MB).
const MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;

/// Where `{sandbox}` in the configuration's base URLs points: this server's own sandbox API.
pub const SANDBOX_PLACEHOLDER: &str = "{sandbox}";

#[derive(Debug, Clone)]
pub struct Options {
    /// Where the webhooks are served (`POST /webhooks/<provider>` and nothing else).
    pub listen: SocketAddr,
    /// Where the admin routes (the index, the `/events` pages, `/_dev/…`) and the provider-API
    /// sandbox are served; must be a loopback address.
    pub admin_listen: SocketAddr,
    pub config: PathBuf,
    pub data: PathBuf,
    pub workers: usize,
    /// How long a received message stays hidden (the queue's visibility timeout).
    pub visibility: Duration,
    /// The receive after which a message goes to the dead letters.
    pub max_receives: u32,
    /// First wait before a failed attempt is tried again, doubled per attempt.
    pub retry_backoff: Duration,
    /// How often an idle worker looks at the queue.
    pub poll_interval: Duration,
    /// How often the outbox sweeper looks for stored events that never reached the queue.
    pub sweep_interval: Duration,
    /// The clock of the store, the queue and the leases (tests may move it by hand).
    pub clock: SharedClock,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            config: PathBuf::from("devserver.toml"),
            data: PathBuf::from("devserver.db"),
            workers: 2,
            visibility: Duration::from_secs(30),
            max_receives: ProcessorSettings::default().max_receives,
            retry_backoff: ProcessorSettings::default().retry_backoff,
            poll_interval: Duration::from_millis(100),
            sweep_interval: Duration::from_secs(5),
            clock: webhook_core::clock::system(),
        }
    }
}

/// Tenants of every provider, read from the TOML configuration (one table per provider; an
/// optional `[downstream]` table is read by [`parse_config`]).
pub fn load_config(text: &str, sandbox_base: &str) -> Result<HashMap<String, Vec<Tenant>>, Error> {
    Ok(parse_config(text, sandbox_base)?.providers)
}

/// The whole configuration file.
#[derive(Debug)]
pub struct Config {
    /// Tenants of every provider named.
    pub providers: HashMap<String, Vec<Tenant>>,
    /// Where processed and erased events are POSTed, if anywhere.
    pub downstream: Option<DownstreamConfig>,
}

/// `[downstream]`: where the processor publishes every event it finishes as `PROCESSED`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DownstreamConfig {
    /// `http://…` or `https://…`; receives `POST`s of `{"source", "detail-type", "detail"}`.
    pub url: String,
}

/// The TOML configuration: one table per provider, with its tenants, and an optional
/// `[downstream]` table.
pub fn parse_config(text: &str, sandbox_base: &str) -> Result<Config, Error> {
    let text = text.replace(SANDBOX_PLACEHOLDER, sandbox_base);
    let mut table = toml_table(&text)?;
    let downstream = match table.remove("downstream") {
        None => None,
        Some(section) => {
            let section: DownstreamConfig = section
                .try_into()
                .map_err(|e| format!("[downstream]: {e}"))?;
            downstream::check_url(&section.url).map_err(|e| format!("[downstream] url: {e}"))?;
            Some(section)
        }
    };
    let mut providers = HashMap::new();
    for (name, section) in table {
        if webhook_core::providers::by_name(&name).is_none() {
            return Err(format!("configuration names an unknown provider [{name}]").into());
        }
        let tenants = webhook_core::tenants::tenants_from_section(section)
            .map_err(|e| format!("[[{name}.tenants]] {e}"))?;
        providers.insert(name, tenants);
    }
    Ok(Config {
        providers,
        downstream,
    })
}

/// The TOML document's tables, or where it is not TOML: a line and what is wrong there, never
/// the line itself (it may hold a secret).
pub fn toml_table(text: &str) -> Result<toml::Table, Error> {
    toml::from_str(text).map_err(|error| {
        let line = error
            .span()
            .map_or(0, |span| text[..span.start].matches('\n').count() + 1);
        format!("not TOML at line {line}: {}", error.message()).into()
    })
}

#[derive(Clone)]
struct AppState {
    ingests: Arc<HashMap<&'static str, Arc<Ingest>>>,
    /// The webhook listener's address, for the index.
    webhooks_at: SocketAddr,
    database: Database,
    ports: Ports,
    /// The core's operator operations (list, show, replay, release, stats) for the pages.
    operations: Arc<Operations>,
    /// Each provider's tenants as last read from the configuration file, for releasing
    /// quarantined events.
    tenants: Arc<HashMap<String, TenantSource>>,
    /// How often the sweeper runs (the pages say when it picks up a replay it was left).
    sweep_interval: Duration,
    /// The provider APIs' sandbox, trusting the configured tenants' API credentials.
    sandbox: Arc<testkit::ApiDouble>,
    /// The configuration file as read at start, for the pages to say when it has changed.
    config: Arc<LoadedConfig>,
}

/// How old the running server's tenants may grow before it reads the configuration file again:
/// an edit, or `webhooks tenants … --local`, reaches its webhooks and processing within this
/// time and a second more ([`keep_tenants_fresh`]).
pub const TENANTS_RELOAD: Duration = Duration::from_secs(2);

/// Where one provider's tenants are read again from: the configuration file, parsed and
/// checked as at start (a file that does not load keeps the last good tenants, and the log
/// says why); the sandbox then trusts the API credentials of tenants added meanwhile.
struct TenantReload {
    provider: Arc<dyn webhook_core::providers::Provider>,
    path: PathBuf,
    sandbox_base: String,
    sandbox: Arc<testkit::ApiDouble>,
}

impl TenantReload {
    fn source(self, first: TenantDirectory, clock: SharedClock) -> TenantSource {
        let this = Arc::new(self);
        let loader: webhook_core::tenants::Loader = Arc::new(move || {
            let this = Arc::clone(&this);
            Box::pin(async move { this.load() })
        });
        TenantSource::refreshing(first, TENANTS_RELOAD, loader, clock)
    }

    fn load(&self) -> Result<TenantDirectory, ConfigError> {
        let invalid = |e: &dyn std::fmt::Display| {
            ConfigError::Invalid(format!("{}: {e}", self.path.display()))
        };
        let text = std::fs::read_to_string(&self.path).map_err(|e| invalid(&e))?;
        let mut config = parse_config(&text, &self.sandbox_base).map_err(|e| invalid(&e))?;
        let tenants = config
            .providers
            .remove(self.provider.name())
            .unwrap_or_default();
        let tenants = TenantDirectory::new(tenants)?;
        webhook_core::providers::check_tenants(self.provider.as_ref(), &tenants)?;
        self.sandbox.trust_only(self.provider.name(), &tenants);
        Ok(tenants)
    }
}

/// The configuration file and its text as the server read it at start. Tenants are read again
/// every [`TENANTS_RELOAD`]; the other settings (`[downstream]`) only at start, so the pages say
/// when the file on disk says something else.
struct LoadedConfig {
    path: PathBuf,
    text: String,
}

impl LoadedConfig {
    /// Whether the file now says something other than what was loaded (or cannot be read).
    fn changed_on_disk(&self) -> bool {
        std::fs::read_to_string(&self.path).map_or(true, |now| now != self.text)
    }
}

/// A started server; stop it with [`RunningServer::shutdown`].
pub struct RunningServer {
    /// The webhook listener's address.
    pub addr: SocketAddr,
    /// The admin listener's address (the index, the `/events` pages, `/_dev/…`, the sandbox).
    pub admin_addr: SocketAddr,
    pub database: Database,
    stop: watch::Sender<bool>,
    stop_admin: watch::Sender<bool>,
    http: JoinHandle<()>,
    admin: JoinHandle<()>,
    workers: Vec<JoinHandle<()>>,
    /// Held while the server runs: one server per data file.
    _lock: std::fs::File,
}

impl RunningServer {
    /// Graceful: stops accepting requests, lets in-flight requests answer and each worker
    /// finish the batch it holds, then closes the database (its WAL checkpointed and removed)
    /// and returns.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.http.await;
        for worker in self.workers {
            let _ = worker.await;
        }
        // The workers' last fetches may still need the sandbox.
        let _ = self.stop_admin.send(true);
        let _ = self.admin.await;
        if let Err(error) = self.database.close().await {
            tracing::warn!(error = %error, "closing the database");
        }
        drop(self._lock);
    }

    /// Stops everything at once, as a crash would: whatever a worker held is not finished.
    pub fn abort(self) {
        self.http.abort();
        self.admin.abort();
        for worker in &self.workers {
            worker.abort();
        }
    }
}

pub async fn start(options: Options) -> Result<RunningServer, Error> {
    check_admin_listen(options.admin_listen)?;
    let lock = lock_data(&options.data)?;
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| format!("--listen {}: {e}", options.listen))?;
    let addr = listener.local_addr()?;
    let admin_listener = tokio::net::TcpListener::bind(options.admin_listen)
        .await
        .map_err(|e| format!("--admin-listen {}: {e}", options.admin_listen))?;
    let admin_addr = admin_listener.local_addr()?;
    let sandbox_base = format!("http://{admin_addr}/_sandbox");
    let config_text = std::fs::read_to_string(&options.config).map_err(|e| {
        format!(
            "{}: {e}; run the server from the project root (where devserver.toml is) or name \
             the file with --config <file>",
            options.config.display()
        )
    })?;
    let config = parse_config(&config_text, &sandbox_base)?;
    let mut configured = config.providers;

    let database = Database::open(&options.data)?;
    let (ports, queue) =
        adapter_sqlite::ports(&database, options.max_receives, options.clock.clone());
    let queue = Arc::new(queue);
    let ingest_settings = IngestSettings::default();

    let sandbox = Arc::new(testkit::ApiDouble::trusting_nobody());
    let mut ingests = HashMap::new();
    let mut processing = Vec::new();
    let mut sources = HashMap::new();
    for provider in webhook_core::providers::all() {
        let tenants = configured.remove(provider.name()).unwrap_or_default();
        let uses_sandbox = tenants.iter().any(|t| {
            t.api
                .as_ref()
                .is_some_and(|api| api.base_url.starts_with(&sandbox_base))
        });
        let tenants_for_ingest = TenantDirectory::new(tenants.clone())?;
        webhook_core::providers::check_tenants(provider.as_ref(), &tenants_for_ingest)?;
        tracing::info!(
            provider = provider.name(),
            tenants = tenants_for_ingest.len(),
            url = %format!("http://{addr}/webhooks/{}", provider.name()),
            api = if uses_sandbox { "SANDBOX (made-up fixture data)" } else { "as configured" },
            "webhook endpoint"
        );
        sandbox.trust_only(provider.name(), &tenants_for_ingest);
        let source = TenantReload {
            provider: Arc::clone(&provider),
            path: options.config.clone(),
            sandbox_base: sandbox_base.clone(),
            sandbox: Arc::clone(&sandbox),
        }
        .source(tenants_for_ingest, options.clock.clone());
        ingests.insert(
            provider.name(),
            Arc::new(Ingest::new(
                Arc::clone(&provider),
                source.clone(),
                ports.clone(),
                ingest_settings.clone(),
            )),
        );
        sources.insert(provider.name().to_string(), source.clone());
        processing.push(ProviderTenants {
            provider,
            tenants: source,
        });
    }
    let settings = ProcessorSettings {
        max_receives: options.max_receives,
        retry_backoff: options.retry_backoff,
        ..ProcessorSettings::default()
    };
    let mut processor = Processor::new(
        processing,
        ports.clone(),
        DetailClient::new(settings.fetch_timeout, webhook_core::clock::system()),
        settings,
    );
    if let Some(section) = &config.downstream {
        processor =
            processor.with_publisher(Arc::new(downstream::HttpPublisher::new(&section.url)?));
        tracing::info!(url = %downstream::redacted(&section.url), "processed and erased events are POSTed downstream");
    }
    let processor = Arc::new(processor);

    let (stop, stopped) = watch::channel(false);
    let workers: Vec<JoinHandle<()>> = (0..options.workers)
        .map(|_| {
            tokio::spawn(work(
                Arc::clone(&processor),
                queue.clone(),
                options.clone(),
                stopped.clone(),
            ))
        })
        .collect();

    let sweeper = Sweeper::new(ports.clone(), ingest_settings.lease);
    let reconciler = (
        Reconciler::new(ports.clone(), ingest_settings.lease),
        ingest_settings.retention,
    );
    let mut workers: Vec<JoinHandle<()>> = workers;
    workers.push(tokio::spawn(sweep(
        sweeper,
        reconciler,
        options.sweep_interval,
        stopped.clone(),
    )));
    workers.push(tokio::spawn(keep_tenants_fresh(
        sources.values().cloned().collect(),
        stopped.clone(),
    )));

    let state = AppState {
        sandbox,
        ingests: Arc::new(ingests),
        webhooks_at: addr,
        database: database.clone(),
        operations: Arc::new(Operations::new(ports.clone(), ingest_settings)),
        ports,
        tenants: Arc::new(sources),
        sweep_interval: options.sweep_interval,
        config: Arc::new(LoadedConfig {
            path: options.config.clone(),
            text: config_text,
        }),
    };
    // Anything else on the webhook port, `/_dev/…` included, is 404.
    let webhooks = Router::new()
        .route("/webhooks/{provider}", any(webhook))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(state.clone());
    let admin = Router::new()
        .route("/", get(index))
        .route("/_sandbox/{provider}/{*path}", any(sandbox::answer))
        .route("/_dev/events", get(list_events))
        .route("/_dev/events/{key}", get(show_event))
        .route("/events", get(pages::list))
        .route("/contract", get(contract::page))
        .route("/events/{key}", get(pages::record))
        .route("/events/{key}/replay", post(pages::replay))
        .route("/events/{key}/release", post(pages::release))
        .route("/processing/{scope}/{action}", post(pages::pause))
        .route("/assets/{name}", get(pages::asset))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .layer(axum::middleware::from_fn(pages::only_loopback_hosts))
        .with_state(state);
    let http = serve(listener, webhooks, stopped, "webhook");
    let (stop_admin, admin_stopped) = watch::channel(false);
    let admin = serve(admin_listener, admin, admin_stopped, "admin");
    tracing::info!(%addr, admin = %admin_addr, data = %options.data.display(), workers = options.workers, "dev server ready");
    Ok(RunningServer {
        addr,
        admin_addr,
        database,
        stop,
        stop_admin,
        http,
        admin,
        workers,
        _lock: lock,
    })
}

/// The lock beside `data` (`<data>.lock`), taken for as long as the server runs: a second
/// server on the same file would process the same queue and answer for the same records. The
/// system lets it go when the process ends, however it ends.
fn lock_data(data: &std::path::Path) -> Result<std::fs::File, Error> {
    let mut path = data.as_os_str().to_owned();
    path.push(".lock");
    let path = std::path::PathBuf::from(path);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "{}: another dev server is running on this data file: stop it, or give this one \
             another file with --data",
            data.display()
        )
        .into()),
        Err(std::fs::TryLockError::Error(error)) => {
            Err(format!("{}: {error}", path.display()).into())
        }
    }
}

/// The admin routes show raw webhook bodies and fetched customer data without authentication:
/// they are served on loopback only.
fn check_admin_listen(admin_listen: SocketAddr) -> Result<(), Error> {
    if admin_listen.ip().is_loopback() {
        return Ok(());
    }
    Err(format!(
        "--admin-listen {admin_listen}: not a loopback address. The admin routes (/events and \
         /_dev/events with raw webhook bodies and fetched customer data, replay and release \
         buttons, the provider-API sandbox) have no \
         authentication and are served on loopback only: use 127.0.0.1 or [::1], and expose only \
         --listen (the webhooks) through a tunnel"
    )
    .into())
}

/// Serves `app` on `listener` until `stopped`, then lets in-flight requests answer.
fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    mut stopped: watch::Receiver<bool>,
    name: &'static str,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %error, listener = name, "HTTP server stopped");
        }
    })
}

/// One processor worker: receive a batch, process it, delete what is done. Failed messages
/// come back after the visibility timeout, as with SQS.
async fn work(
    processor: Arc<Processor>,
    queue: Arc<SqliteQueue>,
    options: Options,
    mut stopped: watch::Receiver<bool>,
) {
    while !*stopped.borrow() {
        let batch = match queue.receive(10, options.visibility).await {
            Ok(batch) => batch,
            Err(error) => {
                tracing::error!(error = %error, "queue receive failed");
                Vec::new()
            }
        };
        if batch.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(options.poll_interval) => {}
                _ = stopped.changed() => {}
            }
            continue;
        }
        if let Err(error) = processor.process_received(queue.as_ref(), batch).await {
            tracing::error!(error = %error, "queue delete failed; the messages come back and are skipped as done");
        }
    }
}

/// The outbox sweeper as a background task: enqueues stored events whose queue write failed.
/// The outbox sweeper and the reconciler of stuck records, every `interval`.
/// Looks at every provider's tenants each second, so that a reload is due and done before an
/// event needs them (a source reloads when looked at once its tenants are older than
/// [`TENANTS_RELOAD`], and answers with the ones it has meanwhile).
async fn keep_tenants_fresh(sources: Vec<TenantSource>, mut stopped: watch::Receiver<bool>) {
    loop {
        for source in &sources {
            source.current();
        }
        tokio::select! {
            _ = tokio::time::sleep(TENANTS_RELOAD / 2) => {}
            _ = stopped.changed() => return,
        }
    }
}

async fn sweep(
    sweeper: Sweeper,
    (reconciler, retention): (Reconciler, Duration),
    interval: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    while !*stopped.borrow() {
        if let Err(error) = sweeper.sweep(100).await {
            tracing::error!(error = %error, "sweep failed");
        }
        if let Err(error) = reconciler.reconcile(retention, 100).await {
            tracing::error!(error = %error, "reconciliation failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopped.changed() => {}
        }
    }
}

async fn webhook(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    request: Request,
) -> Response {
    let Some(ingest) = state.ingests.get(provider.as_str()) else {
        let known = webhook_core::providers::names().join(", ");
        let error = format!("no such provider: POST /webhooks/<provider>, one of {known}");
        return (StatusCode::NOT_FOUND, Json(json!({ "error": error }))).into_response();
    };
    let (parts, body) = request.into_parts();
    // API Gateway's own limit; the handler answers 413 above its 256 KiB.
    let Ok(bytes) = to_bytes(body, MAX_REQUEST_BYTES).await else {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            Json(json!({ "error": "request body too large" })),
        )
            .into_response();
    };
    let response = ingest
        .handle(WebhookRequest::from_parts(parts, bytes))
        .await;
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, Body::from(body))
}

/// The routes as JSON; a browser (asking for HTML) is sent to the event list page.
async fn index(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    if pages::wants_html(&headers) {
        return axum::response::Redirect::to("/events").into_response();
    }
    let mut providers: Vec<&str> = state.ingests.keys().copied().collect();
    providers.sort();
    let webhooks_at = state.webhooks_at;
    Json(json!({
        "webhooks": providers
            .iter()
            .map(|p| format!("POST http://{webhooks_at}/webhooks/{p}"))
            .collect::<Vec<_>>(),
        "events": "GET /_dev/events, GET /_dev/events/{key} (escape # as %23)",
        "pages": "GET /events in a browser: the live event list, each record, replay and release",
        "sandbox": "/_sandbox/{provider}/... (made-up provider API data)",
        "config": {
            "file": state.config.path.display().to_string(),
            "changed_since_start": state.config.changed_on_disk(),
        },
    }))
    .into_response()
}

fn summary(record: &Record) -> Value {
    json!({
        "key": record.key,
        "provider": record.provider,
        "tenant": record.tenant,
        "type": record.event_type,
        "status": record.status.as_str(),
        "received_at": record.received_at_ms,
        "processed_at": record.processed_at_ms,
        "detail_fetched": record.detail.is_some() && record.erased_at_ms.is_none(),
        "attempts": record.attempts,
        "last_error": record.last_error,
    })
}

async fn list_events(State(state): State<AppState>) -> Response {
    match state.database.recent_records(1000).await {
        Ok(records) => Json(records.iter().map(summary).collect::<Vec<_>>()).into_response(),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "error": error.to_string() })),
        )
            .into_response(),
    }
}

/// A stored text as JSON exactly as it was written — key order, every digit, the whitespace —
/// or, where it is not JSON, as a JSON string of it.
fn exact(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_string()).unwrap_or_else(|_| {
        let quoted = serde_json::to_string(text).expect("a string serialises");
        RawValue::from_string(quoted).expect("a JSON string is JSON")
    })
}

/// Why `key` names no event, and how to write one: a URL ends at an unescaped `#`, which
/// every key has (`<provider>#<tenant>#…`), so what arrived without one was cut there.
fn no_such_event(key: &str) -> String {
    if key.contains('#') {
        return "no such event (GET /_dev/events lists the keys)".into();
    }
    format!(
        "no such event {key:?}: a key is <provider>#<tenant>#…, and a URL ends at an unescaped #; \
         write each # as %23 (/_dev/events/magicline%23studio-1001%23…), or copy the link from \
         the /events pages"
    )
}

async fn show_event(State(state): State<AppState>, Path(key): Path<String>) -> Response {
    match state.ports.store.get(&key).await {
        Ok(Some(record)) => {
            /// The record's summary, and its body and detail exactly as stored.
            #[derive(serde::Serialize)]
            struct View {
                #[serde(flatten)]
                summary: Value,
                entity_id: String,
                body: Option<Box<RawValue>>,
                detail: Option<Box<RawValue>>,
                erased_at: Option<i64>,
            }
            let body = (!record.body.is_empty()).then(|| exact(&record.body));
            let view = View {
                summary: summary(&record),
                entity_id: record.entity_id.clone(),
                body,
                detail: record.detail.as_deref().map(exact),
                erased_at: record.erased_at_ms,
            };
            Json(view).into_response()
        }
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": no_such_event(&key) })),
        )
            .into_response(),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "error": error.to_string() })),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A misspelt key is refused with its place and the valid names, never silently ignored;
    /// no value of the file is repeated, a secret under a misspelt key or on a line that is not
    /// TOML included.
    #[test]
    fn unknown_keys_and_broken_lines_are_refused_by_place_without_their_values() {
        let tenant = |extra: &str| {
            format!(
                "[[magicline.tenants]]\nid = \"studio-1\"\nwebhook_secrets = [\"k\"]\n{extra}\n"
            )
        };
        let typo = parse_config(&tenant("pointers = { objectid = \"/data/id\" }"), "x")
            .unwrap_err()
            .to_string();
        assert!(
            typo.contains("[[magicline.tenants]]")
                && typo.contains("pointers")
                && typo.contains("unknown field `objectid`")
                && typo.contains("object_id"),
            "{typo}"
        );
        let secret = "s3cr3t-under-a-typo";
        let typo = parse_config(&tenant(&format!("webhook_secret = \"{secret}\"")), "x")
            .unwrap_err()
            .to_string();
        assert!(
            typo.contains("unknown field `webhook_secret`") && typo.contains("webhook_secrets"),
            "{typo}"
        );
        assert!(!typo.contains(secret), "{typo}");
        let broken = parse_config(&tenant(&format!("webhook_secrets = [\"{secret}\"")), "x")
            .unwrap_err()
            .to_string();
        assert!(broken.contains("line 4"), "{broken}");
        assert!(!broken.contains(secret), "{broken}");
    }

    #[test]
    fn the_checked_in_configuration_points_every_provider_at_the_sandbox() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../devserver.toml"))
                .unwrap();
        let providers = load_config(&text, "http://127.0.0.1:1/_sandbox").unwrap();
        for provider in webhook_core::providers::all() {
            let tenants = &providers[provider.name()];
            assert!(!tenants.is_empty(), "{}", provider.name());
            for tenant in tenants {
                let base = &tenant.api.as_ref().unwrap().base_url;
                assert_eq!(
                    base,
                    &format!("http://127.0.0.1:1/_sandbox/{}", provider.name())
                );
            }
        }
    }

    #[test]
    fn the_admin_listener_is_refused_off_loopback() {
        for loopback in ["127.0.0.1:8081", "127.0.0.2:0", "[::1]:8081"] {
            assert!(
                check_admin_listen(loopback.parse().unwrap()).is_ok(),
                "{loopback}"
            );
        }
        for exposed in ["0.0.0.0:8081", "[::]:8081", "192.168.1.20:8081"] {
            let error = check_admin_listen(exposed.parse().unwrap())
                .unwrap_err()
                .to_string();
            assert!(error.contains("not a loopback address"), "{error}");
            assert!(error.contains(exposed), "{error}");
        }
    }

    #[test]
    fn a_downstream_section_is_read_beside_the_providers() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../devserver.toml"))
                .unwrap();
        assert!(parse_config(&text, "http://x")
            .unwrap()
            .downstream
            .is_none());
        let with = format!("{text}\n[downstream]\nurl = \"http://127.0.0.1:9000/events\"\n");
        let config = parse_config(&with, "http://x").unwrap();
        assert_eq!(
            config.downstream.unwrap().url,
            "http://127.0.0.1:9000/events"
        );
        assert_eq!(config.providers.len(), webhook_core::providers::all().len());
        assert_eq!(
            load_config(&with, "http://x").unwrap().len(),
            webhook_core::providers::all().len()
        );
        for (bad, says) in [
            ("[downstream]\nurl = \"ftp://x/y\"\n", "http"),
            (
                "[downstream]\nurl = \"http://x/\"\nretries = 3\n",
                "retries",
            ),
            ("[downstream]\n", "url"),
        ] {
            let error = parse_config(bad, "http://x").unwrap_err().to_string();
            assert!(
                error.contains("[downstream]") && error.contains(says),
                "{error}"
            );
        }
    }

    #[test]
    fn an_unknown_provider_section_is_refused() {
        let text = "[[nosuch.tenants]]\nid = \"x\"\n";
        assert!(load_config(text, "http://x")
            .unwrap_err()
            .to_string()
            .contains("nosuch"));
    }
}
