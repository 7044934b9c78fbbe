//! Each subcommand: the core's operation it runs on the target, and what it prints.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{json, Value};
use webhook_core::model::Status;
use webhook_core::operate::Replayed;

use crate::args::{
    Cli, Command, DlqCommand, EventsCommand, Filters, QuarantineCommand, ReplayArgs, ScopeArgs,
};
use crate::place::{aws_place, logical_name, AwsPlace, Target};
use crate::print::{
    filters_json, pretty, print_erase_preview, print_record, print_records, print_stats,
    progress_bar,
};
use crate::{Failure, Result};

/// Runs a parsed command, writing what it prints to `out`; returns the exit code.
pub(crate) async fn execute(cli: Cli, out: &mut String) -> Result<i32> {
    let json = cli.json;
    let command = match cli.command {
        Command::Tenants(command) => {
            return crate::tenants::run(&cli.target, command, json, out).await
        }
        Command::Connect(connect) => {
            return crate::connect::run(&cli.target, connect, json, out).await
        }
        Command::Check(check) => return crate::check::run(&cli.target, check, json, out).await,
        command => command,
    };
    if let Command::SamEnv = command {
        let aws = aws_place(&cli.target).await?;
        let env = sam_env(&aws).await?;
        writeln!(out, "{}", pretty(&env)).ok();
        return Ok(0);
    }
    let target = Target::open(&cli.target).await?;
    match command {
        Command::Events(EventsCommand::List(filters)) => {
            let records = target.list(&filters).await?;
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
            crate::dlq::print_dead_letters(out, json, &letters, &target.command("dlq redrive"));
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
                stuck: false,
            };
            let records = target.list(&filters).await?;
            print_records(out, json, &records, &filters_json(&filters), filters.limit);
            Ok(0)
        }
        Command::Quarantine(QuarantineCommand::Show { key }) => {
            let record = target.operations.show(&key).await?;
            print_record(out, json, &record);
            Ok(0)
        }
        Command::Quarantine(QuarantineCommand::Release { key }) => {
            let record = target.operations.quarantined(&key).await?;
            let tenants = target.tenants(&record.provider).await?;
            let released_as = target.operations.release(&record, &tenants).await?;
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
            known_tenant(&target, &args.provider, &args.tenant).await?;
            if args.dry_run {
                let preview = target
                    .operations
                    .erase_preview(&args.provider, &args.tenant, &args.subject, args.any_kind)
                    .await?;
                print_erase_preview(out, json, &preview);
                return Ok(0);
            }
            let receipt = target
                .operations
                .erase(&args.provider, &args.tenant, &args.subject, args.any_kind)
                .await?;
            if json {
                writeln!(out, "{}", pretty(&json!(receipt))).ok();
            } else {
                writeln!(
                    out,
                    "erased {} of {} {}: {} record(s) reached, {} raw bod{} and {} detail(s) \
                     emptied; a tombstone keeps later deliveries about them from keeping theirs",
                    receipt.person,
                    receipt.provider,
                    receipt.tenant,
                    receipt.records,
                    receipt.bodies,
                    if receipt.bodies == 1 { "y" } else { "ies" },
                    receipt.details,
                )
                .ok();
            }
            Ok(0)
        }
        Command::Pause(args) => pause(&target, &args, true, json, out).await,
        Command::Resume(args) => pause(&target, &args, false, json, out).await,
        Command::Stats { since } => {
            let since_ms = since.map(|s| s.at(target.now_ms()));
            let counts = target.operations.stats(since_ms).await?;
            let paused = target.operations.paused().await?;
            print_stats(out, json, &counts, &paused);
            Ok(0)
        }
        Command::Drift { provider } => {
            let drift = target.operations.drift(provider.as_deref()).await?;
            crate::drift::print(out, json, &drift, &target.command("quarantine list"));
            Ok(0)
        }
        Command::SamEnv | Command::Tenants(_) | Command::Connect(_) | Command::Check(_) => {
            unreachable!("handled above")
        }
    }
}

async fn pause(
    target: &Target,
    args: &ScopeArgs,
    pause: bool,
    json: bool,
    out: &mut String,
) -> Result<i32> {
    let scope = target
        .operations
        .pause(&args.provider, args.tenant.as_deref(), pause)
        .await?;
    if json {
        writeln!(
            out,
            "{}",
            pretty(&json!({ "scope": scope, "paused": pause }))
        )
        .ok();
    } else if pause {
        writeln!(
            out,
            "paused {scope}: its webhooks are still acknowledged and stored; processing waits \
             until `{}`",
            target.command(&format!(
                "resume {}{}",
                args.provider,
                args.tenant
                    .as_deref()
                    .map(|t| format!(" --tenant {t}"))
                    .unwrap_or_default()
            ))
        )
        .ok();
    } else {
        writeln!(
            out,
            "resumed {scope}: what waited is processed within a minute, at its paced rate"
        )
        .ok();
    }
    Ok(0)
}

/// Refuses an erasure for a tenant that does not exist: one missing from the provider's
/// configuration where it can be read (the dev server's `--config`, `--stack`, `--tenants-file`),
/// else one with no record at all in the retention period — a misspelt tenant would erase
/// nobody and leave a tombstone nobody needs.
async fn known_tenant(target: &Target, provider: &str, tenant: &str) -> Result<()> {
    let configured = match target.tenants(provider).await {
        Ok(tenants) => tenants,
        // No configuration to read here: what the store holds must do.
        Err(_) => {
            let filters = Filters {
                provider: Some(provider.to_string()),
                tenant: Some(tenant.to_string()),
                status: None,
                since: None,
                limit: 1,
                stuck: false,
            };
            if target.list(&filters).await?.is_empty() {
                return Err(Failure::Operation(format!(
                    "{provider} has no record of tenant {tenant:?} in the retention period: \
                     nothing erased. Check the spelling (`{}`), or pass --tenants-file / \
                     --stack to check it against the configuration",
                    target.command("stats")
                )));
            }
            return Ok(());
        }
    };
    if configured.get(tenant).is_some() {
        return Ok(());
    }
    let known: Vec<&str> = configured.iter().map(|t| t.id.as_str()).collect();
    Err(Failure::Operation(format!(
        "{provider} has no tenant {tenant:?}: nothing erased. Its tenants: {}",
        known.join(", ")
    )))
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
                stuck: false,
            };
            target
                .list(&filters)
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
    for provider in webhook_core::providers::all() {
        let name = provider.name();
        let mut env = base.clone();
        if let Some(stack) = &aws.stack {
            if let Some(secret) = stack.tenants_secret(&aws.config, name).await? {
                env["TENANTS_SECRET_ID"] = secret.clone().into();
                processor[format!("{}_TENANTS_SECRET_ID", name.to_ascii_uppercase())] =
                    secret.into();
            }
            // The API access only the processor reads (an output of stacks since the split).
            let api_output = format!("{}ApiSecretArn", logical_name(name));
            if let Some(secret) = stack.outputs.get(&api_output) {
                processor[format!("{}_API_SECRET_ID", name.to_ascii_uppercase())] =
                    secret.clone().into();
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
