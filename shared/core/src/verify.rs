//! How a request proves it comes from the provider, for each scheme the providers use.
//! Pure functions over the request and the tenant directory: no I/O.

use base64::Engine;
use hmac::{Hmac, Mac};
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};
use sha2::Sha256;
use std::time::Duration;

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
    /// Base64(HMAC-SHA256(secret, registered URL + raw body)) in a header. `account` is the
    /// JSON pointer of the envelope field naming the sender's account (Waitwhile's
    /// `/accountId`): it chooses whose secrets are tried ([`signature_candidates`]).
    UrlBodySignature {
        header: &'static str,
        account: &'static str,
    },
}

/// Header names and values a sender adds to a request.
pub type Headers = Vec<(String, String)>;

/// A signature a tenant may ask for on top of the credential (FlyBuy's optional HMAC key).
#[derive(Clone, Copy)]
pub struct TenantSignature {
    /// Whether the tenant asks for no signature, or the request carries a valid one — and
    /// then made with which form of its key.
    pub verify: fn(&Tenant, &WebhookRequest) -> SignatureCheck,
    /// The sender's side: the credential headers for a body, with the signature added where
    /// the tenant asks for one.
    pub sign: fn(&Tenant, Headers, &[u8]) -> Headers,
}

/// What a tenant's own signature check came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureCheck {
    /// The tenant asks for no signature.
    NotAsked,
    /// Valid; made with this form of the tenant's key (`raw`, `base64`) where the tenant has
    /// not pinned the form (which one FlyBuy uses is unconfirmed).
    Matched(Option<&'static str>),
    Refused,
}

/// The time (epoch milliseconds) a sender signed into a delivery, for a tenant whose
/// deliveries carry one; `None` when this one carries none that can be read. Asked only of a
/// request [`authenticate`] accepted, so the time is as authentic as the rest.
pub type SignedTime = fn(&Tenant, &WebhookRequest) -> Option<i64>;

#[derive(Clone, Copy)]
pub struct Auth {
    pub scheme: AuthScheme,
    /// The provider lets a subscription send no credential at all. Such a request is accepted
    /// only for a tenant configured with `allow_unauthenticated = true`.
    pub credential_optional: bool,
    pub tenant_signature: Option<TenantSignature>,
    /// Where the signature covers a time (FlyBuy's `Date` with an HMAC key, Waitwhile's
    /// envelope `created`): a copy outside [`replay_refusal`]'s window is refused.
    pub signed_time: Option<SignedTime>,
    /// The receiver chooses the webhook secret and enters it at the provider (EGYM's
    /// subscription secret, TIMIFY's header value, FlyBuy's token), rather than being issued
    /// one: `webhooks tenants add|rotate` may then generate it.
    pub receiver_chooses_secret: bool,
}

impl Auth {
    /// Every request must carry a valid credential.
    pub const fn required(scheme: AuthScheme) -> Auth {
        Auth {
            scheme,
            credential_optional: false,
            tenant_signature: None,
            signed_time: None,
            receiver_chooses_secret: false,
        }
    }

    /// The provider lets subscriptions go without a credential.
    pub const fn optional(scheme: AuthScheme) -> Auth {
        Auth {
            scheme,
            credential_optional: true,
            tenant_signature: None,
            signed_time: None,
            receiver_chooses_secret: false,
        }
    }

    /// Tenants may also ask for a signature.
    pub const fn with_tenant_signature(self, signature: TenantSignature) -> Auth {
        Auth {
            tenant_signature: Some(signature),
            ..self
        }
    }

    /// The webhook secret is ours to choose.
    pub const fn secret_chosen_by_receiver(self) -> Auth {
        Auth {
            receiver_chooses_secret: true,
            ..self
        }
    }

