//! `devserver`: every provider's webhooks and the processor on 127.0.0.1, no AWS, no Docker.
//! `devserver send <event file>` replays an events/ file against a running server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    about = "Local webhook ingestion server: every provider, the processor, an embedded store and queue"
)]
struct Cli {
    /// Address for the webhooks (`POST /webhooks/<provider>` only): the one to expose through
    /// a tunnel.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Loopback address for the index, the `/events` pages and `/_dev/events` (raw bodies,
    /// fetched customer data, replay and release; no authentication) and the provider-API
    /// sandbox. Never exposed: other addresses are refused.
    #[arg(long, default_value = "127.0.0.1:8081")]
    admin_listen: SocketAddr,
    /// Tenants and keys per provider (TOML).
    #[arg(long, default_value = "devserver.toml")]
    config: PathBuf,
    /// SQLite database file (records, queue, dead letters); kept across restarts.
    #[arg(long, default_value = "devserver.db")]
    data: PathBuf,
    /// Processor workers polling the queue.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Seconds a received message stays hidden before it is delivered again.
    #[arg(long, default_value_t = 30)]
    visibility_timeout: u64,
    /// Attempts before a message goes to the dead letters (as the queue's maxReceiveCount);
    /// `--max-receives 2 --retry-backoff 1` takes a failing event there in seconds.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    max_receives: u32,
    /// Seconds before a failed attempt is tried again, doubled per attempt (0: the visibility
    /// timeout decides).
    #[arg(long, default_value_t = 10)]
    retry_backoff: u64,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Post an API Gateway event file (events/<provider>/<file>.json) to a running server;
    /// prints the answer, and exits with 1 unless it is a 2xx (as `curl --fail`).
    Send {
        /// An events/<provider>/<file>.json file (an API Gateway HTTP API event).
        event_file: String,
        /// The server's webhook address (its --listen), not the admin address.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        to: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("devserver: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), devserver::Error> {
    if let Some(Command::Send { event_file, to }) = cli.command {
        let answer = devserver::send::send(&event_file, &to).await?;
        let text = format!("HTTP {}\n{}\n", answer.status, answer.body);
        webhook_core::logging::write_output(&mut std::io::stdout().lock(), &text)?;
        return match answer.hint(&to) {
            _ if answer.is_success() => Ok(()),
            Some(hint) => Err(hint.into()),
            None => Err(format!("the answer is not a 2xx (HTTP {})", answer.status).into()),
        };
    }
    webhook_core::logging::init_readable();
    let server = devserver::start(devserver::Options {
        listen: cli.listen,
        admin_listen: cli.admin_listen,
        config: cli.config,
        data: cli.data,
        workers: cli.workers,
        visibility: Duration::from_secs(cli.visibility_timeout.max(1)),
        max_receives: cli.max_receives,
        retry_backoff: Duration::from_secs(cli.retry_backoff),
        ..devserver::Options::default()
    })
    .await?;
    stop_requested().await?;
    tracing::info!("shutting down: finishing in-flight requests and batches");
    server.shutdown().await;
    Ok(())
}

/// Ctrl-C (SIGINT) or, on Unix, SIGTERM (`kill`, service managers): both stop gracefully.
async fn stop_requested() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            interrupted = tokio::signal::ctrl_c() => interrupted,
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}
