//! The provider test kit: for each provider, from `data/<name>.json`, its demo tenants, sample
//! deliveries (with the status the webhook must answer and what processing must do), a
//! template for any number of unique deliveries, and its documented API (headers, token
//! exchange, routes, fixture answers). Tests, benches and the dev server's sandbox take their
//! provider knowledge from here, so that none of them branches on a provider's name; a
//! provider without a data file fails them loudly ([`Kit::of`]). Never linked into a Lambda.
//!
//! A data file (see README.md of this crate for every field):
//! `{"order", "accepted_status", "webhook_auth", "webhook_auth_signed"?, "envelope", "tenants",
//! "api": {"headers", "token"?, "routes"}, "unique", "scale"?, "cases"}`.
//! `scripts/make_events.py` writes `events/` and `devserver.toml` from the same files.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;
use webhook_core::providers::Provider;
use webhook_core::tenants::{KeyEncoding, Tenant, TenantDirectory};
use webhook_core::verify::{url_body_signature, Auth};
use webhook_core::WebhookRequest;

mod api;
mod template;

pub use api::{Answer, Api, ApiDouble, RateLimit, Route, TokenExchange};

include!(concat!(env!("OUT_DIR"), "/data.rs"));

/// The public origin the sample deliveries are posted to (the registered webhook URLs').
const PUBLIC_ORIGIN: &str = "https://abc123.execute-api.eu-central-1.amazonaws.com";

/// An API base nothing listens on, for tenants whose API is not called.
const NO_API: &str = "http://127.0.0.1:9";

#[derive(Debug, Clone, Deserialize)]
struct Data {
    accepted_status: u16,
    tenants: Vec<Value>,
    api: Api,
    unique: Value,
    #[serde(default)]
    scale: Scale,
    cases: Vec<Case>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Scale {
    /// Fields of every tenant of a large directory; `{id}` stands for the tenant's id.
    #[serde(default)]
    tenant: serde_json::Map<String, Value>,
    worst_case: Option<WorstCase>,
}

/// The same directory where its lookup is linear by design.
#[derive(Debug, Clone, Deserialize)]
struct WorstCase {
    name: String,
    tenant: serde_json::Map<String, Value>,
}

/// Which tenants a large directory holds (see [`Kit::scaled_tenants`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// As deployed: each delivery names its tenant or its credential finds it in O(1).
    Normal,
    /// The provider's linear lookup (`worst_case` in the data), where it has one.
    WorstCase,
}

/// One sample delivery.
#[derive(Debug, Clone, Deserialize)]
pub struct Case {
    pub name: String,
    /// What the event file of this case shows; cases without one are not written to `events/`.
    #[serde(default)]
    pub shows: Option<String>,
    #[serde(default)]
    status: Option<u16>,
    /// What processing the stored delivery must do, where the case says.
    #[serde(default)]
    pub process: Option<Expect>,
    #[serde(default)]
    tenant: usize,
    #[serde(default)]
    secret: SecretRef,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    query: Option<String>,
    /// Credential headers in place of the provider's scheme (templates, see [`template`]).
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    raw: Option<String>,
    #[serde(default)]
    pad: Option<usize>,
    #[serde(default)]
    signed_url: Option<String>,
    #[serde(default)]
    signed_body: Option<Value>,
}

/// Which webhook secret a case presents.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum SecretRef {
    /// One of the case tenant's secrets.
    Index(usize),
    /// A secret no tenant has.
    Literal(String),
    /// Another tenant's (or another provider's) secret.
    Of {
        provider: Option<String>,
        #[serde(default)]
        tenant: usize,
        #[serde(default)]
        index: usize,
    },
}

impl Default for SecretRef {
    fn default() -> Self {
        SecretRef::Index(0)
    }
}

/// What the processor must do with a stored delivery.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "ExpectData")]
pub enum Expect {
    /// Exactly these API calls, in this order (none: the event is stored as it came). A token
    /// exchange the API needs first is not listed.
    Calls(Vec<Call>),
    /// Erase what is held about the subject; no call.
    Erase,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ExpectData {
    Calls(Vec<String>),
    Word(String),
}

impl TryFrom<ExpectData> for Expect {
    type Error = String;

    fn try_from(data: ExpectData) -> Result<Self, String> {
        match data {
            ExpectData::Word(word) if word == "erase" => Ok(Expect::Erase),
            ExpectData::Word(word) => Err(format!(
                "`process`: {word:?} is neither a list of calls nor \"erase\""
            )),
            ExpectData::Calls(calls) => calls
                .iter()
                .map(|c| c.parse())
                .collect::<Result<_, _>>()
                .map(Expect::Calls),
        }
    }
}

/// One API request: method and path with its query, below the tenant's API base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub method: String,
    pub path: String,
}

