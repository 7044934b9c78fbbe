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

/// Human-readable log lines with timestamps, for the local dev server; coloured only when
/// standard output is a terminal, so that a log file or a pipe gets no escape codes.
pub fn init_readable() {
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .compact()
        .with_ansi(std::io::stdout().is_terminal())
        .with_max_level(log_level())
        .with_target(false)
        .try_init();
}

/// Writes a command's output. A reader that has gone away (a closed pipe: `… | head -1`) ends
/// the output quietly, as command-line tools do, instead of a panic from `print!`.
pub fn write_output(out: &mut impl std::io::Write, text: &str) -> std::io::Result<()> {
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Error, ErrorKind, Write};

    /// A pipe whose reader is gone, or a disk that is full.
    struct Failing(ErrorKind);

    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(Error::from(self.0))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_pipe_ends_the_output_quietly_and_other_failures_are_errors() {
        assert!(super::write_output(&mut Failing(ErrorKind::BrokenPipe), "HTTP 202\n").is_ok());
        let full = super::write_output(&mut Failing(ErrorKind::StorageFull), "HTTP 202\n");
        assert_eq!(full.unwrap_err().kind(), ErrorKind::StorageFull);
        let mut written = Vec::new();
        super::write_output(&mut written, "HTTP 202\n").unwrap();
        assert_eq!(written, b"HTTP 202\n");
    }
}
