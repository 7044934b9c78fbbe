//! The store and queue ports on one SQLite file (WAL mode), for the local dev server: the same
//! semantics as DynamoDB (conditional put, leases) and SQS with a redrive policy (visibility
//! timeout, receive count, dead-letter table). Each operation runs in one short transaction
//! under a mutex, which serialises conditional writes per item as DynamoDB does.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::ingest::now_ms;
use crate::queue::{InboundMessage, Queue, QueueConsumer, QueueError, QueueMessage};
use crate::store::{
    Claim, Existing, Outcome, Pending, PutOutcome, Record, Status, Store, StoreError,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (
    pk TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    tenant TEXT NOT NULL,
    event_type TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT,
    received_at INTEGER NOT NULL,
    status TEXT NOT NULL,
    lease_until INTEGER,
    expires_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    detail TEXT,
    processed_at INTEGER,
    last_error TEXT,
    erased_at INTEGER
);
CREATE INDEX IF NOT EXISTS records_by_subject ON records(subject);
CREATE INDEX IF NOT EXISTS records_by_received ON records(received_at);
CREATE INDEX IF NOT EXISTS records_pending ON records(lease_until) WHERE status = 'RECEIVED';
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    body TEXT NOT NULL,
    sent_at INTEGER NOT NULL,
    visible_at INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt TEXT
);
CREATE INDEX IF NOT EXISTS messages_by_visible ON messages(visible_at);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    body TEXT NOT NULL,
    sent_at INTEGER NOT NULL,
    receive_count INTEGER NOT NULL,
    moved_at INTEGER NOT NULL
);
";

/// One SQLite database holding the records, the queue and its dead letters.
#[derive(Clone)]
pub struct Database {
    connection: Arc<Mutex<Connection>>,
}

