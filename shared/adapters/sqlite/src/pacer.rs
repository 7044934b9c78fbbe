//! The [`Pacer`] port on the embedded database: each key's next free slot in a table, read and
//! moved on in one operation of the database thread, so the dev server's workers share it.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};
use webhook_core::clock::SharedClock;
use webhook_core::model::{next_slot, PaceState, Paused, Reservation};
use webhook_core::ports::{Pacer, StoreError};

use crate::database::Database;

#[derive(Clone)]
pub struct SqlitePacer {
    database: Database,
}

impl SqlitePacer {
    pub fn new(database: Database) -> Self {
        SqlitePacer { database }
    }
}

#[async_trait]
impl Pacer for SqlitePacer {
    async fn set_paused(&self, scope: &str, paused: bool, now_ms: i64) -> Result<(), StoreError> {
        let scope = scope.to_string();
        self.database
            .store_op(move |connection| {
                if paused {
                    connection
                        .prepare_cached(
                            "INSERT OR IGNORE INTO paused (scope, since) VALUES (?1, ?2)",
                        )?
                        .execute(params![scope, now_ms])?;
                } else {
                    connection
                        .prepare_cached("DELETE FROM paused WHERE scope = ?1")?
                        .execute(params![scope])?;
                }
                Ok(())
            })
            .await
    }

    async fn paused(&self) -> Result<Vec<Paused>, StoreError> {
        self.database
            .store_op(|connection| {
                let mut statement =
                    connection.prepare_cached("SELECT scope, since FROM paused ORDER BY scope")?;
                let rows = statement.query_map([], |row| {
                    Ok(Paused {
                        scope: row.get(0)?,
                        since_ms: row.get(1)?,
                    })
                })?;
                rows.collect()
            })
            .await
    }

    async fn reserve(
        &self,
        key: &str,
        interval_ms: i64,
        calls: u32,
        clock: &SharedClock,
        max_wait_ms: i64,
    ) -> Result<Reservation, StoreError> {
        let (key, clock) = (key.to_string(), clock.clone());
        self.database
            .store_op(move |connection| {
                let seen = connection
                    .prepare_cached("SELECT next_free, next_back FROM pace WHERE key = ?1")?
                    .query_row(params![key], |row| {
                        Ok(PaceState {
                            next_free_ms: row.get(0)?,
                            next_back_ms: row.get(1)?,
                        })
                    })
                    .optional()?
                    .unwrap_or_default();
                let now_ms = clock.now_ms();
                let (reservation, after) = next_slot(seen, interval_ms, calls, now_ms, max_wait_ms);
                connection
                    .prepare_cached(
                        "INSERT INTO pace (key, next_free, next_back) VALUES (?1, ?2, ?3)
                         ON CONFLICT(key) DO UPDATE SET next_free = ?2, next_back = ?3",
                    )?
                    .execute(params![key, after.next_free_ms, after.next_back_ms])?;
                Ok(reservation)
            })
            .await
    }
}
