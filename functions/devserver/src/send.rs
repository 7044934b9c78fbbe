//! `devserver send events/<provider>/<file>.json`: posts an API Gateway event file's request
//! (method, path, query, headers, body) to a running server and prints the answer.

use base64::Engine;
use serde_json::Value;

use crate::Error;

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

pub async fn send(event_file: &str, to: &str) -> Result<Answer, Error> {
    let text = std::fs::read_to_string(event_file).map_err(|e| format!("{event_file}: {e}"))?;
    let event: Value = serde_json::from_str(&text)?;
    let method = event["requestContext"]["http"]["method"]
        .as_str()
        .unwrap_or("POST");
    let path = event["rawPath"].as_str().ok_or("event has no rawPath")?;
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
    let response = request.send().await?;
    Ok(Answer {
        status: response.status().as_u16(),
        body: response.text().await?,
    })
}
