//! Downstream events on an Amazon EventBridge bus.

use async_trait::async_trait;
use aws_sdk_eventbridge::error::DisplayErrorContext;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use shared::downstream::{DownstreamEvent, Publisher};

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

#[async_trait]
impl Publisher for EventBus {
    async fn publish(&self, event: &DownstreamEvent) -> Result<(), String> {
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
            .map_err(|e| DisplayErrorContext(&e).to_string())?;
        // PutEvents answers 200 with per-entry failures.
        match output.entries().first().and_then(|e| e.error_code()) {
            Some(code) => Err(format!(
                "EventBridge refused the event: {code} {}",
                output.entries()[0].error_message().unwrap_or_default()
            )),
            None => Ok(()),
        }
    }
}
