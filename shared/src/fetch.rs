//! Fetching event details from a provider's API: one HTTP client per cold start (connection
//! reuse, rustls), a timeout per request, and every answer classified as done, transient
//! (retry later) or permanent (record the reason, do not retry).

use std::time::Duration;

use reqwest::header::RETRY_AFTER;
use reqwest::StatusCode;

/// Largest detail stored beside an event (DynamoDB items stop at 400 KB, the raw body is there too).
pub const MAX_DETAIL_BYTES: usize = 128 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// Timeouts, connection errors, 429, 5xx and malformed answers (often a proxy's cut-off
    /// page): try again later, with backoff, and end in the dead-letter queue if it persists.
    Transient {
        reason: String,
        /// Seconds the provider asked us to wait (429 `Retry-After`).
        retry_after: Option<u32>,
    },
    /// 4xx and oversized answers: retrying will not help.
    Permanent { reason: String },
}

#[derive(Clone)]
pub struct DetailClient {
    http: reqwest::Client,
}

impl DetailClient {
    pub fn new(timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(3)))
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("webhook-processor/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("HTTP client configuration is valid");
        DetailClient { http }
    }

    /// GETs `url` with one authentication header and returns the JSON answer as text.
    pub async fn get_json(&self, url: &str, auth: (&str, String)) -> Result<String, FetchError> {
        let response = self
            .http
            .get(url)
            .header(auth.0, auth.1)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|error| FetchError::Transient {
                reason: if error.is_timeout() {
                    "provider API timed out".to_string()
                } else {
                    format!("provider API unreachable: {}", without_url(&error))
                },
                retry_after: None,
            })?;
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u32>().ok());
            return Err(FetchError::Transient {
                reason: format!("provider API answered {status}"),
                retry_after,
            });
        }
        if !status.is_success() {
            return Err(FetchError::Permanent {
                reason: format!("provider API answered {status}"),
            });
        }
        let body = response
            .bytes()
            .await
            .map_err(|error| FetchError::Transient {
                reason: format!("provider API answer cut off: {}", without_url(&error)),
                retry_after: None,
            })?;
        if body.len() > MAX_DETAIL_BYTES {
            return Err(FetchError::Permanent {
                reason: format!(
                    "provider API answer is {} bytes, over {MAX_DETAIL_BYTES}",
                    body.len()
                ),
            });
        }
        let detail: serde_json::Value =
            serde_json::from_slice(&body).map_err(|error| FetchError::Transient {
                reason: format!("provider API answered malformed JSON: {error}"),
                retry_after: None,
            })?;
        Ok(detail.to_string())
    }
}

/// Error text without the URL (it may carry ids; never credentials, but keep logs short).
fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), "<url>");
    }
    text
}
