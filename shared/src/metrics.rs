//! What the functions count, written as CloudWatch embedded-metric-format (EMF) lines: one JSON
//! line per measurement on standard output, which CloudWatch Logs turns into metrics with no
//! extra AWS call on the ack path. Outcome names are part of the contract with the alarms and
//! the dashboard in template.yaml.

use std::io::Write;
use std::sync::Mutex;

use serde_json::{json, Value};

use crate::clock::SharedClock;

pub trait Metrics: Send + Sync {
    /// One webhook answered: its outcome (`accepted`, `duplicate`, `quarantined`, `spilled`,
    /// `stored_not_queued`, `in_flight`, `unauthorized`, `too_large`, `bad_method`,
    /// `unstorable`, `unavailable`) and how long the answer took.
    fn webhook(&self, provider: &str, outcome: &str, ack_ms: f64);
    /// One queued event handled: `fetched`, `stored_without_fetch`, `erased`, `retried`,
    /// `throttled`, `configuration`, `failed`, `dead_lettered`; the API calls' time if any.
    fn processed(&self, provider: &str, outcome: &str, fetch_ms: Option<f64>);
    /// Records the sweeper handled: `enqueued` or `failed`.
    fn swept(&self, outcome: &str, count: usize);
    /// One downstream event: `published` or `failed`.
    fn published(&self, outcome: &str);
}

/// Counts nothing (the dev server, tests that do not look).
pub struct NoMetrics;

impl Metrics for NoMetrics {
    fn webhook(&self, _: &str, _: &str, _: f64) {}
    fn processed(&self, _: &str, _: &str, _: Option<f64>) {}
    fn swept(&self, _: &str, _: usize) {}
    fn published(&self, _: &str) {}
}

/// Writes EMF lines to `out` (standard output in a Lambda function).
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

    fn write(&self, properties: &[(&str, &str)], measures: &[Measure<'_>]) {
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
        let mut line = json!({
            "_aws": { "Timestamp": self.clock.now_ms(), "CloudWatchMetrics": directives },
        });
        for (name, value) in properties {
            line[*name] = json!(value);
        }
        for measure in measures {
            line[measure.name] = measure.value.clone();
        }
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // A metric line that cannot be written is lost; the request it measures is not.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

const BY_PROVIDER_AND_OUTCOME: &[&[&str]] = &[&["Provider", "Outcome"], &["Outcome"]];
const BY_PROVIDER: &[&[&str]] = &[&["Provider"]];
const BY_OUTCOME: &[&[&str]] = &[&["Outcome"]];

impl<W: Write + Send> Metrics for Emf<W> {
    fn webhook(&self, provider: &str, outcome: &str, ack_ms: f64) {
        self.write(
            &[("Provider", provider), ("Outcome", outcome)],
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
                    value: json!(ack_ms),
                    dimensions: BY_PROVIDER,
                },
            ],
        );
    }

    fn processed(&self, provider: &str, outcome: &str, fetch_ms: Option<f64>) {
        let mut measures = vec![Measure {
            name: "Processed",
            unit: "Count",
            value: json!(1),
            dimensions: BY_PROVIDER_AND_OUTCOME,
        }];
        if let Some(ms) = fetch_ms {
            measures.push(Measure {
                name: "FetchLatency",
                unit: "Milliseconds",
                value: json!(ms),
                dimensions: BY_PROVIDER,
            });
        }
        self.write(&[("Provider", provider), ("Outcome", outcome)], &measures);
    }

    fn swept(&self, outcome: &str, count: usize) {
        self.write(
            &[("Outcome", outcome)],
            &[Measure {
                name: "Swept",
                unit: "Count",
                value: json!(count),
                dimensions: BY_OUTCOME,
            }],
        );
    }

    fn published(&self, outcome: &str) {
        self.write(
            &[("Outcome", outcome)],
            &[Measure {
                name: "Published",
                unit: "Count",
                value: json!(1),
                dimensions: BY_OUTCOME,
            }],
        );
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

    #[test]
    fn a_webhook_line_is_embedded_metric_format() {
        let lines = Lines::default();
        let clock = crate::clock::ManualClock::starting_at(1_700_000_000_000);
        let emf = Emf::new("Webhooks/test", clock, lines.clone());
        emf.webhook("egym", "quarantined", 1.5);
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
    }
}
