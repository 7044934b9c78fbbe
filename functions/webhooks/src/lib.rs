//! `webhooks`, the admin command line: finds stored webhooks, replays them, redrives the
//! dead-letter queue, releases quarantined deliveries, erases a subject and counts — on the
//! deployed stack (DynamoDB + SQS, found through the stack's outputs) or on the dev server's
//! SQLite database. A thin shell around the core's [`Operations`]: what an operation means is
//! decided there, once; this crate finds the ports, parses flags and prints.
//!
//! [`run`] takes the arguments and returns what to print and the exit code (0 ok, 1 the
//! operation failed, 2 usage), so the end-to-end tests drive it in-process.
//!
//! [`Operations`]: webhook_core::operate::Operations

use std::ffi::OsString;

use clap::Parser;
use webhook_core::operate::OperateError;

mod args;
mod check;
mod commands;
mod connect;
mod dlq;
mod drift;
mod place;
mod print;
mod tenants;

pub use args::Since;
pub use place::{DEAD_LETTER_OUTPUT, QUEUE_OUTPUT, TABLE_OUTPUT};

use args::Cli;
use commands::execute;

/// What a run prints and how it exits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// 0 ok, 1 the operation failed, 2 usage.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Why a run failed: a usage mistake (exit 2) or an operation that did not succeed (exit 1).
#[derive(Debug)]
enum Failure {
    Usage(String),
    Operation(String),
}

impl From<OperateError> for Failure {
    fn from(error: OperateError) -> Self {
        Failure::Operation(error.to_string())
    }
}

type Result<T, E = Failure> = std::result::Result<T, E>;

/// Runs the command line: `args` as from [`std::env::args_os`] (the program name first).
pub async fn run<I, T>(args: I) -> Output
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let mut text = error.render().to_string();
            if !text.ends_with('\n') {
                text.push('\n');
            }
            return match error.kind() {
                clap::error::ErrorKind::DisplayHelp
                | clap::error::ErrorKind::DisplayVersion
                | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                    if error.exit_code() == 0 =>
                {
                    Output {
                        code: 0,
                        stdout: text,
                        stderr: String::new(),
                    }
                }
                _ => Output {
                    code: 2,
                    stdout: String::new(),
                    stderr: text,
                },
            };
        }
    };
    let mut out = String::new();
    let (code, stderr) = match execute(cli, &mut out).await {
        Ok(code) => (code, String::new()),
        Err(Failure::Usage(message)) => (2, format!("error: {message}\n")),
        Err(Failure::Operation(message)) => (1, format!("error: {message}\n")),
    };
    // Everything printed may quote what a sender wrote.
    Output {
        code,
        stdout: print::inert(&out),
        stderr: print::inert(&stderr),
    }
}
