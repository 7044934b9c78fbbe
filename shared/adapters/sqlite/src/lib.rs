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

use std::sync::Arc;

use webhook_core::clock::SharedClock;
use webhook_core::ports::Ports;

mod database;
mod outbox;
mod pacer;
mod queue;
mod rows;
mod sightings;
mod store;

pub use database::Database;
pub use outbox::SqliteOutbox;
pub use pacer::SqlitePacer;
pub use queue::SqliteQueue;
pub use sightings::SqliteSightings;
pub use store::SqliteStore;

/// The ports on one database file, and the queue's consumer side for the workers.
pub fn ports(database: &Database, max_receives: u32, clock: SharedClock) -> (Ports, SqliteQueue) {
    let queue = SqliteQueue::new(database.clone(), max_receives, clock.clone());
    let ports = Ports {
        store: Arc::new(SqliteStore::new(database.clone())),
        pacer: Arc::new(SqlitePacer::new(database.clone())),
        sightings: Arc::new(SqliteSightings::new(database.clone())),
        queue: Arc::new(queue.clone()),
        outbox: Arc::new(SqliteOutbox {
            database: database.clone(),
            clock: clock.clone(),
        }),
        clock,
    };
    (ports, queue)
}
