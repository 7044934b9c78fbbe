//! Printing: tables for people, one JSON document for scripts (`--json`), progress bars.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use webhook_core::erasure::Preview;
use webhook_core::model::{Paused, Record, Status};
use webhook_core::operate::Count;

use crate::args::Filters;

/// `text` with every control character but the line break — and the bidirectional overrides —
/// written as a JSON escape (`\u001b`), tabs and carriage returns as spaces: a body, type or
/// error a sender wrote cannot move the cursor, recolour or retitle the terminal, or reorder
/// what is shown. The output of `--json` stays the same JSON: a control character other than
/// those whitespace ones can only stand inside a string there (a stored body is printed as
/// written), where the escape is the JSON for the same character, and a tab or carriage return
/// only between values.
pub(crate) fn inert(text: &str) -> String {
    let harmful = |c: char| {
        (c.is_control() && c != '\n')
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.contains(harmful) {
        return text.to_string();
    }
    let mut inert = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if matches!(c, '\t' | '\r') {
            inert.push(' ');
        } else if harmful(c) {
            write!(inert, "\\u{:04x}", c as u32).ok();
        } else {
            inert.push(c);
        }
    }
    inert
}

/// One JSON document, indented.
pub(crate) fn pretty(value: &impl Serialize) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

pub(crate) fn time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| ms.to_string())
}

pub(crate) fn short_time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| ms.to_string())
}

/// A stored JSON text (raw body, detail, facts) exactly as written — key order and every digit
/// kept, a number beyond 2^64 included — or its text where it is not JSON.
enum Stored {
    Json(Box<RawValue>),
    Text(String),
    Nothing,
}

impl Stored {
    fn of(text: Option<&str>) -> Stored {
        match text {
            None => Stored::Nothing,
            Some(text) => RawValue::from_string(text.to_string())
                .map(Stored::Json)
                .unwrap_or_else(|_| Stored::Text(text.to_string())),
        }
    }

    /// The raw body; nothing once erased. A body that was not UTF-8 stays Base64 (the record's
    /// facts say `"body_encoding": "base64"`).
    fn body(record: &Record) -> Stored {
        if record.body.is_empty() && record.erased_at_ms.is_some() {
            return Stored::Nothing;
        }
        Stored::of(Some(&record.body))
    }

    /// Indented for people, still exactly the stored text otherwise.
    fn readable(&self) -> String {
        match self {
            Stored::Json(raw) => indent_json(raw.get()),
            Stored::Text(text) => text.clone(),
            Stored::Nothing => "(none)".to_string(),
        }
    }
}

impl Serialize for Stored {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Stored::Json(raw) => raw.serialize(serializer),
            Stored::Text(text) => serializer.serialize_str(text),
            Stored::Nothing => serializer.serialize_none(),
        }
    }
}

/// Re-indents valid JSON text without parsing its values, so nothing but whitespace changes.
fn indent_json(text: &str) -> String {
    webhook_core::providers::pretty_json(text).unwrap_or_else(|| text.to_string())
}

/// A record as scripts get it; `body` and `detail` only for one record (`show`).
#[derive(Serialize)]
struct RecordJson {
    key: String,
    provider: String,
    tenant: String,
    #[serde(rename = "type")]
    event_type: String,
    entity_id: String,
    subject: String,
    status: &'static str,
    attempts: i64,
    received_at: String,
    processed_at: Option<String>,
    erased_at: Option<String>,
    last_error: Option<String>,
    unauthenticated: bool,
    trace_id: Option<String>,
    history: Vec<webhook_core::model::Tried>,
    facts: Stored,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<Stored>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<Stored>,
}

fn record_json(record: &Record, whole: bool) -> RecordJson {
    RecordJson {
        key: record.key.clone(),
        provider: record.provider.clone(),
        tenant: record.tenant.clone(),
        event_type: record.event_type.clone(),
        entity_id: record.entity_id.clone(),
        subject: record.subject.clone(),
        status: record.status.as_str(),
        attempts: record.attempts,
        received_at: time(record.received_at_ms),
        processed_at: record.processed_at_ms.map(time),
        erased_at: record.erased_at_ms.map(time),
        last_error: record.last_error.clone(),
        unauthenticated: record.unauthenticated,
        trace_id: record.trace_id.clone(),
        history: record.history.clone(),
        facts: Stored::of(record.facts.as_deref()),
        body: whole.then(|| Stored::body(record)),
        detail: whole.then(|| Stored::of(record.detail.as_deref())),
    }
}

