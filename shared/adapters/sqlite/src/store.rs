//! The [`Store`] port on the embedded database: the records, their leases and tombstones.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use webhook_core::model::{
    history_text, Claim, Erased, EventFilter, Existing, ItemsDone, Outcome, Pending, PutOutcome,
    QueueMessage, Record, Status, Tried,
};
use webhook_core::ports::{Claims, Deliveries, Erasing, Handover, Operating, StoreError};

use crate::database::{change, Database};
use crate::rows::{record_from_row, RECORD_COLUMNS, SUMMARY_COLUMNS};

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

/// `RECEIVED` -> `QUEUED`; a record in any other state is left as it is.
pub(crate) fn mark_record_queued(connection: &Connection, key: &str) -> rusqlite::Result<()> {
    change(
        connection,
        "UPDATE records SET status = 'QUEUED' WHERE pk = ?1 AND status = 'RECEIVED'",
        params![key],
    )
    .map(drop)
}

/// Ends the lease of a `RECEIVED` record now.
pub(crate) fn release_lease(
    connection: &Connection,
    key: &str,
    now_ms: i64,
) -> rusqlite::Result<()> {
    change(
        connection,
        "UPDATE records SET lease_until = ?1 WHERE pk = ?2 AND status = 'RECEIVED'",
        params![now_ms, key],
    )
    .map(drop)
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
impl Deliveries for SqliteStore {
    async fn put_new(&self, record: &Record) -> Result<PutOutcome, StoreError> {
        let record = record.clone();
        self.database
            .store_op(move |connection| {
                let inserted = change(
                    connection,
                    "INSERT INTO records (pk, provider, tenant, event_type, entity_id, subject, body,
                        received_at, status, lease_until, expires_at, attempts, facts, last_error,
                        unauthenticated, erased_at, trace_id, trace_parent)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                        ?17, ?18)
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
                        record.erased_at_ms,
                        record.trace_id,
                        record.trace_parent,
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
    async fn get(&self, key: &str) -> Result<Option<Record>, StoreError> {
        let key = key.to_string();
        self.database
            .store_op(move |connection| record(connection, &key))
            .await
    }
}

#[async_trait]
impl Handover for SqliteStore {
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
}

#[async_trait]
impl Claims for SqliteStore {
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
    async fn finish_with(
        &self,
        key: &str,
        lease_until_ms: i64,
        outcome: &Outcome,
        now_ms: i64,
        history: Option<&[Tried]>,
    ) -> Result<bool, StoreError> {
        let history = history.and_then(history_text);
        let key = key.to_string();
        let outcome = outcome.clone();
        self.database
            .store_op(move |connection| {
                let processed_at = outcome.processed_at(now_ms);
                let changed = change(
                    connection,
                    "UPDATE records SET status = ?3, processed_at = COALESCE(?4, processed_at),
                        detail = COALESCE(?5, detail), last_error = ?6, lease_until = NULL,
                        history = COALESCE(?7, history)
                     WHERE pk = ?1 AND status = 'PROCESSING' AND lease_until = ?2",
                    params![
                        key,
                        lease_until_ms,
                        outcome.status().as_str(),
                        processed_at,
                        outcome.detail(),
                        outcome.error(),
                        history,
                    ],
                )?;
                Ok(changed == 1)
            })
            .await
    }
    async fn item_done(
        &self,
        parent: &str,
        item: u32,
        failed: bool,
        expires_at: i64,
    ) -> Result<ItemsDone, StoreError> {
        let parent = parent.to_string();
        self.database
            .store_op(move |connection| {
                connection
                    .prepare_cached(
                        "INSERT INTO items_done (parent, item, failed, expires_at)
                         VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT(parent, item) DO UPDATE SET failed = failed OR ?3",
                    )?
                    .execute(params![parent, item, failed, expires_at])?;
                let (done, failed): (i64, i64) = connection
                    .prepare_cached(
                        "SELECT count(*), count(NULLIF(failed, 0)) FROM items_done WHERE parent = ?1",
                    )?
                    .query_row(params![parent], |row| Ok((row.get(0)?, row.get(1)?)))?;
                Ok(ItemsDone {
                    done: done as usize,
                    failed: failed as usize,
                })
            })
            .await
    }
}

#[async_trait]
impl Erasing for SqliteStore {
    async fn erase_subject(
        &self,
        subject: &str,
        now_ms: i64,
        tombstone_expires_at: i64,
    ) -> Result<Erased, StoreError> {
        let subject = subject.to_string();
        self.database
            .store_op(move |connection| {
                change(
                    connection,
                    "INSERT INTO tombstones (subject, erased_at, expires_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT(subject) DO UPDATE SET erased_at = ?2, expires_at = ?3",
                    params![subject, now_ms, tombstone_expires_at],
                )?;
                erase_where(
                    connection,
                    "subject = ?2 OR pk IN (SELECT record_key FROM person_links WHERE person = ?2)",
                    params![now_ms, subject],
                )
            })
            .await
    }
    async fn subject_records(&self, subject: &str) -> Result<Vec<String>, StoreError> {
        let subject = subject.to_string();
        self.database
            .store_op(move |connection| {
                connection
                    .prepare_cached(
                        "SELECT pk FROM records WHERE subject = ?1
                         OR pk IN (SELECT record_key FROM person_links WHERE person = ?1)
                         ORDER BY pk",
                    )?
                    .query_map(params![subject], |row| row.get(0))?
                    .collect()
            })
            .await
    }
    async fn link_persons(
        &self,
        key: &str,
        persons: &[String],
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let (key, persons) = (key.to_string(), persons.to_vec());
        self.database
            .store_op(move |connection| {
                let mut insert = connection.prepare_cached(
                    "INSERT OR IGNORE INTO person_links (person, record_key, expires_at)
                     VALUES (?1, ?2, ?3)",
                )?;
                for person in &persons {
                    insert.execute(params![person, key, expires_at])?;
                }
                Ok(())
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
    async fn erase_record(&self, key: &str, now_ms: i64) -> Result<Erased, StoreError> {
        let key = key.to_string();
        self.database
            .store_op(move |connection| erase_where(connection, "pk = ?2", params![now_ms, key]))
            .await
    }
}

#[async_trait]
impl Operating for SqliteStore {
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
                    filter.live_at_ms.into(),
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
                    "UPDATE records SET status = 'RECEIVED', lease_until = ?2, last_error = NULL,
                        detail = NULL, processed_at = NULL
                     WHERE pk = ?1 AND (status IN ('QUEUED', 'PROCESSED', 'FAILED')
                        OR (status IN ('RECEIVED', 'PROCESSING') AND lease_until < ?3))",
                    params![key, lease_until_ms, now_ms],
                )?;
                Ok(changed == 1)
            })
            .await
    }
    async fn requeue_stuck(
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
                    "UPDATE records SET status = 'RECEIVED', lease_until = ?2, requeued_at = ?3
                     WHERE pk = ?1 AND requeued_at IS NULL AND (status = 'QUEUED'
                        OR (status = 'PROCESSING' AND lease_until < ?3))",
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
        .map(|i| format!("?{}", i + 6))
        .collect::<Vec<_>>()
        .join(", ");
    let status = filter
        .status
        .map(|status| format!("AND status = '{}'", status.as_str()))
        .unwrap_or_default();
    let unfinished = if filter.unfinished_only {
        "AND status IN ('RECEIVED', 'QUEUED', 'PROCESSING')"
    } else {
        ""
    };
    format!(
        "SELECT {SUMMARY_COLUMNS} FROM records
         WHERE received_at >= ?1 AND received_at < ?2 AND provider IN ({providers})
           AND (?3 IS NULL OR tenant = ?3) {status}
           AND (expires_at = 0 OR expires_at * 1000 > ?5) {unfinished}
         ORDER BY received_at DESC, pk DESC LIMIT ?4"
    )
}

/// Empties the records matching `condition` (`?1` is now, `?2` its parameter) and says what
/// they still held.
fn erase_where(
    connection: &Connection,
    condition: &str,
    params: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<Erased> {
    crate::database::note_erasure();
    let counted = format!(
        "SELECT count(*), count(NULLIF(body, '')), count(detail) FROM records WHERE {condition}"
    );
    let (records, bodies, details): (i64, i64, i64) = connection
        .prepare_cached(&counted)?
        .query_row(params, |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
    let update =
        format!("UPDATE records SET body = NULL, detail = NULL, erased_at = ?1 WHERE {condition}");
    connection.prepare_cached(&update)?.execute(params)?;
    Ok(Erased {
        records: records as usize,
        bodies: bodies as usize,
        details: details as usize,
    })
}
