//! A stand-in for the Lambda service around a function's real `main`: the bootstrap runs on a
//! thread of its own with the environment it is given, and polls a Runtime API on a loopback
//! port (the one its `lambda_runtime` reads from `AWS_LAMBDA_RUNTIME_API`), through which the
//! test invokes it. Also the API Gateway event of a request, as the webhook functions get it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use tokio::sync::{mpsc, oneshot};

/// A bootstrap's `main`: `|| lambda::start(lambda::run_sweeper())`.
pub type Main = Box<dyn FnOnce() -> Result<(), lambda::Error> + Send>;

type Answer = Result<serde_json::Value, String>;

struct Invocation {
    event: serde_json::Value,
    answer: oneshot::Sender<Answer>,
}

#[derive(Default)]
struct RuntimeApi {
    invocations: tokio::sync::Mutex<Option<mpsc::UnboundedReceiver<Invocation>>>,
    pending: Mutex<HashMap<String, oneshot::Sender<Answer>>>,
    polled: AtomicBool,
    next_id: AtomicU64,
}

/// One function, started: its cold start is over once [`Function::start`] returns.
pub struct Function {
    name: String,
    invocations: Option<mpsc::UnboundedSender<Invocation>>,
    /// The variables it was given, with their values before.
    replaced: Vec<(String, Option<std::ffi::OsString>)>,
}

impl Function {
    /// Runs `main` with `environment` set (plus the variables the Lambda service sets) and
    /// waits for its first poll for an invocation: everything before it is the cold start.
    /// One function at a time: the environment is the process's.
    pub async fn start(name: &str, environment: &[(String, String)], main: Main) -> Function {
        let (sender, receiver) = mpsc::unbounded_channel();
        let api = Arc::new(RuntimeApi::default());
        *api.invocations.lock().await = Some(receiver);
        let app = axum::Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .with_state(Arc::clone(&api));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        let lambda = [
            ("AWS_LAMBDA_RUNTIME_API", address.as_str()),
            ("AWS_LAMBDA_FUNCTION_NAME", name),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ];
        let mut replaced = Vec::new();
        for (variable, value) in environment
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .chain(lambda)
        {
            replaced.push((variable.to_string(), std::env::var_os(variable)));
            std::env::set_var(variable, value);
        }
        let thread = std::thread::spawn(main);
        let started = std::time::Instant::now();
        while !api.polled.load(Ordering::SeqCst) {
            if thread.is_finished() {
                panic!("{name} stopped during its cold start: {:?}", thread.join());
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{name}: no poll for an invocation within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Function {
            name: name.to_string(),
            invocations: Some(sender),
            replaced,
        }
    }

    /// The function's answer to `event`; fails the test on a function error.
    pub async fn invoke(&self, event: serde_json::Value) -> serde_json::Value {
        let (answer, answered) = oneshot::channel();
        let invocations = self.invocations.as_ref().unwrap();
        invocations.send(Invocation { event, answer }).unwrap();
        match tokio::time::timeout(Duration::from_secs(60), answered).await {
            Ok(Ok(Ok(answer))) => answer,
            Ok(Ok(Err(error))) => panic!("{}: function error {error}", self.name),
            Ok(Err(_)) => panic!("{}: the invocation was dropped", self.name),
            Err(_) => panic!("{}: no answer within 60 s", self.name),
        }
    }
}

impl Drop for Function {
    /// Ends the bootstrap: its pending poll fails, on which its runtime stops.
    fn drop(&mut self) {
        self.invocations.take();
        for (variable, before) in self.replaced.iter().rev() {
            match before {
                Some(value) => std::env::set_var(variable, value),
                None => std::env::remove_var(variable),
            }
        }
    }
}

async fn next(State(api): State<Arc<RuntimeApi>>) -> Response {
    api.polled.store(true, Ordering::SeqCst);
    let invocation = match api.invocations.lock().await.as_mut() {
        Some(invocations) => invocations.recv().await,
        None => None,
    };
    let Some(invocation) = invocation else {
        // A connection that breaks mid-answer: the runtime's poll fails and its loop ends.
        let broken = futures::stream::once(async {
            Err::<axum::body::Bytes, _>(std::io::Error::other("the function is stopped"))
        });
        return Response::new(axum::body::Body::from_stream(broken));
    };
    let id = format!("invocation-{}", api.next_id.fetch_add(1, Ordering::SeqCst));
    api.pending
        .lock()
        .unwrap()
        .insert(id.clone(), invocation.answer);
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 60_000;
    (
        [
            ("lambda-runtime-aws-request-id", id),
            ("lambda-runtime-deadline-ms", deadline.to_string()),
            (
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:under-test".to_string(),
            ),
            ("content-type", "application/json".to_string()),
        ],
        invocation.event.to_string(),
    )
        .into_response()
}

async fn response(
    State(api): State<Arc<RuntimeApi>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> StatusCode {
    let answer = serde_json::from_slice(&body).map_err(|e| format!("{e}: {body:?}"));
    answer_to(&api, &id, answer)
}

async fn error(
    State(api): State<Arc<RuntimeApi>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> StatusCode {
    answer_to(&api, &id, Err(String::from_utf8_lossy(&body).into_owned()))
}

fn answer_to(api: &RuntimeApi, id: &str, answer: Answer) -> StatusCode {
    match api.pending.lock().unwrap().remove(id) {
        Some(waiting) => {
            let _ = waiting.send(answer);
            StatusCode::ACCEPTED
        }
        None => StatusCode::NOT_FOUND,
    }
}

/// The API Gateway HTTP API (v2) event of `request`, as the webhook functions receive it.
pub fn apigw_event(request: &webhook_core::WebhookRequest) -> serde_json::Value {
    let method = request.method().as_str();
    let path = request.uri().path();
    let mut headers = serde_json::Map::new();
    for (name, value) in request.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match headers.get_mut(name.as_str()) {
            // API Gateway joins a repeated header's values with commas.
            Some(serde_json::Value::String(joined)) => {
                joined.push(',');
                joined.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().into(), value.into());
            }
        }
    }
    let (body, base64) = match std::str::from_utf8(request.body()) {
        Ok(text) => (text.to_string(), false),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(request.body()),
            true,
        ),
    };
    serde_json::json!({
        "version": "2.0",
        "routeKey": format!("{method} {path}"),
        "rawPath": path,
        "rawQueryString": request.uri().query().unwrap_or_default(),
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": "abc123",
            "domainName": "abc123.execute-api.eu-central-1.amazonaws.com", "domainPrefix": "abc123",
            "http": { "method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9", "userAgent": "test" },
            "requestId": "test", "routeKey": format!("{method} {path}"), "stage": "$default",
            "time": "25/Nov/2026:19:00:00 +0000", "timeEpoch": 1795640400000u64
        },
        "body": body,
        "isBase64Encoded": base64,
    })
}
