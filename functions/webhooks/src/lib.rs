//! `webhooks`, the admin command line: finds stored webhooks, replays them, redrives the
//! dead-letter queue, releases quarantined deliveries, erases a subject and counts — on the
//! deployed stack (DynamoDB + SQS, found through the stack's outputs) or on the dev server's
//! SQLite database. A thin shell around the core's [`Operations`]: what an operation means is
//! decided there, once; this crate finds the ports, parses flags and prints.
//!
//! [`run`] takes the arguments and returns what to print and the exit code (0 ok, 1 the
//! operation failed, 2 usage), so the end-to-end tests drive it in-process.

use std::collections::{BTreeMap, HashMap};
use std::error::Error as StdError;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use adapter_aws::{DynamoStore, SecretsManager, SqsQueue};
use adapter_sqlite::Database;
use aws_sdk_sqs::types::QueueAttributeName;
use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use shared::config::{IngestSettings, Settings};
use shared::operate::{Count, OperateError, Operations, Replayed};
use shared::ports::{Ports, QueueMessage, Record, Status};
use shared::process::ProcessorSettings;
use shared::tenants::{SecretReader, Tenant, TenantDirectory};

/// The stack outputs the command line reads (template.yaml, `Outputs`).
pub const TABLE_OUTPUT: &str = "EventsTableName";
pub const QUEUE_OUTPUT: &str = "WorkQueueUrl";
pub const DEAD_LETTER_OUTPUT: &str = "DeadLetterQueueUrl";
/// The stack parameter holding the retention period (the default `--since`).
const RETENTION_PARAMETER: &str = "RetentionDays";
/// Where the dev server's configuration points a tenant's API at its own sandbox; irrelevant
/// to what the command line does with tenants (parsing a quarantined body again).
const SANDBOX_BASE: &str = "http://127.0.0.1:8081/_sandbox";

/// What a run prints and how it exits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// 0 ok, 1 the operation failed, 2 usage.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

const ABOUT: &str = "Operate the webhook ingestion: find stored webhooks, replay them, redrive \
the dead-letter queue, release quarantined deliveries, erase a subject, count.";

const LONG_ABOUT: &str = "Operate the webhook ingestion: find stored webhooks, replay them, \
redrive the dead-letter queue, release quarantined deliveries, erase a subject, count.

Say where the events are with one of:
  --stack NAME                  the deployed stack: its outputs name the table and queues
                                (AWS credentials and region as usual: AWS_PROFILE, AWS_REGION …)
  --table NAME --queue URL [--dlq URL]
                                a table and queues named directly (AWS_ENDPOINT_URL is honoured)
  --local devserver.db          the dev server's database (its tenants from --config)

--json prints one JSON document for scripts. Exit codes: 0 ok, 1 the operation failed, 2 usage.";

#[derive(Debug, Parser)]
#[command(name = "webhooks", version, about = ABOUT, long_about = LONG_ABOUT)]
struct Cli {
    #[command(flatten)]
    target: TargetArgs,
    /// Print one JSON document instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct TargetArgs {
    /// The deployed stack (CloudFormation): reads the table and queue URLs from its outputs.
    #[arg(long, global = true, value_name = "NAME", conflicts_with_all = ["table", "queue", "dlq", "local"])]
    stack: Option<String>,
    /// The events table (DynamoDB), instead of --stack.
    #[arg(long, global = true, value_name = "NAME", requires = "queue")]
    table: Option<String>,
    /// The work queue's URL (SQS), with --table.
    #[arg(long, global = true, value_name = "URL", requires = "table")]
    queue: Option<String>,
    /// The dead-letter queue's URL (SQS), with --table; needed by `dlq`.
    #[arg(long, global = true, value_name = "URL", requires = "table")]
    dlq: Option<String>,
    /// The dev server's database file (its --data), instead of AWS.
    #[arg(long, global = true, value_name = "PATH", conflicts_with_all = ["table", "queue", "dlq"])]
    local: Option<PathBuf>,
    /// With --local: the dev server's configuration, where `quarantine release` finds tenants.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        default_value = "devserver.toml"
    )]
    config: PathBuf,
    /// On AWS: the tenants document ({"tenants": [...]}) of the provider whose delivery
    /// `quarantine release` parses again; without it, the stack's <Provider>TenantsSecretArn.
    #[arg(long, global = true, value_name = "FILE")]
    tenants_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Find stored webhooks by provider, tenant, status and time; show one.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Send events through the queue again, each exactly once (by key, or every one in a status).
    Replay(ReplayArgs),
    /// The dead-letter queue: what waits there, and moving it back to the work queue.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Authentic deliveries that could not be read: list, show, release through the current parser.
    #[command(subcommand)]
    Quarantine(QuarantineCommand),
    /// Erase what is held about one person or object (raw bodies and fetched details).
    #[command(after_help = ERASE_HELP)]
    Erase(EraseArgs),
    /// Counts by provider and status.
    Stats {
        /// Received since: a duration back from now (30m, 2h, 3d, 1w) or an RFC 3339 time;
        /// default: the retention period.
        #[arg(long, value_parser = parse_since, value_name = "WHEN")]
        since: Option<Since>,
    },
    /// Print a `sam local` env-vars file (JSON) for every function: the stack's table and queue.
    ///
    /// `webhooks sam-env --stack NAME > env.json; sam local start-api --env-vars env.json` runs
    /// the local build against the real table and queue (and the stack's tenants secrets).
    SamEnv,
}

