//! The event pages on the admin listener, for a browser: the live event list (`GET /events`,
//! filters by provider, tenant and status as query parameters, newest first), one record
//! (`GET /events/{key}`), and the operator buttons (`POST /events/{key}/replay`,
//! `POST /events/{key}/release`) that call the core's [`Operations`](webhook_core::operate::Operations)
//! and redirect back with a flash message. Rendered on the server with maud templates, which
//! escape every value by default (bodies, keys, tenants and errors come from whoever sent the
//! webhook).
//! Fully usable without JavaScript; `assets/live.js` only refreshes the live part of a page
//! (`?part=live`) every few seconds.
//!
//! The pages are for the developer's own browser: besides the loopback-only listener, requests
//! naming another host (DNS rebinding) are refused, and so are form posts from other sites.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use maud::{html, Markup, DOCTYPE};
use serde::{Deserialize, Serialize};
use webhook_core::key::KeyParts;
use webhook_core::model::{Record, Status};
use webhook_core::operate::{OperateError, Replayed};
use webhook_core::tenants::TenantDirectory;

use crate::html::{ago, cut, pct, pretty_json, utc};
use crate::AppState;

const STYLE: &str = include_str!("../assets/style.css");
const SCRIPT: &str = include_str!("../assets/live.js");
const ICON: &str = include_str!("../assets/icon.svg");

/// Events listed when the query names no `limit`, and the most it may name.
const DEFAULT_LIMIT: usize = 200;
const MAX_LIMIT: usize = 1000;

const FLASH_COOKIE: &str = "devserver_flash";

/// Inline scripts and styles are refused: the pages load only their own assets.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Whether a request asks for HTML (a browser does; curl and scripts do not).
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// Refuses requests that name a host other than a loopback address or `localhost`: a page
/// of another site whose name was made to point at 127.0.0.1 (DNS rebinding) reads nothing.
pub async fn only_loopback_hosts(request: Request, next: Next) -> Response {
    if let Some(host) = request.headers().get(header::HOST) {
        if !host.to_str().is_ok_and(is_loopback_host) {
            return (
                StatusCode::FORBIDDEN,
                "the admin listener answers requests for a loopback address or localhost only\n",
            )
                .into_response();
        }
    }
    next.run(request).await
}

fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    let name = name.to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Why a form post is refused: it came from another site (a browser says so in
/// `Sec-Fetch-Site` or `Origin`). Clients that send neither (scripts, tests) are let through.
fn cross_site(headers: &HeaderMap) -> Option<&'static str> {
    let value = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(site) = value(header::HeaderName::from_static("sec-fetch-site")) {
        if !matches!(site, "same-origin" | "none") {
            return Some("the form was sent from another site");
        }
    }
    if let Some(origin) = value(header::ORIGIN) {
        let host = value(header::HOST).unwrap_or_default();
        if origin != format!("http://{host}") {
            return Some("the form was sent from another origin");
        }
    }
    None
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    provider: Option<String>,
    tenant: Option<String>,
    status: Option<String>,
    limit: Option<String>,
    part: Option<String>,
}

/// The list's filters, as the query named them (empty fields are no filter).
#[derive(Debug, Default)]
struct Filters {
    provider: Option<String>,
    tenant: Option<String>,
    status: Option<String>,
    limit: usize,
}

impl Filters {
    fn from_query(query: &ListQuery) -> Filters {
        let named = |value: &Option<String>| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        Filters {
            provider: named(&query.provider),
            tenant: named(&query.tenant),
            status: named(&query.status).map(|s| s.to_ascii_uppercase()),
            limit: query
                .limit
                .as_deref()
                .and_then(|limit| limit.trim().parse().ok())
                .unwrap_or(DEFAULT_LIMIT)
                .clamp(1, MAX_LIMIT),
        }
    }

    /// The query string for these filters, with `status` replaced when given.
    fn query(&self, status: Option<Option<&str>>) -> String {
        let status = status.unwrap_or(self.status.as_deref());
        let mut pairs = Vec::new();
        for (name, value) in [
            ("provider", self.provider.as_deref()),
            ("tenant", self.tenant.as_deref()),
            ("status", status),
        ] {
            if let Some(value) = value {
                pairs.push(format!("{name}={}", pct(value)));
            }
        }
        if self.limit != DEFAULT_LIMIT {
            pairs.push(format!("limit={}", self.limit));
        }
        pairs.join("&")
    }
}

