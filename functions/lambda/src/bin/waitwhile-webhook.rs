//! The Waitwhile webhook Lambda: verify, store once, enqueue, acknowledge.

fn main() -> Result<(), lambda::Error> {
    lambda::start(lambda::run_webhook(webhook_core::providers::Waitwhile))
}