#[derive(Debug, Subcommand)]
enum EventsCommand {
    /// Stored webhooks, newest first (through the listing indexes, never a table scan).
    List(Filters),
    /// One stored webhook: raw body, fetched detail, attempts, last error, times, facts.
    Show {
        /// The dedup key (`<provider>#<tenant>#…`, as `events list` shows it).
        key: String,
    },
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// Messages in the dead-letter queue, with their records' status and last error.
    List {
        /// At most this many messages.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Moves every dead-lettered message back to the work queue (once its cause is fixed).
    Redrive,
}

#[derive(Debug, Subcommand)]
enum QuarantineCommand {
    /// Quarantined deliveries, newest first, with the parser's reason.
    List(QuarantineFilters),
    /// One quarantined delivery, with its raw body.
    Show { key: String },
    /// Parses a quarantined delivery again with the current parser and tenants; if it reads
    /// now, stores and queues it under its real dedup key (once) and marks the quarantined
    /// record released.
    Release { key: String },
}

#[derive(Debug, Args)]
struct Filters {
    /// magicline, egym, timify, flybuy or waitwhile; default: every provider.
    #[arg(long)]
    provider: Option<String>,
    #[arg(long)]
    tenant: Option<String>,
    /// RECEIVED, QUEUED, PROCESSING, PROCESSED, FAILED or QUARANTINED.
    #[arg(long, value_parser = parse_status)]
    status: Option<Status>,
    /// Received since: a duration back from now (30m, 2h, 3d, 1w) or an RFC 3339 time;
    /// default: the retention period.
    #[arg(long, value_parser = parse_since, value_name = "WHEN")]
    since: Option<Since>,
    /// At most this many events.
    #[arg(long, default_value_t = 50)]
    limit: usize,
}

#[derive(Debug, Args)]
struct QuarantineFilters {
    #[arg(long)]
    provider: Option<String>,
    #[arg(long)]
    tenant: Option<String>,
    #[arg(long, value_parser = parse_since, value_name = "WHEN")]
    since: Option<Since>,
    #[arg(long, default_value_t = 50)]
    limit: usize,
}

#[derive(Debug, Args)]
struct ReplayArgs {
    /// Dedup keys to replay.
    #[arg(required_unless_present = "status", conflicts_with = "status")]
    keys: Vec<String>,
    /// Replay every event in this status instead (usually FAILED).
    #[arg(long, value_parser = parse_status)]
    status: Option<Status>,
    /// With --status: only this provider's.
    #[arg(long, requires = "status")]
    provider: Option<String>,
    /// With --status: only this tenant's.
    #[arg(long, requires = "status")]
    tenant: Option<String>,
    /// With --status: received since (30m, 2h, 3d or an RFC 3339 time); default: the retention period.
    #[arg(long, value_parser = parse_since, value_name = "WHEN", requires = "status")]
    since: Option<Since>,
    /// With --status: at most this many events.
    #[arg(long, default_value_t = 10_000)]
    limit: usize,
}

const ERASE_HELP: &str =
    "The subject is `<kind>:<id>`, the kind being what the provider's event is \
about (the `subject` each provider file in shared/src/providers/ gives its events):
  magicline  customer:<id>, employee:<id>, and for other events the entity their type names:
             appointment-booking, class-booking, class-slot, device, studio, debt-collection-run,
             debt-collection-case, tax-advisor-export … (the entityId of the webhook)
  egym       account:<accountId>
  timify     booking:<id> (event.*, events.*, beforeConfirmations.*, beforeReminders.*), else the
             family without its plural s: customer:<id>, service:<id>, resource:<id> …
  flybuy     order:<data.id>
  waitwhile  the event family: visit:<id>, location:<id> (location-status.* too), message:<id> …
`customer:42` and `employee:42` are different people. `webhooks events show KEY` prints a
record's subject. A tombstone stays for the retention period, so later deliveries about the
subject keep no body either.";

#[derive(Debug, Args)]
struct EraseArgs {
    #[arg(long)]
    provider: String,
    #[arg(long)]
    tenant: String,
    /// `<kind>:<id>`, e.g. customer:42 (see below).
    #[arg(long)]
    subject: String,
}

/// A `--since` value: a duration back from now, or a point in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    Ago(Duration),
    At(i64),
}

impl Since {
    fn at(self, now_ms: i64) -> i64 {
        match self {
            Since::Ago(duration) => now_ms - duration.as_millis() as i64,
            Since::At(ms) => ms,
        }
    }
}

fn parse_since(text: &str) -> Result<Since, String> {
    let text = text.trim();
    if let Ok(time) = text.parse::<jiff::Timestamp>() {
        return Ok(Since::At(time.as_millisecond()));
    }
    let unit_at = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(unit_at);
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => 0,
    };
    match number.parse::<u64>() {
        Ok(n) if seconds > 0 => Ok(Since::Ago(Duration::from_secs(n.saturating_mul(seconds)))),
        _ => Err(format!(
            "{text:?}: give a duration back from now (30m, 2h, 3d, 1w) or an RFC 3339 time \
             (2025-01-31T12:00:00Z)"
        )),
    }
}

fn parse_status(text: &str) -> Result<Status, String> {
    Status::parse(&text.to_ascii_uppercase()).ok_or_else(|| {
        let names: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
        format!("{text:?} is not a status; one of {}", names.join(", "))
    })
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
    match execute(cli, &mut out).await {
        Ok(code) => Output {
            code,
            stdout: out,
            stderr: String::new(),
        },
        Err(Failure::Usage(message)) => Output {
            code: 2,
            stdout: out,
            stderr: format!("error: {message}\n"),
        },
        Err(Failure::Operation(message)) => Output {
            code: 1,
            stdout: out,
            stderr: format!("error: {message}\n"),
        },
    }
}

/// Runs a parsed command, writing what it prints to `out`; returns the exit code.
async fn execute(cli: Cli, out: &mut String) -> Result<i32> {
    let json = cli.json;
    if let Command::SamEnv = cli.command {
        let aws = aws_place(&cli.target).await?;
        let env = sam_env(&aws).await?;
        writeln!(out, "{}", pretty(&env)).ok();
        return Ok(0);
    }
    let target = Target::open(&cli.target).await?;
    match cli.command {
        Command::Events(EventsCommand::List(filters)) => {
            let records = target.list(&filters, filters.status).await?;
            print_records(out, json, &records, &filters_json(&filters), filters.limit);
            Ok(0)
        }
        Command::Events(EventsCommand::Show { key }) => {
            let record = target.operations.show(&key).await?;
            print_record(out, json, &record);
            Ok(0)
        }
        Command::Replay(args) => replay(&target, args, json, out).await,
        Command::Dlq(DlqCommand::List { limit }) => {
            let letters = target.dead_letters(limit).await?;
            print_dead_letters(out, json, &letters);
            Ok(0)
        }
        Command::Dlq(DlqCommand::Redrive) => {
            let moved = target.redrive().await?;
            if json {
                writeln!(
                    out,
                    "{}",
                    pretty(&json!({ "moved": moved.count, "method": moved.method }))
                )
                .ok();
            } else {
                writeln!(
                    out,
                    "moved {} message(s) from the dead-letter queue back to the work queue ({})",
                    moved.count, moved.how
                )
                .ok();
            }
            Ok(0)
        }
        Command::Quarantine(QuarantineCommand::List(q)) => {
            let filters = Filters {
                provider: q.provider,
                tenant: q.tenant,
                status: Some(Status::Quarantined),
                since: q.since,
                limit: q.limit,
            };
            let records = target.list(&filters, filters.status).await?;
            print_records(out, json, &records, &filters_json(&filters), filters.limit);
            Ok(0)
        }
        Command::Quarantine(QuarantineCommand::Show { key }) => {
            let record = target.operations.show(&key).await?;
            print_record(out, json, &record);
            Ok(0)
        }
        Command::Quarantine(QuarantineCommand::Release { key }) => {
            let record = target.operations.show(&key).await?;
            if record.status != Status::Quarantined {
                return Err(OperateError::NotQuarantined(key, record.status.as_str()).into());
            }
            let tenants = target.tenants(&record.provider).await?;
            let released_as = target.operations.release(&key, &tenants).await?;
            if json {
                writeln!(
                    out,
                    "{}",
                    pretty(&json!({ "released": key, "as": released_as }))
                )
                .ok();
            } else {
                writeln!(
                    out,
                    "released {key}\n      as {released_as} (stored and queued once under its dedup key)"
                )
                .ok();
            }
            Ok(0)
        }
        Command::Erase(args) => {
            if !args.subject.contains(':') {
                return Err(Failure::Usage(format!(
                    "--subject {:?}: give <kind>:<id>, e.g. customer:42 (see `webhooks erase --help`)",
                    args.subject
                )));
            }
            let erased = target
                .operations
                .erase(&args.provider, &args.tenant, &args.subject)
                .await?;
            let subject = shared::ports::subject_of(&args.provider, &args.tenant, &args.subject);
            if json {
                writeln!(
                    out,
                    "{}",
                    pretty(&json!({ "subject": subject, "records_erased": erased }))
                )
                .ok();
            } else {
                writeln!(
                    out,
                    "erased {subject}: {erased} record(s) now without body and detail; a tombstone \
                     keeps later deliveries about it from keeping theirs"
                )
                .ok();
            }
            Ok(0)
        }
        Command::Stats { since } => {
            let since_ms = since.map(|s| s.at(target.now_ms()));
            let counts = target.operations.stats(since_ms).await?;
            print_stats(out, json, &counts);
            Ok(0)
        }
        Command::SamEnv => unreachable!("handled above"),
    }
}

