//! How a request proves it comes from the provider, for each scheme the providers use.
//! Pure functions over the request and the tenant directory: no I/O.

use base64::Engine;
use hmac::{Hmac, Mac};
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};
use sha2::Sha256;

use crate::tenants::{Tenant, TenantDirectory};
use crate::WebhookRequest;

#[derive(Clone, Copy)]
pub enum AuthScheme {
    /// The secret as-is in a fixed header (`x-api-key`).
    HeaderSecret { header: &'static str },
    /// The secret in a header whose name each tenant chooses (`Tenant::header`).
    TenantChosenHeader,
    /// The secret inside the `Authorization` header; the provider's parser extracts it and
    /// refuses anything not in its exact format. `present` is the inverse: the header value a
    /// sender writes for a secret.
    Authorization {
        extract: fn(&str) -> Option<&str>,
        present: fn(&str) -> String,
    },
    /// Base64(HMAC-SHA256(secret, registered URL + raw body)) in a header.
    UrlBodySignature { header: &'static str },
}

/// Header names and values a sender adds to a request.
pub type Headers = Vec<(String, String)>;

/// A signature a tenant may ask for on top of the credential (FlyBuy's optional HMAC key).
#[derive(Clone, Copy)]
pub struct TenantSignature {
    /// True if the tenant asks for no signature, or the request carries a valid one.
    pub verify: fn(&Tenant, &WebhookRequest) -> bool,
    /// The sender's side: the credential headers for a body, with the signature added where
    /// the tenant asks for one.
    pub sign: fn(&Tenant, Headers, &[u8]) -> Headers,
}

#[derive(Clone, Copy)]
pub struct Auth {
    pub scheme: AuthScheme,
    /// The provider lets a subscription send no credential at all. Such a request is accepted
    /// only for a tenant configured with `allow_unauthenticated = true`.
    pub credential_optional: bool,
    pub tenant_signature: Option<TenantSignature>,
}

impl Auth {
    /// Every request must carry a valid credential.
    pub const fn required(scheme: AuthScheme) -> Auth {
        Auth {
            scheme,
            credential_optional: false,
            tenant_signature: None,
        }
    }

    /// The provider lets subscriptions go without a credential.
    pub const fn optional(scheme: AuthScheme) -> Auth {
        Auth {
            scheme,
            credential_optional: true,
            tenant_signature: None,
        }
    }

    /// Tenants may also ask for a signature.
    pub const fn with_tenant_signature(self, signature: TenantSignature) -> Auth {
        Auth {
            tenant_signature: Some(signature),
            ..self
        }
    }
}

/// Whom a request proved to come from.
#[derive(Debug, Clone, Copy)]
pub struct Verified<'t> {
    pub tenant: &'t Tenant,
    /// False for a tenant reached without a credential (`allow_unauthenticated`).
    pub with_credential: bool,
}

/// The tenant this request proves to come from, or `None`.
pub fn authenticate<'t>(
    auth: &Auth,
    request: &WebhookRequest,
    tenants: &'t TenantDirectory,
) -> Option<Verified<'t>> {
    let headers = request.headers();
    let presented = match auth.scheme {
        AuthScheme::HeaderSecret { header } => {
            sole(headers, header).map(|value| tenants.by_secret(value?.as_bytes()))
        }
        AuthScheme::TenantChosenHeader => {
            carries_tenant_header(tenants, headers).then(|| by_tenant_header(tenants, headers))
        }
        AuthScheme::Authorization { extract, .. } => {
            sole(headers, AUTHORIZATION.as_str()).map(|value| {
                let secret = extract(value?.to_str().ok()?)?;
                tenants.by_secret(secret.as_bytes())
            })
        }
        AuthScheme::UrlBodySignature { header } => sole(headers, header).map(|value| {
            let value = value?;
            let signature = decode_signature(value.as_bytes())?;
            let body: &[u8] = request.body();
            match tenant_named_in_query(request).and_then(|id| tenants.get(id)) {
                Some(tenant) => signed_by(tenant, &signature, body).then_some(tenant),
                None => tenants
                    .iter()
                    .find(|tenant| signed_by(tenant, &signature, body)),
            }
        }),
    };
    let named = tenant_named_in_query(request);
    let verified = match presented {
        // A URL registered for one tenant only accepts that tenant's credentials.
        Some(found) => found
            .filter(|tenant| named.is_none_or(|id| id == tenant.id))
            .map(|tenant| Verified {
                tenant,
                with_credential: true,
            }),
        None if auth.credential_optional => tenants.unauthenticated(named).map(|tenant| Verified {
            tenant,
            with_credential: false,
        }),
        None => None,
    }?;
    match auth.tenant_signature {
        Some(signature) => (signature.verify)(verified.tenant, request).then_some(verified),
        None => Some(verified),
    }
}

