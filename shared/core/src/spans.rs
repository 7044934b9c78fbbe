//! The calls a webhook's processing makes — to the provider's API, to the downstream bus —
//! reported as parts of the webhook's trace (X-Ray subsegments on AWS, see the AWS adapter's
//! `xray` module; nowhere where no tracer is given, as in the dev server).
//!
//! A span names where a call went (scheme and host, never the path: paths name customers and
//! bookings, and a trace outlives any erasure) and how it ended, nothing more.

/// Where in a trace a span hangs: the webhook's trace and the segment its function ran in.
#[derive(Debug, Clone, Copy)]
pub struct TraceAt<'a> {
    pub trace_id: &'a str,
    pub parent: &'a str,
}

impl<'a> TraceAt<'a> {
    /// Where a stored record's trace lets its calls hang: only a sampled trace has a segment
    /// to hang them under.
    pub fn of(record: &'a crate::model::Record) -> Option<TraceAt<'a>> {
        Some(TraceAt {
            trace_id: record.trace_id.as_deref()?,
            parent: record.trace_parent.as_deref()?,
        })
    }
}

/// A call about to be made.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// What was called (`magicline API`, `downstream bus`).
    pub name: &'a str,
    /// An HTTP call's method and the origin it went to (`https://api.example.com`).
    pub http: Option<(&'a str, &'a str)>,
}

/// How a call ended, in X-Ray's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Answered,
    /// Refused for good by the other side (a 4xx): X-Ray's `error`.
    Refused,
    /// The other side could not answer (a 5xx, a timeout): X-Ray's `fault`.
    Failed,
    /// Asked to wait (a 429): X-Ray's `throttle`.
    Throttled,
}

/// Where spans are reported.
pub trait Spans: Send + Sync {
    /// Starts the span of `call`, now.
    fn open(&self, at: TraceAt<'_>, call: Call<'_>) -> Box<dyn OpenSpan>;
}

/// A call under way; closing it reports the span.
pub trait OpenSpan: Send {
    fn close(self: Box<Self>, ended: Ended);
}

/// The origin (`scheme://host[:port]`) of a URL, the only part of it a span names.
pub fn origin(url: &str) -> String {
    url::Url::parse(url)
        .map(|url| url.origin().ascii_serialization())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_names_the_origin_and_never_the_path_or_credentials() {
        assert_eq!(
            origin("https://user:pw@api.example.com:8443/v1/customers/42?key=s"),
            "https://api.example.com:8443"
        );
        assert_eq!(origin("not a url"), "");
    }
}