/// `GET /events`: the filter form, the stats strip and the newest events (`?part=live`: only
/// the stats strip and the table, for the live refresh).
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    let filters = Filters::from_query(&query);
    let live = live_list(&state, &filters).await;
    if query.part.as_deref() == Some("live") {
        return fragment(live);
    }
    let controls = processing_controls(&state).await;
    let query = filters.query(None);
    let source = if query.is_empty() {
        "/events?part=live".to_string()
    } else {
        format!("/events?{query}&part=live")
    };
    let content = html! {
        div class="bar" {
            h1 { "Events" }
            p class="note" {
                span id="live-note" {}
                noscript { "JavaScript is off: reload the page to see new events." }
            }
        }
        (filter_form(&state, &filters))
        (controls)
        div id="live" data-source=(source) data-every="3000" { (live) }
    };
    page(&state, &headers, "Events", content)
}

fn filter_form(state: &AppState, filters: &Filters) -> Markup {
    let mut providers: Vec<&String> = state.tenants.keys().collect();
    providers.sort();
    let directories: Vec<_> = state
        .tenants
        .iter()
        .filter(|(provider, _)| filters.provider.as_ref().is_none_or(|p| p == *provider))
        .map(|(_, source)| source.current())
        .collect();
    let mut tenants: Vec<&str> = directories
        .iter()
        .flat_map(|directory| directory.iter().map(|tenant| tenant.id.as_str()))
        .collect();
    tenants.sort_unstable();
    tenants.dedup();
    html! {
        form class="filters" method="get" action="/events" {
            label {
                "Provider "
                select name="provider" {
                    option value="" { "all" }
                    @for provider in &providers {
                        option value=(provider)
                            selected[filters.provider.as_deref() == Some(provider.as_str())] {
                            (provider)
                        }
                    }
                }
            }
            label {
                "Tenant "
                input name="tenant" list="tenants" placeholder="any"
                    value=(filters.tenant.as_deref().unwrap_or_default());
            }
            datalist id="tenants" {
                @for tenant in &tenants { option value=(tenant) {} }
            }
            label {
                "Status "
                select name="status" {
                    option value="" { "any" }
                    @for status in Status::ALL {
                        option value=(status.as_str())
                            selected[filters.status.as_deref() == Some(status.as_str())] {
                            (status.as_str())
                        }
                    }
                }
            }
            @if filters.limit != DEFAULT_LIMIT {
                input type="hidden" name="limit" value=(filters.limit);
            }
            button type="submit" { "Filter" }
            a class="clear" href="/events" { "Clear filters" }
        }
    }
}

/// The stats strip and the table of events.
async fn live_list(state: &AppState, filters: &Filters) -> Markup {
    let stats = stats_strip(state, filters).await;
    let status = match filters.status.as_deref().map(|s| (s, Status::parse(s))) {
        None => None,
        Some((_, Some(status))) => Some(status),
        Some((named, None)) => {
            let known: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
            return html! {
                (stats)
                p class="flash error" { "No status is called " (named) "; known: " (known.join(", ")) "." }
            };
        }
    };
    let listed = match state.operations.filter(
        filters.provider.as_deref(),
        filters.tenant.as_deref(),
        status,
        None,
        filters.limit,
    ) {
        Ok(filter) => state.operations.list(&filter).await,
        Err(error) => Err(error),
    };
    let records = match listed {
        Ok(records) => records,
        Err(error) => return html! { (stats) p class="flash error" { (error) } },
    };
    html! {
        (stats)
        (events_table(&records, state.ports.clock.now_ms()))
        @if records.is_empty() {
            p class="empty" {
                "No events match. Send one: "
                code { "cargo run --release -p devserver -- send events/magicline/customer-created.json" }
            }
        } @else if records.len() == filters.limit {
            p class="note" { "The newest " (filters.limit) " shown; the filters narrow the list." }
        }
    }
}

