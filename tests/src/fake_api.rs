//! A stand-in for the providers' APIs: a real HTTP server on a loopback port serving every
//! provider's documented API from its test kit under `/<provider>/…` (the demo tenants' API
//! base is `<base_url>/<provider>`): the kit's fixture on an exact route with the required
//! headers (after a token exchange where the API has one), 401 on missing or wrong
//! credentials, 404 on any other method, path or query. It records every call and misbehaves
//! on command (slow, any status, 429 with Retry-After, malformed JSON).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use shared::tenants::TenantDirectory;
use testkit::ApiDouble;

#[derive(Debug, Clone)]
pub enum Behavior {
    Status(u16),
    TooManyRequests { retry_after_seconds: u32 },
    Slow(Duration),
    MalformedJson,
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Call {
    pub provider: String,
    pub method: String,
    /// Path and query below the provider's API base (`/v1/appointments?ids=7`).
    pub path: String,
}

impl Call {
    /// `GET /v1/customers/42`, the form of the kits' expectations.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

#[derive(Default)]
struct Shared {
    calls: HashMap<String, usize>,
    auth_seen: HashMap<String, String>,
    requests: Vec<Call>,
    /// Misbehaviour per path prefix; the longest matching prefix wins.
    behaviors: Vec<(String, Behavior)>,
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

    /// Makes every path starting with `prefix` misbehave.
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

    /// Calls to `path` (`/<provider>/…`, without the query), token exchanges included.
    pub fn calls(&self, path: &str) -> usize {
        self.shared().calls.get(path).copied().unwrap_or(0)
    }

    pub fn total_calls(&self) -> usize {
        self.shared().calls.values().sum()
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
    let behavior = fake.record(&parts, &path, provider, below, &query);
    let respond = || {
        let answer = fake.double.answer(
            provider,
            parts.method.as_str(),
            below,
            &query,
            &parts.headers,
            &body,
        );
        let mut json = answer.body;
        if let (200, Some(object)) = (answer.status, json.as_object_mut()) {
            object.insert("path".into(), path.clone().into());
        }
        (
            StatusCode::from_u16(answer.status).unwrap(),
            axum::Json(json),
        )
            .into_response()
    };
    match behavior {
        None => respond(),
        Some(Behavior::Status(code)) => (
            StatusCode::from_u16(code).unwrap(),
            "{\"error\":\"as commanded\"}",
        )
            .into_response(),
        Some(Behavior::TooManyRequests {
            retry_after_seconds,
        }) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", retry_after_seconds.to_string())],
            "slow down",
        )
            .into_response(),
        Some(Behavior::Slow(delay)) => {
            tokio::time::sleep(delay).await;
            respond()
        }
        Some(Behavior::MalformedJson) => (
            StatusCode::OK,
            [("content-type", "application/json")],
            "{\"id\": ",
        )
            .into_response(),
    }
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
        *shared.calls.entry(path.to_string()).or_default() += 1;
        shared.auth_seen.insert(path.to_string(), auth);
        let below = match query {
            "" => below.to_string(),
            query => format!("{below}?{query}"),
        };
        shared.requests.push(Call {
            provider: provider.to_string(),
            method: parts.method.to_string(),
            path: below,
        });
        shared
            .behaviors
            .iter()
            .filter(|(prefix, _)| path.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, behavior)| behavior.clone())
    }
}