/// Where the events are, and the core's operations on them.
struct Target {
    operations: Operations,
    ports: Ports,
    place: Place,
}

enum Place {
    Aws(Box<AwsPlace>),
    Local { database: Database, config: PathBuf },
}

/// The deployed (or moto's) table and queues.
struct AwsPlace {
    config: aws_config::SdkConfig,
    table: String,
    queue_url: String,
    dead_letter_url: Option<String>,
    stack: Option<Stack>,
    tenants_file: Option<PathBuf>,
}

struct Stack {
    name: String,
    outputs: BTreeMap<String, String>,
    parameters: BTreeMap<String, String>,
    /// Logical id -> physical id, read when first needed.
    resources: tokio::sync::OnceCell<BTreeMap<String, String>>,
}

impl Target {
    async fn open(args: &TargetArgs) -> Result<Target> {
        let mut settings = Settings::from_env()
            .map(|settings| settings.ingest)
            .unwrap_or_else(|_| IngestSettings::default());
        if let Some(path) = &args.local {
            if !path.is_file() {
                return Err(Failure::Operation(format!(
                    "{}: no such database file: pass the dev server's --data file with --local \
                     (it is created when the dev server first starts: cargo run -p devserver)",
                    path.display()
                )));
            }
            let database = Database::open(path)
                .map_err(|e| Failure::Operation(format!("{}: {e}", path.display())))?;
            let (ports, _) = adapter_sqlite::ports(
                &database,
                ProcessorSettings::default().max_receives,
                shared::clock::system(),
            );
            return Ok(Target {
                operations: Operations::new(ports.clone(), settings),
                ports,
                place: Place::Local {
                    database,
                    config: args.config.clone(),
                },
            });
        }
        let aws = aws_place(args).await?;
        if let Some(days) = aws
            .stack
            .as_ref()
            .and_then(|stack| stack.parameters.get(RETENTION_PARAMETER))
            .and_then(|days| days.parse::<u64>().ok())
        {
            settings.retention = Duration::from_secs(days * 86_400);
        }
        let store = DynamoStore::new(aws_sdk_dynamodb_client(&aws.config), &aws.table);
        let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&aws.config), &aws.queue_url);
        let ports = adapter_aws::ports(store, queue, shared::clock::system());
        Ok(Target {
            operations: Operations::new(ports.clone(), settings),
            ports,
            place: Place::Aws(Box::new(aws)),
        })
    }

    fn now_ms(&self) -> i64 {
        self.ports.clock.now_ms()
    }

    async fn list(&self, filters: &Filters, status: Option<Status>) -> Result<Vec<Record>> {
        let since_ms = filters.since.map(|since| since.at(self.now_ms()));
        let filter = self.operations.filter(
            filters.provider.as_deref(),
            filters.tenant.as_deref(),
            status,
            since_ms,
            filters.limit,
        )?;
        Ok(self.operations.list(&filter).await?)
    }

    /// The current tenants of `provider`, for a release.
    async fn tenants(&self, provider: &str) -> Result<TenantDirectory> {
        match &self.place {
            Place::Local { config, .. } => {
                let text = std::fs::read_to_string(config).map_err(|e| {
                    Failure::Operation(format!(
                        "{}: {e}: pass the dev server's configuration with --config PATH",
                        config.display()
                    ))
                })?;
                let tenants = dev_server_tenants(&text, provider)
                    .map_err(|e| Failure::Operation(format!("{}: {e}", config.display())))?;
                TenantDirectory::new(tenants)
                    .map_err(|e| Failure::Operation(format!("{}: {e}", config.display())))
            }
            Place::Aws(aws) => {
                let document = if let Some(file) = &aws.tenants_file {
                    std::fs::read_to_string(file).map_err(|e| {
                        Failure::Operation(format!("--tenants-file {}: {e}", file.display()))
                    })?
                } else if let Some(stack) = &aws.stack {
                    let secret = stack
                        .tenants_secret(&aws.config, provider)
                        .await?
                        .ok_or_else(|| {
                            Failure::Operation(format!(
                                "stack {} has no {} output or resource: pass --tenants-file FILE \
                             with {provider}'s tenants document",
                                stack.name,
                                tenants_secret_id(provider)
                            ))
                        })?;
                    SecretsManager::new(&aws.config)
                        .read(&secret)
                        .await
                        .map_err(|e| Failure::Operation(with_hint(e)))?
                } else {
                    return Err(Failure::Usage(format!(
                        "releasing needs {provider}'s current tenants: pass --tenants-file FILE \
                         (its tenants document, {{\"tenants\": [...]}}) or use --stack NAME"
                    )));
                };
                TenantDirectory::from_json(&document)
                    .map_err(|e| Failure::Operation(format!("{provider}'s tenants document: {e}")))
            }
        }
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        let messages: Vec<(Option<String>, String)> = match &self.place {
            Place::Local { database, .. } => database
                .dead_letters()
                .await
                .map_err(|e| Failure::Operation(e.to_string()))?
                .into_iter()
                .take(limit)
                .map(|message| (None, serde_json::to_string(&message).unwrap_or_default()))
                .collect(),
            Place::Aws(aws) => peek_dead_letters(aws, limit).await?,
        };
        let mut letters = Vec::new();
        for (id, body) in messages {
            let message: Option<QueueMessage> = serde_json::from_str(&body).ok();
            let record = match &message {
                Some(message) => self.operations.show(&message.key).await.ok(),
                None => None,
            };
            letters.push(DeadLetter {
                id,
                body,
                message,
                record,
            });
        }
        Ok(letters)
    }

    async fn redrive(&self) -> Result<Moved> {
        match &self.place {
            Place::Local { database, .. } => {
                let count = database
                    .redrive_dead_letters(self.now_ms())
                    .await
                    .map_err(|e| Failure::Operation(e.to_string()))?;
                Ok(Moved {
                    count: count as u64,
                    method: "database",
                    how: "one transaction in the dev server's database".into(),
                })
            }
            Place::Aws(aws) => redrive_sqs(aws).await,
        }
    }
}

