//! The [`Sightings`] port on the embedded database: one row per provider, tenant and signal.

use async_trait::async_trait;
use rusqlite::params;
use webhook_core::model::Sighting;
use webhook_core::ports::{Sightings, StoreError};

use crate::database::{change, Database};

#[derive(Clone)]
pub struct SqliteSightings {
    database: Database,
}

impl SqliteSightings {
    pub fn new(database: Database) -> Self {
        SqliteSightings { database }
    }
}

#[async_trait]
impl Sightings for SqliteSightings {
    async fn sight(&self, sighting: &Sighting) -> Result<bool, StoreError> {
        let s = sighting.clone();
        self.database
            .store_op(move |connection| {
                // One that expired is not kept any more: seen again, it is new.
                change(
                    connection,
                    "DELETE FROM sightings WHERE provider = ?1 AND tenant = ?2 AND signal = ?3 \
                     AND expires_at != 0 AND expires_at * 1000 <= ?4",
                    params![s.provider, s.tenant, s.signal, s.first_ms],
                )?;
                let new = change(
                    connection,
                    "INSERT OR IGNORE INTO sightings \
                     (provider, tenant, signal, first_at, last_at, example_key, expires_at) \
                     VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6)",
                    params![
                        s.provider,
                        s.tenant,
                        s.signal,
                        s.first_ms,
                        s.example_key,
                        s.expires_at
                    ],
                )? == 1;
                if !new {
                    change(
                        connection,
                        "UPDATE sightings SET last_at = ?4, example_key = ?5, expires_at = ?6 \
                         WHERE provider = ?1 AND tenant = ?2 AND signal = ?3",
                        params![
                            s.provider,
                            s.tenant,
                            s.signal,
                            s.first_ms,
                            s.example_key,
                            s.expires_at
                        ],
                    )?;
                }
                Ok(new)
            })
            .await
    }

    async fn sightings(
        &self,
        provider: Option<&str>,
        now_ms: i64,
    ) -> Result<Vec<Sighting>, StoreError> {
        let provider = provider.map(str::to_string);
        self.database
            .store_op(move |connection| {
                let mut statement = connection.prepare_cached(
                    "SELECT provider, tenant, signal, first_at, last_at, example_key, expires_at \
                     FROM sightings WHERE (?1 IS NULL OR provider = ?1) \
                     AND (expires_at = 0 OR expires_at * 1000 > ?2) \
                     ORDER BY provider, tenant, signal",
                )?;
                let rows = statement.query_map(params![provider, now_ms], |row| {
                    Ok(Sighting {
                        provider: row.get(0)?,
                        tenant: row.get(1)?,
                        signal: row.get(2)?,
                        first_ms: row.get(3)?,
                        last_ms: row.get(4)?,
                        example_key: row.get(5)?,
                        expires_at: row.get(6)?,
                    })
                })?;
                rows.collect()
            })
            .await
    }
}