/// `None` if the header is absent, `Some(None)` if it is repeated (ambiguous: refused, never
/// read as "no credential"), else its one value.
pub fn sole<'h>(headers: &'h HeaderMap, name: &str) -> Option<Option<&'h HeaderValue>> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    Some(values.next().is_none().then_some(first))
}

/// For schemes where the tenant names the header: the tenant whose header carries one of its
/// secrets.
fn by_tenant_header<'t>(tenants: &'t TenantDirectory, headers: &HeaderMap) -> Option<&'t Tenant> {
    tenants.header_names().iter().find_map(|name| {
        let value = sole(headers, name)??;
        let tenant = tenants.by_secret(value.as_bytes())?;
        (tenant.header.as_deref() == Some(name.as_str())).then_some(tenant)
    })
}

/// True if the request carries any of the tenant-chosen headers.
fn carries_tenant_header(tenants: &TenantDirectory, headers: &HeaderMap) -> bool {
    tenants
        .header_names()
        .iter()
        .any(|name| headers.contains_key(name.as_str()))
}

/// `?tenant=<id>` in the registered URL picks the tenant directly where the credential alone
/// does not (signatures, unauthenticated subscriptions).
fn tenant_named_in_query(request: &WebhookRequest) -> Option<&str> {
    let query = request.uri().query()?;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("tenant="))
}

