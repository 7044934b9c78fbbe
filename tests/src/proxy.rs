//! A TCP proxy on a loopback port that forwards to a real endpoint — or, on command, drops
//! every connection (open ones included), as a failing network or a stopped service would, or
//! only the connections that carry a request with a given text (one kind of call failing), or
//! holds the calls: never answers them, whether or not they reached the endpoint (a service that
//! hangs).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Clone)]
pub struct Proxy {
    pub url: String,
    dropping: Arc<watch::Sender<bool>>,
    refused: Refused,
    holding: Holding,
}

/// The text whose requests are dropped, if any.
type Refused = Arc<Mutex<Option<Vec<u8>>>>;

/// What the proxy keeps to itself, on open connections too, until [`Proxy::restore`].
#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum Hold {
    #[default]
    Nothing,
    /// The client's bytes: no request reaches the endpoint, none is answered.
    Requests,
    /// The endpoint's bytes: requests take effect, their answers never come.
    Answers,
}

type Holding = Arc<Mutex<Hold>>;

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (dropping, _) = watch::channel(false);
        let dropping = Arc::new(dropping);
        let state = Arc::clone(&dropping);
        let refused = Refused::default();
        let refusing = Arc::clone(&refused);
        let holding = Holding::default();
        let hold = Arc::clone(&holding);
        tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    return;
                };
                let mut watching = state.subscribe();
                if *watching.borrow() {
                    drop(inbound);
                    continue;
                }
                let refusing = Arc::clone(&refusing);
                let hold = Arc::clone(&hold);
                tokio::spawn(async move {
                    let (mut from_client, mut to_client) = inbound.into_split();
                    // Once a connection has held something back it stays held until its client
                    // gives up: what it passed on after a restore would be half a request or
                    // half an answer.
                    let held = AtomicBool::new(false);
                    if holds(&held, &hold, Hold::Requests) {
                        // Not even connected: a single-threaded endpoint would wait on the
                        // connection for a request, serving nobody else.
                        let mut sink = tokio::io::sink();
                        tokio::select! {
                            _ = tokio::io::copy(&mut from_client, &mut sink) => {}
                            _ = watching.wait_for(|dropping| *dropping) => {}
                        }
                        return;
                    }
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut from_target, to_target) = outbound.into_split();
                    tokio::select! {
                        _ = forward_unless_refused(&mut from_client, to_target, &refusing, &hold, &held) => {}
                        _ = answer_unless_held(&mut from_target, &mut to_client, &hold, &held) => {}
                        _ = watching.wait_for(|dropping| *dropping) => {}
                    }
                });
            }
        });
        Proxy {
            url,
            dropping,
            refused,
            holding,
        }
    }

    /// Takes every request, on open and new connections, and never passes it on nor answers
    /// it, until [`Proxy::restore`]: the endpoint hangs.
    pub fn hold_requests(&self) {
        *self.holding.lock().unwrap() = Hold::Requests;
    }

    /// Passes every request on, but never its answer, until [`Proxy::restore`]: the call takes
    /// effect while its caller waits in vain.
    pub fn hold_answers(&self) {
        *self.holding.lock().unwrap() = Hold::Answers;
    }

    /// Drops every connection that carries a request containing `text`, until
    /// [`Proxy::restore`]; other requests pass.
    pub fn drop_requests_containing(&self, text: &str) {
        *self.refused.lock().unwrap() = Some(text.as_bytes().to_vec());
    }

    /// Drops every open and every new connection until [`Proxy::restore`].
    pub fn drop_connections(&self) {
        self.dropping.send_replace(true);
    }

    pub fn restore(&self) {
        self.dropping.send_replace(false);
        *self.refused.lock().unwrap() = None;
        *self.holding.lock().unwrap() = Hold::Nothing;
    }
}

/// Whether `connection` holds what passes in the direction `hold` names, from now on.
fn holds(connection: &AtomicBool, holding: &Holding, hold: Hold) -> bool {
    if *holding.lock().unwrap() == hold {
        connection.store(true, Ordering::Relaxed);
    }
    connection.load(Ordering::Relaxed)
}

