//! The store and queue ports on one SQLite file (WAL mode), for the local dev server: the same
//! semantics as DynamoDB (conditional put, leases) and SQS with a redrive policy (visibility
//! timeout, receive count, dead-letter table).
//!
//! One thread owns the connection and runs every operation, so conditional writes are
//! serialised per item as DynamoDB does and the async runtime never waits on SQLite. Operations
//! that arrive together share one transaction (group commit), each inside its own savepoint; an
//! operation is answered only once its transaction has committed. The same thread checkpoints
//! the WAL between two transactions, which keeps it bounded under load that never pauses, and
//! truncates it on [`Database::close`].

use std::cell::Cell;
use std::os::raw::c_int;
use std::path::Path;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};
use shared::clock::SharedClock;
use shared::ports::{
    Claim, EventFilter, Existing, InboundMessage, Outbox, Outcome, Pending, Ports, PutOutcome,
    Queue, QueueConsumer, QueueError, QueueMessage, Record, Status, Store, StoreError,
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
    erased_at INTEGER,
    facts TEXT
);
CREATE INDEX IF NOT EXISTS records_by_subject ON records(subject);
CREATE INDEX IF NOT EXISTS records_by_received ON records(received_at);
CREATE INDEX IF NOT EXISTS records_pending ON records(lease_until) WHERE status = 'RECEIVED';
CREATE INDEX IF NOT EXISTS records_by_provider ON records(provider, received_at);
CREATE INDEX IF NOT EXISTS records_needing_attention ON records(status, received_at)
    WHERE status IN ('FAILED', 'QUARANTINED');
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
CREATE TABLE IF NOT EXISTS tombstones (
    subject TEXT PRIMARY KEY,
    erased_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
";

/// Answers an operation once its transaction has committed (`Some(reason)` if it did not).
type Reply = Box<dyn FnOnce(Option<&str>) + Send>;
/// An operation for the database thread.
type Job = Box<dyn FnOnce(&Connection) -> Reply + Send>;
/// Answers [`Database::close`] once the database is closed.
type Closed = Box<dyn FnOnce(Result<(), String>) + Send>;

/// What the database thread is asked to do.
enum Message {
    Job(Job),
    Close(Closed),
}

/// Operations committed together at most; bounds how long the first one waits for the rest.
const MAX_JOBS_PER_TRANSACTION: usize = 256;

/// Pages (4 KiB) in the WAL at which the database thread checkpoints it, between two group
/// transactions: the WAL file stays within about this much plus one group transaction.
const CHECKPOINT_AT_PAGES: i32 = 2048;
/// Without an operation for this long, the database thread checkpoints what the WAL holds.
const CHECKPOINT_WHEN_IDLE_FOR: Duration = Duration::from_millis(500);

/// One SQLite database holding the records, the queue and its dead letters.
#[derive(Clone)]
pub struct Database {
    jobs: mpsc::Sender<Message>,
}

impl Database {
    pub fn open(path: impl AsRef<Path>) -> Result<Database, StoreError> {
        let path = path.as_ref();
        let connection = Connection::open(path).map_err(sql)?;
        // WAL: readers never block the writer. No fsync (synchronous OFF, also for the
        // checkpoints): every commit is in the operating system's hands before it is answered,
        // so the data survives a crash or kill of this process, not a power cut or OS crash.
        // That is what a development server needs; an fsync per checkpoint stalls the writes
        // behind it on a busy disk. SQLite's own automatic checkpoints are off: the database
        // thread runs them itself, after answering (see `Checkpoints`); the size limit cuts the
        // file back should it ever have grown past it (a reader in another process holding an
        // old snapshot keeps the WAL from being started over).
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF; PRAGMA busy_timeout = 5000;
                 PRAGMA journal_size_limit = 16777216; PRAGMA wal_autocheckpoint = 0;",
            )
            .map_err(sql)?;
        // After wal_autocheckpoint, which would replace it.
        connection.wal_hook(Some(note_wal_pages));
        connection.execute_batch(SCHEMA).map_err(sql)?;
        add_missing_columns(&connection).map_err(sql)?;
        connection.set_prepared_statement_cache_capacity(64);
        let (jobs, inbox) = mpsc::channel();
        std::thread::Builder::new()
            .name("sqlite".into())
            .spawn(move || serve(connection, inbox))
            .map_err(|e| {
                StoreError::Unavailable(format!("cannot start the database thread: {e}"))
            })?;
        Ok(Database { jobs })
    }

    /// Closes the database once every operation sent before has been answered: checkpoints the
    /// WAL into the database file and truncates it (SQLite removes it once no connection is
    /// left). Operations sent afterwards, through any handle, fail. For a graceful shutdown;
    /// a database already closed answers `Ok`.
    pub async fn close(&self) -> Result<(), StoreError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let closed: Closed = Box::new(move |result| {
            let _ = answer.send(result);
        });
        if self.jobs.send(Message::Close(closed)).is_err() {
            return Ok(());
        }
        match answered.await {
            Ok(result) => result.map_err(StoreError::Unavailable),
            Err(_) => Ok(()),
        }
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
        self.jobs
            .send(Message::Job(job))
            .map_err(|_| STOPPED.to_string())?;
        answered.await.map_err(|_| STOPPED.to_string())?
    }

    async fn store_op<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.run(work).await.map_err(StoreError::Unavailable)
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

    /// Moves every dead-lettered message back into the queue, visible now and with its receive
    /// count starting over (as an SQS redrive does), in one transaction; returns how many.
    pub async fn redrive_dead_letters(&self, now_ms: i64) -> Result<usize, QueueError> {
        self.queue_op(move |connection| {
            let moved = change(
                connection,
                "INSERT INTO messages (body, sent_at, visible_at)
                 SELECT body, ?1, ?1 FROM dead_letters ORDER BY moved_at, id",
                params![now_ms],
            )?;
            change(connection, "DELETE FROM dead_letters", [])?;
            Ok(moved)
        })
        .await
    }
}