impl std::str::FromStr for Call {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (method, path) = text
            .split_once(' ')
            .filter(|(_, path)| path.starts_with('/'))
            .ok_or_else(|| format!("call {text:?} is not `METHOD /path`"))?;
        Ok(Call {
            method: method.to_string(),
            path: path.to_string(),
        })
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// A provider's kit.
pub struct Kit {
    name: &'static str,
    auth: Auth,
    data: Data,
}

impl Kit {
    /// The kit of `provider`; panics if `data/<name>.json` is missing or malformed, so that a
    /// provider added without kit data fails every test that iterates the providers.
    pub fn of(provider: &dyn Provider) -> Kit {
        Kit {
            name: provider.name(),
            auth: provider.auth(),
            data: data_of(provider.name()),
        }
    }

    /// The kits of every provider, in the order of `webhook_core::providers::all()`.
    pub fn all() -> Vec<Kit> {
        webhook_core::providers::all()
            .iter()
            .map(|provider| Kit::of(provider.as_ref()))
            .collect()
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The demo tenants as a tenants document, their API at `<api_base>/<provider>`.
    pub fn tenants_json(&self, api_base: &str) -> String {
        let tenants = Value::Array(self.data.tenants.clone()).to_string();
        let tenants = tenants.replace("{api}", &format!("{api_base}/{}", self.name));
        format!(r#"{{"tenants": {tenants}}}"#)
    }

    /// The demo tenants, their API at `<api_base>/<provider>`.
    pub fn tenants(&self, api_base: &str) -> TenantDirectory {
        TenantDirectory::from_json(&self.tenants_json(api_base))
            .unwrap_or_else(|e| panic!("{}: demo tenants: {e}", self.name))
    }

    pub fn cases(&self) -> &[Case] {
        &self.data.cases
    }

    /// The status the webhook answers a new delivery with.
    pub fn accepted_status(&self) -> u16 {
        self.data.accepted_status
    }

    /// The status the webhook must answer `case` with.
    pub fn status(&self, case: &Case) -> u16 {
        case.status.unwrap_or(self.data.accepted_status)
    }

    /// The provider's documented API.
    pub fn api(&self) -> &Api {
        &self.data.api
    }

    /// The request of `case`, with its credential: the provider's own scheme
    /// ([`Auth::credential_headers`]) unless the case writes its headers out.
    pub fn request(&self, case: &Case) -> WebhookRequest {
        self.request_from(case, &self.tenants(NO_API))
    }

    /// The request of `case` from `tenants` in place of the demo tenants (the same tenants
    /// with other secrets, say).
    pub fn request_from(&self, case: &Case, tenants: &TenantDirectory) -> WebhookRequest {
        let tenant = tenants
            .iter()
            .nth(case.tenant)
            .unwrap_or_else(|| panic!("{}/{}: no tenant #{}", self.name, case.name, case.tenant));
        let body = case.body_text();
        let query = case.query.clone().unwrap_or_else(|| query_of(tenant));
        let uri = match query.as_str() {
            "" => self.webhook_url(),
            query => format!("{}?{query}", self.webhook_url()),
        };
        let secret = self.secret(case, tenant);
        // What a signature covers: the registered URL and the body, unless the case says other.
        let url = case
            .signed_url
            .as_ref()
            .or(tenant.url.as_ref())
            .unwrap_or(&uri);
        let signed = case
            .signed_body
            .as_ref()
            .map_or(body.clone(), Value::to_string);
        let headers = match &case.headers {
            None => self
                .auth
                .credential_headers(tenant, &secret, url, signed.as_bytes()),
            Some(templates) => written_headers(templates, tenant, &secret, url, &signed),
        };
        build(
            case.method.as_deref().unwrap_or("POST"),
            &uri,
            &headers,
            body,
        )
    }

    /// The `seq`-th unique delivery (its dedup key differs for every `seq`) from `tenant`,
    /// proved with `secret` through the provider's own scheme.
    pub fn unique(&self, seq: u64, tenant: &Tenant, secret: &str) -> WebhookRequest {
        self.unique_with(&seq.to_string(), tenant, secret)
    }

    /// [`Kit::unique`] with any integer written out (beyond 2^64, negative): the exact text
    /// a sender would put in the body.
    pub fn unique_with(&self, seq: &str, tenant: &Tenant, secret: &str) -> WebhookRequest {
        // The account the envelope names, where the provider finds a tenant by it.
        let account = tenant.account_id.as_deref().unwrap_or(&tenant.id);
        let body = self.unique_body_with(seq).replace("{account_id}", account);
        let url = tenant.url.clone().unwrap_or_else(|| self.webhook_url());
        let headers = self
            .auth
            .credential_headers(tenant, secret, &url, body.as_bytes());
        build("POST", &url, &headers, body)
    }

    /// The unique-delivery template with `seq` filled in: a value `"{seq}"` becomes the
    /// number, `{seq}` inside a text the digits.
    pub fn unique_body(&self, seq: u64) -> String {
        self.unique_body_with(&seq.to_string())
    }

    fn unique_body_with(&self, seq: &str) -> String {
        self.data
            .unique
            .to_string()
            .replace("\"{seq}\"", seq)
            .replace("{seq}", seq)
    }

    /// `count` tenants `t00000`, `t00001` … with one secret each, shaped as `scale` says; `None`
    /// for [`Lookup::WorstCase`] where the provider has no linear lookup.
    pub fn scaled_tenants(&self, count: usize, lookup: Lookup) -> Option<TenantDirectory> {
        let shape = match lookup {
            Lookup::Normal => &self.data.scale.tenant,
            Lookup::WorstCase => &self.data.scale.worst_case.as_ref()?.tenant,
        };
        let shape = Value::Object(shape.clone()).to_string();
        let api = self
            .data
            .tenants
            .first()
            .and_then(|t| t.get("api"))
            .cloned();
        let tenants: Vec<Value> = (0..count)
            .map(|index| {
                let id = format!("t{index:05}");
                let mut tenant: Value = serde_json::from_str(&shape.replace("{id}", &id)).unwrap();
                tenant["webhook_secrets"] =
                    serde_json::json!([format!("{}-bench-secret-{index:05}-Zq8v2LmN", self.name)]);
                tenant["id"] = id.into();
                if let Some(api) = &api {
                    tenant["api"] = api.clone();
                }
                tenant
            })
            .collect();
        let document = serde_json::json!({ "tenants": tenants }).to_string();
        let document = document.replace("{api}", &format!("{NO_API}/{}", self.name));
        Some(
            TenantDirectory::from_json(&document)
                .unwrap_or_else(|e| panic!("{}: scaled tenants: {e}", self.name)),
        )
    }

    /// The name of the provider's worst-case lookup, where it has one.
    pub fn worst_case(&self) -> Option<&str> {
        self.data.scale.worst_case.as_ref().map(|w| w.name.as_str())
    }

    fn webhook_url(&self) -> String {
        format!("{PUBLIC_ORIGIN}/webhooks/{}", self.name)
    }

    fn secret(&self, case: &Case, tenant: &Tenant) -> String {
        match &case.secret {
            SecretRef::Index(index) => tenant.webhook_secrets[*index].expose().to_string(),
            SecretRef::Literal(text) => text.clone(),
            SecretRef::Of {
                provider,
                tenant,
                index,
            } => {
                let owner = provider
                    .as_deref()
                    .map_or_else(|| self.data.clone(), data_of);
                owner.tenants[*tenant]["webhook_secrets"][*index]
                    .as_str()
                    .unwrap_or_else(|| panic!("{}/{}: no such secret", self.name, case.name))
                    .to_string()
            }
        }
    }
}

impl Case {
    /// The raw body: `raw` as written, else `body` as JSON (with `pad` bytes of padding).
    fn body_text(&self) -> String {
        if let Some(raw) = &self.raw {
            return raw.clone();
        }
        let Some(mut body) = self.body.clone() else {
            return String::new();
        };
        if let (Some(pad), Some(object)) = (self.pad, body.as_object_mut()) {
            object.insert("padding".into(), "x".repeat(pad).into());
        }
        body.to_string()
    }
}

fn data_of(name: &str) -> Data {
    let (_, text) = DATA
        .iter()
        .find(|(file, _)| *file == name)
        .unwrap_or_else(|| {
            panic!("provider {name:?} has no test kit: add shared/testkit/data/{name}.json")
        });
    serde_json::from_str(text).unwrap_or_else(|e| panic!("shared/testkit/data/{name}.json: {e}"))
}

/// The query of the tenant's registered URL, which the provider posts to.
fn query_of(tenant: &Tenant) -> String {
    tenant
        .url
        .as_deref()
        .and_then(|url| url.split_once('?'))
        .map_or_else(String::new, |(_, query)| query.to_string())
}

/// Headers a case writes out: `{secret}`, `{header}` (the tenant's header name),
/// `{url_body_signature}` and `{date_body_signature}` (over the `date` header) filled in.
fn written_headers(
    templates: &BTreeMap<String, String>,
    tenant: &Tenant,
    secret: &str,
    url: &str,
    body: &str,
) -> Vec<(String, String)> {
    let date = templates.get("date").cloned().unwrap_or_default();
    let fill = |text: &str| {
        template::fill(text, |name| match name {
            "secret" => Some(secret.to_string()),
            "header" => tenant.header.clone(),
            "url_body_signature" => Some(url_body_signature(secret, url, body.as_bytes())),
            "date_body_signature" => Some(date_body_signature(tenant, &date, body)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("unknown placeholder in {text:?}"))
    };
    templates
        .iter()
        .map(|(name, value)| (fill(name), fill(value)))
        .collect()
}

/// Base64(HMAC-SHA256(signing key, date + "\n" + body)).
fn date_body_signature(tenant: &Tenant, date: &str, body: &str) -> String {
    let key = tenant
        .signing_key
        .as_ref()
        .expect("the tenant has a signing key");
    // Not pinned: signed as the tenant's documentation's reader would, with the key's text.
    let key = match tenant.signing_key_encoding {
        KeyEncoding::Raw | KeyEncoding::Either => key.expose().as_bytes().to_vec(),
        KeyEncoding::Base64 => base64::engine::general_purpose::STANDARD
            .decode(key.expose())
            .expect("a Base64 signing key"),
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
    mac.update(format!("{date}\n{body}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn build(method: &str, uri: &str, headers: &[(String, String)], body: String) -> WebhookRequest {
    let mut request = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    request.body(Bytes::from(body)).expect("a valid request")
}

#[cfg(test)]
mod tests;
