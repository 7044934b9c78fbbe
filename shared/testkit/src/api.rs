//! The providers' documented APIs as data, and a double that answers like them: the fixture on
//! an exact route with the required headers (after a token exchange where the API has one),
//! 401 on missing or wrong credentials, 404 on any other method, path or query.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use webhook_core::tenants::{ApiAccess, TenantDirectory};

use crate::template::{fill_value, matches_text, matches_value};
use crate::Kit;

/// What every request must carry and which requests the API answers.
#[derive(Debug, Clone, Deserialize)]
pub struct Api {
    /// Required headers, as templates over the tenant's `api` settings (`{api_key}`,
    /// `{app_id}`, `{app_secret}`, `{company_id}`) and `{token}`, the exchanged token.
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub token: Option<TokenExchange>,
    pub routes: Vec<Route>,
    /// The rate limit the provider publishes for one API key, where it publishes one.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
}

/// At most `calls` requests per API key within any `per_seconds`, as the provider counts them
/// (over it: 429); `source` is where the provider says so.
#[derive(Debug, Clone, Deserialize)]
pub struct RateLimit {
    pub calls: u32,
    pub per_seconds: u64,
    pub source: String,
}

/// The request that trades the tenant's app credentials for an access token.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenExchange {
    pub method: String,
    pub path: String,
    /// The JSON body, a template over the tenant's `api` settings.
    pub body: Value,
    /// The answer; `{token}` and `{refresh_token}` are filled with fresh values.
    pub answer: Value,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Route {
    pub method: String,
    /// `{x}` matches one path segment.
    pub path: String,
    /// Query parameters the request must carry, and no others.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Made-up fixture; `{x}` of the path is filled with what the request had there.
    pub answer: Value,
}

impl Api {
    /// The route answering this request, with the values of its placeholders; the most
    /// literal one where several match (`/customers/additional-information-fields` over
    /// `/customers/{customerId}`).
    pub fn route(
        &self,
        method: &str,
        path: &str,
        query: &str,
    ) -> Option<(&Route, Vec<(String, String)>)> {
        self.routes
            .iter()
            .filter(|route| route.method.eq_ignore_ascii_case(method))
            .filter_map(|route| Some((route, route.captures(path, query)?)))
            .max_by_key(|(route, _)| route.path.split('/').filter(|s| !s.contains('{')).count())
    }

    fn is_token_exchange(&self, method: &str, path: &str, query: &str) -> bool {
        self.token.as_ref().is_some_and(|token| {
            token.method.eq_ignore_ascii_case(method) && token.path == path && query.is_empty()
        })
    }
}

impl Route {
    fn captures(&self, path: &str, query: &str) -> Option<Vec<(String, String)>> {
        let expected: Vec<&str> = self.path.split('/').collect();
        let actual: Vec<&str> = path.split('/').collect();
        if expected.len() != actual.len() {
            return None;
        }
        let mut captured = Vec::new();
        for (template, segment) in expected.iter().zip(&actual) {
            captured.extend(crate::template::capture(template, segment)?);
        }
        let listed: Vec<(&str, &str)> = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
            .collect();
        let pairs: BTreeMap<&str, &str> = listed.iter().copied().collect();
        // A parameter given twice is not the documented request (`ids=1&ids=2`).
        if pairs.len() != listed.len() || pairs.len() != self.query.len() {
            return None;
        }
        for (name, template) in &self.query {
            captured.extend(crate::template::capture(
                template,
                pairs.get(name.as_str())?,
            )?);
        }
        Some(captured)
    }
}

/// An answer of the double: status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    fn error(status: u16, error: &str) -> Answer {
        Answer {
            status,
            body: json!({ "error": error }),
        }
    }
}

/// Answers requests to every provider's API as the kits describe them, accepting only the
/// credentials of tenants it trusts (the kits' demo tenants and those given to
/// [`ApiDouble::trust`]) and only tokens it issued that have neither expired nor been revoked.
pub struct ApiDouble {
    apis: HashMap<&'static str, Api>,
    /// Per provider, the API settings of trusted tenants.
    trusted: Mutex<HashMap<String, Vec<ApiAccess>>>,
    tokens: Mutex<HashMap<String, Issued>>,
    issued: AtomicU64,
}

/// An access token the double handed out.
#[derive(Debug, Clone, PartialEq)]
struct Issued {
    provider: String,
    /// Index of the trusted tenant it was issued to.
    tenant: usize,
    /// Epoch milliseconds after which it is refused; `i64::MIN` once revoked.
    expires_at_ms: i64,
}

impl ApiDouble {
    /// Trusts the kits' demo tenants.
    pub fn strict() -> ApiDouble {
        let double = ApiDouble::trusting_nobody();
        for kit in Kit::all() {
            double.trust(kit.name(), &kit.tenants("http://unused"));
        }
        double
    }

    /// Trusts only the tenants later given to [`ApiDouble::trust`].
    pub fn trusting_nobody() -> ApiDouble {
        ApiDouble {
            apis: Kit::all()
                .into_iter()
                .map(|kit| (kit.name(), kit.api().clone()))
                .collect(),
            trusted: Mutex::default(),
            tokens: Mutex::default(),
            issued: AtomicU64::new(0),
        }
    }

    /// Accepts these tenants' API credentials too.
    pub fn trust(&self, provider: &str, tenants: &TenantDirectory) {
        let mut trusted = self.trusted.lock().unwrap();
        let list = trusted.entry(provider.to_string()).or_default();
        list.extend(tenants.iter().filter_map(|tenant| tenant.api.clone()));
    }