impl Stack {
    async fn read(config: &aws_config::SdkConfig, name: &str) -> Result<Stack> {
        let client = aws_sdk_cloudformation::Client::new(config);
        let described = client
            .describe_stacks()
            .stack_name(name)
            .send()
            .await
            .map_err(|e| {
                use aws_sdk_cloudformation::error::ProvideErrorMetadata;
                let missing = e.as_service_error().is_some_and(|service| {
                    service.code() == Some("ValidationError")
                        && service
                            .message()
                            .is_some_and(|m| m.contains("does not exist"))
                });
                if missing {
                    Failure::Operation(format!(
                        "no stack {name} in {}: check --stack and AWS_REGION",
                        region_name(config)
                    ))
                } else {
                    Failure::Operation(aws_hint(e))
                }
            })?;
        let stack = described.stacks().first().ok_or_else(|| {
            Failure::Operation(format!(
                "no stack {name} in {}: check --stack and AWS_REGION",
                region_name(config)
            ))
        })?;
        Ok(Stack {
            name: name.to_string(),
            outputs: stack
                .outputs()
                .iter()
                .filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string())))
                .collect(),
            parameters: stack
                .parameters()
                .iter()
                .filter_map(|p| {
                    Some((
                        p.parameter_key()?.to_string(),
                        p.parameter_value()?.to_string(),
                    ))
                })
                .collect(),
            resources: tokio::sync::OnceCell::new(),
        })
    }

    fn output(&self, name: &str) -> Result<String> {
        self.outputs.get(name).cloned().ok_or_else(|| {
            Failure::Operation(format!(
                "stack {} has no output {name}: deploy the current template.yaml (sam deploy), \
                 or name the table and queues with --table/--queue/--dlq",
                self.name
            ))
        })
    }

    /// The secret holding `provider`'s tenants: the stack's `<Provider>TenantsSecretArn` output
    /// (or `<Provider>TenantsSecret`), else its resource of that logical id.
    async fn tenants_secret(
        &self,
        config: &aws_config::SdkConfig,
        provider: &str,
    ) -> Result<Option<String>> {
        let id = tenants_secret_id(provider);
        for output in [format!("{id}Arn"), id.clone()] {
            if let Some(secret) = self.outputs.get(&output) {
                return Ok(Some(secret.clone()));
            }
        }
        let resources = self
            .resources
            .get_or_try_init(|| async {
                let client = aws_sdk_cloudformation::Client::new(config);
                let mut resources = BTreeMap::new();
                let mut next = None;
                loop {
                    let page = client
                        .list_stack_resources()
                        .stack_name(&self.name)
                        .set_next_token(next)
                        .send()
                        .await
                        .map_err(|e| Failure::Operation(aws_hint(e)))?;
                    for summary in page.stack_resource_summaries() {
                        if let (Some(logical), Some(physical)) = (
                            summary.logical_resource_id(),
                            summary.physical_resource_id(),
                        ) {
                            resources.insert(logical.to_string(), physical.to_string());
                        }
                    }
                    next = page.next_token().map(str::to_string);
                    if next.is_none() {
                        return Ok::<_, Failure>(resources);
                    }
                }
            })
            .await?;
        Ok(resources.get(&id).cloned())
    }
}

/// One provider's tenants in the dev server's configuration (devserver.toml: a `[[<provider>.tenants]]`
/// table per tenant), read as the dev server reads it.
fn dev_server_tenants(text: &str, provider: &str) -> Result<Vec<Tenant>, String> {
    #[derive(serde::Deserialize)]
    struct ProviderSection {
        #[serde(default)]
        tenants: Vec<Tenant>,
    }
    let text = text.replace("{sandbox}", SANDBOX_BASE);
    let mut sections: HashMap<String, ProviderSection> =
        toml::from_str(&text).map_err(|e| e.to_string())?;
    Ok(sections
        .remove(provider)
        .map(|section| section.tenants)
        .unwrap_or_default())
}

/// `Magicline` of `magicline`: how template.yaml names a provider's resources.
fn logical_name(provider: &str) -> String {
    let mut chars = provider.chars();
    match chars.next() {
        Some(first) => format!("{}{}", first.to_ascii_uppercase(), chars.as_str()),
        None => String::new(),
    }
}

/// `MagiclineTenantsSecret`.
fn tenants_secret_id(provider: &str) -> String {
    format!("{}TenantsSecret", logical_name(provider))
}

fn region_name(config: &aws_config::SdkConfig) -> String {
    config
        .region()
        .map_or_else(|| "(no region)".to_string(), |r| r.to_string())
}

/// SDK configuration for an operator's machine: the usual credential chain, region and
/// `AWS_ENDPOINT_URL`, the functions' HTTPS client, and timeouts for a person waiting.
async fn sdk_config() -> Result<aws_config::SdkConfig> {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(adapter_aws::sdk::https_client())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(20))
                .operation_timeout(Duration::from_secs(60))
                .build(),
        )
        .load()
        .await;
    if config.region().is_none() {
        return Err(Failure::Usage(
            "no AWS region: set AWS_REGION (or a region in your AWS profile)".into(),
        ));
    }
    Ok(config)
}

fn aws_sdk_dynamodb_client(config: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config)
}

async fn aws_place(args: &TargetArgs) -> Result<AwsPlace> {
    if args.local.is_some() {
        return Err(Failure::Usage(
            "sam-env works on AWS: pass --stack NAME (or --table/--queue)".into(),
        ));
    }
    if args.stack.is_none() && args.table.is_none() {
        return Err(Failure::Usage(
            "say where the events are: --stack NAME (the deployed stack), --table NAME --queue URL \
             [--dlq URL], or --local devserver.db (the dev server's database)"
                .into(),
        ));
    }
    let config = sdk_config().await?;
    if let Some(name) = &args.stack {
        let stack = Stack::read(&config, name).await?;
        return Ok(AwsPlace {
            table: stack.output(TABLE_OUTPUT)?,
            queue_url: stack.output(QUEUE_OUTPUT)?,
            dead_letter_url: stack.outputs.get(DEAD_LETTER_OUTPUT).cloned(),
            stack: Some(stack),
            tenants_file: args.tenants_file.clone(),
            config,
        });
    }
    match (&args.table, &args.queue) {
        (Some(table), Some(queue)) => Ok(AwsPlace {
            table: table.clone(),
            queue_url: queue.clone(),
            dead_letter_url: args.dlq.clone(),
            stack: None,
            tenants_file: args.tenants_file.clone(),
            config,
        }),
        _ => Err(Failure::Usage(
            "say where the events are: --stack NAME (the deployed stack), --table NAME --queue URL \
             [--dlq URL], or --local devserver.db (the dev server's database)"
                .into(),
        )),
    }
}

