//! Fetching event details from a provider's API: one HTTP client per cold start (connection
//! reuse, rustls), a timeout per request, no redirects, `https://` only (plain `http://` on
//! loopback), answers read in chunks up to a cap, access tokens exchanged and cached where the
//! provider wants them, and every answer classified as done, transient (retry later), a
//! configuration problem (retry, then the dead-letter queue: fix and redrive) or permanent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::RETRY_AFTER;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::clock::SharedClock;
use crate::tenants::Secret;

/// Largest detail stored beside an event (DynamoDB items stop at 400 KB, the raw body is there too).
pub const MAX_DETAIL_BYTES: usize = 128 * 1024;

/// A token is renewed this long before the provider says it expires.
const TOKEN_MARGIN_MS: i64 = 60_000;
/// How long a token lasts when the provider does not say.
const DEFAULT_TOKEN_SECONDS: i64 = 3600;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// Timeouts, connection errors, 429, 5xx and malformed answers (often a proxy's cut-off
    /// page): try again later, with backoff, and end in the dead-letter queue if it persists.
    Transient {
        reason: String,
        /// Seconds the provider asked us to wait (`Retry-After`, as seconds or a date).
        retry_after: Option<u32>,
        /// The provider asked us to wait (a 429, or a 503 with `Retry-After`): its capacity,
        /// not a failure of this event — the wait never counts as an attempt.
        throttled: bool,
    },
    /// The tenant's settings do not work (401, 403, a missing key, a refused base URL): retried
    /// like a transient failure so that the event waits in the dead-letter queue until the
    /// configuration is fixed and the queue redriven.
    Configuration { reason: String },
    /// 404, other 4xx, redirects and oversized answers: retrying will not help.
    Permanent { reason: String },
}

impl FetchError {
    fn transient(reason: impl Into<String>) -> FetchError {
        FetchError::Transient {
            reason: reason.into(),
            retry_after: None,
            throttled: false,
        }
    }
}

/// How requests to a provider's API authenticate for one tenant.
pub enum ApiCredentials {
    /// Headers sent with every request (an API key).
    Headers(Vec<(&'static str, String)>),
    /// An access token obtained first and sent with every request (TIMIFY).
    Token(TokenExchange),
}

/// `POST <base><path>` with a JSON body of credentials; the answer's `token` (or
/// `accessToken`, `access_token`) is sent as `Authorization: [Bearer ]<token>` along with
/// `headers`, until `expires` (or `expires_in`) seconds have passed.
pub struct TokenExchange {
    pub path: &'static str,
    pub body: Secret,
    pub bearer: bool,
    pub headers: Vec<(&'static str, String)>,
}

/// The answer to one GET: its JSON, as text.
pub type Detail = String;

pub struct DetailClient {
    http: reqwest::Client,
    clock: SharedClock,
    /// Access tokens by tenant (`provider#tenant`). Each slot is held while its token is
    /// exchanged, so that concurrent fetches of one tenant wait for one exchange.
    tokens: Mutex<HashMap<String, TokenSlot>>,
}

/// A tenant's access token and when it expires (epoch milliseconds), once there is one.
type TokenSlot = Arc<tokio::sync::Mutex<Option<(Secret, i64)>>>;

/// A client for one operator command's calls (`webhooks connect`, `webhooks check`): a credential
/// it sends is never carried to where a redirect points.
pub fn command_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())
}

impl DetailClient {
    pub fn new(timeout: Duration, clock: SharedClock) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(3)))
            .pool_idle_timeout(Duration::from_secs(60))
            // A redirect would carry the API key to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("webhook-processor/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("HTTP client configuration is valid");
        DetailClient {
            http,
            clock,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// GETs `base_url` + `path` with the tenant's credentials and returns the JSON answer as
    /// text. `tenant_key` names the tenant's cached access token.
    pub async fn get_json(
        &self,
        base_url: &str,
        path: &str,
        credentials: &ApiCredentials,
        tenant_key: &str,
    ) -> Result<Detail, FetchError> {
        let base = checked_base(base_url)?;
        let url = format!("{base}{path}");
        match credentials {
            ApiCredentials::Headers(headers) => self.get(&url, headers).await,
            ApiCredentials::Token(exchange) => {
                let mut headers = exchange.headers.clone();
                let token = self.token(base, exchange, tenant_key, None).await?;
                headers.push(("authorization", authorization(exchange, &token)));
                match self.get(&url, &headers).await {
                    // The token may have been revoked before its time: renew it once.
                    Err(FetchError::Configuration { .. }) => {
                        let token = self.token(base, exchange, tenant_key, Some(&token)).await?;
                        headers.pop();
                        headers.push(("authorization", authorization(exchange, &token)));
                        self.get(&url, &headers).await
                    }
                    answer => answer,
                }
            }
        }
    }

    async fn get(&self, url: &str, headers: &[(&str, String)]) -> Result<Detail, FetchError> {
        let mut request = self
            .http
            .request(Method::GET, url)
            .header("accept", "application/json");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.map_err(unreachable)?;
        let body = read_answer(response, self.clock.now_ms()).await?;
        exact_json(&body)
    }

    /// The cached token while it has more than a margin left and is not the one `refused`,
    /// else a new one.
    async fn token(
        &self,
        base: &str,
        exchange: &TokenExchange,
        tenant_key: &str,
        refused: Option<&Secret>,
    ) -> Result<Secret, FetchError> {
        let slot = Arc::clone(
            self.tokens
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(tenant_key.to_string())
                .or_default(),
        );
        let mut cached = slot.lock().await;
        let now = self.clock.now_ms();
        if let Some((token, expires_at)) = cached.as_ref() {
            let fresh = *expires_at > now + TOKEN_MARGIN_MS;
            if fresh && refused.is_none_or(|refused| refused != token) {
                return Ok(token.clone());
            }
        }
        let token = self.exchange(base, exchange).await?;
        *cached = Some(token.clone());
        Ok(token.0)
    }

    /// Trades the tenant's credentials for a token; returns it and when it expires.
    async fn exchange(
        &self,
        base: &str,
        exchange: &TokenExchange,
    ) -> Result<(Secret, i64), FetchError> {
        let response = self
            .http
            .post(format!("{base}{}", exchange.path))
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(exchange.body.expose().to_string())
            .send()
            .await
            .map_err(unreachable)?;
        let body = read_answer(response, self.clock.now_ms()).await?;
        let answer: Value = serde_json::from_slice(&body).map_err(|_| {
            FetchError::transient("provider token endpoint answered malformed JSON")
        })?;
        let token = ["token", "accessToken", "access_token"]
            .iter()
            .find_map(|name| answer[name].as_str())
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                FetchError::transient("provider token endpoint answered without a token")
            })?;
        let seconds = ["expires", "expires_in", "expiresIn"]
            .iter()
            .find_map(|name| answer[name].as_i64())
            .unwrap_or(DEFAULT_TOKEN_SECONDS);
        let expires_at = self.clock.now_ms() + seconds.saturating_mul(1000);
        Ok((Secret::new(token), expires_at))
    }
}

