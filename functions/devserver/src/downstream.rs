//! Downstream events in the dev server: with `[downstream] url = "http://…"` in the
//! configuration, the processor publishes every event it finishes as `PROCESSED` (erasures
//! included; never a failed one) by POSTing `{"source", "detail-type", "detail"}` — the shape
//! of an EventBridge event — to that URL. Anything but a 2xx within the timeout is a failed
//! publication, which the core retries like a failed fetch (so a consumer may see an event
//! twice and deduplicates by `detail.key`).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde_json::json;
use webhook_core::downstream::{DownstreamEvent, PublishError, Publisher};

use crate::Error;

/// How long one publication may take, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(5);

pub struct HttpPublisher {
    client: reqwest::Client,
    url: String,
}

impl HttpPublisher {
    pub fn new(url: &str) -> Result<Self, Error> {
        check_url(url)?;
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(HttpPublisher {
            client,
            url: url.to_string(),
        })
    }
}

/// The body POSTed for one event.
pub fn body(event: &DownstreamEvent) -> serde_json::Value {
    json!({
        "source": event.source,
        "detail-type": event.detail_type,
        "detail": event.detail,
    })
}

impl HttpPublisher {
    /// Every failure may pass (the consumer is being restarted or fixed): retried.
    async fn post(&self, event: &DownstreamEvent) -> Result<(), PublishError> {
        let unavailable = PublishError::Unavailable;
        let answer = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body(event).to_string())
            .send()
            .await
            // Without the URL: it may carry a token.
            .map_err(|error| unavailable(format!("downstream: {}", error.without_url())))?;
        let status = answer.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(unavailable(format!(
                "downstream answered HTTP {}",
                status.as_u16()
            )))
        }
    }
}

// What `#[async_trait]` would write (the dev server does without the macro's crate).
impl Publisher for HttpPublisher {
    fn publish<'a, 'b, 'f>(
        &'a self,
        event: &'b DownstreamEvent,
    ) -> Pin<Box<dyn Future<Output = Result<(), PublishError>> + Send + 'f>>
    where
        'a: 'f,
        'b: 'f,
    {
        Box::pin(self.post(event))
    }
}

/// An `http://` or `https://` URL with a host.
pub fn check_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err("must be an http:// or https:// URL".into());
    }
    Ok(())
}

/// The URL for a log line: scheme, host, port and path, without credentials or query.
pub fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.to_string()
        }
        Err(_) => "(unparsable)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_with_a_host_are_taken() {
        assert!(check_url("http://127.0.0.1:9000/events").is_ok());
        assert!(check_url("https://hooks.example.com/in").is_ok());
        for bad in ["ftp://x/y", "127.0.0.1:9000", "file:///tmp/x", ""] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn logged_urls_lose_credentials_and_query() {
        assert_eq!(
            redacted("https://user:pw@hooks.example.com/in?token=abc"),
            "https://hooks.example.com/in"
        );
    }
}
