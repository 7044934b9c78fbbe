//! The DynamoDB + SQS adapter pair of the core's ports, the Secrets Manager tenant source and
//! the SDK configuration the functions and tools share.

use std::sync::Arc;

use webhook_core::clock::SharedClock;
use webhook_core::outbox::SendThenMark;
use webhook_core::ports::Ports;

pub mod dynamodb;
pub mod eventbridge;
pub mod pacer;
pub mod sdk;
pub mod secrets;
pub mod sightings;
pub mod sqs;
pub mod xray;

pub use dynamodb::{create_table, DynamoStore, PENDING_INDEX, SUBJECT_INDEX};
pub use eventbridge::EventBus;
pub use pacer::DynamoPacer;
pub use secrets::SecretsManager;
pub use sightings::DynamoSightings;
pub use sqs::SqsQueue;

/// The ports on one table and one queue. DynamoDB and SQS share no transaction, so the outbox
/// step sends, then marks the record queued ([`SendThenMark`]); the sweeper covers the gap.
pub fn ports(store: DynamoStore, queue: SqsQueue, clock: SharedClock) -> Ports {
    let pacer = Arc::new(store.pacer());
    let sightings = Arc::new(store.sightings());
    let store = Arc::new(store);
    let queue = Arc::new(queue);
    Ports {
        pacer,
        sightings,
        outbox: Arc::new(SendThenMark::new(
            store.clone(),
            queue.clone(),
            clock.clone(),
        )),
        store,
        queue,
        clock,
    }
}
