//! The store and queue ports on one SQLite file (WAL mode), for the local dev server: the same
//! semantics as DynamoDB (conditional put, leases) and SQS with a redrive policy (visibility
//! timeout, receive count, dead-letter table).
//!
//! One thread owns the connection and runs every operation, so conditional writes are
//! serialised per item as DynamoDB does and the async runtime never waits on SQLite. Operations
//! that arrive together share one transaction (group commit), each inside its own savepoint; an
//! operation is answered only once its transaction has committed.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};
use shared::clock::SharedClock;
use shared::ports::{
    Claim, Existing, InboundMessage, Outbox, Outcome, Pending, Ports, PutOutcome, Queue,
    QueueConsumer, QueueError, QueueMessage, Record, Status, Store, StoreError,
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

/// Answers an operation once its transaction has committed (`Some(reason)` if it did not).
type Reply = Box<dyn FnOnce(Option<&str>) + Send>;
/// An operation for the database thread.
type Job = Box<dyn FnOnce(&Connection) -> Reply + Send>;

/// Operations committed together at most; bounds how long the first one waits for the rest.
const MAX_JOBS_PER_TRANSACTION: usize = 256;

/// One SQLite database holding the records, the queue and its dead letters.
#[derive(Clone)]
pub struct Database {
    jobs: mpsc::Sender<Job>,
    /// Held by every handle; the checkpoint thread stops once the last one is gone.
    _open: Arc<()>,
}

impl Database {
    pub fn open(path: impl AsRef<Path>) -> Result<Database, StoreError> {
        let path = path.as_ref();
        let connection = Connection::open(path).map_err(sql)?;
        // WAL: readers never block the writer. No fsync (synchronous OFF, also for the
        // checkpoints): every commit is in the operating system's hands before it is answered,
        // so the data survives a crash or kill of this process, not a power cut or OS crash.
        // That is what a development server needs; an fsync per checkpoint stalls the writes
        // behind it on a busy disk.
        connection
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF; PRAGMA busy_timeout = 5000; PRAGMA journal_size_limit = 67108864;")
            .map_err(sql)?;
        connection.execute_batch(SCHEMA).map_err(sql)?;
        connection.set_prepared_statement_cache_capacity(64);
        let open = Arc::new(());
        let commits = Arc::new(AtomicU64::new(0));
        if !is_in_memory(path) {
            // Checkpoints copy the WAL back into the database file and sync it. Done by a thread
            // of their own, in a pause between writes, rather than by whichever commit crosses
            // a size threshold, they do not hold up the webhooks waiting for the database.
            connection
                .execute_batch("PRAGMA wal_autocheckpoint = 0;")
                .map_err(sql)?;
            let checkpoints = Connection::open(path).map_err(sql)?;
            checkpoints
                .execute_batch("PRAGMA synchronous = OFF;")
                .map_err(sql)?;
            let (open, commits) = (Arc::downgrade(&open), Arc::clone(&commits));
            std::thread::Builder::new()
                .name("sqlite-checkpoint".into())
                .spawn(move || checkpoint_while_open(checkpoints, open, &commits))
                .map_err(|e| StoreError(format!("cannot start the checkpoint thread: {e}")))?;
        }
        let (jobs, inbox) = mpsc::channel();
        std::thread::Builder::new()
            .name("sqlite".into())
            .spawn(move || serve(connection, inbox, &commits))
            .map_err(|e| StoreError(format!("cannot start the database thread: {e}")))?;
        Ok(Database { jobs, _open: open })
    }

    /// Runs `work` on the database thread, inside a savepoint of the current group
    /// transaction, and answers once that transaction has committed.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, String> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |connection| {
            let result = in_savepoint(connection, work);
            Box::new(move |commit_failure: Option<&str>| {
                let result = match commit_failure {
                    Some(reason) => Err(format!("sqlite: commit failed: {reason}")),
                    None => result.map_err(|e| format!("sqlite: {e}")),
                };
                let _ = answer.send(result);
            })
        });
        const STOPPED: &str = "sqlite: the database thread has stopped";
        self.jobs.send(job).map_err(|_| STOPPED.to_string())?;
        answered.await.map_err(|_| STOPPED.to_string())?
    }

    async fn store_op<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.run(work).await.map_err(StoreError)
    }

    async fn queue_op<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, QueueError> {
        self.run(work).await.map_err(QueueError)
    }

    /// Records, newest first (for the dev server's `/_dev/events`).
    pub async fn recent_records(&self, limit: usize) -> Result<Vec<Record>, StoreError> {
        self.store_op(move |connection| {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM records ORDER BY received_at DESC, pk LIMIT ?1"
            ))?;
            let rows = statement.query_map(params![limit as i64], record_from_row)?;
            rows.collect()
        })
        .await
    }

    /// Messages moved to the dead-letter table, oldest first.
    pub async fn dead_letters(&self) -> Result<Vec<QueueMessage>, QueueError> {
        let bodies = self
            .queue_op(|connection| {
                let mut statement = connection
                    .prepare_cached("SELECT body FROM dead_letters ORDER BY moved_at, id")?;
                let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
                rows.collect::<Result<Vec<_>, _>>()
            })
            .await?;
        Ok(bodies
            .iter()
            .filter_map(|body| serde_json::from_str(body).ok())
            .collect())
    }
}

