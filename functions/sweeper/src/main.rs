//! The outbox sweeper Lambda, run every minute: enqueues stored events whose queue write failed.

fn main() -> Result<(), shared::runtime::Error> {
    shared::runtime::start(shared::runtime::run_sweeper())
}
