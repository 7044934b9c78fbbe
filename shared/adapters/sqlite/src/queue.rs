//! The [`Queue`] and [`QueueConsumer`] ports on the embedded database: the messages table and
//! its dead letters.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection};
use webhook_core::clock::SharedClock;
use webhook_core::model::{
    InboundMessage, QueueMessage, MAX_DELAY_SECONDS, MAX_VISIBILITY_SECONDS,
};
use webhook_core::ports::{Queue, QueueConsumer, QueueError};

use crate::database::{change, Database};

/// The [`Queue`] and [`QueueConsumer`] ports on the embedded database, with SQS's redrive
/// semantics: a message received `max_receives` times moves to the dead-letter table on the
/// next receive instead of being delivered again.
#[derive(Clone)]
pub struct SqliteQueue {
    database: Database,
    max_receives: u32,
    clock: SharedClock,
}

impl SqliteQueue {
    pub fn new(database: Database, max_receives: u32, clock: SharedClock) -> Self {
        SqliteQueue {
            database,
            max_receives,
            clock,
        }
    }
}

/// Inserts a queue message; the caller's transaction decides when it becomes real.
pub(crate) fn insert_message(
    connection: &Connection,
    body: &str,
    now_ms: i64,
) -> rusqlite::Result<()> {
    insert_message_visible_at(connection, body, now_ms, now_ms)
}

fn insert_message_visible_at(
    connection: &Connection,
    body: &str,
    now_ms: i64,
    visible_at_ms: i64,
) -> rusqlite::Result<()> {
    change(
        connection,
        "INSERT INTO messages (body, sent_at, visible_at) VALUES (?1, ?2, ?3)",
        params![body, now_ms, visible_at_ms],
    )
    .map(drop)
}

pub(crate) fn encode(message: &QueueMessage) -> Result<String, QueueError> {
    serde_json::to_string(message).map_err(|e| QueueError(e.to_string()))
}

#[async_trait]
impl Queue for SqliteQueue {
    async fn send(&self, message: &QueueMessage) -> Result<(), QueueError> {
        let body = encode(message)?;
        let now = self.clock.now_ms();
        self.database
            .queue_op(move |connection| insert_message(connection, &body, now))
            .await
    }

    async fn send_later(
        &self,
        message: &QueueMessage,
        delay_seconds: u32,
    ) -> Result<(), QueueError> {
        let body = encode(message)?;
        let now = self.clock.now_ms();
        let visible_at = now + i64::from(delay_seconds.min(MAX_DELAY_SECONDS)) * 1000;
        self.database
            .queue_op(move |connection| {
                insert_message_visible_at(connection, &body, now, visible_at)
            })
            .await
    }

    async fn retry_after(&self, receipt_handle: &str, seconds: u32) -> Result<(), QueueError> {
        let Some(id) = message_id(receipt_handle) else {
            return Ok(());
        };
        let receipt = receipt_handle.to_string();
        let visible_at =
            self.clock.now_ms() + i64::from(seconds.min(MAX_VISIBILITY_SECONDS)) * 1000;
        self.database
            .queue_op(move |connection| {
                change(
                    connection,
                    "UPDATE messages SET visible_at = ?1 WHERE id = ?2 AND receipt = ?3",
                    params![visible_at, id, receipt],
                )
                .map(drop)
            })
            .await
    }
}

#[async_trait]
impl QueueConsumer for SqliteQueue {
    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<InboundMessage>, QueueError> {
        let now = self.clock.now_ms();
        let max_receives = self.max_receives;
        self.database
            .queue_op(move |connection| {
                let due: Vec<(i64, String, u32, i64)> = {
                    let mut statement = connection.prepare_cached(
                        "SELECT id, body, receive_count, sent_at FROM messages
                         WHERE visible_at <= ?1 ORDER BY visible_at, id LIMIT ?2",
                    )?;
                    let rows = statement.query_map(params![now, max as i64], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                    })?;
                    rows.collect::<Result<_, _>>()?
                };
                let mut received = Vec::new();
                for (id, body, count, sent_at) in due {
                    if count >= max_receives {
                        change(
                            connection,
                            "INSERT INTO dead_letters (id, body, sent_at, receive_count, moved_at)
                             VALUES (?1, ?2, ?3, ?4, ?5)",
                            params![id, body, sent_at, count, now],
                        )?;
                        change(
                            connection,
                            "DELETE FROM messages WHERE id = ?1",
                            params![id],
                        )?;
                        continue;
                    }
                    let receipt = format!("{id}:{}:{now}", count + 1);
                    change(
                        connection,
                        "UPDATE messages SET receive_count = ?1, visible_at = ?2, receipt = ?3
                         WHERE id = ?4",
                        params![count + 1, now + visibility.as_millis() as i64, receipt, id],
                    )?;
                    received.push(InboundMessage {
                        id: id.to_string(),
                        body,
                        receive_count: count + 1,
                        receipt_handle: Some(receipt),
                    });
                }
                Ok(received)
            })
            .await
    }

    /// One operation for the whole batch.
    async fn delete_all(&self, receipt_handles: &[String]) -> Result<(), QueueError> {
        let receipts = receipt_handles.to_vec();
        self.database
            .queue_op(move |connection| {
                for receipt in &receipts {
                    if let Some(id) = message_id(receipt) {
                        change(
                            connection,
                            "DELETE FROM messages WHERE id = ?1 AND receipt = ?2",
                            params![id, receipt],
                        )?;
                    }
                }
                Ok(())
            })
            .await
    }
}

/// The message id a receipt handle (`id:receive count:received at`) belongs to.
fn message_id(receipt_handle: &str) -> Option<i64> {
    receipt_handle.split(':').next()?.parse().ok()
}
