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
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Post an API Gateway event file (events/<provider>/<file>.json) to a running server.
    Send {
        event_file: String,
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
        println!("HTTP {}\n{}", answer.status, answer.body);
        return Ok(());
    }
    shared::logging::init_readable();
    let server = devserver::start(devserver::Options {
        listen: cli.listen,
        admin_listen: cli.admin_listen,
        config: cli.config,
        data: cli.data,
        workers: cli.workers,
        visibility: Duration::from_secs(cli.visibility_timeout.max(1)),
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