/// The database thread: takes the operations waiting, runs them in one transaction, commits,
/// answers them; until every [`Database`] handle is gone.
fn serve(connection: Connection, inbox: mpsc::Receiver<Job>, commits: &AtomicU64) {
    let mut replies: Vec<Reply> = Vec::new();
    while let Ok(first) = inbox.recv() {
        // Should BEGIN fail, each operation's savepoint is a transaction of its own.
        let grouped = connection.execute_batch("BEGIN IMMEDIATE").is_ok();
        replies.push(first(&connection));
        while replies.len() < MAX_JOBS_PER_TRANSACTION {
            match inbox.try_recv() {
                Ok(job) => replies.push(job(&connection)),
                Err(_) => break,
            }
        }
        let failure = if grouped {
            connection.execute_batch("COMMIT").err().map(|error| {
                let _ = connection.execute_batch("ROLLBACK");
                error.to_string()
            })
        } else {
            None
        };
        commits.fetch_add(1, Ordering::Relaxed);
        for reply in replies.drain(..) {
            reply(failure.as_deref());
        }
    }
}

fn is_in_memory(path: &Path) -> bool {
    path.as_os_str().is_empty() || path == Path::new(":memory:")
}

/// How often the checkpoint thread looks; a look that finds no commit since the one before is
/// a pause.
const CHECKPOINT_LOOK_EVERY: Duration = Duration::from_millis(100);
/// Under writes without a pause, a checkpoint still runs this often, bounding the WAL.
const CHECKPOINT_AT_LEAST_EVERY: Duration = Duration::from_secs(5);

/// Passive checkpoints (they neither wait for nor block the writer) in pauses between writes,
/// until the database is closed.
fn checkpoint_while_open(connection: Connection, open: Weak<()>, commits: &AtomicU64) {
    run_only_when_idle();
    let mut seen = commits.load(Ordering::Relaxed);
    let mut checkpointed = seen;
    let mut last_checkpoint = std::time::Instant::now();
    while open.strong_count() > 0 {
        std::thread::sleep(CHECKPOINT_LOOK_EVERY);
        let now = commits.load(Ordering::Relaxed);
        let pause = now == seen;
        seen = now;
        if now == checkpointed || !(pause || last_checkpoint.elapsed() >= CHECKPOINT_AT_LEAST_EVERY)
        {
            continue;
        }
        if let Err(error) = connection.execute_batch("PRAGMA wal_checkpoint(PASSIVE);") {
            tracing::warn!(error = %error, "WAL checkpoint failed; retrying");
        }
        checkpointed = now;
        last_checkpoint = std::time::Instant::now();
    }
}

