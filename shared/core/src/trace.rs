//! One trace per webhook: the id of the trace its request belongs to — AWS X-Ray's, from the
//! `X-Amzn-Trace-Id` header (`Root=1-<8 hex>-<24 hex>;…`, which the Lambda glue sets from the
//! invocation's own trace where the request has none), else a new one in the same form (the
//! dev server) — is kept with the record, and its processing carries it in every log line and
//! in the downstream event.

/// The header a trace arrives in.
pub const HEADER: &str = "x-amzn-trace-id";

/// The trace id (`1-5759e988-bd862e3fe1be46a994272793`) a trace header names, if it names one
/// in X-Ray's form; anything else is not taken (the header is not authenticated, and the id
/// goes into log lines).
pub fn from_header(value: &str) -> Option<String> {
    let root = value
        .split(';')
        .find_map(|part| part.trim().strip_prefix("Root="))
        .unwrap_or(value.trim());
    is_trace_id(root).then(|| root.to_string())
}

/// The segment a sampled trace header names as the caller (`Parent=<16 hex>` with
/// `Sampled=1`): where the processor's calls for the webhook hang in its trace. None when the
/// trace is not sampled — X-Ray keeps no segment for it to hang under.
pub fn parent_from_header(value: &str) -> Option<String> {
    let field = |name: &str| {
        value
            .split(';')
            .find_map(|part| part.trim().strip_prefix(name))
    };
    let parent = field("Parent=")?;
    let segment_id = parent.len() == 16 && parent.bytes().all(|b| b.is_ascii_hexdigit());
    (segment_id && field("Sampled=") == Some("1")).then(|| parent.to_string())
}

/// The trace header that continues trace `trace_id` under segment `parent` (a sampled trace,
/// as [`parent_from_header`] reads it back); with no parent, the trace alone.
pub fn header(trace_id: &str, parent: Option<&str>) -> String {
    match parent {
        Some(parent) => format!("Root={trace_id};Parent={parent};Sampled=1"),
        None => format!("Root={trace_id}"),
    }
}

/// X-Ray's form: `1-`, 8 hex digits (the epoch second), `-`, 24 hex digits.
pub fn is_trace_id(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    let hex =
        |part: &str, len: usize| part.len() == len && part.bytes().all(|b| b.is_ascii_hexdigit());
    matches!(parts.as_slice(), ["1", time, random] if hex(time, 8) && hex(random, 24))
}

/// A new trace id started at `now_ms`.
pub fn new_id(now_ms: i64) -> String {
    let seconds = u32::try_from(now_ms.max(0) / 1000).unwrap_or(u32::MAX);
    format!(
        "1-{seconds:08x}-{:08x}{:016x}",
        fastrand::u32(..),
        fastrand::u64(..)
    )
}

/// The trace a request belongs to: the one its header names, else a new one.
pub fn of_request(request: &crate::WebhookRequest, now_ms: i64) -> String {
    request
        .headers()
        .get(HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(from_header)
        .unwrap_or_else(|| new_id(now_ms))
}

/// The caller segment of the trace a request's header names (see [`parent_from_header`]).
pub fn parent_of_request(request: &crate::WebhookRequest) -> Option<String> {
    request
        .headers()
        .get(HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(parent_from_header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_header_gives_its_root_and_nothing_else_is_taken() {
        let root = "1-5759e988-bd862e3fe1be46a994272793";
        assert_eq!(
            from_header(&format!("Root={root};Parent=53995c3f42cd8ad8;Sampled=1")).as_deref(),
            Some(root)
        );
        assert_eq!(from_header(root).as_deref(), Some(root));
        for bad in [
            "Root=1-5759e988-bd862e3fe1be46a99427279",
            "Root=2-5759e988-bd862e3fe1be46a994272793",
            "Root=1-5759e988-bd862e3fe1be46a99427279z",
            "Root=1-5759e988-bd862e3f\n1be46a994272793",
            "",
        ] {
            assert_eq!(from_header(bad), None, "{bad:?}");
        }
        let made = new_id(1_465_510_280_000);
        assert!(
            is_trace_id(&made) && made.starts_with("1-5759e988-"),
            "{made}"
        );
        assert_ne!(new_id(0), new_id(0));
    }

    #[test]
    fn a_sampled_header_names_its_parent_and_nothing_else_is_taken() {
        let root = "Root=1-5759e988-bd862e3fe1be46a994272793";
        assert_eq!(
            parent_from_header(&format!("{root};Parent=53995c3f42cd8ad8;Sampled=1")).as_deref(),
            Some("53995c3f42cd8ad8")
        );
        for unsampled in [
            format!("{root};Parent=53995c3f42cd8ad8;Sampled=0"),
            format!("{root};Parent=53995c3f42cd8ad8"),
            format!("{root};Parent=53995c3f42cd8ad;Sampled=1"),
            format!("{root};Parent=53995c3f42cd8adz;Sampled=1"),
            root.to_string(),
        ] {
            assert_eq!(parent_from_header(&unsampled), None, "{unsampled}");
        }
    }
}
