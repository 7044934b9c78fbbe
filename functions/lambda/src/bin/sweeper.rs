//! The outbox sweeper Lambda, run every minute: enqueues stored events whose queue write failed.

fn main() -> Result<(), lambda::Error> {
    lambda::start(lambda::run_sweeper())
}
