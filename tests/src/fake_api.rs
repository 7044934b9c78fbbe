//! A stand-in for the providers' APIs: a real HTTP server on a loopback port serving every
//! provider's documented API from its test kit under `/<provider>/…` (the demo tenants' API
//! base is `<base_url>/<provider>`): the kit's fixture on an exact route with the required
//! headers (after a token exchange where the API has one), 401 on missing or wrong
//! credentials, 404 on any other method, path or query. It records every call and, on command,
//! misbehaves — but only towards a request the API would have served (right route, right
//! credentials), so that a failure-path test cannot pass with a wrong URL or a missing key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use testkit::ApiDouble;
use webhook_core::tenants::TenantDirectory;

#[derive(Debug, Clone)]
pub enum Behavior {
    Status(u16),
    /// 429, with this `Retry-After` value if any.
    TooManyRequests {
        retry_after: Option<String>,
    },
    /// 503, with this `Retry-After` value if any.
    Unavailable {
        retry_after: Option<String>,
    },
    Slow(Duration),
    MalformedJson,
    /// 302 to this URL.
    Redirect(String),
    /// A well-formed JSON answer of about this many bytes.
    Oversized(usize),
    /// The answer waits until the gate opens.
    Held(Gate),
    /// 200 with exactly this JSON text as the body.
    Answer(String),
}

/// Holds answers back until the test opens it; counts the requests waiting at it.
#[derive(Debug, Clone, Default)]
pub struct Gate {
    open: Arc<tokio::sync::watch::Sender<bool>>,
    waiting: Arc<std::sync::atomic::AtomicUsize>,
}

impl Gate {
    pub fn open(&self) {
        self.open.send_replace(true);
    }

    /// Requests held at the gate right now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(std::sync::atomic::Ordering::SeqCst)
    }

    async fn pass(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        self.waiting.fetch_add(1, SeqCst);
        let _ = self.open.subscribe().wait_for(|open| *open).await;
        self.waiting.fetch_sub(1, SeqCst);
    }
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Call {
    pub provider: String,
    pub method: String,
    /// Path and query below the provider's API base (`/v1/appointments?ids=7`).
    pub path: String,
    /// The API would serve it: a documented route, with the tenant's credentials.
    pub served: bool,
    /// When it arrived.
    pub at: std::time::Instant,
}

impl Call {
    /// `GET /v1/customers/42`, the form of the kits' expectations.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

#[derive(Default)]
struct Shared {
    /// Served requests by path (without the query).
    calls: HashMap<String, usize>,
    auth_seen: HashMap<String, String>,
    requests: Vec<Call>,
    /// Misbehaviour per path prefix; the longest matching prefix wins.
    behaviors: Vec<(String, Behavior)>,
    /// Rates enforced, per provider: at most so many calls per credential within a window.
    rates: HashMap<String, (usize, Duration)>,
    /// When each credential's served calls came, for the rates.
    served_at: HashMap<String, std::collections::VecDeque<std::time::Instant>>,
    /// Requests answered 429 for going over a rate.
    limited: usize,
    /// Misbehaviour for the n-th request the API would serve (1-based), once.
    nth: HashMap<usize, Behavior>,
    /// Requests the API would have served so far, misbehaved at or not.
    servable: usize,
}

impl Shared {
    /// True if this call of `credential` goes over its provider's enforced rate; else notes it.
    fn over_rate(&mut self, provider: &str, credential: &str) -> bool {
        let Some(&(calls, per)) = self.rates.get(provider) else {
            return false;
        };
        let now = std::time::Instant::now();
        let log = self.served_at.entry(credential.to_string()).or_default();
        while log.front().is_some_and(|at| now.duration_since(*at) >= per) {
            log.pop_front();
        }
        if log.len() >= calls {
            return true;
        }
        log.push_back(now);
        false
    }
}

#[derive(Clone)]
struct Fake {
    shared: Arc<Mutex<Shared>>,
    double: Arc<ApiDouble>,
}

#[derive(Clone)]
pub struct FakeApi {
    pub base_url: String,
    fake: Fake,
}

impl FakeApi {
    /// Trusts the API credentials of every kit's demo tenants.
    pub async fn start() -> FakeApi {
        let fake = Fake {
            shared: Arc::default(),
            double: Arc::new(ApiDouble::strict()),
        };
        let app = Router::new().fallback(answer).with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeApi { base_url, fake }
    }

