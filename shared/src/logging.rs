//! Log output: JSON lines for CloudWatch, readable lines for the dev server and tools.

/// The log level named by `RUST_LOG` (`error`, `warn`, `info`, `debug`, `trace`, `off`), else
/// info. A plain level rather than per-module directives keeps a regex engine out of the
/// bootstraps. Release builds stop at `info` whatever this says (the workspace enables
/// `tracing/release_max_level_info`).
fn log_level() -> tracing_subscriber::filter::LevelFilter {
    std::env::var("RUST_LOG")
        .ok()
        .and_then(|level| level.trim().parse().ok())
        .unwrap_or(tracing_subscriber::filter::LevelFilter::INFO)
}

/// JSON log lines without timestamps (CloudWatch adds them); level per [`log_level`].
pub fn init_json() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_max_level(log_level())
        .with_target(false)
        .with_current_span(false)
        .without_time()
        .try_init();
}

/// Human-readable log lines with timestamps, for the local dev server.
pub fn init_readable() {
    let _ = tracing_subscriber::fmt()
        .compact()
        .with_max_level(log_level())
        .with_target(false)
        .try_init();
}
