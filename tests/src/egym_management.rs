//! EGYM's webhook management API as FACTS.md §2 documents it, on a loopback port: exactly
//! `POST /api/v2/webhooks` (`{url, secret}`, both required; 409 `webhookUrlAlreadyRegistered`
//! for a URL registered already), `GET /api/v2/webhooks`, `GET`/`PUT`/`DELETE
//! /api/v2/webhooks/{id}` and `POST /api/v2/webhooks/{id}/trigger`, which sends a `TEST`
//! delivery to the subscription's URL with its secret as `x-api-key`. Every request needs the
//! gym's API key (`x-api-key`, else 401); any other method or path is 404.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: i64,
    pub url: String,
    pub secret: String,
}

#[derive(Clone)]
struct Gym {
    api_key: String,
    subscriptions: Arc<Mutex<Vec<Subscription>>>,
    /// Test deliveries sent, with the status each got.
    sent: Arc<Mutex<Vec<u16>>>,
}

pub struct EgymManagement {
    pub base_url: String,
    gym: Gym,
}

impl EgymManagement {
    /// The management API of a gym whose API key is `api_key`.
    pub async fn start(api_key: &str) -> EgymManagement {
        let gym = Gym {
            api_key: api_key.to_string(),
            subscriptions: Arc::default(),
            sent: Arc::default(),
        };
        let app = Router::new()
            .route("/api/v2/webhooks", post(create).get(list))
            .route("/api/v2/webhooks/{id}", get(one).put(update).delete(remove))
            .route("/api/v2/webhooks/{id}/trigger", post(trigger))
            .with_state(gym.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        EgymManagement { base_url, gym }
    }

    pub fn subscriptions(&self) -> Vec<Subscription> {
        self.gym.subscriptions.lock().unwrap().clone()
    }

    /// The status each test delivery was answered with.
    pub fn test_deliveries(&self) -> Vec<u16> {
        self.gym.sent.lock().unwrap().clone()
    }
}

fn authorized(gym: &Gym, headers: &HeaderMap) -> bool {
    headers.get("x-api-key").and_then(|v| v.to_str().ok()) == Some(gym.api_key.as_str())
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({ "error": "unauthorized" })),
    )
        .into_response()
}

fn as_json(subscription: &Subscription) -> Value {
    json!({ "id": subscription.id, "url": subscription.url, "secret": subscription.secret })
}

/// `{url, secret}`, both required strings.
fn subscription_of(body: &Value) -> Option<(String, String)> {
    Some((
        body.get("url")?.as_str()?.to_string(),
        body.get("secret")?.as_str()?.to_string(),
    ))
}

async fn create(State(gym): State<Gym>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    if !authorized(&gym, &headers) {
        return unauthorized();
    }
    let Some((url, secret)) = subscription_of(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "url and secret are required" })),
        )
            .into_response();
    };
    let mut subscriptions = gym.subscriptions.lock().unwrap();
    if subscriptions.iter().any(|s| s.url == url) {
        return (
            StatusCode::CONFLICT,
            Json(json!({ "error": "webhookUrlAlreadyRegistered" })),
        )
            .into_response();
    }
    let subscription = Subscription {
        id: 1000 + subscriptions.len() as i64,
        url,
        secret,
    };
    subscriptions.push(subscription.clone());
    (StatusCode::CREATED, Json(as_json(&subscription))).into_response()
}

async fn list(State(gym): State<Gym>, headers: HeaderMap) -> Response {
    if !authorized(&gym, &headers) {
        return unauthorized();
    }
    let all: Vec<Value> = gym
        .subscriptions
        .lock()
        .unwrap()
        .iter()
        .map(as_json)
        .collect();
    Json(Value::Array(all)).into_response()
}

fn found(gym: &Gym, id: i64) -> Option<Subscription> {
    gym.subscriptions
        .lock()
        .unwrap()
        .iter()
        .find(|s| s.id == id)
        .cloned()
}

async fn one(State(gym): State<Gym>, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    if !authorized(&gym, &headers) {
        return unauthorized();
    }
    match found(&gym, id) {
        Some(subscription) => Json(as_json(&subscription)).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn update(
    State(gym): State<Gym>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Json(body): Json<Value>,
) -> Response {
    if !authorized(&gym, &headers) {
        return unauthorized();
    }
    let Some((url, secret)) = subscription_of(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "url and secret are required" })),
        )
            .into_response();
    };
    let mut subscriptions = gym.subscriptions.lock().unwrap();
    match subscriptions.iter_mut().find(|s| s.id == id) {
        Some(subscription) => {
            subscription.url = url;
            subscription.secret = secret;
            Json(as_json(subscription)).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn remove(State(gym): State<Gym>, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    if !authorized(&gym, &headers) {
        return unauthorized();
    }
    let mut subscriptions = gym.subscriptions.lock().unwrap();
    let before = subscriptions.len();
    subscriptions.retain(|s| s.id != id);
    if subscriptions.len() == before {
        StatusCode::NOT_FOUND.into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    }
}

/// Sends the subscription a `TEST` delivery (no account id: FACTS.md says none is documented).
async fn trigger(State(gym): State<Gym>, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    if !authorized(&gym, &headers) {
        return unauthorized();
    }
    let Some(subscription) = found(&gym, id) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let answer = reqwest::Client::new()
        .post(&subscription.url)
        .header("x-api-key", &subscription.secret)
        .json(&json!({ "type": "TEST", "timestamp": now }))
        .send()
        .await;
    let status = answer.map_or(0, |answer| answer.status().as_u16());
    gym.sent.lock().unwrap().push(status);
    StatusCode::NO_CONTENT.into_response()
}