/// An AWS error with what to do about it.
fn aws_hint<E: StdError + 'static>(error: E) -> String {
    let mut chain = String::new();
    let mut source: Option<&(dyn StdError + 'static)> = Some(&error);
    while let Some(error) = source {
        chain.push_str(&error.to_string());
        chain.push_str(": ");
        source = error.source();
    }
    with_hint(chain.trim_end_matches(": ").to_string())
}

/// An AWS error's text with what to do about it.
fn with_hint(chain: String) -> String {
    let lower = chain.to_ascii_lowercase();
    if lower.contains("credential") {
        format!(
            "{chain}\nno usable AWS credentials: set AWS_PROFILE (or AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY; for SSO profiles, `eval $(aws configure export-credentials \
             --format env)`) and try again"
        )
    } else if lower.contains("accessdenied") || lower.contains("not authorized") {
        format!("{chain}\nyour AWS identity may not do this: ask for the permission named above")
    } else if lower.contains("nonexistentqueue") || lower.contains("resourcenotfound") {
        format!("{chain}\ncheck the table and queue names (--stack, or --table/--queue/--dlq) and AWS_REGION")
    } else {
        chain
    }
}

/// A dead-lettered message and the record it names.
struct DeadLetter {
    /// The SQS message id (none in the dev server's table).
    id: Option<String>,
    body: String,
    message: Option<QueueMessage>,
    record: Option<Record>,
}

struct Moved {
    count: u64,
    method: &'static str,
    how: String,
}

async fn queue_attribute(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    name: QueueAttributeName,
) -> Result<Option<String>> {
    let answer = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(name.clone())
        .send()
        .await
        .map_err(|e| Failure::Operation(aws_hint(e)))?;
    Ok(answer.attributes().and_then(|a| a.get(&name)).cloned())
}

fn dead_letter_url(aws: &AwsPlace) -> Result<&str> {
    aws.dead_letter_url.as_deref().ok_or_else(|| {
        Failure::Usage(match &aws.stack {
            Some(stack) => format!(
                "stack {} has no output {DEAD_LETTER_OUTPUT}: deploy the current template.yaml, \
                 or pass --table/--queue/--dlq",
                stack.name
            ),
            None => "the dead-letter queue is not known: pass --dlq URL".into(),
        })
    })
}

/// Reads up to `limit` dead-lettered messages without taking them: each is made visible again
/// right after (a redrive can follow at once).
async fn peek_dead_letters(aws: &AwsPlace, limit: usize) -> Result<Vec<(Option<String>, String)>> {
    let url = dead_letter_url(aws)?;
    let sqs = aws_sdk_sqs::Client::new(&aws.config);
    let mut seen = Vec::new();
    let mut handles = Vec::new();
    while seen.len() < limit {
        let received = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages((limit - seen.len()).clamp(1, 10) as i32)
            .visibility_timeout(30)
            .send()
            .await
            .map_err(|e| Failure::Operation(aws_hint(e)))?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for message in messages {
            handles.extend(message.receipt_handle.clone());
            seen.push((message.message_id, message.body.unwrap_or_default()));
        }
    }
    for handle in handles {
        let _ = sqs
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(handle)
            .visibility_timeout(0)
            .send()
            .await;
    }
    Ok(seen)
}

fn progress_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} ({elapsed})")
    {
        bar.set_style(style);
    }
    bar.set_message(what.to_string());
    bar
}

/// Moves every message of the dead-letter queue back to the work queue: an SQS message move
/// task, followed to its end; where the endpoint has no such task (moto), each message is
/// received, sent to the work queue with its body and deleted.
async fn redrive_sqs(aws: &AwsPlace) -> Result<Moved> {
    use aws_sdk_sqs::error::ProvideErrorMetadata;
    let dead_letter_url = dead_letter_url(aws)?;
    let sqs = aws_sdk_sqs::Client::new(&aws.config);
    let source = queue_attribute(&sqs, dead_letter_url, QueueAttributeName::QueueArn).await?;
    let destination = queue_attribute(&sqs, &aws.queue_url, QueueAttributeName::QueueArn).await?;
    let (Some(source), Some(destination)) = (source, destination) else {
        return Err(Failure::Operation(
            "the queues did not say their ARNs: check --queue and --dlq".into(),
        ));
    };
    let started = sqs
        .start_message_move_task()
        .source_arn(&source)
        .destination_arn(&destination)
        .customize()
        .config_override(
            aws_sdk_sqs::config::Config::builder()
                .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled()),
        )
        .send()
        .await;
    match started {
        Ok(task) => follow_move_task(&sqs, &source, task.task_handle().unwrap_or_default()).await,
        Err(error) => {
            let code = error
                .as_service_error()
                .and_then(|e| e.code())
                .map(str::to_string);
            let unsupported = match (&error, code.as_deref()) {
                (_, Some("UnsupportedOperation" | "InvalidAction" | "NotImplemented")) => true,
                // An answer that is no SQS error at all: the endpoint does not know the call.
                (aws_sdk_sqs::error::SdkError::ServiceError(_), None) => true,
                _ => false,
            };
            if !unsupported {
                return Err(Failure::Operation(aws_hint(error)));
            }
            copy_messages(&sqs, dead_letter_url, &aws.queue_url).await
        }
    }
}

async fn follow_move_task(sqs: &aws_sdk_sqs::Client, source: &str, handle: &str) -> Result<Moved> {
    let bar = progress_bar(0, "moving (message move task)");
    loop {
        let tasks = sqs
            .list_message_move_tasks()
            .source_arn(source)
            .max_results(10)
            .send()
            .await
            .map_err(|e| Failure::Operation(aws_hint(e)))?;
        let task = tasks
            .results()
            .iter()
            .find(|t| {
                handle.is_empty() || t.task_handle() == Some(handle) || t.task_handle().is_none()
            })
            .or_else(|| tasks.results().first());
        let Some(task) = task else {
            bar.finish_and_clear();
            return Err(Failure::Operation(
                "the message move task is not listed: see the SQS console's dead-letter queue redrive".into(),
            ));
        };
        let moved = task.approximate_number_of_messages_moved().max(0) as u64;
        if let Some(total) = task.approximate_number_of_messages_to_move() {
            bar.set_length(total.max(0) as u64);
        }
        bar.set_position(moved);
        match task.status().unwrap_or("RUNNING") {
            "RUNNING" | "CANCELLING" => tokio::time::sleep(Duration::from_secs(2)).await,
            "COMPLETED" => {
                bar.finish_and_clear();
                return Ok(Moved {
                    count: moved,
                    method: "move-task",
                    how: "an SQS message move task".into(),
                });
            }
            other => {
                bar.finish_and_clear();
                return Err(Failure::Operation(format!(
                    "the message move task ended {other} after {moved} message(s): {}; run \
                     `webhooks dlq redrive` again once that is fixed",
                    task.failure_reason().unwrap_or("no reason given")
                )));
            }
        }
    }
}

