//! Where each webhook and each handled message is written down: one log line apiece. In a
//! Lambda function that line is a CloudWatch embedded-metric-format (EMF) document — the log
//! line and its metrics in one, which CloudWatch Logs turns into metrics with no extra AWS call
//! and no second line to pay for. Outcome names are part of the contract with the alarms and
//! the dashboard in template.yaml.

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::clock::SharedClock;
use crate::model::Sighting;

/// The event a line is about (`-` for what is not known yet).
#[derive(Debug, Clone, Copy)]
pub struct About<'a> {
    pub provider: &'a str,
    pub tenant: &'a str,
    pub event_type: &'a str,
    pub key: &'a str,
    /// The webhook's trace (see [`crate::trace`]).
    pub trace_id: &'a str,
}

impl About<'_> {
    /// Its fields on an EMF line, under `message`; `Provider` is also a dimension.
    fn fields(&self, message: &str) -> Map<String, Value> {
        into_map(json!({
            "message": message,
            "Provider": self.provider,
            "tenant": self.tenant,
            "event_type": self.event_type,
            "key": self.key,
            "trace_id": self.trace_id,
        }))
    }
}

/// One webhook answered.
#[derive(Debug, Clone, Copy)]
pub struct WebhookLine<'a> {
    pub about: About<'a>,
    /// `accepted`, `duplicate`, `quarantined`, `spilled`, `stored_not_queued`,
    /// `unauthorized`, `too_large`, `bad_method`, `unstorable`, `unavailable`.
    pub outcome: &'a str,
    pub status: u16,
    pub latency: Duration,
}

/// One queued event handled.
#[derive(Debug, Clone, Copy)]
pub struct MessageLine<'a> {
    pub about: About<'a>,
    /// What the processor did, in its own words (`fetched`, `busy`, `claim_lost`, …).
    pub outcome: &'a str,
    /// What it counts as: `fetched`, `stored_without_fetch`, `erased`, `retried`, `throttled`,
    /// `configuration`, `failed`, `dead_lettered`, `erasure_pass_failed`; `None` for what is
    /// not counted (a redelivery of a finished event).
    pub counted: Option<&'a str>,
    pub attempt: u32,
    pub retry: bool,
    /// How long the message took (`FetchLatency` where it was `fetched`).
    pub latency: Duration,
    /// The downstream event: `published` or `failed`, where one was due.
    pub publication: Option<&'a str>,
}

