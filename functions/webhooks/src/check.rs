//! `webhooks check <provider> --tenant T`: sends the provider's sample delivery, signed with the
//! tenant's newest secret, to its webhook URL, then follows its record through the store until
//! it is processed ([`webhook_core::check`]), printing each hop with its time.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::json;
use webhook_core::check::{self, Hop, Progress, Sample};

use crate::args::{CheckArgs, TargetArgs};
use crate::connect::query_value;
use crate::place::Target;
use crate::print::pretty;
use crate::tenants::{known_provider, tenant_as_read};
use crate::{Failure, Result};

/// Where the dev server answers webhooks unless started with another --listen.
const DEVSERVER_WEBHOOKS: &str = "http://127.0.0.1:8080/webhooks";

pub(crate) async fn run(
    args: &TargetArgs,
    check_args: CheckArgs,
    json: bool,
    out: &mut String,
) -> Result<i32> {
    let provider = known_provider(&check_args.provider)?;
    let (tenant, stack_url) = tenant_as_read(args, provider.as_ref(), &check_args.tenant).await?;
    let Some(tenant) = tenant else {
        return Err(Failure::Operation(format!(
            "{} has no tenant {:?}: webhooks … tenants list {} shows those it has",
            provider.name(),
            check_args.tenant,
            provider.name()
        )));
    };
    let Some(secret) = tenant.webhook_secrets.first() else {
        return Err(Failure::Operation(format!(
            "{} tenant {} has no webhook secret to sign the sample with",
            provider.name(),
            tenant.id
        )));
    };
    // The place's own webhook first (the dev server's, the stack's): a tenant's registered
    // url is what its signatures cover, and may name another host.
    let local_base = args
        .local
        .is_some()
        .then(|| format!("{DEVSERVER_WEBHOOKS}/{}", provider.name()));
    let url = match (&check_args.url, stack_url.or(local_base)) {
        (Some(url), _) => url.clone(),
        (None, Some(base)) => format!("{base}?tenant={}", query_value(&tenant.id)),
        (None, None) => tenant
            .url
            .clone()
            .ok_or_else(|| Failure::Usage("pass the webhook URL to check with --url".into()))?,
    };

    let target = Target::open(args).await?;
    let now_ms = target.now_ms();
    let now = jiff::Timestamp::from_millisecond(now_ms)
        .map_err(|e| Failure::Operation(e.to_string()))?
        .to_string();
    let sample = Sample::new(now_ms, now).map_err(Failure::Operation)?;
    let delivery = check::delivery(provider.as_ref(), &tenant, secret.expose(), &url, &sample)
        .map_err(Failure::Operation)?;

    let started = Instant::now();
    let mut progress = Progress::new(now_ms);
    match check::send(&delivery, &url).await {
        Ok((status, body)) => progress.answer(status, &body, target.now_ms()),
        Err(reason) => progress.failed = Some((Hop::Answer, reason)),
    }
    let deadline = Duration::from_secs(check_args.wait);
    while !progress.settled() && started.elapsed() < deadline {
        let record = match target.operations.show(&delivery.key).await {
            Ok(record) => Some(record),
            Err(webhook_core::operate::OperateError::UnknownKey(_)) => None,
            Err(error) => return Err(error.into()),
        };
        progress.observe(record.as_ref(), target.now_ms());
        if !progress.settled() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    report(out, json, &url, &delivery.key, &progress, check_args.wait);
    Ok(if progress.passed() { 0 } else { 1 })
}

/// Each hop with its time, the first one not passed with why and what to do.
fn report(out: &mut String, json: bool, url: &str, key: &str, progress: &Progress, waited: u64) {
    let missing = progress.first_missing(waited);
    if json {
        let hops: Vec<_> = Hop::ALL
            .into_iter()
            .map(|hop| json!({ "hop": hop.as_str(), "after_ms": progress.after_ms(hop) }))
            .collect();
        let failed = missing
            .as_ref()
            .map(|(hop, why)| json!({ "hop": hop.as_str(), "reason": why }));
        let answer = progress.answered.map(|(status, _)| status);
        writeln!(out, "{}", pretty(&json!({ "url": url, "key": key, "answer": answer, "hops": hops, "passed": progress.passed(), "failed": failed }))).ok();
        return;
    }
    writeln!(out, "check {key}\n  sent to {url}").ok();
    for hop in Hop::ALL {
        match progress.after_ms(hop) {
            Some(after) => writeln!(out, "  {:<10} {after:>6} ms", hop.as_str()).ok(),
            None => break,
        };
    }
    match missing {
        None => writeln!(
            out,
            "passed: answered, stored, queued and processed (nothing fetched, nothing published)"
        )
        .ok(),
        Some((hop, why)) => writeln!(out, "  {:<10} FAILED: {why}", hop.as_str()).ok(),
    };
}
