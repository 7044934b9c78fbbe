//! The Timify webhook Lambda: verify, store once, enqueue, acknowledge.

#[tokio::main]
async fn main() -> Result<(), shared::runtime::Error> {
    shared::runtime::run_webhook(shared::providers::Timify).await
}
