//! A drain: a burst of one tenant's webhooks, acknowledged, then processed by several
//! consumers at once against the fake provider API, which answers 429 to any call over the
//! provider's rate limit. The same code runs in `tests/tests/suite/flow_control.rs` on a
//! scaled-down limit and in `scripts/bench` (`benches/drain.rs`) at each provider's published
//! limit, where a drain takes minutes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use testkit::Kit;
use webhook_core::model::{EventFilter, Status};
use webhook_core::ports::{Ports, QueueConsumer, Store};
use webhook_core::process::{Processor, ProcessorSettings};
use webhook_core::tenants::{TenantDirectory, TenantSource};
use webhook_core::{Ingest, IngestSettings};

use crate::fake_api::FakeApi;

/// How long an idle consumer waits before it receives again.
const IDLE_POLL: Duration = Duration::from_millis(250);

/// At most `calls` calls per API key within any `per`.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub calls: u32,
    pub per: Duration,
}

impl Limit {
    /// The limit the provider publishes (its test kit's `api.rate_limit`), if it publishes one.
    pub fn published(kit: &Kit) -> Option<Limit> {
        kit.api().rate_limit.as_ref().map(|limit| Limit {
            calls: limit.calls,
            per: Duration::from_secs(limit.per_seconds),
        })
    }

    pub fn per_second(&self) -> f64 {
        f64::from(self.calls) / self.per.as_secs_f64()
    }
}

/// The kits of the providers that publish a rate limit (EGYM, Waitwhile and Magicline).
pub fn rate_limited_kits() -> Vec<Kit> {
    Kit::all()
        .into_iter()
        .filter(|kit| Limit::published(kit).is_some())
        .collect()
}

/// What a drain asks of the API and how the tenant is configured.
#[derive(Debug, Clone, Copy)]
pub enum Pacing {
    /// The fake enforces the provider's published limit, and the tenant has no `api.rate`:
    /// the provider's own default paces it (what a deployment does).
    Published,
    /// The fake enforces this limit and the tenant's `api.rate` is set to it (a test's
    /// scaled-down window).
    Configured(Limit),
}

/// What a drain achieved.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Drained {
    pub provider: String,
    /// `devserver` or `processors`, and the adapters under them.
    pub through: String,
    pub consumers: usize,
    pub events: u64,
    pub processed: usize,
    pub dead_letters: usize,
    /// API calls served (not over the limit).
    pub calls: usize,
    /// API calls answered 429 for going over the limit.
    pub limited: usize,
    pub allowed_per_second: f64,
    /// Served calls a second, from the first served call to the last.
    pub achieved_per_second: f64,
    /// From the first receive to the last event processed.
    pub seconds: f64,
}

impl Drained {
    /// The achieved rate as a share of the allowed one.
    pub fn share_of_allowed(&self) -> f64 {
        self.achieved_per_second / self.allowed_per_second
    }

    /// Calls answered 429 as a share of all calls made.
    pub fn limited_share(&self) -> f64 {
        self.limited as f64 / (self.calls + self.limited).max(1) as f64
    }
}

/// The provider's demo tenants with their API at the fake, paced as `pacing` says.
pub fn tenants_json(kit: &Kit, api: &FakeApi, pacing: Pacing) -> String {
    let mut document: serde_json::Value =
        serde_json::from_str(&kit.tenants_json(&api.base_url)).unwrap();
    if let Pacing::Configured(limit) = pacing {
        for tenant in document["tenants"].as_array_mut().unwrap() {
            tenant["api"]["rate"] =
                serde_json::json!({"calls": limit.calls, "per_seconds": limit.per.as_secs()});
        }
    }
    document.to_string()
}

/// Sets the fake API's limit for the kit's provider; the limit it enforces.
fn enforce(kit: &Kit, api: &FakeApi, pacing: Pacing) -> Limit {
    let limit = match pacing {
        Pacing::Published => Limit::published(kit)
            .unwrap_or_else(|| panic!("{}: the kit publishes no rate limit", kit.name())),
        Pacing::Configured(limit) => limit,
    };
    api.enforce_rate(kit.name(), limit.calls as usize, limit.per);
    limit
}

/// `events` unique deliveries from the kit's first demo tenant, each as the provider signs it.
fn deliveries(
    kit: &Kit,
    tenants: &TenantDirectory,
    events: u64,
) -> Vec<webhook_core::WebhookRequest> {
    let tenant = tenants.iter().next().expect("a demo tenant");
    let secret = tenant.webhook_secrets[0].expose();
    (0..events)
        .map(|seq| kit.unique(seq, tenant, secret))
        .collect()
}

/// Adapters a drain runs its processors on.
pub enum Adapters {
    Memory(adapter_memory::Memory),
    /// DynamoDB and SQS on the local endpoint, with a dead-letter queue.
    Aws(crate::Backend),
}