/// An aligned table without borders; the columns in `numbers` are aligned right.
pub(crate) fn table(header: &[&str], rows: Vec<Vec<String>>, numbers: &[usize]) -> String {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled)
        .set_header(header.to_vec());
    for row in rows {
        table.add_row(row);
    }
    for (i, column) in table.column_iter_mut().enumerate() {
        column.set_padding((0, 2));
        if numbers.contains(&i) {
            column.set_cell_alignment(comfy_table::CellAlignment::Right);
        }
    }
    let mut text = String::new();
    for line in table.to_string().lines() {
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

pub(crate) fn clip(text: &str, at: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() > at || text.lines().nth(1).is_some() {
        let clipped: String = line.chars().take(at.saturating_sub(1)).collect();
        format!("{clipped}…")
    } else {
        line.to_string()
    }
}

pub(crate) fn filters_json(filters: &Filters) -> Value {
    json!({
        "provider": filters.provider,
        "tenant": filters.tenant,
        "status": filters.status.map(Status::as_str),
        "stuck": filters.stuck,
        "limit": filters.limit,
    })
}

pub(crate) fn print_records(
    out: &mut String,
    json: bool,
    records: &[Record],
    filter: &Value,
    limit: usize,
) {
    if json {
        #[derive(Serialize)]
        struct Listing<'a> {
            filter: &'a Value,
            count: usize,
            events: Vec<RecordJson>,
        }
        let events: Vec<RecordJson> = records.iter().map(|r| record_json(r, false)).collect();
        let listing = Listing {
            filter,
            count: events.len(),
            events,
        };
        writeln!(out, "{}", pretty(&listing)).ok();
        return;
    }
    if records.is_empty() {
        let none = if filter["stuck"] == true {
            "nothing is stuck: every delivery of a day ago or more is PROCESSED, FAILED or QUARANTINED"
        } else {
            "no events match (widen --since, or check --provider/--tenant/--status)"
        };
        writeln!(out, "{none}").ok();
        return;
    }
    let quarantine = records.iter().all(|r| r.status == Status::Quarantined);
    if quarantine {
        let rows = records
            .iter()
            .map(|r| {
                vec![
                    short_time(r.received_at_ms),
                    r.provider.clone(),
                    r.tenant.clone(),
                    r.key.clone(),
                    clip(r.last_error.as_deref().unwrap_or(""), 70),
                ]
            })
            .collect();
        out.push_str(&table(
            &["RECEIVED (UTC)", "PROVIDER", "TENANT", "KEY", "REASON"],
            rows,
            &[],
        ));
        writeln!(out, "{} quarantined, newest first", records.len()).ok();
        return;
    }
    let with_errors = records.iter().any(|r| r.last_error.is_some());
    let mut header = vec![
        "RECEIVED (UTC)",
        "PROVIDER",
        "TENANT",
        "TYPE",
        "STATUS",
        "TRIES",
        "KEY",
    ];
    if with_errors {
        header.push("LAST ERROR");
    }
    let rows = records
        .iter()
        .map(|r| {
            let mut row = vec![
                short_time(r.received_at_ms),
                r.provider.clone(),
                r.tenant.clone(),
                r.event_type.clone(),
                r.status.as_str().to_string(),
                r.attempts.to_string(),
                r.key.clone(),
            ];
            if with_errors {
                row.push(clip(r.last_error.as_deref().unwrap_or(""), 60));
            }
            row
        })
        .collect();
    out.push_str(&table(&header, rows, &[5]));
    let more = if records.len() >= limit {
        " (--limit reached: narrow with --since/--provider/--status or raise --limit)"
    } else {
        ""
    };
    writeln!(out, "{} event(s), newest first{more}", records.len()).ok();
}

