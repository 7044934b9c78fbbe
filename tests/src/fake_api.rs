//! A stand-in for the providers' APIs: a real HTTP server on a loopback port that answers
//! every GET with canned JSON, counts calls per path, remembers the auth headers it saw, and
//! misbehaves on command (slow, 500, 429 with Retry-After, 404, 401, malformed JSON).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;

#[derive(Debug, Clone)]
pub enum Behavior {
    Status(u16),
    TooManyRequests { retry_after_seconds: u32 },
    Slow(Duration),
    MalformedJson,
}

#[derive(Default)]
struct Shared {
    calls: HashMap<String, usize>,
    auth_seen: HashMap<String, String>,
    /// Misbehaviour per path prefix; the longest matching prefix wins.
    behaviors: Vec<(String, Behavior)>,
}

#[derive(Clone)]
pub struct FakeApi {
    pub base_url: String,
    shared: Arc<Mutex<Shared>>,
}

impl FakeApi {
    pub async fn start() -> FakeApi {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let app = Router::new()
            .fallback(answer)
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeApi { base_url, shared }
    }

    /// Makes every path starting with `prefix` misbehave.
    pub fn set(&self, prefix: &str, behavior: Behavior) {
        self.shared
            .lock()
            .unwrap()
            .behaviors
            .push((prefix.to_string(), behavior));
    }

    /// Back to answering every path normally.
    pub fn clear(&self) {
        self.shared.lock().unwrap().behaviors.clear();
    }

    /// The same fake, reached at another base URL (a proxy in front of it).
    pub fn via(&self, base_url: &str) -> FakeApi {
        FakeApi {
            base_url: base_url.to_string(),
            shared: Arc::clone(&self.shared),
        }
    }

    pub fn calls(&self, path: &str) -> usize {
        self.shared
            .lock()
            .unwrap()
            .calls
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    pub fn total_calls(&self) -> usize {
        self.shared.lock().unwrap().calls.values().sum()
    }

    /// The auth header value that came with the last call to `path` (`name: value`).
    pub fn auth_seen(&self, path: &str) -> Option<String> {
        self.shared.lock().unwrap().auth_seen.get(path).cloned()
    }
}

async fn answer(State(shared): State<Arc<Mutex<Shared>>>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    let behavior = {
        let mut shared = shared.lock().unwrap();
        *shared.calls.entry(path.clone()).or_default() += 1;
        let auth = ["x-api-key", "authorization", "apikey"]
            .iter()
            .find_map(|name| {
                let value = request.headers().get(*name)?.to_str().ok()?;
                Some(format!("{name}: {value}"))
            })
            .unwrap_or_default();
        shared.auth_seen.insert(path.clone(), auth);
        shared
            .behaviors
            .iter()
            .filter(|(prefix, _)| path.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, behavior)| behavior.clone())
    };
    let fixture = || {
        let id = path.rsplit('/').next().unwrap_or_default();
        axum::Json(serde_json::json!({ "id": id, "path": path, "firstName": "Demo", "source": "fake provider API" }))
            .into_response()
    };
    match behavior {
        None => fixture(),
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
            fixture()
        }
        Some(Behavior::MalformedJson) => (
            StatusCode::OK,
            [("content-type", "application/json")],
            "{\"id\": ",
        )
            .into_response(),
    }
}
