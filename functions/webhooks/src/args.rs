//! The arguments: where the events are (`--stack`, `--table`/`--queue`/`--dlq`, `--local`), the
//! subcommands and their flags, parsed with clap.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use webhook_core::model::Status;

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
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    /// Print one JSON document instead of tables.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct TargetArgs {
    /// The deployed stack (CloudFormation): reads the table and queue URLs from its outputs.
    #[arg(long, global = true, value_name = "NAME", conflicts_with_all = ["table", "queue", "dlq", "local"])]
    pub(crate) stack: Option<String>,
    /// The events table (DynamoDB), instead of --stack.
    #[arg(long, global = true, value_name = "NAME", requires = "queue")]
    pub(crate) table: Option<String>,
    /// The work queue's URL (SQS), with --table.
    #[arg(long, global = true, value_name = "URL", requires = "table")]
    pub(crate) queue: Option<String>,
    /// The dead-letter queue's URL (SQS), with --table; needed by `dlq`.
    #[arg(long, global = true, value_name = "URL", requires = "table")]
    pub(crate) dlq: Option<String>,
    /// The dev server's database file (its --data), instead of AWS.
    #[arg(long, global = true, value_name = "PATH", conflicts_with_all = ["table", "queue", "dlq"])]
    pub(crate) local: Option<PathBuf>,
    /// With --local: the dev server's configuration, where `quarantine release` finds tenants.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        default_value = DEFAULT_CONFIG
    )]
    pub(crate) config: PathBuf,
    /// On AWS: the tenants document ({"tenants": [...]}) of the provider whose delivery
    /// `quarantine release` parses again; without it, the stack's <Provider>TenantsSecretArn.
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) tenants_file: Option<PathBuf>,
}

impl TargetArgs {
    /// `webhooks <these place flags> <rest>`: a command to run next, as a hint in an answer,
    /// that reaches the same events.
    pub(crate) fn again(&self, rest: &str) -> String {
        let mut words = vec!["webhooks".to_string()];
        let mut flag = |name: &str, value: &str| {
            words.push(format!("--{name}"));
            words.push(quoted(value));
        };
        if let Some(path) = &self.local {
            flag("local", &path.display().to_string());
            if self.config != std::path::Path::new(DEFAULT_CONFIG) {
                flag("config", &self.config.display().to_string());
            }
        }
        if let Some(stack) = &self.stack {
            flag("stack", stack);
        }
        for (name, value) in [
            ("table", &self.table),
            ("queue", &self.queue),
            ("dlq", &self.dlq),
        ] {
            if let Some(value) = value {
                flag(name, value);
            }
        }
        words.push(rest.to_string());
        words.join(" ")
    }
}

/// A word as a POSIX shell reads it back.
fn quoted(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

const DEFAULT_CONFIG: &str = "devserver.toml";

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
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
    /// Hold processing of a provider, or of one tenant: webhooks are still acknowledged and
    /// stored; their processing waits (using up no attempt) until `resume`.
    Pause(ScopeArgs),
    /// Let a paused provider or tenant be processed again, at its paced rate.
    Resume(ScopeArgs),
    /// Counts by provider and status, and what is paused.
    Stats {
        /// Received since: a duration back from now (30m, 2h, 3d, 1w) or an RFC 3339 time;
        /// default: the retention period.
        #[arg(long, value_parser = parse_since, value_name = "WHEN")]
        since: Option<Since>,
    },
    /// Signs that a provider's contract changed, as the processors saw them: event types and
    /// fields the documentation does not name, documented fields missing, which form of a
    /// signing key signed; each with its tenant, first and last time and an example key — and
    /// the quarantined deliveries per tenant.
    #[command(after_help = DRIFT_HELP)]
    Drift {
        /// Only this provider: magicline, egym, timify, flybuy or waitwhile.
        #[arg(long)]
        provider: Option<String>,
    },
    /// A provider's tenants where the functions read them: the stack's secret (--stack) or
    /// devserver.toml (--local). Each change is checked by the functions' own parser before it
    /// is written, as a new version that `tenants rollback` undoes.
    #[command(subcommand, after_help = TENANTS_HELP)]
    Tenants(TenantsCommand),
    /// Registers a tenant's webhook at the provider: through its API where it has one (egym),
    /// then waits until the provider's test delivery is stored; otherwise prints the steps to
    /// take and the values to enter.
    Connect(ConnectArgs),
    /// Sends a correctly signed sample delivery of a tenant to its webhook URL and reports each
    /// hop with its time: answer, stored, queued, processed. The sample is marked as a check:
    /// nothing is fetched from the provider and nothing is published. Exit 0 when every hop
    /// passed, 1 naming the first that did not.
    Check(CheckArgs),
    /// Print a `sam local` env-vars file (JSON) for every function: the stack's table and queue.
    ///
    /// `webhooks sam-env --stack NAME > env.json; sam local start-api --env-vars env.json` runs
    /// the local build against the real table and queue (and the stack's tenants secrets).
    SamEnv,
}