impl Database {
    pub fn open(path: impl AsRef<Path>) -> Result<Database, StoreError> {
        let connection = Connection::open(path).map_err(sql)?;
        // WAL: readers never block the writer; NORMAL sync survives a crash of this process
        // (not a power cut), which is what a development server needs.
        connection
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;")
            .map_err(sql)?;
        connection.execute_batch(SCHEMA).map_err(sql)?;
        Ok(Database {
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records, newest first (for the dev server's `/_dev/events`).
    pub fn recent_records(&self, limit: usize) -> Result<Vec<Record>, StoreError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare(&format!(
                "SELECT {RECORD_COLUMNS} FROM records ORDER BY received_at DESC, pk LIMIT ?1"
            ))
            .map_err(sql)?;
        let rows = statement
            .query_map(params![limit as i64], record_from_row)
            .map_err(sql)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql)
    }

    /// Messages moved to the dead-letter table, oldest first.
    pub fn dead_letters(&self) -> Result<Vec<QueueMessage>, QueueError> {
        let connection = self.lock();
        let mut statement = connection
            .prepare("SELECT body FROM dead_letters ORDER BY moved_at, id")
            .map_err(queue_sql)?;
        let bodies = statement
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(queue_sql)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(queue_sql)?;
        Ok(bodies
            .iter()
            .filter_map(|body| serde_json::from_str(body).ok())
            .collect())
    }
}

fn sql(error: rusqlite::Error) -> StoreError {
    StoreError(format!("sqlite: {error}"))
}

fn queue_sql(error: rusqlite::Error) -> QueueError {
    QueueError(format!("sqlite: {error}"))
}

const RECORD_COLUMNS: &str =
    "pk, provider, tenant, event_type, entity_id, body, received_at, status, \
    lease_until, expires_at, attempts, detail, processed_at, last_error, erased_at";

fn record_from_row(row: &Row<'_>) -> rusqlite::Result<Record> {
    let status: String = row.get(7)?;
    Ok(Record {
        key: row.get(0)?,
        provider: row.get(1)?,
        tenant: row.get(2)?,
        event_type: row.get(3)?,
        entity_id: row.get(4)?,
        body: row.get::<_, Option<String>>(5)?.unwrap_or_default(),
        received_at_ms: row.get(6)?,
        status: Status::parse(&status).unwrap_or_default(),
        lease_until_ms: row.get::<_, Option<i64>>(8)?.unwrap_or_default(),
        expires_at: row.get(9)?,
        attempts: row.get(10)?,
        detail: row.get(11)?,
        processed_at_ms: row.get(12)?,
        last_error: row.get(13)?,
        erased_at_ms: row.get(14)?,
    })
}

fn existing(connection: &Connection, key: &str) -> rusqlite::Result<Option<(Status, i64)>> {
    connection
        .query_row(
            "SELECT status, lease_until FROM records WHERE pk = ?1",
            params![key],
            |row| {
                let status: String = row.get(0)?;
                Ok((
                    Status::parse(&status).unwrap_or_default(),
                    row.get::<_, Option<i64>>(1)?.unwrap_or_default(),
                ))
            },
        )
        .optional()
}

/// The [`Store`] port on the embedded database.
#[derive(Clone)]
pub struct SqliteStore {
    database: Database,
}

impl SqliteStore {
    pub fn new(database: Database) -> Self {
        SqliteStore { database }
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn put_new(&self, record: &Record) -> Result<PutOutcome, StoreError> {
        let connection = self.database.lock();
        let inserted = connection
            .execute(
                "INSERT INTO records (pk, provider, tenant, event_type, entity_id, subject, body,
                    received_at, status, lease_until, expires_at, attempts)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT(pk) DO NOTHING",
                params![
                    record.key,
                    record.provider,
                    record.tenant,
                    record.event_type,
                    record.entity_id,
                    record.subject(),
                    record.body,
                    record.received_at_ms,
                    record.status.as_str(),
                    record.lease_until_ms,
                    record.expires_at,
                    record.attempts,
                ],
            )
            .map_err(sql)?;
        if inserted == 1 {
            return Ok(PutOutcome::Created);
        }
        let (status, lease_until_ms) = existing(&connection, &record.key)
            .map_err(sql)?
            .ok_or_else(|| StoreError("record vanished during a conditional put".into()))?;
        Ok(PutOutcome::Exists(Existing {
            status,
            lease_until_ms,
        }))
    }

    async fn take_over(
        &self,
        key: &str,
        seen_lease_until_ms: i64,
        new_lease_until_ms: i64,
    ) -> Result<bool, StoreError> {
        let changed = self
            .database
            .lock()
            .execute(
                "UPDATE records SET lease_until = ?1
                 WHERE pk = ?2 AND status = 'RECEIVED' AND lease_until = ?3",
                params![new_lease_until_ms, key, seen_lease_until_ms],
            )
            .map_err(sql)?;
        Ok(changed == 1)
    }

    async fn release(&self, key: &str, now_ms: i64) -> Result<(), StoreError> {
        self.database
            .lock()
            .execute(
                "UPDATE records SET lease_until = ?1 WHERE pk = ?2 AND status = 'RECEIVED'",
                params![now_ms, key],
            )
            .map_err(sql)?;
        Ok(())
    }

    async fn mark_queued(&self, key: &str) -> Result<(), StoreError> {
        self.database
            .lock()
            .execute(
                "UPDATE records SET status = 'QUEUED' WHERE pk = ?1 AND status = 'RECEIVED'",
                params![key],
            )
            .map_err(sql)?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Record>, StoreError> {
        self.database
            .lock()
            .query_row(
                &format!("SELECT {RECORD_COLUMNS} FROM records WHERE pk = ?1"),
                params![key],
                record_from_row,
            )
            .optional()
            .map_err(sql)
    }

    async fn pending(&self, now_ms: i64, limit: usize) -> Result<Vec<Pending>, StoreError> {
        let connection = self.database.lock();
        let mut statement = connection
            .prepare(
                "SELECT pk, provider, tenant, event_type, entity_id, lease_until FROM records
                 WHERE status = 'RECEIVED' AND lease_until < ?1 ORDER BY lease_until LIMIT ?2",
            )
            .map_err(sql)?;
        let rows = statement
            .query_map(params![now_ms, limit as i64], |row| {
                Ok(Pending {
                    key: row.get(0)?,
                    provider: row.get(1)?,
                    tenant: row.get(2)?,
                    event_type: row.get(3)?,
                    entity_id: row.get(4)?,
                    lease_until_ms: row.get(5)?,
                })
            })
            .map_err(sql)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(sql)
    }

    async fn claim(
        &self,
        key: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<Claim, StoreError> {
        let connection = self.database.lock();
        let changed = connection
            .execute(
                "UPDATE records SET status = 'PROCESSING', lease_until = ?1, attempts = attempts + 1
                 WHERE pk = ?2 AND (status IN ('RECEIVED', 'QUEUED')
                    OR (status = 'PROCESSING' AND lease_until < ?3))",
                params![lease_until_ms, key, now_ms],
            )
            .map_err(sql)?;
        if changed == 1 {
            let record = connection
                .query_row(
                    &format!("SELECT {RECORD_COLUMNS} FROM records WHERE pk = ?1"),
                    params![key],
                    record_from_row,
                )
                .map_err(sql)?;
            return Ok(Claim::Claimed(Box::new(record)));
        }
        Ok(match existing(&connection, key).map_err(sql)? {
            None => Claim::Missing,
            Some((Status::Processing, _)) => Claim::Busy,
            Some((status, _)) => Claim::Finished(status),
        })
    }

    async fn finish(
        &self,
        key: &str,
        lease_until_ms: i64,
        outcome: &Outcome,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let connection = self.database.lock();
        let owned = "WHERE pk = ?1 AND status = 'PROCESSING' AND lease_until = ?2";
        let changed = match outcome {
            Outcome::Processed { detail } => connection.execute(
                &format!(
                    "UPDATE records SET status = 'PROCESSED', processed_at = ?3,
                        detail = COALESCE(?4, detail), lease_until = NULL, last_error = NULL {owned}"
                ),
                params![key, lease_until_ms, now_ms, detail],
            ),
            Outcome::Failed { reason } => connection.execute(
                &format!("UPDATE records SET status = 'FAILED', last_error = ?3, lease_until = NULL {owned}"),
                params![key, lease_until_ms, reason],
            ),
            Outcome::Retry { reason } => connection.execute(
                &format!("UPDATE records SET status = 'QUEUED', last_error = ?3, lease_until = NULL {owned}"),
                params![key, lease_until_ms, reason],
            ),
        }
        .map_err(sql)?;
        Ok(changed == 1)
    }

    async fn erase_subject(&self, subject: &str, now_ms: i64) -> Result<usize, StoreError> {
        self.database
            .lock()
            .execute(
                "UPDATE records SET body = NULL, detail = NULL, erased_at = ?1 WHERE subject = ?2",
                params![now_ms, subject],
            )
            .map_err(sql)
    }
}

/// The [`Queue`] and [`QueueConsumer`] ports on the embedded database, with SQS's redrive
/// semantics: a message received `max_receives` times moves to the dead-letter table on the
/// next receive instead of being delivered again.
#[derive(Clone)]
pub struct SqliteQueue {
    database: Database,
    max_receives: u32,
}

impl SqliteQueue {
    pub fn new(database: Database, max_receives: u32) -> Self {
        SqliteQueue {
            database,
            max_receives,
        }
    }
}

#[async_trait]
impl Queue for SqliteQueue {
    async fn send(&self, message: &QueueMessage) -> Result<(), QueueError> {
        let body = serde_json::to_string(message).map_err(|e| QueueError(e.to_string()))?;
        let now = now_ms();
        self.database
            .lock()
            .execute(
                "INSERT INTO messages (body, sent_at, visible_at) VALUES (?1, ?2, ?2)",
                params![body, now],
            )
            .map_err(queue_sql)?;
        Ok(())
    }

    async fn retry_after(&self, receipt_handle: &str, seconds: u32) -> Result<(), QueueError> {
        self.database
            .lock()
            .execute(
                "UPDATE messages SET visible_at = ?1 WHERE receipt = ?2",
                params![
                    now_ms() + i64::from(seconds.min(43_200)) * 1000,
                    receipt_handle
                ],
            )
            .map_err(queue_sql)?;
        Ok(())
    }
}

#[async_trait]
impl QueueConsumer for SqliteQueue {
    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<InboundMessage>, QueueError> {
        let now = now_ms();
        let mut connection = self.database.lock();
        let transaction = connection.transaction().map_err(queue_sql)?;
        let due: Vec<(i64, String, u32, i64)> = {
            let mut statement = transaction
                .prepare(
                    "SELECT id, body, receive_count, sent_at FROM messages
                     WHERE visible_at <= ?1 ORDER BY visible_at, id LIMIT ?2",
                )
                .map_err(queue_sql)?;
            let rows = statement
                .query_map(params![now, max as i64], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })
                .map_err(queue_sql)?;
            rows.collect::<Result<_, _>>().map_err(queue_sql)?
        };
        let mut received = Vec::new();
        for (id, body, count, sent_at) in due {
            if count >= self.max_receives {
                transaction
                    .execute(
                        "INSERT INTO dead_letters (id, body, sent_at, receive_count, moved_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![id, body, sent_at, count, now],
                    )
                    .map_err(queue_sql)?;
                transaction
                    .execute("DELETE FROM messages WHERE id = ?1", params![id])
                    .map_err(queue_sql)?;
                continue;
            }
            let receipt = format!("{id}:{}:{now}", count + 1);
            transaction
                .execute(
                    "UPDATE messages SET receive_count = ?1, visible_at = ?2, receipt = ?3 WHERE id = ?4",
                    params![count + 1, now + visibility.as_millis() as i64, receipt, id],
                )
                .map_err(queue_sql)?;
            received.push(InboundMessage {
                id: id.to_string(),
                body,
                receive_count: count + 1,
                receipt_handle: Some(receipt),
            });
        }
        transaction.commit().map_err(queue_sql)?;
        Ok(received)
    }

    async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError> {
        self.database
            .lock()
            .execute(
                "DELETE FROM messages WHERE receipt = ?1",
                params![receipt_handle],
            )
            .map_err(queue_sql)?;
        Ok(())
    }
}
