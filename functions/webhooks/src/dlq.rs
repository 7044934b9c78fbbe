//! The dead-letter queue where the events are — the stack's SQS queue (read without taking
//! what waits there; moved back to the work queue by a message move task, or receive, send and
//! delete where there is none) or the dev server's table — and how its letters are printed.

use std::fmt::Write as _;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{json, Value};
use webhook_core::model::{QueueMessage, Record};

use crate::place::{aws_hint, AwsPlace, Place, Target, DEAD_LETTER_OUTPUT};
use crate::print::{clip, pretty, progress_bar, table};
use crate::{Failure, Result};

/// A dead-lettered message and the record it names.
pub(crate) struct DeadLetter {
    /// The SQS message id (none in the dev server's table).
    pub(crate) id: Option<String>,
    pub(crate) body: String,
    pub(crate) message: Option<QueueMessage>,
    pub(crate) record: Option<Record>,
}

pub(crate) struct Moved {
    pub(crate) count: u64,
    pub(crate) method: &'static str,
    pub(crate) how: String,
}

async fn queue_attribute(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    name: QueueAttributeName,
) -> Result<Option<String>> {
    let answer = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(name.clone())
        .send()
        .await
        .map_err(|e| Failure::Operation(aws_hint(e)))?;
    Ok(answer.attributes().and_then(|a| a.get(&name)).cloned())
}

fn dead_letter_url(aws: &AwsPlace) -> Result<&str> {
    aws.dead_letter_url.as_deref().ok_or_else(|| {
        Failure::Usage(match &aws.stack {
            Some(stack) => format!(
                "stack {} has no output {DEAD_LETTER_OUTPUT}: deploy the current template.yaml, \
                 or pass --table/--queue/--dlq",
                stack.name
            ),
            None => "the dead-letter queue is not known: pass --dlq URL".into(),
        })
    })
}

/// Reads up to `limit` dead-lettered messages without taking them: each is made visible again
/// right after (a redrive can follow at once).
pub(crate) async fn peek_dead_letters(
    aws: &AwsPlace,
    limit: usize,
) -> Result<Vec<(Option<String>, String)>> {
    let url = dead_letter_url(aws)?;
    let sqs = aws_sdk_sqs::Client::new(&aws.config);
    let mut seen = Vec::new();
    let mut handles = Vec::new();
    while seen.len() < limit {
        let received = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages((limit - seen.len()).clamp(1, 10) as i32)
            .visibility_timeout(30)
            .send()
            .await
            .map_err(|e| Failure::Operation(aws_hint(e)))?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for message in messages {
            handles.extend(message.receipt_handle.clone());
            seen.push((message.message_id, message.body.unwrap_or_default()));
        }
    }
    for handle in handles {
        let _ = sqs
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(handle)
            .visibility_timeout(0)
            .send()
            .await;
    }
    Ok(seen)
}

/// Moves every message of the dead-letter queue back to the work queue: an SQS message move
/// task, followed to its end; where the endpoint has no such task (moto), each message is
/// received, sent to the work queue with its body and deleted.
pub(crate) async fn redrive_sqs(aws: &AwsPlace) -> Result<Moved> {
    use aws_sdk_sqs::error::ProvideErrorMetadata;
    let dead_letter_url = dead_letter_url(aws)?;
    let sqs = aws_sdk_sqs::Client::new(&aws.config);
    let source = queue_attribute(&sqs, dead_letter_url, QueueAttributeName::QueueArn).await?;
    let destination = queue_attribute(&sqs, &aws.queue_url, QueueAttributeName::QueueArn).await?;
    let (Some(source), Some(destination)) = (source, destination) else {
        return Err(Failure::Operation(
            "the queues did not say their ARNs: check --queue and --dlq".into(),
        ));
    };
    let started = sqs
        .start_message_move_task()
        .source_arn(&source)
        .destination_arn(&destination)
        .customize()
        .config_override(
            aws_sdk_sqs::config::Config::builder()
                .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled()),
        )
        .send()
        .await;
    match started {
        Ok(task) => follow_move_task(&sqs, &source, task.task_handle().unwrap_or_default()).await,
        Err(error) => {
            let code = error
                .as_service_error()
                .and_then(|e| e.code())
                .map(str::to_string);
            let unsupported = match (&error, code.as_deref()) {
                (_, Some("UnsupportedOperation" | "InvalidAction" | "NotImplemented")) => true,
                // An answer that is no SQS error at all: the endpoint does not know the call.
                (aws_sdk_sqs::error::SdkError::ServiceError(_), None) => true,
                _ => false,
            };
            if !unsupported {
                return Err(Failure::Operation(aws_hint(error)));
            }
            copy_messages(&sqs, dead_letter_url, &aws.queue_url).await
        }
    }
}

async fn follow_move_task(sqs: &aws_sdk_sqs::Client, source: &str, handle: &str) -> Result<Moved> {
    let bar = progress_bar(0, "moving (message move task)");
    loop {
        let tasks = sqs
            .list_message_move_tasks()
            .source_arn(source)
            .max_results(10)
            .send()
            .await
            .map_err(|e| Failure::Operation(aws_hint(e)))?;
        let task = tasks
            .results()
            .iter()
            .find(|t| {
                handle.is_empty() || t.task_handle() == Some(handle) || t.task_handle().is_none()
            })
            .or_else(|| tasks.results().first());
        let Some(task) = task else {
            bar.finish_and_clear();
            return Err(Failure::Operation(
                "the message move task is not listed: see the SQS console's dead-letter queue redrive".into(),
            ));
        };
        let moved = task.approximate_number_of_messages_moved().max(0) as u64;
        if let Some(total) = task.approximate_number_of_messages_to_move() {
            bar.set_length(total.max(0) as u64);
        }
        bar.set_position(moved);
        match task.status().unwrap_or("RUNNING") {
            "RUNNING" | "CANCELLING" => tokio::time::sleep(Duration::from_secs(2)).await,
            "COMPLETED" => {
                bar.finish_and_clear();
                return Ok(Moved {
                    count: moved,
                    method: "move-task",
                    how: "an SQS message move task".into(),
                });
            }
            other => {
                bar.finish_and_clear();
                return Err(Failure::Operation(format!(
                    "the message move task ended {other} after {moved} message(s): {}; run \
                     the same `dlq redrive` again once that is fixed",
                    task.failure_reason().unwrap_or("no reason given")
                )));
            }
        }
    }
}

