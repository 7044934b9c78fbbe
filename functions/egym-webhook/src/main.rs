//! The Egym webhook Lambda: verify, store once, enqueue, acknowledge.

fn main() -> Result<(), shared::runtime::Error> {
    shared::runtime::start(shared::runtime::run_webhook(shared::providers::Egym))
}