    /// The signature covers a time, which bounds how long a copy is accepted.
    pub const fn with_signed_time(self, signed_time: SignedTime) -> Auth {
        Auth {
            signed_time: Some(signed_time),
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
    /// Which form of the tenant's signing key made its signature, where it asks for one and
    /// has not pinned the form.
    pub signature_key: Option<&'static str>,
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
        AuthScheme::UrlBodySignature { header, account } => sole(headers, header).map(|value| {
            let signature = decode_signature(value?.as_bytes())?;
            signature_candidates(request, tenants, account)
                .into_iter()
                .find(|tenant| signed_by(tenant, &signature, request.body()))
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
                signature_key: None,
            }),
        None if auth.credential_optional => tenants.unauthenticated(named).map(|tenant| Verified {
            tenant,
            with_credential: false,
            signature_key: None,
        }),
        None => None,
    }?;
    let Some(signature) = auth.tenant_signature else {
        return Some(verified);
    };
    match (signature.verify)(verified.tenant, request) {
        SignatureCheck::NotAsked => Some(verified),
        SignatureCheck::Matched(form) => Some(Verified {
            signature_key: form,
            ..verified
        }),
        SignatureCheck::Refused => None,
    }
}

/// The tenants whose secrets a URL-and-body signature is checked against: two at most,
/// however many tenants there are, so that the HMACs one request costs (each over the whole
/// body, before anything is known about the sender) do not grow with them. The tenant the
/// request's `?tenant=` names, and only it; else the one whose `account_id` the envelope's
/// `account` field names (read unverified: it only chooses whose secrets are tried) and the
/// one tenant, if there is only one, whose registered URL and account name nothing.
pub fn signature_candidates<'t>(
    request: &WebhookRequest,
    tenants: &'t TenantDirectory,
    account: &str,
) -> Vec<&'t Tenant> {
    if let Some(id) = tenant_named_in_query(request) {
        return tenants.get(id).into_iter().collect();
    }
    let by_account = crate::providers::Document::parse(request.body())
        .ok()
        .and_then(|envelope| envelope.text_at(account))
        .and_then(|account| tenants.by_account(&account));
    let mut unnamed = tenants.unnamed();
    let sole_unnamed = unnamed.next().filter(|_| unnamed.next().is_none());
    by_account.into_iter().chain(sole_unnamed).collect()
}

/// How far ahead of our clock a signed time may be (the sender's clock may run ahead).
pub const CLOCK_SKEW: Duration = Duration::from_secs(300);

/// Why an authentic delivery is refused as a replay, if it is: its signed time is more than
/// [`CLOCK_SKEW`] ahead of `now_ms`, or so old that the record of its first copy may be gone.
/// That record is kept `retention` from its arrival (TTL in whole seconds), and its arrival was
/// no earlier than the signed time less the skew (else it was refused). So a copy is accepted
/// only until `signed time + retention - skew - 1 s`: until then it still finds the record (a
/// duplicate); after it, a replay would be stored, fetched and published again. A delivery
/// without a signed time (the provider's scheme signs none, or this one carries none that can
/// be read) is not checked: docs/configuration.md says which providers cannot be protected so.
pub fn replay_refusal(
    auth: &Auth,
    tenant: &Tenant,
    request: &WebhookRequest,
    now_ms: i64,
    retention: Duration,
) -> Option<&'static str> {
    let signed_at = (auth.signed_time?)(tenant, request)?;
    let skew = CLOCK_SKEW.as_millis() as i64;
    let retention = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    if signed_at > now_ms.saturating_add(skew) {
        return Some("its signed time is ahead of our clock");
    }
    let last_accepted = signed_at.saturating_add(retention) - skew - 1000;
    (now_ms >= last_accepted).then_some("its signed time is older than the retention period")
}

