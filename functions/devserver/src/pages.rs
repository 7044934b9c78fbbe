//! The event pages on the admin listener, for a browser: the live event list (`GET /events`,
//! filters by provider, tenant and status as query parameters, newest first), one record
//! (`GET /events/{key}`), and the operator buttons (`POST /events/{key}/replay`,
//! `POST /events/{key}/release`) that call the core's [`Operations`](webhook_core::operate::Operations)
//! and redirect back with a flash message. Rendered on the server with plain `format!`, every
//! value through [`esc`] (bodies, keys, tenants and errors come from whoever sent the webhook).
//! Fully usable without JavaScript; `assets/live.js` only refreshes the live part of a page
//! (`?part=live`) every few seconds.
//!
//! The pages are for the developer's own browser: besides the loopback-only listener, requests
//! naming another host (DNS rebinding) are refused, and so are form posts from other sites.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::{Deserialize, Serialize};
use webhook_core::key::KeyParts;
use webhook_core::operate::{OperateError, Replayed};
use webhook_core::ports::{Record, Status};
use webhook_core::tenants::TenantDirectory;

use crate::html::{ago, cut, esc, pct, pretty_json, utc};
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
    let mut content = String::new();
    let _ = write!(
        content,
        r#"<div class="bar"><h1>Events</h1><p class="note"><span id="live-note"></span><noscript>JavaScript is off: reload the page to see new events.</noscript></p></div>"#
    );
    content.push_str(&filter_form(&state, &filters));
    content.push_str(&processing_controls(&state).await);
    let query = filters.query(None);
    let source = if query.is_empty() {
        "/events?part=live".to_string()
    } else {
        format!("/events?{query}&part=live")
    };
    let _ = write!(
        content,
        r#"<div id="live" data-source="{}" data-every="3000">{live}</div>"#,
        esc(&source)
    );
    page(&state, &headers, "Events", &content)
}

