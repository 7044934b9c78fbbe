//! Registering a tenant's webhook at the provider (`webhooks connect`): through the provider's
//! API where it has one for that (EGYM's `/api/v2/webhooks`), with the tenant's API access;
//! otherwise the steps an operator takes by hand, with the values to enter. Never a secret in
//! an error: an answer's status and the provider's error code only.

use serde_json::{json, Value};

use crate::fetch::{without_url, ApiCredentials};
use crate::providers::Provider;
use crate::tenants::ApiAccess;

/// How a provider's webhooks are registered.
#[derive(Debug, Clone, Copy)]
pub enum Registration {
    /// Through its API: subscriptions of `{url, secret}` with an id (`{id}` in the paths).
    Api(RegistrationApi),
    /// By hand: the steps, with `{url}`, `{header}` and `{secret}` to fill in.
    Manual(&'static str),
}

#[derive(Debug, Clone, Copy)]
pub struct RegistrationApi {
    /// `POST` `{url, secret}`: a new subscription; 409 if the URL is registered already.
    pub create: &'static str,
    /// `GET`: the subscriptions (a JSON array of `{id, url, …}`).
    pub list: &'static str,
    /// `PUT` `{url, secret}`: a subscription changed.
    pub update: &'static str,
    /// `POST`: the provider sends a test delivery to the subscription.
    pub trigger: &'static str,
    /// The event type of that test delivery.
    pub test_event_type: &'static str,
}

/// A JSON body (reqwest's `json` feature is not built into the functions).
trait JsonBody {
    fn json_body(self, body: &Value) -> Self;
}

impl JsonBody for reqwest::RequestBuilder {
    fn json_body(self, body: &Value) -> Self {
        self.header("content-type", "application/json")
            .body(body.to_string())
    }
}

/// What registering did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// The provider's id of the subscription.
    pub id: String,
    /// False: the URL was registered already, and its secret was set anew.
    pub created: bool,
}

/// A provider's answer that is not what registering needs: its status and error code, only
/// if that is a code (a word such as `webhookUrlAlreadyRegistered`) — a message could repeat
/// what was sent, the secret included.
fn refused(step: &str, status: reqwest::StatusCode, body: &str) -> String {
    let is_code = |text: &&str| {
        !text.is_empty()
            && text.len() <= 80
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
    };
    let code = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|answer| {
            ["error", "code"].iter().find_map(|field| {
                answer
                    .get(field)?
                    .as_str()
                    .filter(is_code)
                    .map(str::to_string)
            })
        })
        .map(|code| format!(" ({code})"))
        .unwrap_or_default();
    let next = match status.as_u16() {
        401 | 403 => ": check the tenant's api.api_key (webhooks … tenants show)",
        404 => ": check the tenant's api.base_url",
        _ => "",
    };
    format!("{step}: the provider answered {status}{code}{next}")
}