/// Counts by status (of the provider filtered on, else of all), each a link to that status.
async fn stats_strip(state: &AppState, filters: &Filters) -> Markup {
    let counts = match state.operations.stats(None).await {
        Ok(counts) => counts,
        Err(error) => return html! { p class="flash error" { "Counting failed: " (error) } },
    };
    let mut by_status: BTreeMap<&'static str, u64> = BTreeMap::new();
    for count in counts
        .iter()
        .filter(|c| filters.provider.as_ref().is_none_or(|p| *p == c.provider))
    {
        *by_status.entry(count.status.as_str()).or_default() += count.count;
    }
    let total: u64 = by_status.values().sum();
    let scope = filters.provider.as_deref().unwrap_or("all providers");
    let all_class = if filters.status.is_none() {
        "total on"
    } else {
        "total"
    };
    html! {
        nav class="stats" aria-label="Counts by status" {
            a href={ "/events?" (filters.query(Some(None))) } class=(all_class) {
                span { "All" } b { (total) }
            }
            @for status in Status::ALL {
                @let name = status.as_str();
                @let count = by_status.get(name).copied().unwrap_or(0);
                @let zero = (count == 0).then_some("zero");
                @let on = (filters.status.as_deref() == Some(name)).then_some("on");
                @let classes: Vec<&str> = zero.into_iter().chain(on).collect();
                a href={ "/events?" (filters.query(Some(Some(name)))) } class=(classes.join(" ")) {
                    span class={ "status " (status_class(status)) } { (name) }
                    b { (count) }
                }
            }
            span class="note" { (scope) ", received in the retention period" }
        }
    }
}