pub(crate) fn print_record(out: &mut String, json: bool, record: &Record) {
    if json {
        writeln!(out, "{}", pretty(&record_json(record, true))).ok();
        return;
    }
    let mut lines: Vec<(&str, String)> = vec![
        ("key", record.key.clone()),
        ("provider", record.provider.clone()),
        ("tenant", record.tenant.clone()),
        ("type", record.event_type.clone()),
        ("entity", record.entity_id.clone()),
        ("subject", record.subject.clone()),
        ("status", record.status.as_str().to_string()),
        ("attempts", record.attempts.to_string()),
        ("received", time(record.received_at_ms)),
    ];
    if let Some(trace) = &record.trace_id {
        lines.push(("trace", trace.clone()));
    }
    if let Some(at) = record.processed_at_ms {
        lines.push(("processed", time(at)));
    }
    if let Some(at) = record.erased_at_ms {
        lines.push(("erased", time(at)));
    }
    if let Some(error) = &record.last_error {
        lines.push(("last error", error.clone()));
    }
    if record.unauthenticated {
        lines.push((
            "unauthenticated",
            "yes (accepted without a credential)".into(),
        ));
    }
    for (name, value) in lines {
        writeln!(out, "{:<12}{value}", format!("{name}:")).ok();
    }
    if !record.history.is_empty() {
        writeln!(out, "history:").ok();
        for tried in &record.history {
            let status = tried
                .http_status
                .map(|s| format!(" {s}"))
                .unwrap_or_default();
            let error = tried
                .error
                .as_deref()
                .map(|e| format!("  {e}"))
                .unwrap_or_default();
            writeln!(
                out,
                "  {}  {}{status}  {} ms{error}",
                short_time(tried.at_ms),
                tried.outcome,
                tried.latency_ms
            )
            .ok();
        }
    }
    if record.facts.is_some() {
        let facts = Stored::of(record.facts.as_deref()).readable();
        writeln!(out, "facts:\n{}", indent(&facts)).ok();
    }
    let body = match Stored::body(record) {
        Stored::Nothing => "(erased)".to_string(),
        body => body.readable(),
    };
    writeln!(out, "body:\n{}", indent(&body)).ok();
    match &record.detail {
        Some(detail) => writeln!(
            out,
            "detail:\n{}",
            indent(&Stored::of(Some(detail)).readable())
        ),
        None => writeln!(out, "detail:     (none)"),
    }
    .ok();
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("  {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

pub(crate) fn print_stats(out: &mut String, json: bool, counts: &[Count], paused: &[Paused]) {
    if json {
        let counts: Vec<Value> = counts
            .iter()
            .map(|c| json!({ "provider": c.provider, "status": c.status.as_str(), "count": c.count }))
            .collect();
        let paused: Vec<Value> = paused
            .iter()
            .map(|p| json!({ "scope": p.scope, "since": time(p.since_ms) }))
            .collect();
        writeln!(
            out,
            "{}",
            pretty(&json!({ "counts": counts, "paused": paused }))
        )
        .ok();
        return;
    }
    for held in paused {
        writeln!(
            out,
            "paused: {} since {} (webhooks stored, processing waits)",
            held.scope,
            time(held.since_ms)
        )
        .ok();
    }
    let mut by_provider: BTreeMap<&str, HashMap<Status, u64>> = BTreeMap::new();
    for count in counts {
        *by_provider
            .entry(&count.provider)
            .or_default()
            .entry(count.status)
            .or_default() += count.count;
    }
    let mut header = vec!["PROVIDER"];
    header.extend(Status::ALL.iter().map(|s| s.as_str()));
    header.push("TOTAL");
    let mut totals = [0u64; Status::ALL.len()];
    let mut rows = Vec::new();
    for (provider, counts) in &by_provider {
        let mut row = vec![provider.to_string()];
        for (i, status) in Status::ALL.iter().enumerate() {
            let n = counts.get(status).copied().unwrap_or(0);
            totals[i] += n;
            row.push(n.to_string());
        }
        row.push(counts.values().sum::<u64>().to_string());
        rows.push(row);
    }
    let mut row = vec!["all".to_string()];
    row.extend(totals.iter().map(u64::to_string));
    row.push(totals.iter().sum::<u64>().to_string());
    rows.push(row);
    // Every column after the provider holds a number.
    let numbers: Vec<usize> = (1..header.len()).collect();
    out.push_str(&table(&header, rows, &numbers));
}

pub(crate) fn progress_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} ({elapsed})")
    {
        bar.set_style(style);
    }
    bar.set_message(what.to_string());
    bar
}

/// What `erase --dry-run` found: the records an erasure would empty, nothing erased.
pub(crate) fn print_erase_preview(out: &mut String, json: bool, preview: &Preview) {
    if json {
        writeln!(out, "{}", pretty(&json!(preview))).ok();
        return;
    }
    writeln!(
        out,
        "erasing {} of {} {} would empty {} record(s) and {} quarantined deliver{} \
         (dry run: nothing erased, no tombstone)",
        inert(&preview.person),
        preview.provider,
        inert(&preview.tenant),
        preview.records.len(),
        preview.quarantined.len(),
        if preview.quarantined.len() == 1 {
            "y"
        } else {
            "ies"
        },
    )
    .ok();
    for key in preview.records.iter().chain(&preview.quarantined) {
        writeln!(out, "  {}", inert(key)).ok();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_indented_without_touching_a_digit_or_the_key_order() {
        let body = r#"{"z":18446744073709551617,"a":[ ],"s":"a \"{,}\" b","n":{"x":[1,2.50]}}"#;
        let indented = indent_json(body);
        assert_eq!(
            indented,
            "{\n  \"z\": 18446744073709551617,\n  \"a\": [],\n  \"s\": \"a \\\"{,}\\\" b\",\n  \"n\": {\n    \"x\": [\n      1,\n      2.50\n    ]\n  }\n}"
        );
        let json = serde_json::to_string(&Stored::of(Some(body))).unwrap();
        assert_eq!(json, body, "scripts get the stored text as JSON, as it is");
        assert_eq!(
            serde_json::to_string(&Stored::of(Some("{not json"))).unwrap(),
            "\"{not json\""
        );
    }
}
