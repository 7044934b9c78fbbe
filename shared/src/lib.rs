//! The core of the webhook ingestion functions: provider adapters, verification, the ingest
//! pipeline, and the store and queue ports with their AWS adapters.

#[cfg(feature = "embedded")]
pub mod embedded;
pub mod fetch;
pub mod http;
pub mod ingest;
pub mod outbox;
pub mod process;
pub mod providers;
pub mod queue;
pub mod runtime;
pub mod secrets;
pub mod store;
pub mod verify;

pub use ingest::{Ingest, IngestSettings};