impl Adapters {
    fn name(&self) -> &'static str {
        match self {
            Adapters::Memory(_) => "processors, in memory",
            Adapters::Aws(_) => "processors, DynamoDB + SQS",
        }
    }

    fn ports(&self) -> Ports {
        match self {
            Adapters::Memory(memory) => memory.ports.clone(),
            Adapters::Aws(backend) => backend.ports(),
        }
    }

    fn consumer(&self) -> Arc<dyn QueueConsumer> {
        match self {
            Adapters::Memory(memory) => memory.queue.clone(),
            Adapters::Aws(backend) => Arc::new(backend.queue()),
        }
    }

    async fn dead_letters(&self) -> usize {
        match self {
            Adapters::Memory(memory) => memory.queue.dead_letters().len(),
            Adapters::Aws(backend) => backend.dead_letter_bodies().await.len(),
        }
    }
}

/// Drains through `consumers` processors on `adapters`, each receiving from the queue and
/// processing what it got (as the dev server's workers and Lambda's event source do), all
/// sharing the adapters' pacer.
pub async fn through_processors(
    kit: &Kit,
    adapters: &Adapters,
    consumers: usize,
    events: u64,
    pacing: Pacing,
) -> Drained {
    let api = FakeApi::start().await;
    let limit = enforce(kit, &api, pacing);
    let document = tenants_json(kit, &api, pacing);
    let tenants = TenantDirectory::from_json(&document).unwrap();
    let ports = adapters.ports();
    let provider = webhook_core::providers::by_name(kit.name()).unwrap();
    let ingest = Ingest::new(
        provider,
        TenantDirectory::from_json(&document).unwrap(),
        ports.clone(),
        IngestSettings::default(),
    );
    for request in deliveries(kit, &tenants, events) {
        let status = ingest.handle(request).await.status();
        assert_eq!(
            status,
            kit.accepted_status(),
            "{}: not accepted",
            kit.name()
        );
    }
    let started = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..consumers)
        .map(|_| {
            let processor = paced_processor(kit, &ports, &api, &document);
            let (queue, done) = (adapters.consumer(), done.clone());
            tokio::spawn(async move { consume(&processor, queue.as_ref(), &done).await })
        })
        .collect();
    wait_until_finished(kit, ports.store.as_ref(), &api, events, started).await;
    done.store(true, Ordering::SeqCst);
    for worker in workers {
        worker.await.unwrap();
    }
    let outcome = Outcome {
        processed: processed(kit, ports.store.as_ref(), events).await,
        dead_letters: adapters.dead_letters().await,
        seconds: started.elapsed().as_secs_f64(),
    };
    drained(
        kit,
        &api,
        limit,
        adapters.name(),
        consumers,
        events,
        outcome,
    )
}

/// Drains through the dev server (`workers` workers on its SQLite file), the deliveries sent
/// over HTTP, its tenants those of the checked-in `devserver.toml` with their API at the fake.
pub async fn through_devserver(kit: &Kit, workers: usize, events: u64, pacing: Pacing) -> Drained {
    let api = FakeApi::start().await;
    let limit = enforce(kit, &api, pacing);
    let name = crate::unique_name("drain");
    let config = std::env::temp_dir().join(format!("{name}.toml"));
    std::fs::write(&config, devserver_config(&api, pacing)).unwrap();
    let server = devserver::start(devserver::Options {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        config,
        data: std::env::temp_dir().join(format!("{name}.db")),
        workers,
        max_receives: 3,
        visibility: Duration::from_secs(30),
        poll_interval: Duration::from_millis(20),
        sweep_interval: Duration::from_millis(500),
        ..devserver::Options::default()
    })
    .await
    .unwrap();
    let tenants = kit.tenants(&api.base_url);
    let client = reqwest::Client::new();
    for request in deliveries(kit, &tenants, events) {
        let uri = request.uri().path_and_query().unwrap().to_string();
        let mut post = client.post(format!("http://{}{uri}", server.addr));
        for (name, value) in request.headers() {
            post = post.header(name.as_str(), value.as_bytes());
        }
        let answer = post.body(request.body().to_vec()).send().await.unwrap();
        assert_eq!(answer.status().as_u16(), kit.accepted_status());
    }
    let started = Instant::now();
    let (ports, _) = adapter_sqlite::ports(&server.database, 3, webhook_core::clock::system());
    wait_until_finished(kit, ports.store.as_ref(), &api, events, started).await;
    let outcome = Outcome {
        processed: processed(kit, ports.store.as_ref(), events).await,
        dead_letters: server.database.dead_letters().await.unwrap().len(),
        seconds: started.elapsed().as_secs_f64(),
    };
    server.shutdown().await;
    drained(
        kit,
        &api,
        limit,
        "dev server, SQLite",
        workers,
        events,
        outcome,
    )
}