/// Background work: the scheduler gives this thread a core only when nothing else wants it.
#[cfg(target_os = "linux")]
fn run_only_when_idle() {
    let parameters = libc::sched_param { sched_priority: 0 };
    // SAFETY: plain system call on the calling thread with a valid parameter block.
    let failed = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &parameters) } != 0;
    if failed {
        tracing::debug!("SCHED_IDLE refused; checkpoints run at normal priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn run_only_when_idle() {}

fn in_savepoint<T>(
    connection: &Connection,
    work: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    connection
        .prepare_cached("SAVEPOINT operation")?
        .execute([])?;
    match work(connection) {
        Ok(value) => {
            connection
                .prepare_cached("RELEASE operation")?
                .execute([])?;
            Ok(value)
        }
        Err(error) => {
            let _ = connection.execute_batch("ROLLBACK TO operation; RELEASE operation");
            Err(error)
        }
    }
}

fn sql(error: rusqlite::Error) -> StoreError {
    StoreError(format!("sqlite: {error}"))
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
        .prepare_cached("SELECT status, lease_until FROM records WHERE pk = ?1")?
        .query_row(params![key], |row| {
            let status: String = row.get(0)?;
            Ok((
                Status::parse(&status).unwrap_or_default(),
                row.get::<_, Option<i64>>(1)?.unwrap_or_default(),
            ))
        })
        .optional()
}

fn record(connection: &Connection, key: &str) -> rusqlite::Result<Option<Record>> {
    connection
        .prepare_cached(&format!(
            "SELECT {RECORD_COLUMNS} FROM records WHERE pk = ?1"
        ))?
        .query_row(params![key], record_from_row)
        .optional()
}

/// A statement run once with `values`; the number of rows it changed.
fn change(
    connection: &Connection,
    statement: &str,
    values: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    connection.prepare_cached(statement)?.execute(values)
}

/// `RECEIVED` -> `QUEUED`; a record in any other state is left as it is.
fn mark_record_queued(connection: &Connection, key: &str) -> rusqlite::Result<()> {
    change(
        connection,
        "UPDATE records SET status = 'QUEUED' WHERE pk = ?1 AND status = 'RECEIVED'",
        params![key],
    )
    .map(drop)
}

/// Ends the lease of a `RECEIVED` record now.
fn release_lease(connection: &Connection, key: &str, now_ms: i64) -> rusqlite::Result<()> {
    change(
        connection,
        "UPDATE records SET lease_until = ?1 WHERE pk = ?2 AND status = 'RECEIVED'",
        params![now_ms, key],
    )
    .map(drop)
}

/// The message id a receipt handle (`id:receive count:received at`) belongs to.
fn message_id(receipt_handle: &str) -> Option<i64> {
    receipt_handle.split(':').next()?.parse().ok()
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
        let record = record.clone();
        self.database
            .store_op(move |connection| {
                let inserted = change(
                    connection,
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
                )?;
                if inserted == 1 {
                    return Ok(PutOutcome::Created);
                }
                let (status, lease_until_ms) = existing(connection, &record.key)?
                    .ok_or(rusqlite::Error::QueryReturnedNoRows)?;
                Ok(PutOutcome::Exists(Existing {
                    status,
                    lease_until_ms,
                }))
            })
            .await
    }

    async fn take_over(
        &self,
        key: &str,
        seen_lease_until_ms: i64,
        new_lease_until_ms: i64,
    ) -> Result<bool, StoreError> {
        let key = key.to_string();
        self.database
            .store_op(move |connection| {
                let changed = change(
                    connection,
                    "UPDATE records SET lease_until = ?1
                     WHERE pk = ?2 AND status = 'RECEIVED' AND lease_until = ?3",
                    params![new_lease_until_ms, key, seen_lease_until_ms],
                )?;
                Ok(changed == 1)
            })
            .await
    }

    async fn release(&self, key: &str, now_ms: i64) -> Result<(), StoreError> {
        let key = key.to_string();
        self.database
            .store_op(move |connection| release_lease(connection, &key, now_ms))
            .await
    }

    async fn mark_queued(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_string();
        self.database
            .store_op(move |connection| mark_record_queued(connection, &key))
            .await
    }

    async fn get(&self, key: &str) -> Result<Option<Record>, StoreError> {
        let key = key.to_string();
        self.database
            .store_op(move |connection| record(connection, &key))
            .await
    }

    async fn pending(&self, now_ms: i64, limit: usize) -> Result<Vec<Pending>, StoreError> {
        self.database
            .store_op(move |connection| {
                let mut statement = connection.prepare_cached(
                    "SELECT pk, provider, tenant, event_type, entity_id, lease_until FROM records
                     WHERE status = 'RECEIVED' AND lease_until < ?1 ORDER BY lease_until LIMIT ?2",
                )?;
                let rows = statement.query_map(params![now_ms, limit as i64], |row| {
                    Ok(Pending {
                        message: QueueMessage {
                            key: row.get(0)?,
                            provider: row.get(1)?,
                            tenant: row.get(2)?,
                            event_type: row.get(3)?,
                            entity_id: row.get(4)?,
                        },
                        lease_until_ms: row.get(5)?,
                    })
                })?;
                rows.collect()
            })
            .await
    }

    async fn claim(
        &self,
        key: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<Claim, StoreError> {
        let key = key.to_string();
        self.database
            .store_op(move |connection| {
                let changed = change(
                    connection,
                    "UPDATE records SET status = 'PROCESSING', lease_until = ?1, attempts = attempts + 1
                     WHERE pk = ?2 AND (status IN ('RECEIVED', 'QUEUED')
                        OR (status = 'PROCESSING' AND lease_until < ?3))",
                    params![lease_until_ms, key, now_ms],
                )?;
                if changed == 1 {
                    let claimed =
                        record(connection, &key)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
                    return Ok(Claim::Claimed(Box::new(claimed)));
                }
                Ok(match existing(connection, &key)? {
                    None => Claim::Missing,
                    Some((Status::Processing, _)) => Claim::Busy,
                    Some((status, _)) => Claim::Finished(status),
                })
            })
            .await
    }

    async fn finish(
        &self,
        key: &str,
        lease_until_ms: i64,
        outcome: &Outcome,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let key = key.to_string();
        let outcome = outcome.clone();
        self.database
            .store_op(move |connection| {
                let processed_at = matches!(outcome, Outcome::Processed { .. }).then_some(now_ms);
                let changed = change(
                    connection,
                    "UPDATE records SET status = ?3, processed_at = COALESCE(?4, processed_at),
                        detail = COALESCE(?5, detail), last_error = ?6, lease_until = NULL
                     WHERE pk = ?1 AND status = 'PROCESSING' AND lease_until = ?2",
                    params![
                        key,
                        lease_until_ms,
                        outcome.status().as_str(),
                        processed_at,
                        outcome.detail(),
                        outcome.error(),
                    ],
                )?;
                Ok(changed == 1)
            })
            .await
    }

    async fn erase_subject(&self, subject: &str, now_ms: i64) -> Result<usize, StoreError> {
        let subject = subject.to_string();
        self.database
            .store_op(move |connection| {
                change(
                    connection,
                    "UPDATE records SET body = NULL, detail = NULL, erased_at = ?1 WHERE subject = ?2",
                    params![now_ms, subject],
                )
            })
            .await
    }
}

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
fn insert_message(connection: &Connection, body: &str, now_ms: i64) -> rusqlite::Result<()> {
    change(
        connection,
        "INSERT INTO messages (body, sent_at, visible_at) VALUES (?1, ?2, ?2)",
        params![body, now_ms],
    )
    .map(drop)
}

fn encode(message: &QueueMessage) -> Result<String, QueueError> {
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

    async fn retry_after(&self, receipt_handle: &str, seconds: u32) -> Result<(), QueueError> {
        let Some(id) = message_id(receipt_handle) else {
            return Ok(());
        };
        let receipt = receipt_handle.to_string();
        let visible_at = self.clock.now_ms() + i64::from(seconds.min(43_200)) * 1000;
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

/// The outbox step in one transaction: the message and the record's `QUEUED` status commit
/// together, or neither does (then the lease is released, as the port asks).
pub struct SqliteOutbox {
    database: Database,
    clock: SharedClock,
}

#[async_trait]
impl Outbox for SqliteOutbox {
    async fn enqueue(&self, message: &QueueMessage) -> Result<(), QueueError> {
        let body = encode(message)?;
        let now = self.clock.now_ms();
        let key = message.key.clone();
        let result = self
            .database
            .queue_op(move |connection| {
                insert_message(connection, &body, now)?;
                mark_record_queued(connection, &key)
            })
            .await;
        if result.is_err() {
            let key = message.key.clone();
            let released = self
                .database
                .store_op(move |connection| release_lease(connection, &key, now))
                .await;
            if let Err(error) = released {
                tracing::error!(key = %message.key, error = %error, "lease release failed; the lease will expire");
            }
        }
        result
    }
}

/// The ports on one database file, and the queue's consumer side for the workers.
pub fn ports(database: &Database, max_receives: u32, clock: SharedClock) -> (Ports, SqliteQueue) {
    let queue = SqliteQueue::new(database.clone(), max_receives, clock.clone());
    let ports = Ports {
        store: Arc::new(SqliteStore::new(database.clone())),
        queue: Arc::new(queue.clone()),
        outbox: Arc::new(SqliteOutbox {
            database: database.clone(),
            clock: clock.clone(),
        }),
        clock,
    };
    (ports, queue)
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
