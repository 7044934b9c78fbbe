//! The processor Lambda: SQS batches in, details fetched from the provider APIs and stored,
//! partial batch failures out.

#[tokio::main]
async fn main() -> Result<(), shared::runtime::Error> {
    shared::runtime::run_processor().await
}