/// The checked-in `devserver.toml` with every provider's API at the fake, each tenant paced
/// as `pacing` says.
fn devserver_config(api: &FakeApi, pacing: Pacing) -> String {
    let text = std::fs::read_to_string(crate::root().join("devserver.toml")).unwrap();
    let sandboxed = "api = { base_url = \"{sandbox}/";
    assert!(
        text.contains(sandboxed),
        "devserver.toml: no tenant API in the sandbox"
    );
    let rate = match pacing {
        Pacing::Published => String::new(),
        Pacing::Configured(limit) => format!(
            "rate = {{ calls = {}, per_seconds = {} }}, ",
            limit.calls,
            limit.per.as_secs()
        ),
    };
    text.replace(
        sandboxed,
        &format!("api = {{ {rate}base_url = \"{}/", api.base_url),
    )
}

/// The real processor with the kit's tenants as `document`; a message is received at most 3
/// times, so that a rate-limit wait counted as a receive would show as a dead letter.
fn paced_processor(kit: &Kit, ports: &Ports, api: &FakeApi, document: &str) -> Processor {
    let settings = ProcessorSettings {
        max_receives: 3,
        retry_backoff: Duration::ZERO,
        ..ProcessorSettings::default()
    };
    let name = kit.name();
    crate::demo_processor(
        ports.clone(),
        api,
        settings,
        Duration::from_secs(10),
        |provider, demo| {
            TenantSource::fixed(if provider == name {
                TenantDirectory::from_json(document).unwrap()
            } else {
                demo
            })
        },
    )
}

async fn consume(processor: &Processor, queue: &dyn QueueConsumer, done: &AtomicBool) {
    while !done.load(Ordering::SeqCst) {
        let batch = queue.receive(10, Duration::from_secs(30)).await.unwrap();
        if batch.is_empty() {
            // As Lambda's SQS poller long-polls: an idle consumer must not keep the
            // single-threaded local endpoint busy with empty receives.
            tokio::time::sleep(IDLE_POLL).await;
            continue;
        }
        processor.process_received(queue, batch).await.unwrap();
    }
}

/// Waits until the API has served a call per event and no record is unfinished (the store
/// is not looked at before, so that it is not loaded meanwhile), or the deadline passes.
async fn wait_until_finished(
    kit: &Kit,
    store: &dyn Store,
    api: &FakeApi,
    events: u64,
    started: Instant,
) {
    let deadline = deadline_for(kit, events);
    while started.elapsed() < deadline {
        if served(api).len() as u64 >= events && listed(kit, store, None, true, 1).await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The kit's provider's records that are `PROCESSED`.
async fn processed(kit: &Kit, store: &dyn Store, events: u64) -> usize {
    listed(
        kit,
        store,
        Some(Status::Processed),
        false,
        events as usize + 1,
    )
    .await
}

async fn listed(
    kit: &Kit,
    store: &dyn Store,
    status: Option<Status>,
    unfinished_only: bool,
    limit: usize,
) -> usize {
    let filter = EventFilter {
        providers: vec![kit.name().to_string()],
        tenant: None,
        status,
        since_ms: 0,
        until_ms: i64::MAX,
        limit,
        live_at_ms: 0,
        unfinished_only,
    };
    store.list(&filter).await.unwrap().len()
}

/// Four times the time the provider's published limit needs for `events` calls, and two
/// minutes more (the local endpoint, one request at a time, is slower than the limits).
fn deadline_for(kit: &Kit, events: u64) -> Duration {
    let per_second = Limit::published(kit).map_or(5.0, |limit| limit.per_second());
    Duration::from_secs_f64(4.0 * events as f64 / per_second + 120.0)
}

/// The calls the API served, oldest first.
fn served(api: &FakeApi) -> Vec<crate::fake_api::Call> {
    api.requests()
        .into_iter()
        .filter(|call| call.served)
        .collect()
}

/// How a drain ended.
struct Outcome {
    processed: usize,
    dead_letters: usize,
    seconds: f64,
}

fn drained(
    kit: &Kit,
    api: &FakeApi,
    limit: Limit,
    through: &str,
    consumers: usize,
    events: u64,
    outcome: Outcome,
) -> Drained {
    let calls = served(api);
    let span = match (calls.first(), calls.last()) {
        (Some(first), Some(last)) => last.at.duration_since(first.at).as_secs_f64(),
        _ => 0.0,
    };
    Drained {
        provider: kit.name().to_string(),
        through: through.to_string(),
        consumers,
        events,
        processed: outcome.processed,
        dead_letters: outcome.dead_letters,
        calls: calls.len(),
        limited: api.limited(),
        allowed_per_second: limit.per_second(),
        achieved_per_second: if span > 0.0 {
            (calls.len() - 1) as f64 / span
        } else {
            0.0
        },
        seconds: outcome.seconds,
    }
}