/// Receive, send (the body as it was), delete: at least once, so a message may come back
/// twice if a delete fails — the processor skips what is already done.
async fn copy_messages(sqs: &aws_sdk_sqs::Client, from: &str, to: &str) -> Result<Moved> {
    let waiting = queue_attribute(sqs, from, QueueAttributeName::ApproximateNumberOfMessages)
        .await?
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    let bar = progress_bar(waiting, "moving (receive, send, delete)");
    let mut moved = 0;
    loop {
        let received = sqs
            .receive_message()
            .queue_url(from)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .send()
            .await
            .map_err(|e| Failure::Operation(aws_hint(e)))?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for message in messages {
            sqs.send_message()
                .queue_url(to)
                .message_body(message.body.unwrap_or_default())
                .send()
                .await
                .map_err(|e| Failure::Operation(aws_hint(e)))?;
            if let Some(handle) = message.receipt_handle {
                sqs.delete_message()
                    .queue_url(from)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .map_err(|e| Failure::Operation(aws_hint(e)))?;
            }
            moved += 1;
            if moved > bar.length().unwrap_or(0) {
                bar.set_length(moved);
            }
            bar.set_position(moved);
        }
    }
    bar.finish_and_clear();
    Ok(Moved {
        count: moved,
        method: "copy",
        how: "received, sent with the same body, deleted: the endpoint has no message move task"
            .into(),
    })
}

async fn replay(target: &Target, args: ReplayArgs, json: bool, out: &mut String) -> Result<i32> {
    let bulk = args.status.is_some();
    let keys: Vec<String> = match args.status {
        Some(status) => {
            let filters = Filters {
                provider: args.provider,
                tenant: args.tenant,
                status: Some(status),
                since: args.since,
                limit: args.limit,
            };
            target
                .list(&filters, Some(status))
                .await?
                .into_iter()
                .map(|record| record.key)
                .collect()
        }
        None => args.keys,
    };
    let bar = if bulk {
        progress_bar(keys.len() as u64, "replaying")
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut queued = Vec::new();
    let mut swept = Vec::new();
    let mut skipped = Vec::new();
    for key in keys {
        match target.operations.replay(&key).await {
            Ok(Replayed::Queued) => queued.push(key),
            Ok(Replayed::LeftToTheSweeper) => swept.push(key),
            Ok(Replayed::Skipped(reason)) => skipped.push((key, reason)),
            Err(error) => skipped.push((key, error.to_string())),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if json {
        let skipped: Vec<Value> = skipped
            .iter()
            .map(|(key, reason)| json!({ "key": key, "reason": reason }))
            .collect();
        writeln!(
            out,
            "{}",
            pretty(&json!({ "queued": queued, "left_to_the_sweeper": swept, "skipped": skipped }))
        )
        .ok();
    } else {
        writeln!(out, "queued:              {}", queued.len()).ok();
        let later = if swept.is_empty() {
            ""
        } else {
            " (stored for replay, but the queue write failed: the sweeper sends them within a minute)"
        };
        writeln!(out, "left to the sweeper: {}{later}", swept.len()).ok();
        writeln!(out, "skipped:             {}", skipped.len()).ok();
        let mut by_reason: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (key, reason) in &skipped {
            by_reason.entry(reason).or_default().push(key);
        }
        for (reason, keys) in by_reason {
            writeln!(out, "  {reason}: {}", keys.len()).ok();
            for key in keys.iter().take(20) {
                writeln!(out, "    {key}").ok();
            }
            if keys.len() > 20 {
                writeln!(out, "    … and {} more (--json lists all)", keys.len() - 20).ok();
            }
        }
    }
    // Keys named one by one that were not replayed make the run fail; in a bulk run, skips are
    // part of the summary.
    Ok(if !bulk && !skipped.is_empty() { 1 } else { 0 })
}

/// `{"<LogicalFunctionId>": {"TABLE_NAME": …, "QUEUE_URL": …}, …}` for every function of
/// template.yaml: each provider's webhook function, the processor and the sweeper; with the
/// stack, the tenants secrets and the processor's event bus too.
async fn sam_env(aws: &AwsPlace) -> Result<Value> {
    let base = json!({ "TABLE_NAME": aws.table, "QUEUE_URL": aws.queue_url });
    let mut functions = serde_json::Map::new();
    let mut processor = base.clone();
    for provider in shared::providers::all() {
        let name = provider.name();
        let mut env = base.clone();
        if let Some(stack) = &aws.stack {
            if let Some(secret) = stack.tenants_secret(&aws.config, name).await? {
                env["TENANTS_SECRET_ID"] = secret.clone().into();
                processor[format!("{}_TENANTS_SECRET_ID", name.to_ascii_uppercase())] =
                    secret.into();
            }
        }
        functions.insert(format!("{}WebhookFunction", logical_name(name)), env);
    }
    if let Some(stack) = &aws.stack {
        // Without it sam local resolves the template's `!Ref EventBus` to the logical id.
        let publishing = stack
            .parameters
            .get("PublishProcessedEvents")
            .is_none_or(|value| value == "true");
        if let (true, Some(bus)) = (publishing, stack.outputs.get("EventBusName")) {
            processor["EVENT_BUS_NAME"] = bus.clone().into();
        }
    }
    functions.insert("ProcessorFunction".into(), processor);
    functions.insert("SweeperFunction".into(), base);
    Ok(Value::Object(functions))
}

// ---- printing ------------------------------------------------------------------------------

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

fn time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| ms.to_string())
}

fn short_time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|_| ms.to_string())
}

/// A stored JSON text (raw body, detail, facts) exactly as written — key order and every digit
/// kept, a number beyond 2^64 included — or its text where it is not JSON.
enum Stored {
    Json(Box<RawValue>),
    Text(String),
    Nothing,
}

impl Stored {
    fn of(text: Option<&str>) -> Stored {
        match text {
            None => Stored::Nothing,
            Some(text) => RawValue::from_string(text.to_string())
                .map(Stored::Json)
                .unwrap_or_else(|_| Stored::Text(text.to_string())),
        }
    }