fn decode_signature(value: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(value).ok()?.trim();
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

/// True if one of the tenant's secrets signed `url + body` with this signature (constant time).
fn signed_by(tenant: &Tenant, signature: &[u8], body: &[u8]) -> bool {
    let Some(url) = tenant.url.as_deref() else {
        return false;
    };
    tenant.webhook_secrets.iter().fold(false, |found, secret| {
        found
            | url_body_mac(secret.expose().as_bytes(), url, body)
                .verify_slice(signature)
                .is_ok()
    })
}

fn url_body_mac(secret: &[u8], url: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(url.as_bytes());
    mac.update(body);
    mac
}

/// The signature a sender computes: Base64(HMAC-SHA256(secret, url + body)).
pub fn url_body_signature(secret: &str, url: &str, body: &[u8]) -> String {
    let tag = url_body_mac(secret.as_bytes(), url, body)
        .finalize()
        .into_bytes();
    base64::engine::general_purpose::STANDARD.encode(tag)
}

impl Auth {
    /// The headers a sender adds to prove `body`, posted to `url`, comes from `tenant` holding
    /// `secret`: the inverse of [`authenticate`], for test kits and the dev server's `send`.
    pub fn credential_headers(
        &self,
        tenant: &Tenant,
        secret: &str,
        url: &str,
        body: &[u8],
    ) -> Vec<(String, String)> {
        let headers = self.scheme_headers(tenant, secret, url, body);
        match self.tenant_signature {
            Some(signature) => (signature.sign)(tenant, headers, body),
            None => headers,
        }
    }

    fn scheme_headers(
        &self,
        tenant: &Tenant,
        secret: &str,
        url: &str,
        body: &[u8],
    ) -> Vec<(String, String)> {
        match self.scheme {
            AuthScheme::HeaderSecret { header } => vec![(header.to_string(), secret.to_string())],
            AuthScheme::TenantChosenHeader => tenant
                .header
                .iter()
                .map(|header| (header.clone(), secret.to_string()))
                .collect(),
            AuthScheme::Authorization { present, .. } => {
                vec![(AUTHORIZATION.as_str().to_string(), present(secret))]
            }
            AuthScheme::UrlBodySignature { header } => {
                vec![(header.to_string(), url_body_signature(secret, url, body))]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// Computed independently with Python:
    /// `base64.b64encode(hmac.new(secret, (url + body).encode(), hashlib.sha256).digest())`.
    const VECTORS: [(&str, &str, &str, &str); 3] = [
        (
            "whsec-demo-1",
            "https://hooks.example.com/webhooks/waitwhile",
            r#"{"type":"visit.created","data":{"id":"v1"}}"#,
            "J+UF0LxGKY8ep0dWqMzA9aDy3CEcEKXCZdF8cYsFRws=",
        ),
        (
            "whsec-demo-1",
            "https://hooks.example.com/webhooks/waitwhile?tenant=loc-1&x=%20y",
            r#"{"type":"visit.created","data":{"id":"v1"}}"#,
            "16W8LCP7i+OuzgxtQ/vYF5czIV3L7v+r45RlXClHKNI=",
        ),
        (
            "ünïcödé-secret",
            "https://hooks.example.com/webhooks/waitwhile",
            r#"{"type":"message.created","data":{"text":"Grüße, 你好 — ça va? 🎉"}}"#,
            "yH2y9cpJU/j4pOjMaCSAmpXZOv2DoivDy6rWZqYX35U=",
        ),
    ];

    #[test]
    fn signatures_match_independent_vectors() {
        for (secret, url, body, expected) in VECTORS {
            assert_eq!(
                url_body_signature(secret, url, body.as_bytes()),
                expected,
                "{url} {body}"
            );
        }
    }

    fn directory() -> TenantDirectory {
        TenantDirectory::from_json(
            r#"{"tenants": [
                {"id": "loc-1", "url": "https://hooks.example.com/webhooks/waitwhile?tenant=loc-1",
                 "webhook_secrets": ["new-secret", "old-secret"]},
                {"id": "loc-2", "url": "https://hooks.example.com/webhooks/waitwhile",
                 "webhook_secrets": ["other-secret"]}
            ]}"#,
        )
        .unwrap()
    }

    fn signed_request(uri: &str, signature: &str, body: &str) -> WebhookRequest {
        http::Request::builder()
            .method("POST")
            .uri(uri)
            .header("x-waitwhile-signature", signature)
            .body(Bytes::copy_from_slice(body.as_bytes()))
            .unwrap()
    }

    const SIGNED: Auth = Auth::required(AuthScheme::UrlBodySignature {
        header: "x-waitwhile-signature",
    });

    #[test]
    fn a_signature_picks_the_tenant_by_query_or_by_trying_each() {
        let tenants = directory();
        let body = r#"{"type":"visit.updated"}"#;
        let url1 = "https://hooks.example.com/webhooks/waitwhile?tenant=loc-1";
        for secret in ["new-secret", "old-secret"] {
            let request = signed_request(
                url1,
                &url_body_signature(secret, url1, body.as_bytes()),
                body,
            );
            assert_eq!(
                authenticate(&SIGNED, &request, &tenants).unwrap().tenant.id,
                "loc-1"
            );
        }
        let url2 = "https://hooks.example.com/webhooks/waitwhile";
        let request = signed_request(
            url2,
            &url_body_signature("other-secret", url2, body.as_bytes()),
            body,
        );
        assert_eq!(
            authenticate(&SIGNED, &request, &tenants).unwrap().tenant.id,
            "loc-2"
        );
    }

    #[test]
    fn a_signature_over_another_url_or_body_or_secret_is_refused() {
        let tenants = directory();
        let url = "https://hooks.example.com/webhooks/waitwhile?tenant=loc-1";
        let body = r#"{"type":"visit.updated"}"#;
        let cases = [
            url_body_signature(
                "new-secret",
                "https://elsewhere.example.com/hook",
                body.as_bytes(),
            ),
            url_body_signature("new-secret", url, b"{\"type\":\"visit.removed\"}"),
            url_body_signature("removed-secret", url, body.as_bytes()),
            "not base64 at all".to_string(),
            String::new(),
        ];
        for signature in cases {
            let request = signed_request(url, &signature, body);
            assert!(
                authenticate(&SIGNED, &request, &tenants).is_none(),
                "{signature}"
            );
        }
        let unsigned = http::Request::builder()
            .uri(url)
            .body(Bytes::copy_from_slice(body.as_bytes()))
            .unwrap();
        assert!(authenticate(&SIGNED, &unsigned, &tenants).is_none());
    }

    #[test]
    fn a_url_naming_one_tenant_refuses_another_tenants_credential() {
        let tenants = TenantDirectory::from_json(
            r#"{"tenants": [{"id": "p1", "webhook_secrets": ["tok1"]}, {"id": "p2", "webhook_secrets": ["tok2"]}]}"#,
        )
        .unwrap();
        let auth = Auth::required(AuthScheme::HeaderSecret { header: "x-token" });
        let request = |uri: &str, token: &str| {
            http::Request::builder()
                .uri(uri)
                .header("x-token", token)
                .body(Bytes::new())
                .unwrap()
        };
        let found = |uri, token| {
            authenticate(&auth, &request(uri, token), &tenants).map(|v| v.tenant.id.clone())
        };
        assert_eq!(
            found("https://x/h?tenant=p1", "tok1").as_deref(),
            Some("p1")
        );
        assert_eq!(found("https://x/h?tenant=p1", "tok2"), None);
        assert_eq!(found("https://x/h", "tok2").as_deref(), Some("p2"));
    }

    #[test]
    fn a_repeated_credential_header_is_refused() {
        let tenants = TenantDirectory::from_json(
            r#"{"tenants": [{"id": "p1", "webhook_secrets": ["tok1"]}, {"id": "open", "allow_unauthenticated": true}]}"#,
        )
        .unwrap();
        let auth = Auth::optional(AuthScheme::HeaderSecret { header: "x-token" });
        let request = http::Request::builder()
            .uri("https://x/h")
            .header("x-token", "tok1")
            .header("x-token", "tok1")
            .body(Bytes::new())
            .unwrap();
        assert!(authenticate(&auth, &request, &tenants).is_none());
    }

    #[test]
    fn an_absent_credential_reaches_only_an_open_tenant_of_an_optional_scheme() {
        let tenants = TenantDirectory::from_json(
            r#"{"tenants": [{"id": "p1", "webhook_secrets": ["tok"]}, {"id": "open", "allow_unauthenticated": true}]}"#,
        )
        .unwrap();
        let bare = http::Request::builder()
            .uri("https://x/webhooks/flybuy")
            .body(Bytes::new())
            .unwrap();
        let optional = Auth::optional(AuthScheme::HeaderSecret { header: "x-token" });
        assert_eq!(
            authenticate(&optional, &bare, &tenants).unwrap().tenant.id,
            "open"
        );
        let required = Auth {
            credential_optional: false,
            ..optional
        };
        assert!(authenticate(&required, &bare, &tenants).is_none());
        // A wrong credential is refused even where an open tenant exists.
        let wrong = http::Request::builder()
            .uri("https://x/webhooks/flybuy")
            .header("x-token", "nope")
            .body(Bytes::new())
            .unwrap();
        assert!(authenticate(&optional, &wrong, &tenants).is_none());
    }

    #[test]
    fn tenant_chosen_header_must_be_that_tenants_header() {
        let tenants = TenantDirectory::from_json(
            r#"{"tenants": [
                {"id": "app-3", "webhook_secrets": ["key-3"], "header": "X-Custom-Auth"},
                {"id": "app-4", "webhook_secrets": ["key-4"], "header": "X-Other"}
            ]}"#,
        )
        .unwrap();
        let auth = Auth::optional(AuthScheme::TenantChosenHeader);
        let request = |name: &str, value: &str| {
            http::Request::builder()
                .header(name, value)
                .body(Bytes::new())
                .unwrap()
        };
        let found = |name, value| {
            authenticate(&auth, &request(name, value), &tenants).map(|v| v.tenant.id.clone())
        };
        assert_eq!(found("x-custom-auth", "key-3").as_deref(), Some("app-3"));
        assert_eq!(
            found("x-custom-auth", "key-4"),
            None,
            "app-4's key in app-3's header"
        );
    }

    #[test]
    fn credential_headers_are_what_authenticate_accepts() {
        let tenants = directory();
        let tenant = tenants.get("loc-1").unwrap();
        let url = tenant.url.clone().unwrap();
        let body = br#"{"type":"visit.created"}"#;
        let headers = SIGNED.credential_headers(tenant, "old-secret", &url, body);
        let mut request = http::Request::builder().method("POST").uri(&url);
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        let request = request.body(Bytes::copy_from_slice(body)).unwrap();
        assert_eq!(
            authenticate(&SIGNED, &request, &tenants).unwrap().tenant.id,
            "loc-1"
        );
    }
}
