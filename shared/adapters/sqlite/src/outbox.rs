//! The [`Outbox`] port on the embedded database.

use async_trait::async_trait;
use webhook_core::clock::SharedClock;
use webhook_core::model::QueueMessage;
use webhook_core::ports::{Outbox, QueueError};

use crate::database::Database;
use crate::queue::{encode, insert_message};
use crate::store::{mark_record_queued, release_lease};

/// The outbox step in one transaction: the message and the record's `QUEUED` status commit
/// together, or neither does (then the lease is released, as the port asks).
pub struct SqliteOutbox {
    pub(crate) database: Database,
    pub(crate) clock: SharedClock,
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
