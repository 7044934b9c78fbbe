//! The processor's calls out — the provider's API, the downstream bus — each a span of the
//! webhook's trace where a tracer is given and the record's trace was sampled (see
//! [`crate::spans`]).

use crate::downstream::{DownstreamEvent, PublishError, Publisher};
use crate::fetch::{ApiCredentials, Detail, FetchError};
use crate::model::Record;
use crate::spans::{origin, Call, Ended, OpenSpan, Spans, TraceAt};

use super::Processor;

/// A GET of the provider's API, as the processor makes it.
pub(super) struct ApiGet<'a> {
    pub provider: &'static str,
    pub base_url: &'a str,
    pub path: &'a str,
    pub credentials: &'a ApiCredentials,
    pub tenant_key: &'a str,
}

impl Processor {
    pub(super) async fn traced_get(
        &self,
        record: &Record,
        get: ApiGet<'_>,
    ) -> Result<Detail, FetchError> {
        // Named only where a span is sent: most processors (the dev server's) send none.
        let span = self.span_target(record).map(|(spans, at)| {
            let name = format!("{} API", get.provider);
            let url = origin(get.base_url);
            let call = Call {
                name: &name,
                http: Some(("GET", &url)),
            };
            spans.open(at, call)
        });
        let answer = self
            .client
            .get_json(get.base_url, get.path, get.credentials, get.tenant_key)
            .await;
        close(
            span,
            answer.as_ref().err().map_or(Ended::Answered, ended_of),
        );
        answer
    }

    pub(super) async fn traced_publish(
        &self,
        publisher: &dyn Publisher,
        record: &Record,
        event: &DownstreamEvent,
    ) -> Result<(), PublishError> {
        let span = self.span_target(record).map(|(spans, at)| {
            let call = Call {
                name: "downstream bus",
                http: None,
            };
            spans.open(at, call)
        });
        let published = publisher.publish(event).await;
        let ended = match &published {
            Ok(()) => Ended::Answered,
            Err(PublishError::Refused(_)) => Ended::Refused,
            Err(PublishError::Unavailable(_)) => Ended::Failed,
        };
        close(span, ended);
        published
    }

    /// Where `record`'s calls are reported, if anywhere: a tracer, and a sampled trace.
    fn span_target<'a>(&'a self, record: &'a Record) -> Option<(&'a dyn Spans, TraceAt<'a>)> {
        Some((self.spans.as_deref()?, TraceAt::of(record)?))
    }
}

fn close(span: Option<Box<dyn OpenSpan>>, ended: Ended) {
    if let Some(span) = span {
        span.close(ended);
    }
}

fn ended_of(error: &FetchError) -> Ended {
    match error {
        FetchError::Transient {
            throttled: true, ..
        } => Ended::Throttled,
        FetchError::Transient { .. } => Ended::Failed,
        FetchError::Configuration { .. } | FetchError::Permanent { .. } => Ended::Refused,
    }
}
