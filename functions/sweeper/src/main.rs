//! The outbox sweeper Lambda, run every minute: enqueues stored events whose queue write failed.

#[tokio::main]
async fn main() -> Result<(), shared::runtime::Error> {
    shared::runtime::run_sweeper().await
}
