//! The processor Lambda: SQS batches in, details fetched from the provider APIs and stored,
//! partial batch failures out.

fn main() -> Result<(), lambda_glue::Error> {
    lambda_glue::start(lambda_glue::run_processor())
}