/// An RFC 3339 time (`2022-05-19T14:06:11.640Z`, `…+02:00`) in epoch milliseconds; fractions
/// beyond milliseconds are cut off.
pub fn rfc3339_ms(text: &str) -> Option<i64> {
    let number = |from: usize, to: usize| digits(text.get(from..to));
    let separators = text.get(4..5) == Some("-")
        && text.get(7..8) == Some("-")
        && matches!(text.get(10..11), Some("T" | "t" | " "))
        && text.get(13..14) == Some(":")
        && text.get(16..17) == Some(":");
    let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
    let (hour, minute, second) = (number(11, 13)?, number(14, 16)?, number(17, 19)?);
    let valid = (1..=12).contains(&month) && (1..=31).contains(&day) && hour < 24 && minute < 60;
    if !separators || !valid || second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let count = fraction.bytes().take_while(u8::is_ascii_digit).count();
        let first_three = format!("{:0<3}", &fraction[..count.min(3)]);
        millis = digits(Some(first_three.as_str()).filter(|_| count > 0))?;
        rest = &fraction[count..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.get(..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let (hours, minutes) = (digits(rest.get(1..3))?, digits(rest.get(4..6))?);
            if rest.len() != 6 || rest.get(3..4) != Some(":") || hours > 23 || minutes > 59 {
                return None;
            }
            sign * (hours * 60 + minutes)
        }
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

/// The number a text of ASCII digits only writes.
fn digits(text: Option<&str>) -> Option<i64> {
    let text = text?;
    let all_digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    all_digits.then(|| text.parse().ok())?
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
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

#[cfg(test)]
thread_local! {
    /// HMACs over a URL and body computed on this thread (tests count the work a request costs).
    static URL_BODY_MACS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn url_body_mac(secret: &[u8], url: &str, body: &[u8]) -> Hmac<Sha256> {
    #[cfg(test)]
    URL_BODY_MACS.with(|count| count.set(count.get() + 1));
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
            AuthScheme::UrlBodySignature { header, .. } => {
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
        account: "/accountId",
    });

    #[test]
    fn a_signature_picks_the_tenant_by_query_or_as_the_only_one_nothing_names() {
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

    /// 256 KiB of junk under a signature of nobody's, sent to a directory of `count` tenants
    /// registered at one URL, each found by its account (plus one found by nothing).
    #[test]
    fn the_hmacs_a_request_costs_do_not_grow_with_the_number_of_tenants() {
        let directory = |count: usize| {
            let mut tenants: Vec<String> = (0..count)
                .map(|i| {
                    format!(
                        r#"{{"id": "t{i}", "url": "https://h/webhooks/waitwhile", "account_id": "acc-{i}",
                            "webhook_secrets": ["s{i}-new", "s{i}-old"]}}"#
                    )
                })
                .collect();
            tenants.push(
                r#"{"id": "legacy", "url": "https://h/webhooks/waitwhile", "webhook_secrets": ["l1", "l2"]}"#
                    .into(),
            );
            TenantDirectory::from_json(&format!(r#"{{"tenants": [{}]}}"#, tenants.join(",")))
                .unwrap()
        };
        let padding = "x".repeat(256 * 1024 - 64);
        let nobodys = url_body_signature("nobody", "https://h/webhooks/waitwhile", b"");
        let junk = [
            ("", format!(r#"{{"junk": "{padding}"}}"#)),
            (
                "",
                format!(r#"{{"accountId": "acc-0", "junk": "{padding}"}}"#),
            ),
            (
                "",
                format!(r#"{{"accountId": "acc-0", "junk": "{padding}""#),
            ),
            ("?tenant=t0", format!(r#"{{"junk": "{padding}"}}"#)),
            ("?tenant=nobody", format!(r#"{{"junk": "{padding}"}}"#)),
        ];
        let (few, many) = (directory(1), directory(200));
        for (query, body) in junk {
            let request = signed_request(
                &format!("https://h/webhooks/waitwhile{query}"),
                &nobodys,
                &body,
            );
            let macs = |tenants: &TenantDirectory| {
                URL_BODY_MACS.with(|count| count.set(0));
                assert!(authenticate(&SIGNED, &request, tenants).is_none());
                URL_BODY_MACS.with(|count| count.get())
            };
            let (with_few, with_many) = (macs(&few), macs(&many));
            assert_eq!(with_few, with_many, "{query} {}", &body[..30]);
            assert!(
                with_many <= 4,
                "two tenants' two secrets at most: {with_many}"
            );
        }
    }

    #[test]
    fn a_signature_is_tried_for_the_named_tenant_or_the_envelopes_account() {
        let tenants = TenantDirectory::from_json(
            r#"{"tenants": [
                {"id": "loc-1", "url": "https://h/w?tenant=loc-1", "webhook_secrets": ["s1"]},
                {"id": "acct-a", "url": "https://h/w", "account_id": "A", "webhook_secrets": ["sa"]},
                {"id": "acct-b", "url": "https://h/w", "account_id": "B", "webhook_secrets": ["sb"]},
                {"id": "legacy", "url": "https://h/w", "webhook_secrets": ["sl"]}
            ]}"#,
        )
        .unwrap();
        let found = |uri: &str, secret: &str, body: &str| {
            let signed = format!("https://h/w{}", uri.split_once("/w").unwrap().1);
            let signature = url_body_signature(secret, &signed, body.as_bytes());
            authenticate(&SIGNED, &signed_request(uri, &signature, body), &tenants)
                .map(|verified| verified.tenant.id.clone())
        };
        let (a, b) = (r#"{"accountId": "A"}"#, r#"{"accountId": "B"}"#);
        assert_eq!(found("https://h/w", "sa", a).as_deref(), Some("acct-a"));
        assert_eq!(found("https://h/w", "sb", b).as_deref(), Some("acct-b"));
        assert_eq!(
            found("https://h/w", "sa", b),
            None,
            "B's envelope, A's secret"
        );
        assert_eq!(found("https://h/w", "sl", a).as_deref(), Some("legacy"));
        assert_eq!(found("https://h/w", "sl", "{}").as_deref(), Some("legacy"));
        assert_eq!(
            found("https://h/w?tenant=loc-1", "s1", a).as_deref(),
            Some("loc-1")
        );
        assert_eq!(found("https://h/w?tenant=loc-1", "sa", a), None);
        let request = signed_request("https://h/w", "", a);
        let candidates = signature_candidates(&request, &tenants, "/accountId");
        let ids: Vec<&str> = candidates.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["acct-a", "legacy"]);
    }

    #[test]
    fn rfc3339_times_are_read_to_the_millisecond() {
        for (text, ms) in [
            ("2022-05-19T14:06:11.640Z", Some(1_652_969_171_640)),
            ("2026-11-25T18:00:11.638+02:00", Some(1_795_622_411_638)),
            ("2000-02-29T00:00:00-00:30", Some(951_784_200_000)),
            ("1969-12-31T23:59:59.999Z", Some(-1)),
            ("2026-11-25T18:00:11.6385Z", Some(1_795_629_611_638)),
            ("2026-11-25t18:00:11z", Some(1_795_629_611_000)),
            ("2026-11-25T18:00:11", None),
            ("2026-11-25T18:00:11.Z", None),
            ("2026-13-25T18:00:11Z", None),
            ("2026-11-25T18:00:11+0200", None),
            ("2026-11-25T18:00:11+02:00x", None),
            ("2026-11-25T18:00:11+é:00", None),
            ("Wed, 25 Nov 2026 19:00:00 GMT", None),
            ("", None),
        ] {
            assert_eq!(rfc3339_ms(text), ms, "{text}");
        }
    }

    #[test]
    fn a_signed_time_is_accepted_only_while_the_record_of_its_first_copy_is_kept() {
        fn at_body(_: &Tenant, request: &WebhookRequest) -> Option<i64> {
            std::str::from_utf8(request.body()).ok()?.parse().ok()
        }
        let auth = SIGNED.with_signed_time(at_body);
        let tenants = directory();
        let tenant = tenants.get("loc-1").unwrap();
        let day = 86_400_000;
        let retention = Duration::from_secs(30 * 86_400);
        let now = 1_795_629_611_000;
        let skew = CLOCK_SKEW.as_millis() as i64;
        let refusal = |signed_at: i64| {
            let request = signed_request("https://h/w", "", &signed_at.to_string());
            replay_refusal(&auth, tenant, &request, now, retention)
        };
        assert_eq!(refusal(now), None);
        assert_eq!(refusal(now + skew), None, "a sender's clock a little ahead");
        assert!(refusal(now + skew + 1).unwrap().contains("ahead"));
        assert!(refusal(now + day).is_some());
        assert_eq!(refusal(now - 29 * day), None);
        let last = now - 30 * day + skew + 1000;
        assert_eq!(refusal(last + 1), None);
        assert!(refusal(last).unwrap().contains("retention"));
        assert!(refusal(now - 31 * day).is_some());
        let unsigned = signed_request("https://h/w", "", "no time");
        assert_eq!(
            replay_refusal(&auth, tenant, &unsigned, now, retention),
            None
        );
        assert_eq!(
            replay_refusal(&SIGNED, tenant, &unsigned, now, retention),
            None
        );
    }
}
