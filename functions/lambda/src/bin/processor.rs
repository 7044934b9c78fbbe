//! The processor Lambda: SQS batches in, details fetched from the provider APIs and stored,
//! partial batch failures out.

fn main() -> Result<(), lambda::Error> {
    lambda::start(lambda::run_processor())
}