pub trait Metrics: Send + Sync {
    fn webhook(&self, line: &WebhookLine<'_>);
    fn processed(&self, line: &MessageLine<'_>);
    /// Records the sweeper handled: `enqueued` or `failed`.
    fn swept(&self, outcome: &str, count: usize);
    /// A sign of a provider's contract changing, seen for the first time (see
    /// [`crate::drift`]).
    fn contract_changed(&self, sighting: &Sighting);
}

/// Log lines only, no metrics (the dev server, tests that do not look).
pub struct LogLines;

impl Metrics for LogLines {
    fn webhook(&self, line: &WebhookLine<'_>) {
        tracing::info!(
            provider = line.about.provider,
            tenant = line.about.tenant,
            event_type = line.about.event_type,
            key = line.about.key,
            trace_id = line.about.trace_id,
            outcome = line.outcome,
            status = line.status,
            latency_us = line.latency.as_micros() as u64,
            "webhook"
        );
    }

    fn processed(&self, line: &MessageLine<'_>) {
        tracing::info!(
            provider = line.about.provider,
            tenant = line.about.tenant,
            event_type = line.about.event_type,
            key = line.about.key,
            trace_id = line.about.trace_id,
            outcome = line.outcome,
            attempt = line.attempt,
            retry = line.retry,
            latency_ms = line.latency.as_millis() as u64,
            publication = line.publication.unwrap_or("-"),
            "processed"
        );
    }

    fn swept(&self, _: &str, _: usize) {}

    fn contract_changed(&self, sighting: &Sighting) {
        tracing::warn!(
            provider = sighting.provider,
            tenant = sighting.tenant,
            signal = sighting.signal,
            key = sighting.example_key,
            "a provider's contract changed: first seen"
        );
    }
}

/// Writes each line as an EMF document to `out` (standard output in a Lambda function).
pub struct Emf<W: Write + Send> {
    namespace: String,
    clock: SharedClock,
    out: Mutex<W>,
}

impl Emf<std::io::Stdout> {
    pub fn stdout(namespace: impl Into<String>, clock: SharedClock) -> Self {
        Emf::new(namespace, clock, std::io::stdout())
    }
}

/// One metric of a line: its name, unit, value and the dimension sets it is published under.
struct Measure<'a> {
    name: &'a str,
    unit: &'a str,
    value: Value,
    dimensions: &'a [&'a [&'a str]],
}

impl<W: Write + Send> Emf<W> {
    pub fn new(namespace: impl Into<String>, clock: SharedClock, out: W) -> Self {
        Emf {
            namespace: namespace.into(),
            clock,
            out: Mutex::new(out),
        }
    }

    /// One line: what happened (`fields`, the dimensions' values among them) and the metrics
    /// it counts; a line that counts nothing is a plain JSON log line.
    fn write(&self, fields: Map<String, Value>, measures: &[Measure<'_>]) {
        let mut line = Map::new();
        if !measures.is_empty() {
            let directives: Vec<Value> = measures
                .iter()
                .map(|m| {
                    json!({
                        "Namespace": self.namespace,
                        "Dimensions": m.dimensions,
                        "Metrics": [{ "Name": m.name, "Unit": m.unit }],
                    })
                })
                .collect();
            line.insert(
                "_aws".into(),
                json!({ "Timestamp": self.clock.now_ms(), "CloudWatchMetrics": directives }),
            );
        }
        line.insert("level".into(), json!("INFO"));
        line.extend(fields);
        for measure in measures {
            line.insert(measure.name.into(), measure.value.clone());
        }
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // A line that cannot be written is lost; the request it describes is not.
        let _ = writeln!(out, "{}", Value::Object(line));
        let _ = out.flush();
    }
}

const BY_PROVIDER_AND_OUTCOME: &[&[&str]] = &[&["Provider", "Outcome"], &["Outcome"]];
const BY_PROVIDER: &[&[&str]] = &[&["Provider"]];
const BY_OUTCOME: &[&[&str]] = &[&["Outcome"]];
const BY_PUBLICATION: &[&[&str]] = &[&["Publication"]];
/// Per provider and kind of signal, and in all (the one alarm).
const BY_PROVIDER_AND_SIGNAL: &[&[&str]] = &[&["Provider", "Signal"], &[]];

fn milliseconds(duration: Duration) -> Value {
    json!(duration.as_secs_f64() * 1000.0)
}

impl<W: Write + Send> Metrics for Emf<W> {
    fn webhook(&self, line: &WebhookLine<'_>) {
        let mut fields = line.about.fields("webhook");
        fields.insert("Outcome".into(), json!(line.outcome));
        fields.insert("status".into(), json!(line.status));
        self.write(
            fields,
            &[
                Measure {
                    name: "Webhooks",
                    unit: "Count",
                    value: json!(1),
                    dimensions: BY_PROVIDER_AND_OUTCOME,
                },
                Measure {
                    name: "AckLatency",
                    unit: "Milliseconds",
                    value: milliseconds(line.latency),
                    dimensions: BY_PROVIDER,
                },
            ],
        );
    }

    fn processed(&self, line: &MessageLine<'_>) {
        let mut fields = line.about.fields("processed");
        fields.extend(into_map(json!({
            "outcome": line.outcome,
            "attempt": line.attempt,
            "retry": line.retry,
            "latency_ms": line.latency.as_millis() as u64,
        })));
        let mut measures = Vec::new();
        if let Some(counted) = line.counted {
            fields.insert("Outcome".into(), json!(counted));
            measures.push(Measure {
                name: "Processed",
                unit: "Count",
                value: json!(1),
                dimensions: BY_PROVIDER_AND_OUTCOME,
            });
            if line.outcome == "fetched" {
                measures.push(Measure {
                    name: "FetchLatency",
                    unit: "Milliseconds",
                    value: milliseconds(line.latency),
                    dimensions: BY_PROVIDER,
                });
            }
        }
        if let Some(publication) = line.publication {
            fields.insert("Publication".into(), json!(publication));
            measures.push(Measure {
                name: "Published",
                unit: "Count",
                value: json!(1),
                dimensions: BY_PUBLICATION,
            });
        }
        self.write(fields, &measures);
    }

    fn contract_changed(&self, sighting: &Sighting) {
        let fields = into_map(json!({
            "message": "a provider's contract changed: first seen",
            "Provider": sighting.provider,
            "tenant": sighting.tenant,
            "signal": sighting.signal,
            "Signal": crate::drift::kind(&sighting.signal),
            "key": sighting.example_key,
        }));
        self.write(
            fields,
            &[Measure {
                name: "ContractChanged",
                unit: "Count",
                value: json!(1),
                dimensions: BY_PROVIDER_AND_SIGNAL,
            }],
        );
    }

    fn swept(&self, outcome: &str, count: usize) {
        self.write(
            into_map(json!({ "message": "sweep", "Outcome": outcome })),
            &[Measure {
                name: "Swept",
                unit: "Count",
                value: json!(count),
                dimensions: BY_OUTCOME,
            }],
        );
    }
}

fn into_map(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    const ABOUT: About<'static> = About {
        provider: "egym",
        tenant: "gym-1",
        event_type: "GYM_CHECKIN",
        key: "egym#gym-1#k",
        trace_id: "1-5759e988-bd862e3fe1be46a994272793",
    };

    #[test]
    fn a_webhook_line_is_embedded_metric_format() {
        let lines = Lines::default();
        let clock = crate::clock::ManualClock::starting_at(1_700_000_000_000);
        let emf = Emf::new("Webhooks/test", clock, lines.clone());
        emf.webhook(&WebhookLine {
            about: ABOUT,
            outcome: "quarantined",
            status: 202,
            latency: Duration::from_micros(1500),
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let line: Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["_aws"]["Timestamp"], 1_700_000_000_000i64);
        let directives = line["_aws"]["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(directives[0]["Namespace"], "Webhooks/test");
        assert_eq!(
            directives[0]["Dimensions"],
            json!([["Provider", "Outcome"], ["Outcome"]])
        );
        assert_eq!(directives[0]["Metrics"][0]["Name"], "Webhooks");
        assert_eq!(directives[1]["Dimensions"], json!([["Provider"]]));
        assert_eq!(line["Provider"], "egym");
        assert_eq!(line["Outcome"], "quarantined");
        assert_eq!(line["Webhooks"], 1);
        assert_eq!(line["AckLatency"], 1.5);
        assert_eq!(
            (&line["message"], &line["key"], &line["status"]),
            (&json!("webhook"), &json!("egym#gym-1#k"), &json!(202)),
            "the log line and its metrics are one line"
        );
        assert_eq!(text.lines().count(), 1);
    }

    #[test]
    fn a_processed_line_counts_its_publication_and_a_redelivery_counts_nothing() {
        let lines = Lines::default();
        let emf = Emf::new("Webhooks/test", crate::clock::system(), lines.clone());
        let handled = MessageLine {
            about: ABOUT,
            outcome: "fetched",
            counted: Some("fetched"),
            attempt: 1,
            retry: false,
            latency: Duration::from_millis(7),
            publication: Some("published"),
        };
        emf.processed(&handled);
        emf.processed(&MessageLine {
            outcome: "already_finished",
            counted: None,
            publication: None,
            ..handled
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let names: Vec<&Value> = lines[0]["_aws"]["CloudWatchMetrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| &d["Metrics"][0]["Name"])
            .collect();
        assert_eq!(
            names,
            [
                &json!("Processed"),
                &json!("FetchLatency"),
                &json!("Published")
            ]
        );
        assert_eq!(
            (
                &lines[0]["Outcome"],
                &lines[0]["Publication"],
                &lines[0]["FetchLatency"]
            ),
            (&json!("fetched"), &json!("published"), &json!(7.0))
        );
        assert!(lines[1].get("_aws").is_none(), "a plain log line");
        assert_eq!(lines[1]["outcome"], "already_finished");
    }
}
