//! How a record is read from a row of the `records` table: the columns every query selects,
//! in the order [`record_from_row`] reads them.

use rusqlite::Row;
use webhook_core::model::{history_of, Record, Status};

/// [`RECORD_COLUMNS`] without body and detail, for listings.
pub(crate) const SUMMARY_COLUMNS: &str =
    "pk, provider, tenant, event_type, entity_id, NULL, received_at, status, \
    lease_until, expires_at, attempts, NULL, processed_at, last_error, erased_at, subject, facts, \
    unauthenticated, trace_id, NULL, trace_parent";

pub(crate) const RECORD_COLUMNS: &str =
    "pk, provider, tenant, event_type, entity_id, body, received_at, status, \
    lease_until, expires_at, attempts, detail, processed_at, last_error, erased_at, subject, facts, \
    unauthenticated, trace_id, history, trace_parent";

pub(crate) fn record_from_row(row: &Row<'_>) -> rusqlite::Result<Record> {
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
        trace_id: row.get(18)?,
        history: history_of(row.get::<_, Option<String>>(19)?.as_deref()),
        trace_parent: row.get(20)?,
    })
}