fn events_table(records: &[Record], now_ms: i64) -> Markup {
    if records.is_empty() {
        return html! {};
    }
    html! {
        table class="events" {
            thead { tr {
                th { "Received" } th { "Status" } th { "Provider · tenant" } th { "Event" }
                th { "Attempts" } th { "Last error" }
            } }
            tbody {
                @for record in records {
                    @let received = utc(record.received_at_ms);
                    @let event_type = if record.event_type.is_empty() { "(type not read)" } else { &record.event_type };
                    // Provider and tenant have their column: the key's own parts are what tell
                    // events apart.
                    @let parts = KeyParts::of(&record.key).map_or(record.key.as_str(), |parts| parts.rest);
                    tr {
                        td class="when" {
                            span title=(received) { (ago(record.received_at_ms, now_ms)) }
                            span class="sub" { (received) }
                        }
                        td { (badge(record.status)) }
                        td class="who" { (record.provider) span class="sub" { (record.tenant) } }
                        td {
                            a href={ "/events/" (pct(&record.key)) } { (cut(event_type, 60)) }
                            span class="sub mono" title=(record.key) { (cut(parts, 72)) }
                        }
                        td class="num" { (record.attempts) }
                        td class="err" { (cut(record.last_error.as_deref().unwrap_or_default(), 160)) }
                    }
                }
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct RecordQuery {
    part: Option<String>,
}

/// `GET /events/{key}`: one record (`?part=live`: the part the live refresh swaps in).
pub async fn record(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(query): Query<RecordQuery>,
    headers: HeaderMap,
) -> Response {
    let record = match state.operations.show(&key).await {
        Ok(record) => record,
        Err(error @ OperateError::UnknownKey(_)) => {
            let content = html! {
                p class="crumbs" { a href="/events" { "← Events" } }
                p class="flash error" { (error) }
            };
            let mut response = page(&state, &headers, "No such event", content);
            *response.status_mut() = StatusCode::NOT_FOUND;
            return response;
        }
        Err(error) => {
            let content = html! { p class="flash error" { (error) } };
            let mut response = page(&state, &headers, "Error", content);
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            return response;
        }
    };
    let live = record_view(&record);
    if query.part.as_deref() == Some("live") {
        return fragment(live);
    }
    let link = pct(&record.key);
    let content = html! {
        div class="bar" {
            p class="crumbs" {
                a href="/events" { "← Events" } " · " a href={ "/_dev/events/" (link) } { "as JSON" }
            }
            p class="note" { span id="live-note" {} }
        }
        div id="live" data-source={ "/events/" (link) "?part=live" } data-every="1500" { (live) }
    };
    let title = if record.event_type.is_empty() {
        "Event"
    } else {
        &record.event_type
    };
    page(&state, &headers, title, content)
}

/// Everything about one record that can change. The live refresh stops once it is settled.
fn record_view(record: &Record) -> Markup {
    let settled = matches!(
        record.status,
        Status::Processed | Status::Failed | Status::Quarantined
    );
    let or_dash = |text: &str| -> String {
        if text.is_empty() {
            "—".to_string()
        } else {
            text.to_string()
        }
    };
    let time = |ms: Option<i64>| ms.map_or_else(|| "—".to_string(), utc);
    let event_type = if record.event_type.is_empty() {
        "(event type not read)"
    } else {
        &record.event_type
    };
    html! {
        h1 data-settled[settled] { (badge(record.status)) " " span class="type" { (event_type) } }
        p class="key mono" { (record.key) }
        (actions(record))
        div class="grid" {
            section {
                h2 { "Event" }
                dl class="facts" {
                    dt { "Provider" } dd { (record.provider) }
                    dt { "Tenant" } dd { (record.tenant) }
                    dt { "Event type" } dd { (or_dash(&record.event_type)) }
                    dt { "Entity" } dd class="mono" { (or_dash(&record.entity_id)) }
                    dt { "Subject" } dd class="mono" { (or_dash(&record.subject)) }
                    dt { "Without credential" } dd { (if record.unauthenticated { "yes" } else { "no" }) }
                    dt { "Trace" } dd class="mono" id="trace" { (or_dash(record.trace_id.as_deref().unwrap_or_default())) }
                }
            }
            (history_view(record))
            // What the record holds now, beside the attempts it keeps (the newest 20).
            section {
                h2 { "Status and times" }
                dl class="facts" {
                    dt { "Status" } dd { (badge(record.status)) }
                    dt { "Received" } dd { (utc(record.received_at_ms)) }
                    dt { "Processed" } dd { (time(record.processed_at_ms)) }
                    dt { "Erased" } dd { (time(record.erased_at_ms)) }
                    dt { "Attempts" } dd { (record.attempts) }
                    dt { "Last error" }
                    @match record.last_error.as_deref() {
                        Some(error) => { dd class="err" { (error) } }
                        None => { dd { "—" } }
                    }
                }
                p class="note" { "The record holds its current status, these times and its last error; no history of earlier statuses is kept." }
            }
        }
        section {
            h2 { "Body" }
            @if record.body.is_empty() {
                p class="note" { (if record.erased_at_ms.is_some() { "Erased." } else { "Empty." }) }
            } @else if record.body_is_base64() {
                p class="note" { "Not UTF-8: kept Base64-encoded, as stored." }
                pre { (record.body) }
            } @else {
                (json_block(&record.body))
            }
        }
        section {
            h2 { "Detail" }
            @match record.detail.as_deref() {
                Some(detail) => { (json_block(detail)) }
                None if record.erased_at_ms.is_some() => { p class="note" { "Erased, or none fetched." } }
                None => { p class="note" { "None yet." } }
            }
        }
        section {
            h2 { "Facts" }
            @match record.facts.as_deref() {
                Some(facts) => { (json_block(facts)) }
                None => { p class="note" { "None kept for this provider's deliveries." } }
            }
        }
    }
}

/// The record's attempts, newest first: when, what it came to, how long, the provider's status
/// and the error.
fn history_view(record: &Record) -> Markup {
    if record.history.is_empty() {
        return html! {};
    }
    html! {
        section id="history" {
            h2 { "Attempts" }
            table class="events" {
                thead { tr { th { "When" } th { "Outcome" } th { "Took" } th { "Status" } th { "Error" } } }
                tbody {
                    @for tried in record.history.iter().rev() {
                        tr {
                            td { (utc(tried.at_ms)) }
                            td { (tried.outcome) }
                            td { (tried.latency_ms) " ms" }
                            td { @match tried.http_status { Some(status) => { (status) } None => { "—" } } }
                            td { (tried.error.as_deref().unwrap_or("—")) }
                        }
                    }
                }
            }
        }
    }
}

/// JSON re-indented (values exactly as sent), or the text as it is.
fn json_block(text: &str) -> Markup {
    html! { pre { (pretty_json(text).unwrap_or_else(|| text.to_string())) } }
}

/// Replay for every event but quarantined ones; release for quarantined ones.
fn actions(record: &Record) -> Markup {
    let link = pct(&record.key);
    if let Some(released_as) = webhook_core::operate::released_as(record) {
        return html! {
            div class="actions" {
                p {
                    "Released from quarantine as "
                    a href={ "/events/" (pct(&released_as)) } class="mono" { (released_as) }
                    ": replay that one if needed."
                }
            }
        };
    }
    if record.status == Status::Quarantined {
        return html! {
            div class="actions" {
                form method="post" action={ "/events/" (link) "/release" } {
                    button type="submit" class="primary" { "Release" }
                }
                p { "Runs the body through " (record.provider) "'s current parser: if it now parses, it is stored and queued under its real key (once, like any delivery)." }
            }
        };
    }
    html! {
        div class="actions" {
            form method="post" action={ "/events/" (link) "/replay" } {
                button type="submit" class="primary" { "Replay" }
            }
            p { "Sends it through the outbox again: queued and processed once more, the provider's API called again." }
        }
    }
}

/// A Pause or Resume button per provider, and a Resume button per paused tenant: what
/// `webhooks pause|resume` does, for the dev server's processing.
async fn processing_controls(state: &AppState) -> Markup {
    let paused = match state.operations.paused().await {
        Ok(paused) => paused,
        Err(error) => {
            return html! { p class="flash error" { "What is paused could not be read: " (error) } }
        }
    };
    let mut providers: Vec<&String> = state.tenants.keys().collect();
    providers.sort();
    html! {
        section class="processing" aria-label="Processing" {
            span class="note" { "Processing:" }
            @for provider in providers {
                @let held = paused.iter().any(|p| p.scope == *provider);
                @let (action, label) = if held { ("resume", "Resume") } else { ("pause", "Pause") };
                form method="post" action={ "/processing/" (pct(provider)) "/" (action) } {
                    button type="submit" { (label) " " (provider) }
                }
            }
            @for (scope, tenant) in paused.iter().filter_map(|p| Some((&p.scope, KeyParts::of(&p.scope)?))) {
                form method="post" action={ "/processing/" (pct(scope)) "/resume" } {
                    button type="submit" { "Resume " (tenant.provider) " " (tenant.tenant) }
                }
            }
        }
    }
}

/// `POST /processing/{scope}/{pause|resume}`: holds or lets go the processing of a provider
/// (`magicline`) or one of its tenants (`magicline#studio-1001`), then back to the list.
pub async fn pause(
    State(state): State<AppState>,
    Path((scope, action)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(why) = cross_site(&headers) {
        return refused(why);
    }
    let hold = match action.as_str() {
        "pause" => true,
        "resume" => false,
        _ => return (StatusCode::NOT_FOUND, "pause or resume\n").into_response(),
    };
    let (provider, tenant) = match KeyParts::of(&scope) {
        Some(parts) => (parts.provider, Some(parts.tenant)),
        None => (scope.as_str(), None),
    };
    let flash = match state.operations.pause(provider, tenant, hold).await {
        Ok(scope) if hold => Flash::new(
            "ok",
            format!("Paused {scope}: its webhooks are still acknowledged and stored; processing waits, using up no attempt."),
        ),
        Ok(scope) => Flash::new(
            "ok",
            format!("Resumed {scope}: its held webhooks are processed within half a minute, at its paced rate."),
        ),
        Err(error) => Flash::new("error", format!("Pause or resume failed: {error}")),
    };
    to("/events", flash)
}

/// `POST /events/{key}/replay`: [`Operations::replay`](webhook_core::operate::Operations::replay),
/// then back to the record with what happened.
pub async fn replay(
    State(state): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(why) = cross_site(&headers) {
        return refused(why);
    }
    let flash = match state.operations.replay(&key).await {
        Ok(Replayed::Queued) => Flash::new(
            "ok",
            "Replay: queued. The processor takes it up again.".into(),
        ),
        Ok(Replayed::LeftToTheSweeper) => Flash::new(
            "warn",
            format!(
                "Replay: stored for it, but the queue write failed; the sweeper queues it within {} s.",
                state.sweep_interval.as_secs().max(1)
            ),
        ),
        Ok(Replayed::Skipped(why)) => Flash::new("warn", format!("Replay skipped: {why}.")),
        Err(error) => Flash::new("error", format!("Replay failed: {error}")),
    };
    back_to(&key, flash)
}

/// `POST /events/{key}/release`: [`Operations::release`](webhook_core::operate::Operations::release)
/// with the provider's configured tenants, then back to the record with what happened.
pub async fn release(
    State(state): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(why) = cross_site(&headers) {
        return refused(why);
    }
    let released = match state.operations.quarantined(&key).await {
        Ok(record) => {
            let tenants = state
                .tenants
                .get(&record.provider)
                .map_or_else(|| Arc::new(TenantDirectory::empty()), |t| t.current());
            state.operations.release(&record, &tenants).await
        }
        Err(error) => Err(error),
    };
    let flash = match released {
        Ok(real_key) => Flash {
            kind: "ok".into(),
            text: format!("Released as {real_key}: stored under its real key and queued."),
            link: Some(real_key),
        },
        Err(error @ OperateError::StillUnreadable(_)) => {
            Flash::new("warn", format!("Not released: {error}"))
        }
        Err(error) => Flash::new("error", format!("Not released: {error}")),
    };
    back_to(&key, flash)
}

/// `GET /assets/{name}`: the stylesheet, the live-refresh script and the icon.
pub async fn asset(Path(name): Path<String>) -> Response {
    let (body, content_type) = match name.as_str() {
        "style.css" => (STYLE, "text/css; charset=utf-8"),
        "live.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "icon.svg" => (ICON, "image/svg+xml"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// A message for the next page shown, carried in a short-lived cookie.
#[derive(Debug, Serialize, Deserialize)]
struct Flash {
    /// `ok`, `warn` or `error`.
    kind: String,
    text: String,
    /// A record to link to (a released event's real key).
    link: Option<String>,
}

impl Flash {
    fn new(kind: &str, text: String) -> Flash {
        Flash {
            kind: kind.into(),
            text,
            link: None,
        }
    }

    fn render(&self) -> Markup {
        let kind = match self.kind.as_str() {
            "ok" => "ok",
            "warn" => "warn",
            _ => "error",
        };
        html! {
            p class={ "flash " (kind) } role="status" {
                (self.text)
                @if let Some(key) = &self.link {
                    " " a href={ "/events/" (pct(key)) } { "Open it" }
                }
            }
        }
    }

    fn cookie(&self) -> String {
        let mut flash = Flash {
            kind: self.kind.clone(),
            text: cut(&self.text, 1200),
            link: self.link.clone(),
        };
        if flash.link.as_ref().is_some_and(|link| link.len() > 1000) {
            flash.link = None;
        }
        let json = serde_json::to_vec(&flash).unwrap_or_default();
        let value = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
        format!("{FLASH_COOKIE}={value}; Path=/; Max-Age=60; HttpOnly; SameSite=Strict")
    }

    fn from_headers(headers: &HeaderMap) -> Option<Flash> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == FLASH_COOKIE)
            .and_then(|(_, value)| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(value)
                    .ok()
            })
            .and_then(|json| serde_json::from_slice(&json).ok())
    }
}

/// 303 to the record's page, the flash message in a cookie.
fn back_to(key: &str, flash: Flash) -> Response {
    to(&format!("/events/{}", pct(key)), flash)
}

/// 303 to `location`, the flash message in a cookie.
fn to(location: &str, flash: Flash) -> Response {
    let location = location.to_string();
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response();
    if let Ok(cookie) = HeaderValue::from_str(&flash.cookie()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

fn refused(why: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        format!("refused: {why}; use the buttons of the dev server's own pages\n"),
    )
        .into_response()
}

fn badge(status: Status) -> Markup {
    html! { span class={ "status " (status_class(status)) } { (status.as_str()) } }
}

fn status_class(status: Status) -> String {
    format!("s-{}", status.as_str().to_ascii_lowercase())
}

/// A whole page: the layout around `content`, the flash message shown (and its cookie
/// cleared), the headers every page gets.
pub(crate) fn page(
    state: &AppState,
    headers: &HeaderMap,
    title: &str,
    content: Markup,
) -> Response {
    let flash = Flash::from_headers(headers);
    let body = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (cut(title, 80)) " · webhook dev server" }
                link rel="icon" href="/assets/icon.svg";
                link rel="stylesheet" href="/assets/style.css";
                script src="/assets/live.js" defer {}
            }
            body {
                header class="top" {
                    a class="brand" href="/events" { "Webhook dev server" }
                    a href="/contract" { "Contract" }
                    span class="where" {
                        "admin pages · loopback only · webhooks at http://" (state.webhooks_at) "/webhooks/{provider}"
                    }
                }
                main {
                    @if state.config.changed_on_disk() {
                        p class="flash warn" role="status" id="config-changed" {
                            (state.config.path.display())
                            " has changed since the server started. Its tenants are read again within 3 s (a file that does not load keeps the last good tenants; the server's log says why); its other settings ([downstream]) take effect once the server is restarted (Ctrl-C, then the same command)."
                        }
                    }
                    @if let Some(flash) = &flash { (flash.render()) }
                    (content)
                }
            }
        }
    };
    let mut response = html(body.into_string());
    if flash.is_some() {
        response.headers_mut().insert(
            header::SET_COOKIE,
            HeaderValue::from_str(&format!(
                "{FLASH_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"
            ))
            .expect("the cookie's name and attributes are header-safe"),
        );
    }
    response
}

/// A part of a page, for the live refresh.
fn fragment(body: Markup) -> Response {
    html(body.into_string())
}

fn html(body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            // Not `no-referrer`: with it a browser sends `Origin: null` on the pages' own forms.
            (header::REFERRER_POLICY, "same-origin"),
            (header::X_FRAME_OPTIONS, "DENY"),
            // Raw bodies and customer data: never kept by the browser's cache.
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_host_names_are_served() {
        for host in [
            "127.0.0.1:8081",
            "127.0.0.2",
            "localhost:8081",
            "LOCALHOST",
            "app.localhost:1",
            "[::1]:8081",
            "[::1]",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "evil.example:8081",
            "10.0.0.1:8081",
            "localhost.evil.example",
            "[::2]:8081",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn form_posts_from_other_sites_are_refused() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, HeaderValue::from_static(value));
            }
            map
        };
        assert_eq!(cross_site(&headers(&[])), None);
        assert_eq!(
            cross_site(&headers(&[
                ("host", "127.0.0.1:8081"),
                ("origin", "http://127.0.0.1:8081"),
                ("sec-fetch-site", "same-origin"),
            ])),
            None
        );
        assert!(cross_site(&headers(&[("sec-fetch-site", "cross-site")])).is_some());
        for origin in ["http://evil.example", "null", "http://127.0.0.1:8080"] {
            let mut sent = headers(&[("host", "127.0.0.1:8081")]);
            sent.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
            assert!(cross_site(&sent).is_some(), "{origin}");
        }
    }

    #[test]
    fn a_flash_message_survives_its_cookie() {
        let flash = Flash {
            kind: "ok".into(),
            text: "Released as magicline#s#<x>".into(),
            link: Some("magicline#s#<x>".into()),
        };
        let cookie = flash.cookie();
        let value = cookie.split(';').next().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {value}")).unwrap(),
        );
        let back = Flash::from_headers(&headers).unwrap();
        assert_eq!(back.text, flash.text);
        let rendered = back.render().into_string();
        assert!(rendered.contains("&lt;x&gt;"), "{rendered}");
        assert!(!rendered.contains("<x>"), "{rendered}");
    }
}
