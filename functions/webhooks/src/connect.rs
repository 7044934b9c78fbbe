//! `webhooks connect <provider> --tenant T`: registers the tenant's webhook at the provider
//! through its API where it has one ([`webhook_core::register`]), then waits until the provider's
//! test delivery is stored, reporting each step with its time; for the others, the steps to
//! take by hand with the values to enter (never a secret: those were shown when made).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::json;
use webhook_core::register::{self, Registration, RegistrationApi};
use webhook_core::tenants::Tenant;

use crate::args::{ConnectArgs, Filters, Since, TargetArgs};
use crate::place::Target;
use crate::print::pretty;
use crate::tenants::{known_provider, tenant_as_read};
use crate::{Failure, Result};

pub(crate) async fn run(
    args: &TargetArgs,
    connect: ConnectArgs,
    json: bool,
    out: &mut String,
) -> Result<i32> {
    let provider = known_provider(&connect.provider)?;
    let (tenant, stack_url) = tenant_as_read(args, provider.as_ref(), &connect.tenant).await?;
    let url = tenant_url(
        connect.url.as_deref(),
        tenant.as_ref(),
        stack_url.as_deref(),
        &connect.tenant,
    )
    .ok_or_else(|| {
        Failure::Usage(format!(
            "pass the URL {} reaches the functions at with --url (the dev server: through a \
             tunnel, see docs/local.md, \"Real keys and a tunnel\")",
            provider.name()
        ))
    })?;
    match (provider.registration(), tenant) {
        (Registration::Manual(steps), tenant) => {
            let header = tenant
                .as_ref()
                .and_then(|tenant| tenant.header.as_deref())
                .unwrap_or("(the tenant's `header` setting)");
            let steps = steps
                .replace("{tenant}", &connect.tenant)
                .replace("{url}", &url)
                .replace("{header}", header)
                .replace("webhooks …", args.again("").trim_end());
            if json {
                writeln!(out, "{}", pretty(&json!({ "provider": provider.name(), "tenant": connect.tenant, "url": url, "registered": false, "steps": steps }))).ok();
            } else {
                writeln!(
                    out,
                    "{} registers webhooks by hand. For tenant {}:\n{steps}",
                    provider.name(),
                    connect.tenant
                )
                .ok();
            }
            Ok(0)
        }
        (Registration::Api(paths), Some(tenant)) => {
            register_and_wait(
                args,
                provider.as_ref(),
                &paths,
                &tenant,
                &url,
                &connect,
                json,
                out,
            )
            .await
        }
        (Registration::Api(_), None) => Err(Failure::Operation(format!(
            "{} has no tenant {:?}: add it first (its secret is what the provider is given): {}",
            provider.name(),
            connect.tenant,
            args.again(&format!(
                "tenants add {} {} api.base_url=… api.api_key=…",
                provider.name(),
                connect.tenant
            ))
        ))),
    }
}

/// Where a tenant's webhook is reached: the URL given, else the one the tenant names (where the
/// signature covers the URL, that is the one), else `base` (the stack's webhook URL) with
/// `?tenant=<id>`.
fn tenant_url(
    given: Option<&str>,
    tenant: Option<&Tenant>,
    base: Option<&str>,
    id: &str,
) -> Option<String> {
    given
        .map(str::to_string)
        .or_else(|| tenant.and_then(|tenant| tenant.url.clone()))
        .or_else(|| base.map(|base| format!("{base}?tenant={}", query_value(id))))
}

/// `text` as one value of a URL's query.
pub(crate) fn query_value(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[allow(clippy::too_many_arguments)]
async fn register_and_wait(
    args: &TargetArgs,
    provider: &dyn webhook_core::providers::Provider,
    paths: &RegistrationApi,
    tenant: &Tenant,
    url: &str,
    connect: &ConnectArgs,
    json: bool,
    out: &mut String,
) -> Result<i32> {
    let (Some(api), Some(secret)) = (&tenant.api, tenant.webhook_secrets.first()) else {
        return Err(Failure::Operation(format!(
            "{} tenant {} needs its API access (`api`) and a webhook secret to be registered: \
             webhooks … tenants set / rotate",
            provider.name(),
            tenant.id
        )));
    };
    let target = Target::open(args).await?;
    let started = Instant::now();
    let since_ms = target.now_ms() - 1_000;
    let filters = Filters {
        provider: Some(provider.name().to_string()),
        tenant: Some(tenant.id.clone()),
        status: None,
        since: Some(Since::At(since_ms)),
        limit: 50,
        stuck: false,
    };
    // A test delivery of an earlier run is not this one's.
    let seen_before: Vec<String> = target
        .list(&filters)
        .await?
        .into_iter()
        .map(|record| record.key)
        .collect();
    let registered = register::register(provider, paths, api, url, secret.expose())
        .await
        .map_err(|e| {
            Failure::Operation(format!("{} tenant {}: {e}", provider.name(), tenant.id))
        })?;
    let how = if registered.created {
        "created"
    } else {
        "was registered already: its secret set anew"
    };
    if !json {
        writeln!(
            out,
            "{:>6} ms  subscription {} for {url} {how}; test delivery asked for",
            started.elapsed().as_millis(),
            registered.id
        )
        .ok();
    }
    let deadline = Duration::from_secs(connect.wait);
    loop {
        let records = target.list(&filters).await?;
        if let Some(record) = records.iter().find(|record| {
            record.event_type == paths.test_event_type && !seen_before.contains(&record.key)
        }) {
            let elapsed = started.elapsed().as_millis();
            if json {
                writeln!(out, "{}", pretty(&json!({
                    "provider": provider.name(), "tenant": tenant.id, "url": url, "registered": true,
                    "subscription": registered.id, "created": registered.created,
                    "test_delivery": record.key, "status": record.status.as_str(), "after_ms": elapsed,
                }))).ok();
            } else {
                writeln!(
                    out,
                    "{elapsed:>6} ms  test delivery stored as {} ({})",
                    record.key,
                    record.status.as_str()
                )
                .ok();
            }
            return Ok(0);
        }
        if started.elapsed() > deadline {
            return Err(Failure::Operation(format!(
                "subscription {} is registered, but no {} delivery was stored within {} s: check \
                 that {url} reaches the functions, and the answers it got (the provider's \
                 subscription page, or webhooks … events list --provider {})",
                registered.id,
                paths.test_event_type,
                connect.wait,
                provider.name()
            )));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