fn filter_form(state: &AppState, filters: &Filters) -> String {
    let mut providers: Vec<&String> = state.tenants.keys().collect();
    providers.sort();
    let mut form = String::from(
        r#"<form class="filters" method="get" action="/events"><label>Provider <select name="provider"><option value="">all</option>"#,
    );
    for provider in &providers {
        let selected = if filters.provider.as_deref() == Some(provider.as_str()) {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            form,
            r#"<option value="{0}"{selected}>{0}</option>"#,
            esc(provider)
        );
    }
    let _ = write!(
        form,
        r#"</select></label><label>Tenant <input name="tenant" list="tenants" placeholder="any" value="{}"></label><datalist id="tenants">"#,
        esc(filters.tenant.as_deref().unwrap_or_default())
    );
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
    for tenant in tenants {
        let _ = write!(form, r#"<option value="{}">"#, esc(tenant));
    }
    form.push_str(
        r#"</datalist><label>Status <select name="status"><option value="">any</option>"#,
    );
    for status in Status::ALL {
        let selected = if filters.status.as_deref() == Some(status.as_str()) {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            form,
            r#"<option value="{0}"{selected}>{0}</option>"#,
            status.as_str()
        );
    }
    if filters.limit != DEFAULT_LIMIT {
        let _ = write!(
            form,
            r#"<input type="hidden" name="limit" value="{}">"#,
            filters.limit
        );
    }
    form.push_str(
        r#"</select></label><button type="submit">Filter</button><a class="clear" href="/events">Clear filters</a></form>"#,
    );
    form
}

/// The stats strip and the table of events.
async fn live_list(state: &AppState, filters: &Filters) -> String {
    let mut out = stats_strip(state, filters).await;
    let status = match filters.status.as_deref().map(|s| (s, Status::parse(s))) {
        None => None,
        Some((_, Some(status))) => Some(status),
        Some((named, None)) => {
            let known: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
            let _ = write!(
                out,
                r#"<p class="flash error">No status is called {}; known: {}.</p>"#,
                esc(named),
                known.join(", ")
            );
            return out;
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
        Err(error) => {
            let _ = write!(
                out,
                r#"<p class="flash error">{}</p>"#,
                esc(&error.to_string())
            );
            return out;
        }
    };
    out.push_str(&events_table(&records, state.ports.clock.now_ms()));
    if records.is_empty() {
        out.push_str(
            r#"<p class="empty">No events match. Send one: <code>cargo run --release -p devserver -- send events/magicline/customer-created.json</code></p>"#,
        );
    } else if records.len() == filters.limit {
        let _ = write!(
            out,
            r#"<p class="note">The newest {} shown; the filters narrow the list.</p>"#,
            filters.limit
        );
    }
    out
}

/// Counts by status (of the provider filtered on, else of all), each a link to that status.
async fn stats_strip(state: &AppState, filters: &Filters) -> String {
    let counts = match state.operations.stats(None).await {
        Ok(counts) => counts,
        Err(error) => {
            return format!(
                r#"<p class="flash error">Counting failed: {}</p>"#,
                esc(&error.to_string())
            )
        }
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
    let mut out = format!(
        r#"<nav class="stats" aria-label="Counts by status"><a href="/events?{}" class="total{}"><span>All</span><b>{total}</b></a>"#,
        esc(&filters.query(Some(None))),
        if filters.status.is_none() { " on" } else { "" }
    );
    for status in Status::ALL {
        let name = status.as_str();
        let count = by_status.get(name).copied().unwrap_or(0);
        let mut classes = Vec::new();
        if count == 0 {
            classes.push("zero");
        }
        if filters.status.as_deref() == Some(name) {
            classes.push("on");
        }
        let _ = write!(
            out,
            r#"<a href="/events?{}" class="{}"><span class="status {}">{name}</span><b>{count}</b></a>"#,
            esc(&filters.query(Some(Some(name)))),
            classes.join(" "),
            status_class(status)
        );
    }
    let _ = write!(
        out,
        r#"<span class="note">{}, received in the retention period</span></nav>"#,
        esc(scope)
    );
    out
}

fn events_table(records: &[Record], now_ms: i64) -> String {
    if records.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        r#"<table class="events"><thead><tr><th>Received</th><th>Status</th><th>Provider · tenant</th><th>Event</th><th>Attempts</th><th>Last error</th></tr></thead><tbody>"#,
    );
    for record in records {
        let link = format!("/events/{}", pct(&record.key));
        let event_type = if record.event_type.is_empty() {
            "(type not read)"
        } else {
            &record.event_type
        };
        // Provider and tenant have their column: the key's own parts are what tell events apart.
        let parts = KeyParts::of(&record.key).map_or(record.key.as_str(), |parts| parts.rest);
        let _ = write!(
            out,
            concat!(
                r#"<tr><td class="when"><span title="{received}">{ago}</span><span class="sub">{received}</span></td>"#,
                r#"<td>{status}</td>"#,
                r#"<td class="who">{provider}<span class="sub">{tenant}</span></td>"#,
                r#"<td><a href="{link}">{event_type}</a><span class="sub mono" title="{key}">{short_key}</span></td>"#,
                r#"<td class="num">{attempts}</td><td class="err">{error}</td></tr>"#
            ),
            received = esc(&utc(record.received_at_ms)),
            ago = esc(&ago(record.received_at_ms, now_ms)),
            status = badge(record.status),
            provider = esc(&record.provider),
            tenant = esc(&record.tenant),
            link = esc(&link),
            event_type = esc(&cut(event_type, 60)),
            key = esc(&record.key),
            short_key = esc(&cut(parts, 72)),
            attempts = record.attempts,
            error = esc(&cut(record.last_error.as_deref().unwrap_or_default(), 160)),
        );
    }
    out.push_str("</tbody></table>");
    out
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
            let content = format!(
                r#"<p class="crumbs"><a href="/events">← Events</a></p><p class="flash error">{}</p>"#,
                esc(&error.to_string())
            );
            let mut response = page(&state, &headers, "No such event", &content);
            *response.status_mut() = StatusCode::NOT_FOUND;
            return response;
        }
        Err(error) => {
            let content = format!(r#"<p class="flash error">{}</p>"#, esc(&error.to_string()));
            let mut response = page(&state, &headers, "Error", &content);
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            return response;
        }
    };
    let live = record_view(&record);
    if query.part.as_deref() == Some("live") {
        return fragment(live);
    }
    let link = pct(&record.key);
    let content = format!(
        concat!(
            r#"<div class="bar"><p class="crumbs"><a href="/events">← Events</a> · <a href="/_dev/events/{link}">as JSON</a></p>"#,
            r#"<p class="note"><span id="live-note"></span></p></div>"#,
            r#"<div id="live" data-source="/events/{link}?part=live" data-every="1500">{live}</div>"#
        ),
        link = esc(&link),
        live = live,
    );
    let title = if record.event_type.is_empty() {
        "Event"
    } else {
        &record.event_type
    };
    page(&state, &headers, title, &content)
}

/// Everything about one record that can change. The live refresh stops once it is settled.
fn record_view(record: &Record) -> String {
    let settled = matches!(
        record.status,
        Status::Processed | Status::Failed | Status::Quarantined
    );
    let mut out = format!(
        r#"<h1{}>{} <span class="type">{}</span></h1><p class="key mono">{}</p>"#,
        if settled { " data-settled" } else { "" },
        badge(record.status),
        esc(if record.event_type.is_empty() {
            "(event type not read)"
        } else {
            &record.event_type
        }),
        esc(&record.key)
    );
    out.push_str(&actions(record));
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let or_dash = |text: &str| esc(if text.is_empty() { "—" } else { text });
    let _ = write!(
        out,
        concat!(
            r#"<div class="grid"><section><h2>Event</h2><dl class="facts">"#,
            r#"<dt>Provider</dt><dd>{provider}</dd><dt>Tenant</dt><dd>{tenant}</dd>"#,
            r#"<dt>Event type</dt><dd>{event_type}</dd><dt>Entity</dt><dd class="mono">{entity}</dd>"#,
            r#"<dt>Subject</dt><dd class="mono">{subject}</dd><dt>Without credential</dt><dd>{unauthenticated}</dd>"#,
            r#"<dt>Trace</dt><dd class="mono" id="trace">{trace}</dd>"#,
            r#"</dl></section>"#
        ),
        provider = esc(&record.provider),
        tenant = esc(&record.tenant),
        event_type = or_dash(&record.event_type),
        entity = or_dash(&record.entity_id),
        subject = or_dash(&record.subject),
        unauthenticated = yes_no(record.unauthenticated),
        trace = or_dash(record.trace_id.as_deref().unwrap_or_default()),
    );
    out.push_str(&history_view(record));
    // What the record holds now, beside the attempts it keeps (the newest 20).
    let time = |ms: Option<i64>| ms.map_or_else(|| "—".to_string(), utc);
    let _ = write!(
        out,
        concat!(
            r#"<section><h2>Status and times</h2><dl class="facts">"#,
            r#"<dt>Status</dt><dd>{status}</dd><dt>Received</dt><dd>{received}</dd>"#,
            r#"<dt>Processed</dt><dd>{processed}</dd><dt>Erased</dt><dd>{erased}</dd>"#,
            r#"<dt>Attempts</dt><dd>{attempts}</dd><dt>Last error</dt>{error}"#,
            r#"</dl><p class="note">The record holds its current status, these times and its last error; no history of earlier statuses is kept.</p></section></div>"#
        ),
        status = badge(record.status),
        received = esc(&utc(record.received_at_ms)),
        processed = esc(&time(record.processed_at_ms)),
        erased = esc(&time(record.erased_at_ms)),
        attempts = record.attempts,
        error = record.last_error.as_deref().map_or_else(
            || "<dd>—</dd>".to_string(),
            |error| format!(r#"<dd class="err">{}</dd>"#, esc(error))
        ),
    );
    let base64 = record.body_is_base64();
    out.push_str("<section><h2>Body</h2>");
    if record.body.is_empty() {
        out.push_str(if record.erased_at_ms.is_some() {
            r#"<p class="note">Erased.</p>"#
        } else {
            r#"<p class="note">Empty.</p>"#
        });
    } else if base64 {
        let _ = write!(
            out,
            r#"<p class="note">Not UTF-8: kept Base64-encoded, as stored.</p><pre>{}</pre>"#,
            esc(&record.body)
        );
    } else {
        out.push_str(&json_block(&record.body));
    }
    out.push_str("</section><section><h2>Detail</h2>");
    match record.detail.as_deref() {
        Some(detail) => out.push_str(&json_block(detail)),
        None if record.erased_at_ms.is_some() => {
            out.push_str(r#"<p class="note">Erased, or none fetched.</p>"#)
        }
        None => out.push_str(r#"<p class="note">None yet.</p>"#),
    }
    out.push_str("</section><section><h2>Facts</h2>");
    match record.facts.as_deref() {
        Some(facts) => out.push_str(&json_block(facts)),
        None => out.push_str(r#"<p class="note">None kept for this provider's deliveries.</p>"#),
    }
    out.push_str("</section>");
    out
}

/// JSON re-indented (values exactly as sent), or the text as it is.
/// The record's attempts, newest first: when, what it came to, how long, the provider's status
/// and the error.
fn history_view(record: &Record) -> String {
    if record.history.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        r#"<section id="history"><h2>Attempts</h2><table class="events"><thead><tr><th>When</th><th>Outcome</th><th>Took</th><th>Status</th><th>Error</th></tr></thead><tbody>"#,
    );
    for tried in record.history.iter().rev() {
        let _ = write!(
            out,
            r#"<tr><td>{}</td><td>{}</td><td>{} ms</td><td>{}</td><td>{}</td></tr>"#,
            utc(tried.at_ms),
            esc(&tried.outcome),
            tried.latency_ms,
            tried
                .http_status
                .map_or_else(|| "—".to_string(), |s| s.to_string()),
            esc(tried.error.as_deref().unwrap_or("—")),
        );
    }
    out.push_str("</tbody></table></section>");
    out
}

fn json_block(text: &str) -> String {
    format!(
        "<pre>{}</pre>",
        esc(&pretty_json(text).unwrap_or_else(|| text.to_string()))
    )
}

/// Replay for every event but quarantined ones; release for quarantined ones.
fn actions(record: &Record) -> String {
    let link = esc(&pct(&record.key));
    if let Some(released_as) = webhook_core::operate::released_as(record) {
        return format!(
            r#"<div class="actions"><p>Released from quarantine as <a href="/events/{}" class="mono">{}</a>: replay that one if needed.</p></div>"#,
            esc(&pct(&released_as)),
            esc(&released_as)
        );
    }
    if record.status == Status::Quarantined {
        return format!(
            concat!(
                r#"<div class="actions"><form method="post" action="/events/{link}/release">"#,
                r#"<button type="submit" class="primary">Release</button></form>"#,
                r#"<p>Runs the body through {provider}'s current parser: if it now parses, it is stored and queued under its real key (once, like any delivery).</p></div>"#
            ),
            link = link,
            provider = esc(&record.provider)
        );
    }
    format!(
        concat!(
            r#"<div class="actions"><form method="post" action="/events/{link}/replay">"#,
            r#"<button type="submit" class="primary">Replay</button></form>"#,
            r#"<p>Sends it through the outbox again: queued and processed once more, the provider's API called again.</p></div>"#
        ),
        link = link
    )
}

/// A Pause or Resume button per provider, and a Resume button per paused tenant: what
/// `webhooks pause|resume` does, for the dev server's processing.
async fn processing_controls(state: &AppState) -> String {
    let paused = match state.operations.paused().await {
        Ok(paused) => paused,
        Err(error) => {
            return format!(
                r#"<p class="flash error">What is paused could not be read: {}</p>"#,
                esc(&error.to_string())
            )
        }
    };
    let mut providers: Vec<&String> = state.tenants.keys().collect();
    providers.sort();
    let mut out = String::from(
        r#"<section class="processing" aria-label="Processing"><span class="note">Processing:</span>"#,
    );
    for provider in providers {
        let held = paused.iter().any(|p| p.scope == *provider);
        let (action, label) = if held {
            ("resume", format!("Resume {provider}"))
        } else {
            ("pause", format!("Pause {provider}"))
        };
        let _ = write!(
            out,
            r#"<form method="post" action="/processing/{}/{action}"><button type="submit">{}</button></form>"#,
            esc(&pct(provider)),
            esc(&label)
        );
    }
    for tenant_scope in paused.iter().filter(|p| p.scope.contains('#')) {
        let _ = write!(
            out,
            r#"<form method="post" action="/processing/{}/resume"><button type="submit">{}</button></form>"#,
            esc(&pct(&tenant_scope.scope)),
            esc(&format!("Resume {}", tenant_scope.scope.replace('#', " ")))
        );
    }
    out.push_str("</section>");
    out
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

    fn render(&self) -> String {
        let kind = match self.kind.as_str() {
            "ok" => "ok",
            "warn" => "warn",
            _ => "error",
        };
        let link = self.link.as_ref().map_or_else(String::new, |key| {
            format!(r#" <a href="/events/{}">Open it</a>"#, esc(&pct(key)))
        });
        format!(
            r#"<p class="flash {kind}" role="status">{}{link}</p>"#,
            esc(&self.text)
        )
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

fn badge(status: Status) -> String {
    format!(
        r#"<span class="status {}">{}</span>"#,
        status_class(status),
        status.as_str()
    )
}

fn status_class(status: Status) -> String {
    format!("s-{}", status.as_str().to_ascii_lowercase())
}

/// A whole page: the layout around `content`, the flash message shown (and its cookie
/// cleared), the headers every page gets.
pub(crate) fn page(state: &AppState, headers: &HeaderMap, title: &str, content: &str) -> Response {
    let flash = Flash::from_headers(headers);
    let config_changed = if state.config.changed_on_disk() {
        format!(
            r#"<p class="flash warn" role="status" id="config-changed">{} has changed since the server started. Its tenants are read again within 3 s (a file that does not load keeps the last good tenants; the server's log says why); its other settings ([downstream]) take effect once the server is restarted (Ctrl-C, then the same command).</p>"#,
            esc(&state.config.path.display().to_string())
        )
    } else {
        String::new()
    };
    let body = format!(
        concat!(
            r#"<!doctype html><html lang="en"><head><meta charset="utf-8">"#,
            r#"<meta name="viewport" content="width=device-width, initial-scale=1">"#,
            r#"<title>{title} · webhook dev server</title>"#,
            r#"<link rel="icon" href="/assets/icon.svg"><link rel="stylesheet" href="/assets/style.css"><script src="/assets/live.js" defer></script></head>"#,
            r#"<body><header class="top"><a class="brand" href="/events">Webhook dev server</a><a href="/contract">Contract</a>"#,
            r#"<span class="where">admin pages · loopback only · webhooks at http://{webhooks}/webhooks/{{provider}}</span></header>"#,
            r#"<main>{config_changed}{flash}{content}</main></body></html>"#
        ),
        title = esc(&cut(title, 80)),
        webhooks = esc(&state.webhooks_at.to_string()),
        flash = flash.as_ref().map(Flash::render).unwrap_or_default(),
        content = content,
        config_changed = config_changed,
    );
    let mut response = html(body);
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
fn fragment(body: String) -> Response {
    html(body)
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
        let rendered = back.render();
        assert!(rendered.contains("&lt;x&gt;"), "{rendered}");
        assert!(!rendered.contains("<x>"), "{rendered}");
    }
}