    /// Accepts these tenants' API credentials too.
    pub fn trust(&self, provider: &str, tenants: &TenantDirectory) {
        self.fake.double.trust(provider, tenants);
    }

    /// Makes every served request whose path starts with `prefix` misbehave.
    pub fn set(&self, prefix: &str, behavior: Behavior) {
        self.shared().behaviors.push((prefix.to_string(), behavior));
    }

    /// Back to answering every path normally.
    pub fn clear(&self) {
        self.shared().behaviors.clear();
    }

    /// The same fake, reached at another base URL (a proxy in front of it).
    pub fn via(&self, base_url: &str) -> FakeApi {
        FakeApi {
            base_url: base_url.to_string(),
            fake: self.fake.clone(),
        }
    }

    /// Calls to `path` (`/<provider>/…`, without the query) that the API served — on a
    /// documented route, with the tenant's credentials — token exchanges included.
    pub fn calls(&self, path: &str) -> usize {
        self.shared().calls.get(path).copied().unwrap_or(0)
    }

    /// Every request received, served or not.
    pub fn total_calls(&self) -> usize {
        self.shared().requests.len()
    }

    /// Requests the API would have refused (undocumented, or without the right credentials).
    pub fn refused(&self) -> Vec<Call> {
        self.requests()
            .into_iter()
            .filter(|call| !call.served)
            .collect()
    }

    /// Answers 429 (without `Retry-After`) to a request of `provider` whose credential has been
    /// served `calls` times within the last `per` already — a sliding window, as a provider
    /// counts arrivals.
    pub fn enforce_rate(&self, provider: &str, calls: usize, per: Duration) {
        self.shared()
            .rates
            .insert(provider.to_string(), (calls, per));
    }

    /// Makes the `n`-th request the API would serve (from now on, 1-based) misbehave, once.
    pub fn set_nth(&self, n: usize, behavior: Behavior) {
        let mut shared = self.shared();
        let at = shared.servable + n;
        shared.nth.insert(at, behavior);
    }

    /// Requests answered 429 for going over an enforced rate.
    pub fn limited(&self) -> usize {
        self.shared().limited
    }

    /// Refuses every access token handed out so far (revoked before their time).
    pub fn revoke_tokens(&self) {
        self.fake.double.revoke_tokens();
    }

    /// The first of the provider's required API headers that came with the last call to
    /// `path` (`name: value`).
    pub fn auth_seen(&self, path: &str) -> Option<String> {
        self.shared().auth_seen.get(path).cloned()
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Call> {
        self.shared().requests.clone()
    }

    /// Requests to `provider`'s API other than its token exchange, as `METHOD /path?query`.
    pub fn api_calls(&self, provider: &str) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|call| call.provider == provider && !self.is_token_exchange(call))
            .map(|call| call.line())
            .collect()
    }

    /// Every access token the fake handed out (they are secrets too).
    pub fn tokens(&self) -> Vec<String> {
        self.fake.double.tokens()
    }

    fn is_token_exchange(&self, call: &Call) -> bool {
        let (path, query) = call.path.split_once('?').unwrap_or((&call.path, ""));
        self.fake
            .double
            .is_token_exchange(&call.provider, &call.method, path, query)
    }

    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.fake.shared.lock().unwrap()
    }
}

