//! The processor Lambda: SQS batches in, details fetched from the provider APIs and stored,
//! partial batch failures out.

fn main() -> Result<(), shared::runtime::Error> {
    shared::runtime::start(shared::runtime::run_processor())
}
