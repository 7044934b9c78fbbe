//! The Contract page (`GET /contract`): the signs of contract drift the processor noted
//! (`webhooks drift` on the command line) and the quarantined deliveries per tenant, with what
//! each kind of sign means.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{html, Markup};

use crate::html::pct;
use crate::pages::page as layout;
use crate::AppState;

fn legend() -> Markup {
    html! {
        dl class="legend" {
            dt { "type:…" }
            dd { "an event type the provider does not document, nor the tenant's " code { "events" } " name: stored, nothing fetched." }
            dt { "field:…" }
            dd { "a member the documentation does not name: kept in the body, nothing lost." }
            dt { "missing:…" }
            dd { "a documented field the delivery did not carry." }
            dt { "signature_key:…" }
            dd { "which form of FlyBuy's HMAC key made the signature: pin " code { "signing_key_encoding" } " to it." }
        }
    }
}

pub async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let drift = match state.operations.drift(None).await {
        Ok(drift) => drift,
        Err(error) => {
            let content = html! { p class="flash error" { (error) } };
            return layout(&state, &headers, "Contract", content);
        }
    };
    let content = html! {
        h1 { "Contract" }
        p class="note" { "What the deliveries held beyond, or short of, what each provider documents — each sign once per tenant, from the first delivery that showed it." }
        @if drift.sightings.is_empty() {
            p class="empty" id="no-drift" { "No sign of contract drift." }
        } @else {
            table class="events" id="drift" {
                thead { tr {
                    th { "Provider" } th { "Tenant" } th { "Signal" } th { "First seen" }
                    th { "Last seen" } th { "Example" }
                } }
                tbody {
                    @for s in &drift.sightings {
                        tr {
                            td { (s.provider) }
                            td { (s.tenant) }
                            td { code { (s.signal) } }
                            td data-ms=(s.first_ms) { (s.first_ms) }
                            td data-ms=(s.last_ms) { (s.last_ms) }
                            td { a href={ "/events/" (pct(&s.example_key)) } { (s.example_key) } }
                        }
                    }
                }
            }
        }
        @for ((provider, tenant), count) in &drift.quarantined {
            p class="flash warn" {
                (provider) " " (tenant) ": " (count) " quarantined (unreadable) deliveries — "
                a href={ "/events?provider=" (pct(provider)) "&status=QUARANTINED" } { "see them" }
            }
        }
        (legend())
    };
    layout(&state, &headers, "Contract", content)
}
