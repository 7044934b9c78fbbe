//! How a request proves it comes from the provider, for each scheme the providers use.
//! Pure functions over the request and the tenant directory: no I/O.

use base64::Engine;
use hmac::{Hmac, Mac};
use lambda_http::http::header::AUTHORIZATION;
use lambda_http::Request;
use sha2::Sha256;

use crate::secrets::{Tenant, TenantDirectory};

#[derive(Clone, Copy)]
pub enum AuthScheme {
    /// The secret as-is in a fixed header (`x-api-key`).
    HeaderSecret { header: &'static str },
    /// The secret in a header whose name each tenant chooses (`Tenant::header`).
    TenantChosenHeader,
    /// The secret inside the `Authorization` header; the provider's parser extracts it and
    /// refuses anything not in its exact format.
    Authorization { extract: fn(&str) -> Option<&str> },
    /// Base64(HMAC-SHA256(secret, registered URL + raw body)) in a header.
    UrlBodySignature { header: &'static str },
}

#[derive(Clone, Copy)]
pub struct Auth {
    pub scheme: AuthScheme,
    /// The provider lets a subscription send no credential at all. Such a request is accepted
    /// only for a tenant configured with `allow_unauthenticated = true`.
    pub credential_optional: bool,
}

impl Auth {
    /// Every request must carry a valid credential.
    pub const fn required(scheme: AuthScheme) -> Auth {
        Auth {
            scheme,
            credential_optional: false,
        }
    }

    /// The provider lets subscriptions go without a credential.
    pub const fn optional(scheme: AuthScheme) -> Auth {
        Auth {
            scheme,
            credential_optional: true,
        }
    }
}

/// The tenant this request proves to come from, or `None`.
pub fn authenticate<'t>(
    auth: &Auth,
    request: &Request,
    tenants: &'t TenantDirectory,
) -> Option<&'t Tenant> {
    let headers = request.headers();
    let presented = match auth.scheme {
        AuthScheme::HeaderSecret { header } => {
            sole(headers, header).map(|value| tenants.by_secret(value?.as_bytes()))
        }
        AuthScheme::TenantChosenHeader => tenants
            .carries_tenant_header(headers)
            .then(|| tenants.by_tenant_header(headers)),
        AuthScheme::Authorization { extract } => {
            sole(headers, AUTHORIZATION.as_str()).map(|value| {
                let secret = extract(value?.to_str().ok()?)?;
                tenants.by_secret(secret.as_bytes())
            })
        }
        AuthScheme::UrlBodySignature { header } => sole(headers, header).map(|value| {
            let value = value?;
            let signature = decode_signature(value.as_bytes())?;
            let body: &[u8] = request.body().as_ref();
            match tenant_named_in_query(request).and_then(|id| tenants.get(id)) {
                Some(tenant) => signed_by(tenant, &signature, body).then_some(tenant),
                None => tenants
                    .iter()
                    .find(|tenant| signed_by(tenant, &signature, body)),
            }
        }),
    };
    let named = tenant_named_in_query(request);
    match presented {
        // A URL registered for one tenant only accepts that tenant's credentials.
        Some(found) => found.filter(|tenant| named.is_none_or(|id| id == tenant.id)),
        None if auth.credential_optional => tenants.unauthenticated(named),
        None => None,
    }
}

/// `None` if the header is absent, `Some(None)` if it is repeated (ambiguous: refused, never
/// read as "no credential"), else its one value.
pub fn sole<'h>(
    headers: &'h lambda_http::http::HeaderMap,
    name: &str,
) -> Option<Option<&'h lambda_http::http::HeaderValue>> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    Some(values.next().is_none().then_some(first))
}

/// `?tenant=<id>` in the registered URL picks the tenant directly where the credential alone
/// does not (signatures, unauthenticated subscriptions).
fn tenant_named_in_query(request: &Request) -> Option<&str> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::Body;

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

    fn signed_request(uri: &str, signature: &str, body: &str) -> Request {
        lambda_http::http::Request::builder()
            .method("POST")
            .uri(uri)
            .header("x-waitwhile-signature", signature)
            .body(Body::Text(body.to_string()))
            .unwrap()
    }

    const SIGNED: Auth = Auth {
        scheme: AuthScheme::UrlBodySignature {
            header: "x-waitwhile-signature",
        },
        credential_optional: false,
    };

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
                authenticate(&SIGNED, &request, &tenants).unwrap().id,
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
            authenticate(&SIGNED, &request, &tenants).unwrap().id,
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
        let unsigned = lambda_http::http::Request::builder()
            .uri(url)
            .body(Body::Text(body.into()))
            .unwrap();
        assert!(authenticate(&SIGNED, &unsigned, &tenants).is_none());
    }

    #[test]
    fn a_url_naming_one_tenant_refuses_another_tenants_credential() {
        let tenants = TenantDirectory::from_json(
            r#"{"tenants": [{"id": "p1", "webhook_secrets": ["tok1"]}, {"id": "p2", "webhook_secrets": ["tok2"]}]}"#,
        )
        .unwrap();
        let auth = Auth {
            scheme: AuthScheme::HeaderSecret { header: "x-token" },
            credential_optional: false,
        };
        let request = |uri: &str, token: &str| {
            lambda_http::http::Request::builder()
                .uri(uri)
                .header("x-token", token)
                .body(Body::Empty)
                .unwrap()
        };
        let found =
            |uri, token| authenticate(&auth, &request(uri, token), &tenants).map(|t| t.id.clone());
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
        let request = lambda_http::http::Request::builder()
            .uri("https://x/h")
            .header("x-token", "tok1")
            .header("x-token", "tok1")
            .body(Body::Empty)
            .unwrap();
        assert!(authenticate(&auth, &request, &tenants).is_none());
    }

    #[test]
    fn an_absent_credential_reaches_only_an_open_tenant_of_an_optional_scheme() {
        let tenants = TenantDirectory::from_json(
            r#"{"tenants": [{"id": "p1", "webhook_secrets": ["tok"]}, {"id": "open", "allow_unauthenticated": true}]}"#,
        )
        .unwrap();
        let bare = lambda_http::http::Request::builder()
            .uri("https://x/webhooks/flybuy")
            .body(Body::Empty)
            .unwrap();
        let optional = Auth {
            scheme: AuthScheme::HeaderSecret { header: "x-token" },
            credential_optional: true,
        };
        assert_eq!(authenticate(&optional, &bare, &tenants).unwrap().id, "open");
        let required = Auth {
            credential_optional: false,
            ..optional
        };
        assert!(authenticate(&required, &bare, &tenants).is_none());
        // A wrong credential is refused even where an open tenant exists.
        let wrong = lambda_http::http::Request::builder()
            .uri("https://x/webhooks/flybuy")
            .header("x-token", "nope")
            .body(Body::Empty)
            .unwrap();
        assert!(authenticate(&optional, &wrong, &tenants).is_none());
    }
}
