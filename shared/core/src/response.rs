//! Every way a webhook request can end, mapped to a status and a short JSON body in one place.

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use serde_json::json;

use crate::WebhookResponse;

/// Why a webhook request was not accepted. The messages are safe to show to the sender:
/// they never contain credentials or body content.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("method not allowed, use POST")]
    MethodNotAllowed,
    #[error("unauthorized")]
    Unauthorized,
    #[error("content-type must be application/json")]
    UnsupportedMediaType,
    #[error("malformed body: {0}")]
    MalformedBody(String),
    #[error("this delivery cannot be stored (the store refused it)")]
    Unstorable,
    #[error("temporarily unavailable, retry later")]
    Unavailable,
}

impl IngestError {
    pub fn status(&self) -> StatusCode {
        match self {
            IngestError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            IngestError::Unauthorized => StatusCode::UNAUTHORIZED,
            IngestError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            IngestError::MalformedBody(_) => StatusCode::BAD_REQUEST,
            IngestError::Unstorable => StatusCode::UNPROCESSABLE_ENTITY,
            IngestError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A short machine-readable word for logs and metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            IngestError::PayloadTooLarge { .. } => "too_large",
            IngestError::MethodNotAllowed => "bad_method",
            IngestError::Unauthorized => "unauthorized",
            IngestError::UnsupportedMediaType => "bad_content_type",
            IngestError::MalformedBody(_) => "malformed",
            IngestError::Unstorable => "unstorable",
            IngestError::Unavailable => "unavailable",
        }
    }

    pub fn into_response(self) -> WebhookResponse {
        let mut response = json_response(self.status(), &json!({ "error": self.to_string() }));
        if matches!(self, IngestError::MethodNotAllowed) {
            response
                .headers_mut()
                .insert("allow", HeaderValue::from_static("POST"));
        }
        response
    }
}

/// What the sender is told when its webhook was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ack {
    /// Stored and queued for the first time.
    Accepted { key: String },
    /// Durably stored, but the queue write failed: the outbox sweeper enqueues it shortly.
    Stored { key: String },
    /// Seen before: nothing else happened.
    Duplicate { key: String },
    /// Authentic but unreadable: kept, never processed, shown to operators.
    Quarantined { key: String, reason: String },
    /// The store was unavailable: the whole delivery went to the queue, and the processor
    /// stores it.
    Spilled { key: String },
    /// The provider waits for an answer it reads (TIMIFY Sync webhooks): 200 with `{}` means "no change".
    EmptyObject,
}

impl Ack {
    pub fn outcome(&self) -> &'static str {
        match self {
            Ack::Accepted { .. } | Ack::EmptyObject => "accepted",
            Ack::Stored { .. } => "stored_not_queued",
            Ack::Duplicate { .. } => "duplicate",
            Ack::Quarantined { .. } => "quarantined",
            Ack::Spilled { .. } => "spilled",
        }
    }

    pub fn into_response(self) -> WebhookResponse {
        match self {
            Ack::Accepted { key } => json_response(
                StatusCode::ACCEPTED,
                &json!({ "status": "accepted", "duplicate": false, "id": key }),
            ),
            Ack::Stored { key } => json_response(
                StatusCode::ACCEPTED,
                &json!({ "status": "accepted", "duplicate": false, "queued": false, "id": key }),
            ),
            Ack::Duplicate { key } => json_response(
                StatusCode::OK,
                &json!({ "status": "duplicate", "duplicate": true, "id": key }),
            ),
            Ack::Quarantined { key, reason } => json_response(
                StatusCode::ACCEPTED,
                &json!({ "status": "quarantined", "reason": reason, "id": key }),
            ),
            Ack::Spilled { key } => json_response(
                StatusCode::ACCEPTED,
                &json!({ "status": "accepted", "duplicate": false, "stored": false, "id": key }),
            ),
            Ack::EmptyObject => json_response(StatusCode::OK, &json!({})),
        }
    }
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> WebhookResponse {
    let mut response = http::Response::new(Bytes::from(body.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_json(response: &WebhookResponse) -> serde_json::Value {
        serde_json::from_slice(response.body()).unwrap()
    }

    #[test]
    fn errors_map_to_status_and_short_json() {
        let cases = [
            (IngestError::PayloadTooLarge { limit: 10 }, 413),
            (IngestError::MethodNotAllowed, 405),
            (IngestError::Unauthorized, 401),
            (
                IngestError::MalformedBody("missing field `uuid`".into()),
                400,
            ),
            (IngestError::Unavailable, 503),
        ];
        for (error, status) in cases {
            let text = error.to_string();
            let response = error.into_response();
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(response.headers()["content-type"], "application/json");
            assert_eq!(body_json(&response)["error"], text.as_str());
        }
    }

    #[test]
    fn unauthorized_says_nothing_more() {
        let response = IngestError::Unauthorized.into_response();
        assert_eq!(body_json(&response), json!({ "error": "unauthorized" }));
    }

    #[test]
    fn acks_map_to_status_and_body() {
        let accepted = Ack::Accepted { key: "k".into() }.into_response();
        assert_eq!(accepted.status().as_u16(), 202);
        assert_eq!(body_json(&accepted)["duplicate"], false);
        let duplicate = Ack::Duplicate { key: "k".into() }.into_response();
        assert_eq!(duplicate.status().as_u16(), 200);
        assert_eq!(body_json(&duplicate)["duplicate"], true);
        let empty = Ack::EmptyObject.into_response();
        assert_eq!(body_json(&empty), json!({}));
    }
}