    /// The raw body; nothing once erased. A body that was not UTF-8 stays Base64 (the record's
    /// facts say `"body_encoding": "base64"`).
    fn body(record: &Record) -> Stored {
        if record.body.is_empty() && record.erased_at_ms.is_some() {
            return Stored::Nothing;
        }
        Stored::of(Some(&record.body))
    }

    /// Indented for people, still exactly the stored text otherwise.
    fn readable(&self) -> String {
        match self {
            Stored::Json(raw) => indent_json(raw.get()),
            Stored::Text(text) => text.clone(),
            Stored::Nothing => "(none)".to_string(),
        }
    }
}

impl Serialize for Stored {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Stored::Json(raw) => raw.serialize(serializer),
            Stored::Text(text) => serializer.serialize_str(text),
            Stored::Nothing => serializer.serialize_none(),
        }
    }
}

/// Re-indents valid JSON text without parsing its values, so nothing but whitespace changes.
fn indent_json(text: &str) -> String {
    shared::providers::pretty_json(text).unwrap_or_else(|| text.to_string())
}

/// A record as scripts get it; `body` and `detail` only for one record (`show`).
#[derive(Serialize)]
struct RecordJson {
    key: String,
    provider: String,
    tenant: String,
    #[serde(rename = "type")]
    event_type: String,
    entity_id: String,
    subject: String,
    status: &'static str,
    attempts: i64,
    received_at: String,
    processed_at: Option<String>,
    erased_at: Option<String>,
    last_error: Option<String>,
    unauthenticated: bool,
    facts: Stored,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<Stored>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<Stored>,
}

fn record_json(record: &Record, whole: bool) -> RecordJson {
    RecordJson {
        key: record.key.clone(),
        provider: record.provider.clone(),
        tenant: record.tenant.clone(),
        event_type: record.event_type.clone(),
        entity_id: record.entity_id.clone(),
        subject: record.subject.clone(),
        status: record.status.as_str(),
        attempts: record.attempts,
        received_at: time(record.received_at_ms),
        processed_at: record.processed_at_ms.map(time),
        erased_at: record.erased_at_ms.map(time),
        last_error: record.last_error.clone(),
        unauthenticated: record.unauthenticated,
        facts: Stored::of(record.facts.as_deref()),
        body: whole.then(|| Stored::body(record)),
        detail: whole.then(|| Stored::of(record.detail.as_deref())),
    }
}

/// One JSON document, indented.
fn pretty_of(value: &impl Serialize) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// An aligned table without borders; the columns in `numbers` are aligned right.
fn table(header: &[&str], rows: Vec<Vec<String>>, numbers: &[usize]) -> String {
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled)
        .set_header(header.to_vec());
    for row in rows {
        table.add_row(row);
    }
    for (i, column) in table.column_iter_mut().enumerate() {
        column.set_padding((0, 2));
        if numbers.contains(&i) {
            column.set_cell_alignment(comfy_table::CellAlignment::Right);
        }
    }
    let mut text = String::new();
    for line in table.to_string().lines() {
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

fn clip(text: &str, at: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() > at || text.lines().nth(1).is_some() {
        let clipped: String = line.chars().take(at.saturating_sub(1)).collect();
        format!("{clipped}…")
    } else {
        line.to_string()
    }
}

fn filters_json(filters: &Filters) -> Value {
    json!({
        "provider": filters.provider,
        "tenant": filters.tenant,
        "status": filters.status.map(Status::as_str),
        "limit": filters.limit,
    })
}

fn print_records(out: &mut String, json: bool, records: &[Record], filter: &Value, limit: usize) {
    if json {
        #[derive(Serialize)]
        struct Listing<'a> {
            filter: &'a Value,
            count: usize,
            events: Vec<RecordJson>,
        }
        let events: Vec<RecordJson> = records.iter().map(|r| record_json(r, false)).collect();
        let listing = Listing {
            filter,
            count: events.len(),
            events,
        };
        writeln!(out, "{}", pretty_of(&listing)).ok();
        return;
    }
    if records.is_empty() {
        writeln!(
            out,
            "no events match (widen --since, or check --provider/--tenant/--status)"
        )
        .ok();
        return;
    }
    let quarantine = records.iter().all(|r| r.status == Status::Quarantined);
    if quarantine {
        let rows = records
            .iter()
            .map(|r| {
                vec![
                    short_time(r.received_at_ms),
                    r.provider.clone(),
                    r.tenant.clone(),
                    r.key.clone(),
                    clip(r.last_error.as_deref().unwrap_or(""), 70),
                ]
            })
            .collect();
        out.push_str(&table(
            &["RECEIVED (UTC)", "PROVIDER", "TENANT", "KEY", "REASON"],
            rows,
            &[],
        ));
        writeln!(out, "{} quarantined, newest first", records.len()).ok();
        return;
    }
    let with_errors = records.iter().any(|r| r.last_error.is_some());
    let mut header = vec![
        "RECEIVED (UTC)",
        "PROVIDER",
        "TENANT",
        "TYPE",
        "STATUS",
        "TRIES",
        "KEY",
    ];
    if with_errors {
        header.push("LAST ERROR");
    }
    let rows = records
        .iter()
        .map(|r| {
            let mut row = vec![
                short_time(r.received_at_ms),
                r.provider.clone(),
                r.tenant.clone(),
                r.event_type.clone(),
                r.status.as_str().to_string(),
                r.attempts.to_string(),
                r.key.clone(),
            ];
            if with_errors {
                row.push(clip(r.last_error.as_deref().unwrap_or(""), 60));
            }
            row
        })
        .collect();
    out.push_str(&table(&header, rows, &[5]));
    let more = if records.len() >= limit {
        " (--limit reached: narrow with --since/--provider/--status or raise --limit)"
    } else {
        ""
    };
    writeln!(out, "{} event(s), newest first{more}", records.len()).ok();
}

