//! The work queue port on Amazon SQS.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use webhook_core::model::{
    InboundMessage, QueueMessage, MAX_DELAY_SECONDS, MAX_VISIBILITY_SECONDS,
};
use webhook_core::ports::{Queue, QueueConsumer, QueueError};

pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        SqsQueue {
            client,
            url: url.into(),
        }
    }

    /// Opens the TLS connection during cold start rather than on the first webhook.
    pub async fn warm_up(&self) {
        let _ = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .send()
            .await;
    }
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send(&self, message: &QueueMessage) -> Result<(), QueueError> {
        self.send_later(message, 0).await
    }

    async fn send_later(
        &self,
        message: &QueueMessage,
        delay_seconds: u32,
    ) -> Result<(), QueueError> {
        let body = serde_json::to_string(message).map_err(|e| QueueError(e.to_string()))?;
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body);
        if delay_seconds > 0 {
            // SQS delays a message by at most 15 minutes.
            request = request.delay_seconds(delay_seconds.min(MAX_DELAY_SECONDS) as i32);
        }
        // X-Ray links the processor's receive to the webhook's trace through this attribute.
        let trace = message
            .trace_id
            .as_deref()
            .filter(|t| webhook_core::trace::is_trace_id(t));
        if let Some(Ok(header)) = trace.map(|trace| {
            aws_sdk_sqs::types::MessageSystemAttributeValue::builder()
                .data_type("String")
                .string_value(webhook_core::trace::header(
                    trace,
                    message.trace_parent.as_deref(),
                ))
                .build()
        }) {
            request = request.message_system_attributes(
                aws_sdk_sqs::types::MessageSystemAttributeNameForSends::AwsTraceHeader,
                header,
            );
        }
        request
            .send()
            .await
            .map_err(|e| QueueError(DisplayErrorContext(&e).to_string()))?;
        Ok(())
    }

    async fn retry_after(&self, receipt_handle: &str, seconds: u32) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            // SQS allows at most 12 hours.
            .visibility_timeout(seconds.min(MAX_VISIBILITY_SECONDS) as i32)
            .send()
            .await
            .map_err(|e| QueueError(DisplayErrorContext(&e).to_string()))?;
        Ok(())
    }
}

#[async_trait]
impl QueueConsumer for SqsQueue {
    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<InboundMessage>, QueueError> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .visibility_timeout(visibility.as_secs().max(1) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| QueueError(DisplayErrorContext(&e).to_string()))?;
        Ok(output
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|message| InboundMessage {
                receive_count: message
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1),
                id: message.message_id.unwrap_or_default(),
                body: message.body.unwrap_or_default(),
                receipt_handle: message.receipt_handle,
            })
            .collect())
    }

    async fn delete_all(&self, receipt_handles: &[String]) -> Result<(), QueueError> {
        for receipt_handle in receipt_handles {
            self.client
                .delete_message()
                .queue_url(&self.url)
                .receipt_handle(receipt_handle)
                .send()
                .await
                .map_err(|e| QueueError(DisplayErrorContext(&e).to_string()))?;
        }
        Ok(())
    }
}
