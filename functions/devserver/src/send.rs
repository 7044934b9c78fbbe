//! `devserver send events/<provider>/<file>.json`: posts an API Gateway event file's request
//! (method, path, query, headers, body) to a running server and prints the answer.

use base64::Engine;
use serde_json::Value;

use crate::Error;

const SAMPLES: &str = "the sample webhooks are events/<provider>/*.json (events/processor/ \
     holds the processor's SQS events, for sam local invoke)";

/// Headers that belong to the hop, not to the sender's request.
const HOP_HEADERS: [&str; 5] = [
    "host",
    "content-length",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-port",
];

pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    /// A webhook's answer (2xx): what a sender would take as accepted.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// What to do next when the answer is not a webhook's: the address is not the webhook
    /// listener (the admin port answers no `POST /webhooks/…`).
    pub fn hint(&self, to: &str) -> Option<String> {
        matches!(self.status, 404 | 405).then(|| {
            format!(
                "{to} has no such webhook route: is it the admin address? Webhooks go to the \
                 server's --listen address (by default http://127.0.0.1:8080)"
            )
        })
    }
}

/// The request of `event_file` sent to the server at `to`, and its answer.
pub async fn send(event_file: &str, to: &str) -> Result<Answer, Error> {
    let event = read_event(event_file)?;
    let method = event["requestContext"]["http"]["method"]
        .as_str()
        .unwrap_or("POST");
    let path = event["rawPath"].as_str().unwrap_or_default();
    let query = event["rawQueryString"].as_str().unwrap_or_default();
    let mut url = format!("{}{path}", to.trim_end_matches('/'));
    if !query.is_empty() {
        url = format!("{url}?{query}");
    }
    let raw_body = event["body"].as_str().unwrap_or_default();
    let body = if event["isBase64Encoded"].as_bool().unwrap_or(false) {
        base64::engine::general_purpose::STANDARD.decode(raw_body)?
    } else {
        raw_body.as_bytes().to_vec()
    };
    let mut request = reqwest::Client::new()
        .request(method.parse()?, url)
        .body(body);
    if let Some(headers) = event["headers"].as_object() {
        for (name, value) in headers {
            if let (false, Some(value)) = (HOP_HEADERS.contains(&name.as_str()), value.as_str()) {
                request = request.header(name, value);
            }
        }
    }
    let response = request.send().await.map_err(|error| {
        if error.is_connect() {
            format!(
                "no server answers at {to}: is the dev server running (cargo run --release -p \
                 devserver)? Use --to <url> for another address"
            )
        } else {
            format!("{to}: {error}")
        }
    })?;
    Ok(Answer {
        status: response.status().as_u16(),
        body: response.text().await?,
    })
}

/// The API Gateway HTTP API event in `event_file`, or what is wrong with the file.
fn read_event(event_file: &str) -> Result<Value, Error> {
    let text =
        std::fs::read_to_string(event_file).map_err(|e| format!("{event_file}: {e}; {SAMPLES}"))?;
    let event: Value = serde_json::from_str(&text)
        .map_err(|e| format!("{event_file} is not JSON ({e}); {SAMPLES}"))?;
    if !event["rawPath"].is_string() {
        return Err(format!(
            "{event_file} is not an API Gateway HTTP API event (it has no rawPath); {SAMPLES}"
        )
        .into());
    }
    Ok(event)
}