/// Receive, send (the body as it was), delete: at least once, so a message may come back
/// twice if a delete fails — the processor skips what is already done.
async fn copy_messages(sqs: &aws_sdk_sqs::Client, from: &str, to: &str) -> Result<Moved> {
    let waiting = queue_attribute(sqs, from, QueueAttributeName::ApproximateNumberOfMessages)
        .await?
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    let bar = progress_bar(waiting, "moving (receive, send, delete)");
    let mut moved = 0;
    loop {
        let received = sqs
            .receive_message()
            .queue_url(from)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .send()
            .await
            .map_err(|e| Failure::Operation(aws_hint(e)))?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for message in messages {
            sqs.send_message()
                .queue_url(to)
                .message_body(message.body.unwrap_or_default())
                .send()
                .await
                .map_err(|e| Failure::Operation(aws_hint(e)))?;
            if let Some(handle) = message.receipt_handle {
                sqs.delete_message()
                    .queue_url(from)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .map_err(|e| Failure::Operation(aws_hint(e)))?;
            }
            moved += 1;
            if moved > bar.length().unwrap_or(0) {
                bar.set_length(moved);
            }
            bar.set_position(moved);
        }
    }
    bar.finish_and_clear();
    Ok(Moved {
        count: moved,
        method: "copy",
        how: "received, sent with the same body, deleted: the endpoint has no message move task"
            .into(),
    })
}

/// The dead-letter queue where the events are: the dev server's table, or the stack's queue.
impl Target {
    pub(crate) async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        let messages: Vec<(Option<String>, String)> = match &self.place {
            Place::Local { database, .. } => database
                .dead_letters()
                .await
                .map_err(|e| Failure::Operation(e.to_string()))?
                .into_iter()
                .take(limit)
                .map(|message| (None, serde_json::to_string(&message).unwrap_or_default()))
                .collect(),
            Place::Aws(aws) => peek_dead_letters(aws, limit).await?,
        };
        let mut letters = Vec::new();
        for (id, body) in messages {
            let message: Option<QueueMessage> = serde_json::from_str(&body).ok();
            let record = match &message {
                Some(message) => self.operations.show(&message.key).await.ok(),
                None => None,
            };
            letters.push(DeadLetter {
                id,
                body,
                message,
                record,
            });
        }
        Ok(letters)
    }

    pub(crate) async fn redrive(&self) -> Result<Moved> {
        match &self.place {
            Place::Local { database, .. } => {
                let count = database
                    .redrive_dead_letters(self.now_ms())
                    .await
                    .map_err(|e| Failure::Operation(e.to_string()))?;
                Ok(Moved {
                    count: count as u64,
                    method: "database",
                    how: "one transaction in the dev server's database".into(),
                })
            }
            Place::Aws(aws) => redrive_sqs(aws).await,
        }
    }
}

/// The dead letters; `redrive` is the command that moves them back.
pub(crate) fn print_dead_letters(
    out: &mut String,
    json: bool,
    letters: &[DeadLetter],
    redrive: &str,
) {
    if json {
        let messages: Vec<Value> = letters
            .iter()
            .map(|letter| {
                json!({
                    "message_id": letter.id,
                    "key": letter.message.as_ref().map(|m| &m.key),
                    "provider": letter.message.as_ref().map(|m| &m.provider),
                    "tenant": letter.message.as_ref().map(|m| &m.tenant),
                    "type": letter.message.as_ref().map(|m| &m.event_type),
                    "body": if letter.message.is_none() { Some(&letter.body) } else { None },
                    "status": letter.record.as_ref().map(|r| r.status.as_str()),
                    "last_error": letter.record.as_ref().and_then(|r| r.last_error.clone()),
                })
            })
            .collect();
        writeln!(
            out,
            "{}",
            pretty(&json!({ "count": messages.len(), "messages": messages }))
        )
        .ok();
        return;
    }
    if letters.is_empty() {
        writeln!(out, "the dead-letter queue is empty").ok();
        return;
    }
    let rows = letters
        .iter()
        .map(|letter| {
            let (key, provider, kind) = match &letter.message {
                Some(m) => (m.key.clone(), m.provider.clone(), m.event_type.clone()),
                None => (
                    clip(&letter.body, 40),
                    "?".into(),
                    "(not a queue message)".into(),
                ),
            };
            let (status, error) = match &letter.record {
                Some(r) => (
                    r.status.as_str().to_string(),
                    clip(r.last_error.as_deref().unwrap_or(""), 60),
                ),
                None => ("(no record)".into(), String::new()),
            };
            vec![provider, kind, status, key, error]
        })
        .collect();
    out.push_str(&table(
        &["PROVIDER", "TYPE", "RECORD", "KEY", "LAST ERROR"],
        rows,
        &[],
    ));
    writeln!(
        out,
        "{} message(s); fix the cause (the last error says it), then `{redrive}`",
        letters.len()
    )
    .ok();
}
