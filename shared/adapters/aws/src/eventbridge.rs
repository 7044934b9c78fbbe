//! Downstream events on an Amazon EventBridge bus.

use async_trait::async_trait;
use aws_sdk_eventbridge::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use webhook_core::downstream::{DownstreamEvent, PublishError, Publisher};

pub struct EventBus {
    client: aws_sdk_eventbridge::Client,
    name: String,
}

impl EventBus {
    pub fn new(client: aws_sdk_eventbridge::Client, name: impl Into<String>) -> Self {
        EventBus {
            client,
            name: name.into(),
        }
    }
}

/// What the event itself is refused for (its detail, type, size) is refused for good; anything
/// else (throttling, an internal error, a bus or permission not there yet) may pass later.
fn classified(code: Option<&str>, text: String) -> PublishError {
    match code {
        Some("ValidationException" | "InvalidArgument" | "MalformedDetail") => {
            PublishError::Refused(text)
        }
        _ => PublishError::Unavailable(text),
    }
}

#[async_trait]
impl Publisher for EventBus {
    async fn publish(&self, event: &DownstreamEvent) -> Result<(), PublishError> {
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.name)
            .source(&event.source)
            .detail_type(&event.detail_type)
            .detail(event.detail.to_string())
            .build();
        let output = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| classified(e.code(), DisplayErrorContext(&e).to_string()))?;
        // PutEvents answers 200 with per-entry failures.
        match output.entries().first().and_then(|e| e.error_code()) {
            Some(code) => Err(classified(
                Some(code),
                format!(
                    "EventBridge refused the event: {code} {}",
                    output.entries()[0].error_message().unwrap_or_default()
                ),
            )),
            None => Ok(()),
        }
    }
}
