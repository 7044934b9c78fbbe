//! The database: the thread that owns the connection and runs every operation, the group
//! transactions, the WAL checkpoints, and the schema.

use std::cell::Cell;
use std::os::raw::c_int;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{params, Connection};
use webhook_core::model::{QueueMessage, Record};
use webhook_core::ports::{QueueError, StoreError};

use crate::rows::{record_from_row, RECORD_COLUMNS};

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
CREATE INDEX IF NOT EXISTS records_unfinished ON records(received_at)
    WHERE status IN ('RECEIVED', 'QUEUED', 'PROCESSING');
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
CREATE TABLE IF NOT EXISTS items_done (
    parent TEXT NOT NULL,
    item INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (parent, item)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS paused (
    scope TEXT PRIMARY KEY,
    since INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sightings (
    provider TEXT NOT NULL,
    tenant TEXT NOT NULL,
    signal TEXT NOT NULL,
    first_at INTEGER NOT NULL,
    last_at INTEGER NOT NULL,
    example_key TEXT NOT NULL,
    expires_at INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (provider, tenant, signal)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pace (
    key TEXT PRIMARY KEY,
    next_free INTEGER,
    next_back INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS person_links (
    person TEXT NOT NULL,
    record_key TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (person, record_key)
) WITHOUT ROWID;
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
        // old snapshot keeps the WAL from being started over). Erased data must not linger:
        // secure_delete overwrites what a write frees, and an erasure is followed by a
        // checkpoint that empties the WAL (see `note_erasure`).
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF; PRAGMA busy_timeout = 5000;
                 PRAGMA journal_size_limit = 16777216; PRAGMA wal_autocheckpoint = 0;
                 PRAGMA secure_delete = ON;",
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

    pub(crate) async fn store_op<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.run(work).await.map_err(StoreError::Unavailable)
    }

    pub(crate) async fn queue_op<T: Send + 'static>(
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
        if ERASED.with(|erased| erased.replace(false)) {
            checkpoints.after_erasure(&connection);
        }
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
    /// An operation of the transaction under way erased personal data.
    static ERASED: Cell<bool> = const { Cell::new(false) };
}

/// Notes, on the database thread, that the transaction under way erases personal data: once it
/// has committed the WAL is checkpointed and emptied, so that no erased byte stays in it.
pub(crate) fn note_erasure() {
    ERASED.with(|erased| erased.set(true));
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

    /// Copies the WAL into the database file and truncates it to nothing (an erasure's old
    /// page images are in it); if a reader elsewhere prevents that, it is tried when idle.
    fn after_erasure(&mut self, connection: &Connection) {
        match checkpoint(connection, "TRUNCATE") {
            Ok(true) => {
                WAL_PAGES.with(|noted| noted.set(0));
                self.unchecked = false;
                self.next_at_pages = 0;
            }
            Ok(false) => self.unchecked = true,
            Err(error) => tracing::warn!(error = %error, "checkpoint after an erasure failed"),
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

/// Columns added since the first schema (table, column, type), for databases made before them.
const ADDED_COLUMNS: [(&str, &str, &str); 7] = [
    ("records", "facts", "TEXT"),
    ("records", "unauthenticated", "INTEGER NOT NULL DEFAULT 0"),
    // When the reconciler put a stuck record back on its way (once in its life).
    ("records", "requeued_at", "INTEGER"),
    // When the next message the pacer turns away should come back.
    ("pace", "next_back", "INTEGER"),
    // The trace of the webhook's request.
    ("records", "trace_id", "TEXT"),
    // Its processing attempts (JSON).
    ("records", "history", "TEXT"),
    // The segment of that trace the webhook function ran in.
    ("records", "trace_parent", "TEXT"),
];

fn add_missing_columns(connection: &Connection) -> rusqlite::Result<()> {
    for (table, name, kind) in ADDED_COLUMNS {
        let present: bool = connection.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
            params![table, name],
            |row| row.get(0),
        )?;
        if !present {
            connection.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {name} {kind}"))?;
        }
    }
    Ok(())
}

/// A statement run once with `values`; the number of rows it changed.
pub(crate) fn change(
    connection: &Connection,
    statement: &str,
    values: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    connection.prepare_cached(statement)?.execute(values)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::queue::insert_message;

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

    #[tokio::test]
    async fn a_database_made_before_a_column_gains_it_when_opened() {
        let path = fresh_path("older");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE pace (key TEXT PRIMARY KEY, next_free INTEGER NOT NULL) WITHOUT ROWID;")
            .unwrap();
        let database = Database::open(&path).unwrap();
        let columns: Vec<String> = database
            .run(|connection| {
                let mut statement =
                    connection.prepare("SELECT name FROM pragma_table_info('pace')")?;
                let names = statement.query_map([], |row| row.get(0))?;
                names.collect::<rusqlite::Result<Vec<String>>>()
            })
            .await
            .unwrap();
        assert_eq!(columns, ["key", "next_free", "next_back"]);
        drop(database);
        remove(&path);
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