#[derive(Debug, Subcommand)]
pub(crate) enum EventsCommand {
    /// Stored webhooks, newest first (through the listing indexes, never a table scan).
    List(Filters),
    /// One stored webhook: raw body, fetched detail, attempts, last error, times, facts.
    Show {
        /// The dedup key (`<provider>#<tenant>#…`, as `events list` shows it).
        key: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum DlqCommand {
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
pub(crate) enum QuarantineCommand {
    /// Quarantined deliveries, newest first, with the parser's reason.
    List(QuarantineFilters),
    /// One quarantined delivery, with its raw body.
    Show {
        /// Its key (`quarantine list` shows it).
        key: String,
    },
    /// Parses a quarantined delivery again with the current parser and tenants; if it reads
    /// now, stores and queues it under its real dedup key (once) and marks the quarantined
    /// record released.
    Release {
        /// Its key (`quarantine list` shows it).
        key: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct Filters {
    /// magicline, egym, timify, flybuy or waitwhile; default: every provider.
    #[arg(long)]
    pub(crate) provider: Option<String>,
    /// Only this tenant's (a studio, gym, app, project or location id), with --provider.
    #[arg(long)]
    pub(crate) tenant: Option<String>,
    /// RECEIVED, QUEUED, PROCESSING, PROCESSED, FAILED or QUARANTINED.
    #[arg(long, value_parser = parse_status)]
    pub(crate) status: Option<Status>,
    /// Received since: a duration back from now (30m, 2h, 3d, 1w) or an RFC 3339 time;
    /// default: the retention period.
    #[arg(long, value_parser = parse_since, value_name = "WHEN")]
    pub(crate) since: Option<Since>,
    /// At most this many events.
    #[arg(long, default_value_t = 50)]
    pub(crate) limit: usize,
    /// Only deliveries acknowledged a day ago or more and still not PROCESSED, FAILED or
    /// QUARANTINED (what the stuck-events alarm counts).
    #[arg(long, conflicts_with = "status")]
    pub(crate) stuck: bool,
}

#[derive(Debug, Args)]
pub(crate) struct QuarantineFilters {
    /// magicline, egym, timify, flybuy or waitwhile; default: every provider.
    #[arg(long)]
    pub(crate) provider: Option<String>,
    /// Only this tenant's, with --provider.
    #[arg(long)]
    pub(crate) tenant: Option<String>,
    /// Quarantined since: a duration back from now (30m, 2h, 3d, 1w) or an RFC 3339 time;
    /// default: the retention period.
    #[arg(long, value_parser = parse_since, value_name = "WHEN")]
    pub(crate) since: Option<Since>,
    /// At most this many deliveries.
    #[arg(long, default_value_t = 50)]
    pub(crate) limit: usize,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["keys", "status"])))]
pub(crate) struct ReplayArgs {
    /// Dedup keys to replay (`events list` shows them), or --status for every event in one
    /// status.
    #[arg(conflicts_with = "status")]
    pub(crate) keys: Vec<String>,
    /// Replay every event in this status instead (usually FAILED).
    #[arg(long, value_parser = parse_status)]
    pub(crate) status: Option<Status>,
    /// With --status: only this provider's.
    #[arg(long, requires = "status")]
    pub(crate) provider: Option<String>,
    /// With --status: only this tenant's.
    #[arg(long, requires = "status")]
    pub(crate) tenant: Option<String>,
    /// With --status: received since (30m, 2h, 3d, 1w or an RFC 3339 time); default: the retention period.
    #[arg(long, value_parser = parse_since, value_name = "WHEN", requires = "status")]
    pub(crate) since: Option<Since>,
    /// With --status: at most this many events.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) limit: usize,
}

const ERASE_HELP: &str =
    "The subject is `<kind>:<id>`, the kind being what the provider's event is \
about (the `subject` each provider file in shared/core/src/providers/ gives its events):
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
pub(crate) struct EraseArgs {
    /// The provider: magicline, egym, timify, flybuy or waitwhile.
    #[arg(long)]
    pub(crate) provider: String,
    /// The tenant (studio, gym, app, project, location) whose person it is, as configured.
    #[arg(long)]
    pub(crate) tenant: String,
    /// `<kind>:<id>`, e.g. customer:42 (see below).
    #[arg(long)]
    pub(crate) subject: String,
    /// Accept a kind the provider's documented events do not use (a TIMIFY or Waitwhile event
    /// family that came later).
    #[arg(long)]
    pub(crate) any_kind: bool,
    /// List the records the erasure would empty (and the quarantined deliveries that hold the
    /// id), erasing nothing and leaving no tombstone.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ConnectArgs {
    /// magicline, egym, timify, flybuy or waitwhile.
    pub(crate) provider: String,
    /// The tenant whose webhook to register.
    #[arg(long)]
    pub(crate) tenant: String,
    /// The URL the provider is to call; default: the stack's <Provider>WebhookUrl with
    /// ?tenant=<id>.
    #[arg(long)]
    pub(crate) url: Option<String>,
    /// Seconds to wait for the provider's test delivery to be stored.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub(crate) wait: u64,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// magicline, egym, timify, flybuy or waitwhile.
    pub(crate) provider: String,
    /// The tenant whose secret signs the sample, as its provider would.
    #[arg(long)]
    pub(crate) tenant: String,
    /// The webhook URL to send it to; default: the tenant's registered url, else the stack's
    /// <Provider>WebhookUrl (with --local: the dev server at 127.0.0.1:8080) with ?tenant=<id>.
    #[arg(long)]
    pub(crate) url: Option<String>,
    /// Seconds to wait for the sample to be processed.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub(crate) wait: u64,
}

const DRIFT_HELP: &str = "Signals: type:<name> (an event type not documented, nor configured for \
the tenant: it is stored, nothing fetched — TIMIFY: map it in the tenant's events), field:<pointer> \
(a member the documentation does not name: kept in the body, nothing lost), missing:<pointer> (a \
documented field absent), signature_key:<raw|base64> (which form of FlyBuy's HMAC key signed: pin \
signing_key_encoding to it). Each is kept once per tenant; its first sighting is the \
ContractChanged metric and alarm.";

const TENANTS_HELP: &str = "Settings are given as PATH=TEXT (a string) or PATH:=JSON (a number, \
true, a list, a table), PATH naming a setting as the tenants document does: url=https://…, \
api.base_url=https://…, api.api_key=…, api.rate:='{\"calls\": 60, \"per_seconds\": 10}'.
Where we choose the webhook secret (egym, timify, flybuy) `add` and `rotate` generate one and \
print it once; where the provider issues it (magicline, waitwhile) pass it with --secret.
Rotation: `rotate` puts a new secret first and keeps accepting the old ones; once the \
provider sends with the new one, `retire` drops the old ones.";

#[derive(Debug, Subcommand)]
pub(crate) enum TenantsCommand {
    /// The provider's tenants: id, webhook secrets (how many), API base URL.
    List {
        /// magicline, egym, timify, flybuy or waitwhile.
        provider: String,
    },
    /// One tenant's settings, every secret masked.
    Show {
        /// magicline, egym, timify, flybuy or waitwhile.
        provider: String,
        /// The tenant's id.
        tenant: String,
    },
    /// Adds a tenant with a webhook secret (generated, or --secret) and the settings given.
    Add {
        /// magicline, egym, timify, flybuy or waitwhile.
        provider: String,
        /// The new tenant's id (the last part of its webhook URL).
        tenant: String,
        /// Settings: PATH=TEXT or PATH:=JSON (see below).
        #[arg(value_name = "SETTING")]
        settings: Vec<String>,
        /// The webhook secret the provider issued (magicline, waitwhile); `-` reads it from
        /// standard input (kept out of the shell's history); generated otherwise.
        #[arg(long, value_name = "VALUE")]
        secret: Option<String>,
    },
    /// Changes settings of a tenant.
    Set {
        /// magicline, egym, timify, flybuy or waitwhile.
        provider: String,
        /// The tenant's id.
        tenant: String,
        /// Settings: PATH=TEXT or PATH:=JSON (see below).
        #[arg(value_name = "SETTING", required = true)]
        settings: Vec<String>,
    },
    /// Removes a tenant: its webhooks are refused (401) from then on.
    Remove {
        /// magicline, egym, timify, flybuy or waitwhile.
        provider: String,
        /// The tenant's id.
        tenant: String,
    },
    /// A new webhook secret first; the old ones are still accepted until `retire`.
    Rotate {
        /// magicline, egym, timify, flybuy or waitwhile.
        provider: String,
        /// The tenant's id.
        tenant: String,
        /// The new secret the provider issued (magicline, waitwhile); `-` reads it from
        /// standard input; generated otherwise.
        #[arg(long, value_name = "VALUE")]
        secret: Option<String>,
    },
    /// Keeps only the newest webhook secret (after `rotate`, once the provider uses it).
    Retire {
        /// magicline, egym, timify, flybuy or waitwhile.
        provider: String,
        /// The tenant's id.
        tenant: String,
    },
    /// Puts the provider's tenants back as they were before the last change.
    Rollback {
        /// magicline, egym, timify, flybuy or waitwhile.
        provider: String,
    },
}

impl TenantsCommand {
    pub(crate) fn provider(&self) -> &str {
        match self {
            TenantsCommand::List { provider }
            | TenantsCommand::Show { provider, .. }
            | TenantsCommand::Add { provider, .. }
            | TenantsCommand::Set { provider, .. }
            | TenantsCommand::Remove { provider, .. }
            | TenantsCommand::Rotate { provider, .. }
            | TenantsCommand::Retire { provider, .. }
            | TenantsCommand::Rollback { provider } => provider,
        }
    }
}

/// `PATH=TEXT` (a string) or `PATH:=JSON`. A refusal names the path, never the value (it
/// may be a secret), which is why clap does not parse these: its errors repeat the argument.
pub(crate) fn parse_setting(text: &str) -> Result<(String, serde_json::Value), String> {
    let (path, value) = text
        .split_once('=')
        .ok_or("a setting is PATH=TEXT or PATH:=JSON (api.base_url=https://…)")?;
    match path.strip_suffix(':') {
        Some(path) => serde_json::from_str(value)
            .map(|value| (path.to_string(), value))
            .map_err(|e| {
                format!(
                    "{path}:= takes JSON (line {}, column {}); for text use {path}=…",
                    e.line(),
                    e.column()
                )
            }),
        None => Ok((path.to_string(), serde_json::Value::from(value))),
    }
}

#[derive(Debug, Args)]
pub(crate) struct ScopeArgs {
    /// The provider: magicline, egym, timify, flybuy or waitwhile.
    pub(crate) provider: String,
    /// Only this tenant of it.
    #[arg(long)]
    pub(crate) tenant: Option<String>,
}

/// A `--since` value: a duration back from now, or a point in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    Ago(Duration),
    At(i64),
}

impl Since {
    pub(crate) fn at(self, now_ms: i64) -> i64 {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `--help` describes every option and argument of every subcommand.
    #[test]
    fn every_option_and_argument_says_what_it_is() {
        fn undescribed(command: &clap::Command, path: &str, found: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if id != "help" && id != "version" && arg.get_help().is_none() {
                    found.push(format!("{path}: {id}"));
                }
            }
            for sub in command.get_subcommands() {
                undescribed(sub, &format!("{path} {}", sub.get_name()), found);
            }
        }
        let mut found = Vec::new();
        undescribed(
            &<Cli as clap::CommandFactory>::command(),
            "webhooks",
            &mut found,
        );
        assert!(found.is_empty(), "without a description: {found:?}");
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
}