fn print_record(out: &mut String, json: bool, record: &Record) {
    if json {
        writeln!(out, "{}", pretty_of(&record_json(record, true))).ok();
        return;
    }
    let mut lines: Vec<(&str, String)> = vec![
        ("key", record.key.clone()),
        ("provider", record.provider.clone()),
        ("tenant", record.tenant.clone()),
        ("type", record.event_type.clone()),
        ("entity", record.entity_id.clone()),
        ("subject", record.subject.clone()),
        ("status", record.status.as_str().to_string()),
        ("attempts", record.attempts.to_string()),
        ("received", time(record.received_at_ms)),
    ];
    if let Some(at) = record.processed_at_ms {
        lines.push(("processed", time(at)));
    }
    if let Some(at) = record.erased_at_ms {
        lines.push(("erased", time(at)));
    }
    if let Some(error) = &record.last_error {
        lines.push(("last error", error.clone()));
    }
    if record.unauthenticated {
        lines.push((
            "unauthenticated",
            "yes (accepted without a credential)".into(),
        ));
    }
    for (name, value) in lines {
        writeln!(out, "{:<12}{value}", format!("{name}:")).ok();
    }
    if record.facts.is_some() {
        let facts = Stored::of(record.facts.as_deref()).readable();
        writeln!(out, "facts:\n{}", indent(&facts)).ok();
    }
    let body = match Stored::body(record) {
        Stored::Nothing => "(erased)".to_string(),
        body => body.readable(),
    };
    writeln!(out, "body:\n{}", indent(&body)).ok();
    match &record.detail {
        Some(detail) => writeln!(
            out,
            "detail:\n{}",
            indent(&Stored::of(Some(detail)).readable())
        ),
        None => writeln!(out, "detail:     (none)"),
    }
    .ok();
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("  {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn print_dead_letters(out: &mut String, json: bool, letters: &[DeadLetter]) {
    if json {
        let messages: Vec<Value> = letters
            .iter()
            .map(|letter| {
                json!({
                    "message_id": letter.id,
                    "key": letter.message.as_ref().map(|m| &m.key),
                    "provider": letter.message.as_ref().map(|m| &m.provider),
                    "tenant": letter.message.as_ref().map(|m| &m.tenant),
                    "type": letter.message.as_ref().map(|m| &m.event_type),
                    "body": if letter.message.is_none() { Some(&letter.body) } else { None },
                    "status": letter.record.as_ref().map(|r| r.status.as_str()),
                    "last_error": letter.record.as_ref().and_then(|r| r.last_error.clone()),
                })
            })
            .collect();
        writeln!(
            out,
            "{}",
            pretty(&json!({ "count": messages.len(), "messages": messages }))
        )
        .ok();
        return;
    }
    if letters.is_empty() {
        writeln!(out, "the dead-letter queue is empty").ok();
        return;
    }
    let rows = letters
        .iter()
        .map(|letter| {
            let (key, provider, kind) = match &letter.message {
                Some(m) => (m.key.clone(), m.provider.clone(), m.event_type.clone()),
                None => (
                    clip(&letter.body, 40),
                    "?".into(),
                    "(not a queue message)".into(),
                ),
            };
            let (status, error) = match &letter.record {
                Some(r) => (
                    r.status.as_str().to_string(),
                    clip(r.last_error.as_deref().unwrap_or(""), 60),
                ),
                None => ("(no record)".into(), String::new()),
            };
            vec![provider, kind, status, key, error]
        })
        .collect();
    out.push_str(&table(
        &["PROVIDER", "TYPE", "RECORD", "KEY", "LAST ERROR"],
        rows,
        &[],
    ));
    writeln!(
        out,
        "{} message(s); fix the cause (the last error says it), then `webhooks dlq redrive`",
        letters.len()
    )
    .ok();
}

fn print_stats(out: &mut String, json: bool, counts: &[Count]) {
    if json {
        let counts: Vec<Value> = counts
            .iter()
            .map(|c| json!({ "provider": c.provider, "status": c.status.as_str(), "count": c.count }))
            .collect();
        writeln!(out, "{}", pretty(&json!({ "counts": counts }))).ok();
        return;
    }
    let mut by_provider: BTreeMap<&str, HashMap<Status, u64>> = BTreeMap::new();
    for count in counts {
        *by_provider
            .entry(&count.provider)
            .or_default()
            .entry(count.status)
            .or_default() += count.count;
    }
    let mut header = vec!["PROVIDER"];
    header.extend(Status::ALL.iter().map(|s| s.as_str()));
    header.push("TOTAL");
    let mut totals = [0u64; 6];
    let mut rows = Vec::new();
    for (provider, counts) in &by_provider {
        let mut row = vec![provider.to_string()];
        for (i, status) in Status::ALL.iter().enumerate() {
            let n = counts.get(status).copied().unwrap_or(0);
            totals[i] += n;
            row.push(n.to_string());
        }
        row.push(counts.values().sum::<u64>().to_string());
        rows.push(row);
    }
    let mut row = vec!["all".to_string()];
    row.extend(totals.iter().map(u64::to_string));
    row.push(totals.iter().sum::<u64>().to_string());
    rows.push(row);
    out.push_str(&table(&header, rows, &[1, 2, 3, 4, 5, 6, 7]));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_indented_without_touching_a_digit_or_the_key_order() {
        let body = r#"{"z":18446744073709551617,"a":[ ],"s":"a \"{,}\" b","n":{"x":[1,2.50]}}"#;
        let indented = indent_json(body);
        assert_eq!(
            indented,
            "{\n  \"z\": 18446744073709551617,\n  \"a\": [],\n  \"s\": \"a \\\"{,}\\\" b\",\n  \"n\": {\n    \"x\": [\n      1,\n      2.50\n    ]\n  }\n}"
        );
        let json = serde_json::to_string(&Stored::of(Some(body))).unwrap();
        assert_eq!(json, body, "scripts get the stored text as JSON, as it is");
        assert_eq!(
            serde_json::to_string(&Stored::of(Some("{not json"))).unwrap(),
            "\"{not json\""
        );
    }

    #[test]
    fn since_takes_a_duration_back_or_a_time() {
        assert_eq!(parse_since("2h"), Ok(Since::Ago(Duration::from_secs(7200))));
        assert_eq!(
            parse_since("3d"),
            Ok(Since::Ago(Duration::from_secs(3 * 86_400)))
        );
        assert_eq!(
            parse_since("2025-01-31T12:00:00Z"),
            Ok(Since::At(1_738_324_800_000))
        );
        assert_eq!(
            parse_since("2025-01-31T13:00:00+01:00"),
            Ok(Since::At(1_738_324_800_000))
        );
        for bad in ["", "2", "h", "2x", "yesterday", "-2h"] {
            assert!(parse_since(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Since::Ago(Duration::from_secs(1)).at(5_000),
            4_000,
            "back from now"
        );
    }

    #[test]
    fn statuses_are_read_in_any_case() {
        assert_eq!(parse_status("failed"), Ok(Status::Failed));
        assert!(parse_status("done").unwrap_err().contains("QUARANTINED"));
    }

    #[test]
    fn the_dev_servers_configuration_gives_each_providers_tenants() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../devserver.toml");
        let text = std::fs::read_to_string(path).unwrap();
        for provider in shared::providers::all() {
            let tenants = dev_server_tenants(&text, provider.name()).unwrap();
            assert!(!tenants.is_empty(), "{}", provider.name());
            TenantDirectory::new(tenants).unwrap();
        }
        assert!(dev_server_tenants(&text, "acme").unwrap().is_empty());
        assert!(dev_server_tenants("[waitwhile", "waitwhile").is_err());
    }

    #[test]
    fn resources_are_named_as_in_the_template() {
        assert_eq!(tenants_secret_id("magicline"), "MagiclineTenantsSecret");
        assert_eq!(logical_name("flybuy"), "Flybuy");
    }
}
