//! The Egym webhook Lambda: verify, store once, enqueue, acknowledge.

fn main() -> Result<(), lambda_glue::Error> {
    lambda_glue::start(lambda_glue::run_webhook(shared::providers::Egym))
}