/// The database thread: takes the operations waiting, runs them in one transaction, commits,
/// answers them, then checkpoints the WAL if it is due; until [`Database::close`] or until every
/// [`Database`] handle is gone, then closes the database.
fn serve(connection: Connection, inbox: mpsc::Receiver<Message>) {
    let mut checkpoints = Checkpoints::default();
    let mut replies: Vec<Reply> = Vec::new();
    let mut closing: Option<Closed> = None;
    loop {
        let first = if checkpoints.idle_checkpoint_due() {
            match inbox.recv_timeout(CHECKPOINT_WHEN_IDLE_FOR) {
                Ok(message) => message,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    checkpoints.when_idle(&connection);
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match inbox.recv() {
                Ok(message) => message,
                Err(_) => break,
            }
        };
        let first = match first {
            Message::Job(job) => job,
            Message::Close(closed) => {
                closing = Some(closed);
                break;
            }
        };
        // Should BEGIN fail, each operation's savepoint is a transaction of its own.
        let grouped = connection.execute_batch("BEGIN IMMEDIATE").is_ok();
        replies.push(first(&connection));
        while replies.len() < MAX_JOBS_PER_TRANSACTION {
            match inbox.try_recv() {
                Ok(Message::Job(job)) => replies.push(job(&connection)),
                Ok(Message::Close(closed)) => {
                    closing = Some(closed);
                    break;
                }
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
        for reply in replies.drain(..) {
            reply(failure.as_deref());
        }
        if closing.is_some() {
            break;
        }
        checkpoints.after_commit(&connection);
    }
    let result = close(connection);
    if let Err(error) = &result {
        tracing::warn!(error = %error, "closing the database");
    }
    if let Some(closed) = closing {
        closed(result);
    }
}

/// Checkpoints the WAL into the database file, truncates it and closes the connection.
fn close(connection: Connection) -> Result<(), String> {
    let checkpointed = checkpoint(&connection, "TRUNCATE");
    connection.close().map_err(|(_, error)| error.to_string())?;
    match checkpointed {
        Ok(true) => Ok(()),
        Ok(false) => Err("the WAL was not fully checkpointed: another process is reading".into()),
        Err(error) => Err(error.to_string()),
    }
}

thread_local! {
    /// Pages in the WAL after the last commit on this thread (SQLite's WAL hook).
    static WAL_PAGES: Cell<i32> = const { Cell::new(0) };
}

fn note_wal_pages(_: &rusqlite::hooks::Wal, pages: c_int) -> rusqlite::Result<()> {
    WAL_PAGES.with(|noted| noted.set(pages));
    Ok(())
}

/// When the database thread checkpoints the WAL. Without checkpoints that complete, the WAL
/// grows without bound: SQLite starts it over from its beginning only at the start of a write
/// transaction that finds every frame copied back into the database file, and a checkpoint
/// running beside a writer that never pauses never catches up with it (nor does
/// `journal_size_limit` cut the file back before the WAL has been started over). Run by the
/// only writer between two of its transactions, a passive checkpoint copies every frame, so
/// the next transaction starts the WAL over; it is run after the operations of the transaction
/// before have been answered, so it delays only those that arrive meanwhile (they then commit
/// together).
#[derive(Default)]
struct Checkpoints {
    /// Checkpoint once the WAL holds this many pages (0: [`CHECKPOINT_AT_PAGES`]).
    next_at_pages: i32,
    /// Frames written since the last checkpoint.
    unchecked: bool,
}

impl Checkpoints {
    fn after_commit(&mut self, connection: &Connection) {
        let pages = WAL_PAGES.with(Cell::get);
        if pages == 0 {
            return;
        }
        self.unchecked = true;
        let due = match self.next_at_pages {
            0 => CHECKPOINT_AT_PAGES,
            pages => pages,
        };
        if pages >= due {
            let complete = self.run(connection);
            // Incomplete (a reader elsewhere holds an old snapshot): try again a little later.
            self.next_at_pages = if complete {
                0
            } else {
                pages.saturating_add(CHECKPOINT_AT_PAGES / 4)
            };
        }
    }

    fn idle_checkpoint_due(&self) -> bool {
        self.unchecked
    }

    fn when_idle(&mut self, connection: &Connection) {
        if self.run(connection) {
            self.next_at_pages = 0;
        }
    }

    fn run(&mut self, connection: &Connection) -> bool {
        self.unchecked = false;
        match checkpoint(connection, "PASSIVE") {
            Ok(complete) => {
                // The next transaction starts the WAL over; one that writes nothing (a read)
                // calls no WAL hook, so the count it would leave is that of a WAL now copied.
                if complete {
                    WAL_PAGES.with(|noted| noted.set(0));
                }
                complete
            }
            Err(error) => {
                tracing::warn!(error = %error, "WAL checkpoint failed; trying again later");
                false
            }
        }
    }
}

/// A checkpoint in `mode`; whether it copied every frame of the WAL.
fn checkpoint(connection: &Connection, mode: &str) -> rusqlite::Result<bool> {
    let (busy, frames, copied): (i64, i64, i64) =
        connection.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?;
    Ok(busy == 0 && frames == copied)
}

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
    StoreError::Unavailable(format!("sqlite: {error}"))
}

/// Columns added since the first schema, for databases made before them.
const ADDED_COLUMNS: [(&str, &str); 2] = [
    ("facts", "TEXT"),
    ("unauthenticated", "INTEGER NOT NULL DEFAULT 0"),
];

fn add_missing_columns(connection: &Connection) -> rusqlite::Result<()> {
    for (name, kind) in ADDED_COLUMNS {
        let present: bool = connection.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info('records') WHERE name = ?1",
            params![name],
            |row| row.get(0),
        )?;
        if !present {
            connection.execute_batch(&format!("ALTER TABLE records ADD COLUMN {name} {kind}"))?;
        }
    }
    Ok(())
}

/// [`RECORD_COLUMNS`] without body and detail, for listings.
const SUMMARY_COLUMNS: &str =
    "pk, provider, tenant, event_type, entity_id, NULL, received_at, status, \
    lease_until, expires_at, attempts, NULL, processed_at, last_error, erased_at, subject, facts, \
    unauthenticated";

const RECORD_COLUMNS: &str =
    "pk, provider, tenant, event_type, entity_id, body, received_at, status, \
    lease_until, expires_at, attempts, detail, processed_at, last_error, erased_at, subject, facts, \
    unauthenticated";

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
        subject: row.get(15)?,
        facts: row.get(16)?,
        unauthenticated: row.get(17)?,
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
                        received_at, status, lease_until, expires_at, attempts, facts, last_error,
                        unauthenticated)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
                     ON CONFLICT(pk) DO NOTHING",
                    params![
                        record.key,
                        record.provider,
                        record.tenant,
                        record.event_type,
                        record.entity_id,
                        record.subject,
                        record.body,
                        record.received_at_ms,
                        record.status.as_str(),
                        record.lease_until_ms,
                        record.expires_at,
                        record.attempts,
                        record.facts,
                        record.last_error,
                        record.unauthenticated,
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
                            ..QueueMessage::default()
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

    async fn erase_subject(
        &self,
        subject: &str,
        now_ms: i64,
        tombstone_expires_at: i64,
    ) -> Result<usize, StoreError> {
        let subject = subject.to_string();
        self.database
            .store_op(move |connection| {
                change(
                    connection,
                    "INSERT INTO tombstones (subject, erased_at, expires_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT(subject) DO UPDATE SET erased_at = ?2, expires_at = ?3",
                    params![subject, now_ms, tombstone_expires_at],
                )?;
                change(
                    connection,
                    "UPDATE records SET body = NULL, detail = NULL, erased_at = ?1 WHERE subject = ?2",
                    params![now_ms, subject],
                )
            })
            .await
    }

    async fn erased_at(&self, subject: &str) -> Result<Option<i64>, StoreError> {
        let subject = subject.to_string();
        self.database
            .store_op(move |connection| {
                connection
                    .prepare_cached("SELECT erased_at FROM tombstones WHERE subject = ?1")?
                    .query_row(params![subject], |row| row.get(0))
                    .optional()
            })
            .await
    }

    async fn erase_record(&self, key: &str, now_ms: i64) -> Result<(), StoreError> {
        let key = key.to_string();
        self.database
            .store_op(move |connection| {
                change(
                    connection,
                    "UPDATE records SET body = NULL, detail = NULL, erased_at = ?1 WHERE pk = ?2",
                    params![now_ms, key],
                )
                .map(drop)
            })
            .await
    }

    async fn list(&self, filter: &EventFilter) -> Result<Vec<Record>, StoreError> {
        let filter = filter.clone();
        self.database
            .store_op(move |connection| {
                let sql = list_query(&filter);
                let mut values: Vec<rusqlite::types::Value> = vec![
                    filter.since_ms.into(),
                    filter.until_ms.into(),
                    filter.tenant.clone().into(),
                    (filter.limit as i64).into(),
                ];
                values.extend(filter.providers.iter().cloned().map(Into::into));
                let mut statement = connection.prepare_cached(&sql)?;
                let rows =
                    statement.query_map(rusqlite::params_from_iter(values), record_from_row)?;
                rows.collect()
            })
            .await
    }

    async fn reopen(
        &self,
        key: &str,
        now_ms: i64,
        lease_until_ms: i64,
    ) -> Result<bool, StoreError> {
        let key = key.to_string();
        self.database
            .store_op(move |connection| {
                let changed = change(
                    connection,
                    "UPDATE records SET status = 'RECEIVED', lease_until = ?2, last_error = NULL
                     WHERE pk = ?1 AND (status IN ('QUEUED', 'PROCESSED', 'FAILED')
                        OR (status IN ('RECEIVED', 'PROCESSING') AND lease_until < ?3))",
                    params![key, lease_until_ms, now_ms],
                )?;
                Ok(changed == 1)
            })
            .await
    }

    async fn resolve_quarantine(
        &self,
        key: &str,
        note: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let (key, note) = (key.to_string(), note.to_string());
        self.database
            .store_op(move |connection| {
                let changed = change(
                    connection,
                    "UPDATE records SET status = 'PROCESSED', detail = ?2, processed_at = ?3
                     WHERE pk = ?1 AND status = 'QUARANTINED'",
                    params![key, note, now_ms],
                )?;
                Ok(changed == 1)
            })
            .await
    }
}

