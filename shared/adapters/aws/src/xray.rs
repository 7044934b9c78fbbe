//! Spans as X-Ray subsegments, sent to the X-Ray daemon Lambda runs beside a traced function
//! (`AWS_XRAY_DAEMON_ADDRESS`, UDP) — each one complete, when its call ends, under the segment
//! of the webhook function the record names (see [`webhook_core::spans`]).

use std::net::SocketAddr;

use webhook_core::spans::{Call, Ended, OpenSpan, Spans, TraceAt};
use xray_lite::{Client, DaemonClient, Http, Request, SegmentId, Subsegment, TraceId};

pub struct XraySpans {
    client: DaemonClient,
}

impl XraySpans {
    /// Sends to the daemon at `address`.
    pub fn to(address: SocketAddr) -> std::io::Result<XraySpans> {
        let client = DaemonClient::new(address).map_err(std::io::Error::other)?;
        Ok(XraySpans { client })
    }

    /// The daemon of a traced Lambda function; None outside one (no `AWS_XRAY_DAEMON_ADDRESS`).
    pub fn from_lambda_env() -> Option<XraySpans> {
        let address = std::env::var("AWS_XRAY_DAEMON_ADDRESS").ok()?;
        // `host:port`, or the SDKs' `tcp:host:port udp:host:port`.
        let udp = address
            .split_whitespace()
            .find_map(|part| part.strip_prefix("udp:"))
            .unwrap_or(address.trim());
        XraySpans::to(udp.parse().ok()?).ok()
    }
}

impl Spans for XraySpans {
    fn open(&self, at: TraceAt<'_>, call: Call<'_>) -> Box<dyn OpenSpan> {
        let mut subsegment = Subsegment::begin(
            TraceId::Rendered(at.trace_id.to_string()),
            Some(SegmentId::Rendered(at.parent.to_string())),
            call.name,
        );
        if let Some((method, url)) = call.http {
            subsegment.namespace = Some("remote".to_string());
            subsegment.http = Some(Http {
                request: Some(Request {
                    method: Some(method.to_string()),
                    url: Some(url.to_string()),
                    ..Request::default()
                }),
                response: None,
            });
        }
        Box::new(Open {
            client: self.client.clone(),
            subsegment,
        })
    }
}

struct Open {
    client: DaemonClient,
    subsegment: Subsegment,
}

impl OpenSpan for Open {
    fn close(mut self: Box<Self>, ended: Ended) {
        let subsegment = &mut self.subsegment;
        subsegment.end();
        subsegment.error = ended == Ended::Refused;
        subsegment.fault = ended == Ended::Failed;
        subsegment.throttled = ended == Ended::Throttled;
        // A lost span loses nothing of the webhook (its trace id stays in the record and the
        // log lines), as UDP to the daemon may lose it anyway.
        let _ = self.client.send(&self.subsegment);
    }
}
