//! The Contract page (`GET /contract`): the signs of contract drift the processor noted
//! (`webhooks drift` on the command line) and the quarantined deliveries per tenant, with what
//! each kind of sign means.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use crate::html::esc;
use crate::pages::page as layout;
use crate::AppState;

const LEGEND: &str = concat!(
    r#"<dl class="legend">"#,
    r#"<dt>type:…</dt><dd>an event type the provider does not document, nor the tenant's <code>events</code> name: stored, nothing fetched.</dd>"#,
    r#"<dt>field:…</dt><dd>a member the documentation does not name: kept in the body, nothing lost.</dd>"#,
    r#"<dt>missing:…</dt><dd>a documented field the delivery did not carry.</dd>"#,
    r#"<dt>signature_key:…</dt><dd>which form of FlyBuy's HMAC key made the signature: pin <code>signing_key_encoding</code> to it.</dd>"#,
    r#"</dl>"#
);

pub async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let content = match state.operations.drift(None).await {
        Ok(drift) => {
            let mut html = String::from(
                r#"<h1>Contract</h1><p class="note">What the deliveries held beyond, or short of, what each provider documents — each sign once per tenant, from the first delivery that showed it.</p>"#,
            );
            if drift.sightings.is_empty() {
                html.push_str(r#"<p class="empty" id="no-drift">No sign of contract drift.</p>"#);
            } else {
                html.push_str(r#"<table class="events" id="drift"><thead><tr><th>Provider</th><th>Tenant</th><th>Signal</th><th>First seen</th><th>Last seen</th><th>Example</th></tr></thead><tbody>"#);
                for s in &drift.sightings {
                    let link = s.example_key.replace('%', "%25").replace('#', "%23");
                    let _ = write!(
                        html,
                        r#"<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td data-ms="{}">{}</td><td data-ms="{}">{}</td><td><a href="/events/{}">{}</a></td></tr>"#,
                        esc(&s.provider),
                        esc(&s.tenant),
                        esc(&s.signal),
                        s.first_ms,
                        s.first_ms,
                        s.last_ms,
                        s.last_ms,
                        esc(&link),
                        esc(&s.example_key),
                    );
                }
                html.push_str("</tbody></table>");
            }
            for ((provider, tenant), count) in &drift.quarantined {
                let _ = write!(
                    html,
                    r#"<p class="flash warn">{} {}: {count} quarantined (unreadable) deliveries — <a href="/events?provider={}&amp;status=QUARANTINED">see them</a></p>"#,
                    esc(provider),
                    esc(tenant),
                    esc(provider),
                );
            }
            html.push_str(LEGEND);
            html
        }
        Err(error) => format!(r#"<p class="flash error">{}</p>"#, esc(&error.to_string())),
    };
    layout(&state, &headers, "Contract", &content)
}
