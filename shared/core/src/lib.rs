//! The core of the webhook ingestion functions: provider rules, verification, tenants, the
//! ingest and processing paths, the outbox, and the ports their adapters implement.
//!
//! It speaks plain `http` types and bytes and knows no AWS, Lambda or SQLite crate: the
//! adapters (`shared/adapters/{aws,sqlite,memory}`) and the entry points (`functions/lambda`,
//! `functions/devserver`, `functions/webhooks`) sit around it.

pub mod check;
pub mod clock;
pub mod config;
pub mod downstream;
pub mod drift;
pub mod erasure;
pub mod fetch;
pub mod ingest;
pub mod key;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod operate;
pub mod outbox;
pub mod ports;
pub mod process;
pub mod providers;
pub mod reconcile;
pub mod register;
pub mod response;
pub mod spans;
pub mod tenant_changes;
pub mod tenants;
pub mod trace;
pub mod verify;

pub use ingest::{Ingest, IngestSettings};

/// A webhook request as the core sees it: method, URI (path and query), headers, body bytes.
pub type WebhookRequest = http::Request<bytes::Bytes>;
/// The answer to one: a status, a few headers and a short JSON body.
pub type WebhookResponse = http::Response<bytes::Bytes>;