    /// Trusts exactly the API credentials of `tenants` for `provider` (those of tenants no
    /// longer there not any more): a server that reads its tenants again.
    pub fn trust_only(&self, provider: &str, tenants: &TenantDirectory) {
        let apis = tenants.iter().filter_map(|tenant| tenant.api.clone());
        let mut trusted = self.trusted.lock().unwrap();
        trusted.insert(provider.to_string(), apis.collect());
    }

    /// Every access token handed out so far.
    pub fn tokens(&self) -> Vec<String> {
        self.tokens.lock().unwrap().keys().cloned().collect()
    }

    /// Refuses every token handed out so far, as a provider does that revokes them early.
    pub fn revoke_tokens(&self) {
        for issued in self.tokens.lock().unwrap().values_mut() {
            issued.expires_at_ms = i64::MIN;
        }
    }

    /// The required header names of a provider's API (empty for an unknown provider).
    pub fn header_names(&self, provider: &str) -> Vec<String> {
        self.apis
            .get(provider)
            .map(|api| api.headers.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// True if this request is a provider's token exchange.
    pub fn is_token_exchange(&self, provider: &str, method: &str, path: &str, query: &str) -> bool {
        self.apis
            .get(provider)
            .is_some_and(|api| api.is_token_exchange(method, path, query))
    }

    /// The answer to a request for `path` (below the provider's API base) with `query`.
    pub fn answer(
        &self,
        provider: &str,
        method: &str,
        path: &str,
        query: &str,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Answer {
        let Some(api) = self.apis.get(provider) else {
            return Answer::error(404, "no such provider API");
        };
        if api.is_token_exchange(method, path, query) {
            return self.exchange(provider, api.token.as_ref().unwrap(), headers, body);
        }
        let Some((route, captured)) = api.route(method, path, query) else {
            return Answer::error(404, "not found");
        };
        if !self.authorized(provider, api, headers) {
            return Answer::error(401, "unauthorized");
        }
        let value = |name: &str| {
            captured
                .iter()
                .find(|(captured, _)| captured == name)
                .map(|(_, value)| value.clone())
        };
        Answer {
            status: 200,
            body: fill_value(&route.answer, &value),
        }
    }

    fn exchange(
        &self,
        provider: &str,
        exchange: &TokenExchange,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Answer {
        let declared_json = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| {
                value.split(';').next().unwrap_or_default().trim() == "application/json"
            });
        if !declared_json {
            return Answer::error(415, "the token request must be sent as application/json");
        }
        let Ok(presented) = serde_json::from_slice::<Value>(body) else {
            return Answer::error(400, "the token request is not JSON");
        };
        let Some(tenant) = self.candidates(provider).into_iter().find(|&tenant| {
            matches_value(&exchange.body, &presented, &|name, got| {
                self.accepts(provider, tenant, name, got)
            })
        }) else {
            return Answer::error(401, "unknown app credentials");
        };
        let token = self.fresh_token(provider);
        let refresh = self.fresh_token(provider);
        let lifetime_ms = exchange.answer["expires"].as_i64().unwrap_or(3600) * 1000;
        self.tokens.lock().unwrap().insert(
            token.clone(),
            Issued {
                provider: provider.to_string(),
                tenant,
                expires_at_ms: now_ms() + lifetime_ms,
            },
        );
        let value = |name: &str| match name {
            "token" => Some(token.clone()),
            "refresh_token" => Some(refresh.clone()),
            _ => None,
        };
        Answer {
            status: 200,
            body: fill_value(&exchange.answer, &value),
        }
    }

    /// Random-looking, so that a test can tell a token in a log line from anything else.
    fn fresh_token(&self, provider: &str) -> String {
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        let seed = format!("{provider}{n}{:?}", std::time::SystemTime::now());
        hex::encode(&Sha256::digest(seed.as_bytes())[..20])
    }

    fn authorized(&self, provider: &str, api: &Api, headers: &http::HeaderMap) -> bool {
        self.candidates(provider).into_iter().any(|tenant| {
            api.headers.iter().all(|(name, template)| {
                let mut values = headers.get_all(name.as_str()).iter();
                let (Some(value), None) = (values.next(), values.next()) else {
                    return false;
                };
                value.to_str().is_ok_and(|value| {
                    matches_text(template, value, &|name, got| {
                        self.accepts(provider, tenant, name, got)
                    })
                })
            })
        })
    }

    /// Trusted tenants that may have sent a request, by index.
    fn candidates(&self, provider: &str) -> Vec<usize> {
        let count = self
            .trusted
            .lock()
            .unwrap()
            .get(provider)
            .map_or(0, Vec::len);
        (0..count).collect()
    }

    /// True if `got` is the value of placeholder `name` for this tenant: a live token it was
    /// issued, or its own `api` setting.
    fn accepts(&self, provider: &str, tenant: usize, name: &str, got: &str) -> bool {
        if name == "token" {
            let tokens = self.tokens.lock().unwrap();
            return tokens.get(got).is_some_and(|issued| {
                issued.provider == provider
                    && issued.tenant == tenant
                    && issued.expires_at_ms > now_ms()
            });
        }
        let trusted = self.trusted.lock().unwrap();
        let api = &trusted[provider][tenant];
        api_setting(api, name).as_deref() == Some(got)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

fn api_setting(api: &ApiAccess, name: &str) -> Option<String> {
    match name {
        "api_key" => api.api_key.as_ref().map(|s| s.expose().to_string()),
        "app_id" => api.app_id.clone(),
        "app_secret" => api.app_secret.as_ref().map(|s| s.expose().to_string()),
        "company_id" => api.company_id.clone(),
        _ => None,
    }
}