async fn answer(State(fake): State<Fake>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, 1 << 20).await.unwrap_or_default();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or_default().to_string();
    let (provider, below) = split_provider(&path);
    let answer = fake.double.answer(
        provider,
        parts.method.as_str(),
        below,
        &query,
        &parts.headers,
        &body,
    );
    let served = answer.status == 200;
    let behavior = fake.record(&parts, &path, provider, below, &query, served);
    let mut json = answer.body;
    if let (true, Some(object)) = (served, json.as_object_mut()) {
        object.insert("path".into(), path.clone().into());
    }
    let status = StatusCode::from_u16(answer.status).unwrap();
    let respond = || (status, axum::Json(json)).into_response();
    let Some(behavior) = behavior.filter(|_| served) else {
        return respond();
    };
    misbehave(behavior, respond).await
}

async fn misbehave(behavior: Behavior, respond: impl FnOnce() -> Response) -> Response {
    match behavior {
        Behavior::Status(code) => (
            StatusCode::from_u16(code).unwrap(),
            "{\"error\":\"as commanded\"}",
        )
            .into_response(),
        Behavior::TooManyRequests { retry_after } => {
            asked_to_wait(StatusCode::TOO_MANY_REQUESTS, retry_after)
        }
        Behavior::Unavailable { retry_after } => {
            asked_to_wait(StatusCode::SERVICE_UNAVAILABLE, retry_after)
        }
        Behavior::Slow(delay) => {
            tokio::time::sleep(delay).await;
            respond()
        }
        Behavior::Held(gate) => {
            gate.pass().await;
            respond()
        }
        Behavior::MalformedJson => (
            StatusCode::OK,
            [("content-type", "application/json")],
            "{\"id\": ",
        )
            .into_response(),
        Behavior::Redirect(location) => {
            (StatusCode::FOUND, [("location", location)], "").into_response()
        }
        Behavior::Oversized(bytes) => (
            StatusCode::OK,
            [("content-type", "application/json")],
            format!("{{\"padding\":\"{}\"}}", "x".repeat(bytes)),
        )
            .into_response(),
        Behavior::Answer(body) => {
            (StatusCode::OK, [("content-type", "application/json")], body).into_response()
        }
    }
}

/// `status`, with `Retry-After: retry_after` if given.
fn asked_to_wait(status: StatusCode, retry_after: Option<String>) -> Response {
    let mut response = (status, "slow down").into_response();
    if let Some(value) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", value.parse().unwrap());
    }
    response
}

/// `/magicline/v1/customers/7` -> (`magicline`, `/v1/customers/7`).
fn split_provider(path: &str) -> (&str, &str) {
    let rest = path.trim_start_matches('/');
    match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, ""),
    }
}

impl Fake {
    /// Counts and records the call; returns the misbehaviour commanded for its path.
    fn record(
        &self,
        parts: &http::request::Parts,
        path: &str,
        provider: &str,
        below: &str,
        query: &str,
        served: bool,
    ) -> Option<Behavior> {
        let headers: Vec<(String, String)> = parts
            .headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.to_string(), value)
            })
            .collect();
        let auth = self
            .double
            .header_names(provider)
            .into_iter()
            .find_map(|name| {
                let (_, value) = headers.iter().find(|(n, _)| *n == name)?;
                Some(format!("{name}: {value}"))
            })
            .unwrap_or_default();
        let mut shared = self.shared.lock().unwrap();
        if served && shared.over_rate(provider, &auth) {
            shared.limited += 1;
            return Some(Behavior::TooManyRequests { retry_after: None });
        }
        let mut nth = None;
        if served {
            shared.servable += 1;
            let servable = shared.servable;
            nth = shared.nth.remove(&servable);
            *shared.calls.entry(path.to_string()).or_default() += 1;
        }
        shared.auth_seen.insert(path.to_string(), auth);
        let below = match query {
            "" => below.to_string(),
            query => format!("{below}?{query}"),
        };
        shared.requests.push(Call {
            provider: provider.to_string(),
            method: parts.method.to_string(),
            path: below,
            served,
            at: std::time::Instant::now(),
        });
        nth.or_else(|| {
            shared
                .behaviors
                .iter()
                .filter(|(prefix, _)| path.starts_with(prefix.as_str()))
                .max_by_key(|(prefix, _)| prefix.len())
                .map(|(_, behavior)| behavior.clone())
        })
    }
}