/// Copies the client's bytes to the target, and stops (dropping both) at the first request
/// that contains the refused text, even where it is split between two reads. Held, it reads
/// them and keeps them.
async fn forward_unless_refused(
    from_client: &mut tokio::net::tcp::OwnedReadHalf,
    mut to_target: tokio::net::tcp::OwnedWriteHalf,
    refused: &Refused,
    holding: &Holding,
    held: &AtomicBool,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    let mut seen: Vec<u8> = Vec::new();
    loop {
        let Ok(read) = from_client.read(&mut buffer).await else {
            return;
        };
        if read == 0 {
            return;
        }
        if let Some(text) = refused.lock().unwrap().clone() {
            seen.extend_from_slice(&buffer[..read]);
            if seen
                .windows(text.len())
                .any(|window| window == text.as_slice())
            {
                return;
            }
            let keep = seen.len().saturating_sub(text.len());
            seen.drain(..keep);
        }
        if holds(held, holding, Hold::Requests) {
            continue;
        }
        if to_target.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

/// Copies the target's bytes to the client unless held; a held connection stays open, silent,
/// even once the target closes its side.
async fn answer_unless_held(
    from_target: &mut tokio::net::tcp::OwnedReadHalf,
    to_client: &mut tokio::net::tcp::OwnedWriteHalf,
    holding: &Holding,
    held: &AtomicBool,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let read = match from_target.read(&mut buffer).await {
            Ok(read) if read > 0 => read,
            _ if held.load(Ordering::Relaxed) => return std::future::pending().await,
            _ => return,
        };
        if holds(held, holding, Hold::Answers) {
            continue;
        }
        if to_client.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

/// The address of the local AWS endpoint (`AWS_ENDPOINT_URL`).
pub fn local_aws_address() -> SocketAddr {
    let url = std::env::var("AWS_ENDPOINT_URL").expect("AWS_ENDPOINT_URL");
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("AWS_ENDPOINT_URL is http://<ip>:<port>")
}

/// One AWS API call seen by a [`Recorder`]: the operation its `X-Amz-Target` header names
/// (`DynamoDB_20120810.PutItem`, `AmazonSQS.SendMessage`) and its JSON request.
#[derive(Debug, Clone)]
pub struct AwsCall {
    pub target: String,
    pub request: serde_json::Value,
}

/// An HTTP proxy in front of the local AWS endpoint that writes down every call passing
/// through and, on command, answers the calls of one operation with an error of its own (a
/// 400 the SDKs do not retry), still writing them down.
#[derive(Clone)]
pub struct Recorder {
    pub url: String,
    recording: Arc<Mutex<Recording>>,
}

#[derive(Default)]
struct Recording {
    calls: Vec<AwsCall>,
    /// Operations answered with an error, and the error's `__type`.
    failing: Vec<(String, &'static str)>,
}

#[derive(Clone)]
struct Forwarding {
    recording: Arc<Mutex<Recording>>,
    client: reqwest::Client,
    target: String,
}

impl Recorder {
    pub async fn start(target: SocketAddr) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let recording = Arc::<Mutex<Recording>>::default();
        let forwarding = Forwarding {
            recording: Arc::clone(&recording),
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
            target: format!("http://{target}"),
        };
        let app = axum::Router::new().fallback(forward).with_state(forwarding);
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Recorder { url, recording }
    }

    /// The calls written down since the last `take`.
    pub fn calls(&self) -> Vec<AwsCall> {
        self.recording.lock().unwrap().calls.clone()
    }

    /// The calls written down since the last `take`, forgotten here.
    pub fn take(&self) -> Vec<AwsCall> {
        std::mem::take(&mut self.recording.lock().unwrap().calls)
    }

    /// Fails every call of `target` (`AmazonSQS.SendMessage`), besides those failing
    /// already, until [`Recorder::restore`].
    pub fn fail(&self, target: &str) {
        let failing = (target.to_string(), "InjectedFailure");
        self.recording.lock().unwrap().failing.push(failing);
    }

    /// Refuses every call of `target` as invalid (a `ValidationException`, which no retry
    /// changes), until [`Recorder::restore`].
    pub fn refuse(&self, target: &str) {
        let refusing = (target.to_string(), "ValidationException");
        self.recording.lock().unwrap().failing.push(refusing);
    }

    pub fn restore(&self) {
        self.recording.lock().unwrap().failing.clear();
    }
}

async fn forward(
    axum::extract::State(forwarding): axum::extract::State<Forwarding>,
    request: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return http::StatusCode::BAD_REQUEST.into_response();
    };
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let failing = {
        let mut recording = forwarding.recording.lock().unwrap();
        recording.calls.push(AwsCall {
            target: target.clone(),
            request: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        });
        recording
            .failing
            .iter()
            .find(|(failing, _)| *failing == target)
            .map(|(_, error)| *error)
    };
    if let Some(error) = failing {
        let answer =
            serde_json::json!({"__type": error, "message": "answered by the test's proxy"});
        return (
            http::StatusCode::BAD_REQUEST,
            [("content-type", "application/x-amz-json-1.0")],
            answer.to_string(),
        )
            .into_response();
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut outbound = forwarding
        .client
        .request(parts.method, format!("{}{path}", forwarding.target))
        .body(body);
    for (name, value) in &parts.headers {
        if name != http::header::HOST && name != http::header::CONTENT_LENGTH {
            outbound = outbound.header(name, value);
        }
    }
    let Ok(answer) = outbound.send().await else {
        return http::StatusCode::BAD_GATEWAY.into_response();
    };
    let status = answer.status();
    let mut headers = answer.headers().clone();
    for hop in [
        http::header::CONTENT_LENGTH,
        http::header::TRANSFER_ENCODING,
        http::header::CONNECTION,
    ] {
        headers.remove(hop);
    }
    let body = answer.bytes().await.unwrap_or_default();
    (status, headers, body).into_response()
}