/// Registers `url` with `secret` for the tenant whose API access is `api` — a new subscription,
/// or the secret set anew on the one already registered for `url` — then asks the provider for a
/// test delivery.
pub async fn register(
    provider: &dyn Provider,
    paths: &RegistrationApi,
    api: &ApiAccess,
    url: &str,
    secret: &str,
) -> Result<Registered, String> {
    let headers = match provider.api_credentials(api)? {
        ApiCredentials::Headers(headers) => headers,
        ApiCredentials::Token(_) => {
            return Err(format!(
                "{} registers no webhooks through its API",
                provider.name()
            ))
        }
    };
    let http = crate::fetch::command_client()?;
    let base = api.base_url.trim_end_matches('/');
    let call = |method: reqwest::Method, path: String| {
        let mut request = http
            .request(method, format!("{base}{path}"))
            .header("accept", "application/json");
        for (name, value) in &headers {
            request = request.header(*name, value);
        }
        request
    };
    let send = |request: reqwest::RequestBuilder, step: &'static str| async move {
        let answer = request.send().await.map_err(|e| {
            format!(
                "{step}: the provider's API did not answer ({})",
                without_url(&e)
            )
        })?;
        let status = answer.status();
        let body = answer.text().await.unwrap_or_default();
        Ok::<_, String>((status, body))
    };
    let subscription = json!({ "url": url, "secret": secret });

    let (status, body) = send(
        call(reqwest::Method::POST, paths.create.to_string()).json_body(&subscription),
        "create the subscription",
    )
    .await?;
    let registered = if status.is_success() {
        Registered {
            id: id_of(&body).ok_or("the subscription's answer has no id")?,
            created: true,
        }
    } else if status == reqwest::StatusCode::CONFLICT {
        let (status, body) = send(
            call(reqwest::Method::GET, paths.list.to_string()),
            "list the subscriptions",
        )
        .await?;
        if !status.is_success() {
            return Err(refused("list the subscriptions", status, &body));
        }
        let id = registered_id(&body, url)
            .ok_or("the URL is registered (409), but not among this API key's subscriptions: it belongs to another gym's key; register another URL (a ?tenant= of its own) or remove it there")?;
        let (status, body) = send(
            call(reqwest::Method::PUT, paths.update.replace("{id}", &id)).json_body(&subscription),
            "update the subscription",
        )
        .await?;
        if !status.is_success() {
            return Err(refused("update the subscription", status, &body));
        }
        Registered { id, created: false }
    } else {
        return Err(refused("create the subscription", status, &body));
    };
    let (status, body) = send(
        call(
            reqwest::Method::POST,
            paths.trigger.replace("{id}", &registered.id),
        ),
        "trigger a test delivery",
    )
    .await?;
    if !status.is_success() {
        return Err(refused("trigger a test delivery", status, &body));
    }
    Ok(registered)
}

/// The `id` of an answer (a number or a string).
fn id_of(body: &str) -> Option<String> {
    let answer: Value = serde_json::from_str(body).ok()?;
    match answer.get("id")? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// The id of the subscription for `url` in a listing (an array, or `{"items"|"content": […]}`).
fn registered_id(body: &str, url: &str) -> Option<String> {
    let answer: Value = serde_json::from_str(body).ok()?;
    let items = match &answer {
        Value::Array(items) => items,
        other => ["items", "content", "webhooks"]
            .iter()
            .find_map(|field| other.get(field)?.as_array())?,
    };
    items
        .iter()
        .find(|item| item.get("url").and_then(Value::as_str) == Some(url))
        .and_then(|item| id_of(&item.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_read_from_answers_and_listings() {
        assert_eq!(id_of(r#"{"id": 42, "url": "u"}"#).as_deref(), Some("42"));
        assert_eq!(id_of(r#"{"id": "a-1"}"#).as_deref(), Some("a-1"));
        let listing = r#"[{"id": 1, "url": "https://x/a"}, {"id": 2, "url": "https://x/b"}]"#;
        assert_eq!(registered_id(listing, "https://x/b").as_deref(), Some("2"));
        assert_eq!(
            registered_id(r#"{"items": [{"id": 3, "url": "u"}]}"#, "u").as_deref(),
            Some("3")
        );
        assert_eq!(registered_id(listing, "https://x/c"), None);
    }

    #[test]
    fn a_refusal_repeats_no_message_that_could_carry_what_was_sent() {
        let text = refused(
            "create the subscription",
            reqwest::StatusCode::BAD_REQUEST,
            r#"{"message": "secret s3cr3t is too short", "error": "secret s3cr3t is too short"}"#,
        );
        assert_eq!(
            text,
            "create the subscription: the provider answered 400 Bad Request"
        );
    }

    #[test]
    fn a_refusal_names_the_step_the_status_and_the_code_only() {
        let text = refused(
            "create the subscription",
            reqwest::StatusCode::CONFLICT,
            r#"{"error": "webhookUrlAlreadyRegistered", "secret": "s3cr3t"}"#,
        );
        assert_eq!(text, "create the subscription: the provider answered 409 Conflict (webhookUrlAlreadyRegistered)");
    }
}
