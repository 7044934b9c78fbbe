//! The outbox sweeper Lambda, run every minute: enqueues stored events whose queue write failed.

fn main() -> Result<(), lambda_glue::Error> {
    lambda_glue::start(lambda_glue::run_sweeper())
}