fn authorization(exchange: &TokenExchange, token: &Secret) -> String {
    if exchange.bearer {
        format!("Bearer {}", token.expose())
    } else {
        token.expose().to_string()
    }
}

/// The base URL without a trailing slash, if it may be called: `https://`, or `http://` to a
/// loopback address (local sandboxes and tests) or to `host.docker.internal`, the machine a
/// `sam local` container runs on (scripts/local-aws's sandbox).
fn checked_base(base_url: &str) -> Result<&str, FetchError> {
    let base = base_url.trim_end_matches('/');
    let refused = || {
        FetchError::Configuration {
        reason: "the tenant's api.base_url must start with https:// (http:// only for 127.0.0.1, localhost or host.docker.internal)".into(),
    }
    };
    let url = reqwest::Url::parse(base).map_err(|_| refused())?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost" || name == "host.docker.internal",
        None => false,
    };
    match url.scheme() {
        "https" => Ok(base),
        "http" if loopback => Ok(base),
        _ => Err(refused()),
    }
}

fn unreachable(error: reqwest::Error) -> FetchError {
    FetchError::transient(if error.is_timeout() {
        "provider API timed out".to_string()
    } else {
        format!("provider API unreachable: {}", without_url(&error))
    })
}

/// The answer's body, if its status says it is one; read in chunks and given up on as soon as
/// it passes [`MAX_DETAIL_BYTES`].
async fn read_answer(mut response: reqwest::Response, now_ms: i64) -> Result<Vec<u8>, FetchError> {
    let status = response.status();
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry_after_seconds(v, now_ms));
        let asked_to_wait = status == StatusCode::SERVICE_UNAVAILABLE && retry_after.is_some();
        return Err(FetchError::Transient {
            reason: format!("provider API answered {status}"),
            retry_after,
            throttled: status == StatusCode::TOO_MANY_REQUESTS || asked_to_wait,
        });
    }
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Err(FetchError::Configuration {
            reason: format!(
                "provider API answered {status}: check the tenant's API credentials and scopes"
            ),
        });
    }
    if status.is_redirection() {
        return Err(FetchError::Permanent {
            reason: format!(
                "provider API answered {status} (a redirect, not followed): check the tenant's api.base_url"
            ),
        });
    }
    if !status.is_success() {
        return Err(FetchError::Permanent {
            reason: format!("provider API answered {status}"),
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|error| {
        FetchError::transient(format!(
            "provider API answer cut off: {}",
            without_url(&error)
        ))
    })? {
        if body.len() + chunk.len() > MAX_DETAIL_BYTES {
            return Err(FetchError::Permanent {
                reason: format!("provider API answer is over {MAX_DETAIL_BYTES} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The answer's JSON exactly as the API wrote it (without the whitespace around it), once it
/// is checked to be one well-formed value: never re-serialised, so every digit of its numbers
/// is kept (`18446744073709551617`, `-0.10`, `1e400`, which no float holds).
fn exact_json(body: &[u8]) -> Result<Detail, FetchError> {
    let detail: Box<serde_json::value::RawValue> =
        serde_json::from_slice(body).map_err(|error| {
            FetchError::transient(format!("provider API answered malformed JSON: {error}"))
        })?;
    Ok(detail.get().to_string())
}

/// `Retry-After` (RFC 9110): delay-seconds, or an HTTP date, as seconds from `now_ms` (a date
/// already past is no wait); `None` if it is neither.
fn retry_after_seconds(value: &str, now_ms: i64) -> Option<u32> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u32>() {
        return Some(seconds);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let at_ms = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as i64;
    let seconds = ((at_ms - now_ms).max(0) as u64).div_ceil(1000);
    Some(u32::try_from(seconds).unwrap_or(u32::MAX))
}

/// Error text without the URL (it may carry ids; never credentials, but keep logs short).
/// The HTTP status a fetch's reason names (`provider API answered 503 Service Unavailable`),
/// for the record's history.
pub fn status_named(reason: &str) -> Option<u16> {
    let rest = reason.split("provider API answered ").nth(1)?;
    rest.get(..3)?
        .parse()
        .ok()
        .filter(|status| (100..600).contains(status))
}

pub(crate) fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), "<url>");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_names_the_status_the_provider_answered() {
        assert_eq!(
            status_named("provider API answered 404 Not Found"),
            Some(404)
        );
        assert_eq!(
            status_named("provider API answered 429 Too Many Requests (attempt 1 of 5)"),
            Some(429)
        );
        assert_eq!(status_named("provider API unreachable: timed out"), None);
        assert_eq!(
            status_named("provider API answered malformed JSON: x"),
            None
        );
    }

    #[test]
    fn retry_after_is_seconds_or_a_date() {
        // Sun, 06 Nov 1994 08:49:37 GMT is 784111777 s after the epoch.
        let now_ms = 784_111_777_000 - 90_500;
        assert_eq!(retry_after_seconds("120", now_ms), Some(120));
        assert_eq!(retry_after_seconds(" 7 ", now_ms), Some(7));
        assert_eq!(
            retry_after_seconds("Sun, 06 Nov 1994 08:49:37 GMT", now_ms),
            Some(91)
        );
        assert_eq!(
            retry_after_seconds("Sun, 06 Nov 1994 08:49:37 GMT", now_ms + 200_000),
            Some(0)
        );
        assert_eq!(retry_after_seconds("soon", now_ms), None);
        assert_eq!(retry_after_seconds("-5", now_ms), None);
    }

    #[test]
    fn only_https_or_loopback_http_base_urls_are_called() {
        for allowed in [
            "https://studio.open-api.magicline.com",
            "https://mms.api.egym.com/",
            "http://127.0.0.1:9/magicline",
            "http://localhost:8081/_sandbox/egym",
            "http://[::1]:80",
            "http://host.docker.internal:4566/_sandbox/egym",
        ] {
            assert!(checked_base(allowed).is_ok(), "{allowed}");
        }
        for refused in [
            "http://api.timify.com",
            "ftp://x",
            "not a url",
            "http://127.0.0.1.evil.example",
            "http://host.docker.internal.evil.example",
        ] {
            assert!(
                matches!(checked_base(refused), Err(FetchError::Configuration { .. })),
                "{refused}"
            );
        }
    }

    #[test]
    fn an_answer_is_kept_as_the_api_wrote_it_once_checked_to_be_json() {
        let answer = br#" {"big": 18446744073709551617, "price": -0.10, "huge": 1e400} "#;
        assert_eq!(
            exact_json(answer).unwrap(),
            r#"{"big": 18446744073709551617, "price": -0.10, "huge": 1e400}"#
        );
        for malformed in [&b"{\"id\": "[..], b"{} {}", b"\xff", b""] {
            assert!(
                matches!(exact_json(malformed), Err(FetchError::Transient { .. })),
                "{malformed:?}"
            );
        }
    }
}