/// The listing query: ?1 since, ?2 until, ?3 tenant (or NULL), ?4 limit, ?5… the providers.
/// A status is written into the text, so that failed and quarantined records are read
/// through their partial index.
fn list_query(filter: &EventFilter) -> String {
    let providers = (0..filter.providers.len())
        .map(|i| format!("?{}", i + 5))
        .collect::<Vec<_>>()
        .join(", ");
    let status = filter
        .status
        .map(|status| format!("AND status = '{}'", status.as_str()))
        .unwrap_or_default();
    format!(
        "SELECT {SUMMARY_COLUMNS} FROM records
         WHERE received_at >= ?1 AND received_at < ?2 AND provider IN ({providers})
           AND (?3 IS NULL OR tenant = ?3) {status}
         ORDER BY received_at DESC, pk DESC LIMIT ?4"
    )
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

    async fn send_later(
        &self,
        message: &QueueMessage,
        delay_seconds: u32,
    ) -> Result<(), QueueError> {
        let body = encode(message)?;
        let now = self.clock.now_ms();
        let visible_at = now + i64::from(delay_seconds.min(900)) * 1000;
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use super::*;

    fn fresh_path(name: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        std::env::temp_dir().join(format!("sqlite-{name}-{}-{nanos}.db", std::process::id()))
    }

    fn wal_size(path: &Path) -> u64 {
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0)
    }

    fn remove(path: &Path) {
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.as_os_str().to_owned();
            file.push(suffix);
            let _ = std::fs::remove_file(file);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_stays_bounded_under_writes_that_never_pause() {
        const WRITERS: usize = 64;
        const ROW: usize = 2048;
        // Four times the checkpoint size in rows alone, written back to back.
        let rows = 4 * CHECKPOINT_AT_PAGES as usize * 4096 / ROW;
        let path = fresh_path("bounded");
        let database = Database::open(&path).unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (path, done) = (path.clone(), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut peak = 0;
                while !done.load(Ordering::Relaxed) {
                    peak = peak.max(wal_size(&path));
                    std::thread::sleep(Duration::from_millis(1));
                }
                peak
            })
        };
        let written = Arc::new(AtomicU64::new(0));
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let (database, written) = (database.clone(), Arc::clone(&written));
                tokio::spawn(async move {
                    for n in 0..rows / WRITERS {
                        let body = format!("{writer}:{n}:{}", "x".repeat(ROW));
                        database
                            .run(move |connection| insert_message(connection, &body, 0))
                            .await
                            .unwrap();
                        written.fetch_add(ROW as u64, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap();
        }
        done.store(true, Ordering::Relaxed);
        let peak = sampler.join().unwrap();
        let checkpoint_bytes = CHECKPOINT_AT_PAGES as u64 * 4096;
        assert!(written.load(Ordering::Relaxed) >= 4 * checkpoint_bytes);
        // The checkpoint size plus one group transaction (at most 256 rows of 2 KiB here).
        assert!(
            peak <= checkpoint_bytes + 2 * 1024 * 1024,
            "WAL peak {peak} bytes; checkpoints at {checkpoint_bytes}"
        );
        database.close().await.unwrap();
        remove(&path);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn close_empties_the_wal_keeps_the_data_and_refuses_later_operations() {
        let path = fresh_path("close");
        let database = Database::open(&path).unwrap();
        let other_handle = database.clone();
        for n in 0..100 {
            let body = format!("message {n}");
            database
                .run(move |connection| insert_message(connection, &body, 0))
                .await
                .unwrap();
        }
        assert!(wal_size(&path) > 0);
        database.close().await.unwrap();
        assert_eq!(wal_size(&path), 0);
        assert!(other_handle.recent_records(1).await.is_err());
        other_handle.close().await.unwrap();

        let reopened = Database::open(&path).unwrap();
        let count = reopened
            .run(|connection| {
                connection.query_row("SELECT count(*) FROM messages", [], |row| {
                    row.get::<_, i64>(0)
                })
            })
            .await
            .unwrap();
        assert_eq!(count, 100);
        reopened.close().await.unwrap();
        remove(&path);
    }
}
