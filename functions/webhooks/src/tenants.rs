//! `webhooks tenants …`: a provider's tenants where the functions read them — the document in
//! the stack's Secrets Manager secret (`--stack`) or the dev server's `devserver.toml`
//! (`--local`) — changed through [`shared::tenant_changes`], so that a change that would not
//! load is refused before anything is written. Every change is a new version (a new version
//! of the secret; on disk, the file as it was kept beside it as `<file>.previous`), which
//! `tenants rollback` restores.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};
use shared::providers::Provider;
use shared::tenant_changes::{self, Change};
use shared::tenants::{Tenant, TenantDirectory};

use crate::args::{TargetArgs, TenantsCommand};
use crate::place::{aws_hint, logical_name, sdk_config, Stack};
use crate::print::pretty;
use crate::{Failure, Result};

/// Where the dev server's configuration points a tenant's API at its own sandbox, for the
/// check of an edited `devserver.toml` (the address does not matter to the check).
const SANDBOX_BASE: &str = "http://127.0.0.1:8081/_sandbox";

/// One tenant as the functions read it (its `api` joined back), and the stack's webhook URL
/// output for the provider (`None` locally).
pub(crate) async fn tenant_as_read(
    args: &TargetArgs,
    provider: &dyn Provider,
    id: &str,
) -> Result<(Tenant, Option<String>)> {
    let document = Document::open(args, provider.name()).await?;
    let tenants = document.read(provider).await?;
    if !tenants.iter().any(|t| t["id"] == id) {
        return Err(unknown_tenant(provider.name(), id, &tenants));
    }
    let directory = match &document {
        Document::Secrets { .. } => {
            tenant_changes::check(provider, &tenants).map_err(Failure::Operation)?
        }
        Document::Toml { path } => {
            let mut config = devserver::parse_config(&read_file(path)?, SANDBOX_BASE)
                .map_err(|e| Failure::Operation(format!("{}: {e}", path.display())))?;
            let tenants = config.providers.remove(provider.name()).unwrap_or_default();
            TenantDirectory::new(tenants).map_err(|e| Failure::Operation(e.to_string()))?
        }
    };
    let tenant = directory.get(id).cloned().expect("listed above");
    let url = match &document {
        Document::Secrets { webhook_url, .. } => webhook_url.clone(),
        Document::Toml { .. } => None,
    };
    Ok((tenant, url))
}

/// Where one provider's tenants are kept.
enum Document {
    /// The stack's `<Provider>TenantsSecret` and, where the stack has one, its
    /// `<Provider>ApiSecret`, which holds every tenant's `api` (only the processor reads it).
    Secrets {
        client: aws_sdk_secretsmanager::Client,
        tenants: String,
        api: Option<String>,
        /// The stack's `<Provider>WebhookUrl` output.
        webhook_url: Option<String>,
    },
    Toml {
        path: PathBuf,
    },
}

pub(crate) async fn run(
    args: &TargetArgs,
    command: TenantsCommand,
    json: bool,
    out: &mut String,
) -> Result<i32> {
    let provider = known_provider(command.provider())?;
    let document = Document::open(args, provider.name()).await?;
    let tenants = document.read(provider.as_ref()).await?;
    let (changes, generated) = match command {
        TenantsCommand::List { .. } => {
            print_list(out, json, provider.name(), &tenants);
            return Ok(0);
        }
        TenantsCommand::Show { tenant, .. } => {
            let found = tenants
                .iter()
                .find(|t| t.get("id").and_then(Value::as_str) == Some(tenant.as_str()))
                .ok_or_else(|| unknown_tenant(provider.name(), &tenant, &tenants))?;
            writeln!(out, "{}", pretty(&tenant_changes::masked(found))).ok();
            return Ok(0);
        }
        TenantsCommand::Rollback { .. } => {
            let restored = document.rollback(provider.as_ref()).await?;
            let ids = tenant_changes::ids(&restored).join(", ");
            report(
                out,
                json,
                provider.name(),
                "rolled back",
                None,
                None,
                &document,
                &ids,
            );
            return Ok(0);
        }
        TenantsCommand::Add {
            tenant,
            settings,
            secret,
            ..
        } => {
            let (secret, generated) = secret_for(provider.as_ref(), secret)?;
            let new = json!({ "id": tenant, "webhook_secrets": [secret] });
            let mut changes = vec![Change::Add(new)];
            changes.extend(settings_of(&tenant, settings));
            (changes, generated.then_some(secret))
        }
        TenantsCommand::Set {
            tenant, settings, ..
        } => (settings_of(&tenant, settings).collect(), None),
        TenantsCommand::Remove { tenant, .. } => (vec![Change::Remove { tenant }], None),
        TenantsCommand::Rotate { tenant, secret, .. } => {
            let (secret, generated) = secret_for(provider.as_ref(), secret)?;
            let rotate = Change::Rotate {
                tenant,
                secret: secret.clone(),
            };
            (vec![rotate], generated.then_some(secret))
        }
        TenantsCommand::Retire { tenant, .. } => (vec![Change::Retire { tenant }], None),
    };
    let mut changed = tenants.clone();
    for change in &changes {
        changed = tenant_changes::apply(provider.as_ref(), &changed, change)
            .map_err(Failure::Operation)?;
    }
    let (verb, tenant) = describe(&changes[0]);
    document.write(provider.as_ref(), &changed).await?;
    report(
        out,
        json,
        provider.name(),
        verb,
        Some(tenant),
        generated.as_deref(),
        &document,
        "",
    );
    Ok(0)
}

/// Each `PATH=VALUE` of the command line as a change of `tenant`.
fn settings_of(tenant: &str, settings: Vec<(String, Value)>) -> impl Iterator<Item = Change> + '_ {
    settings.into_iter().map(move |(path, value)| Change::Set {
        tenant: tenant.to_string(),
        path,
        value,
    })
}

/// What a change did, and to which tenant, for the answer.
fn describe(change: &Change) -> (&'static str, &str) {
    match change {
        Change::Add(new) => ("added", new["id"].as_str().unwrap_or_default()),
        Change::Set { tenant, .. } => ("changed", tenant),
        Change::Remove { tenant } => ("removed: its webhooks are refused from now on", tenant),
        Change::Rotate { tenant, .. } => (
            "rotated: the new webhook secret first, the older ones still accepted until `tenants retire`",
            tenant,
        ),
        Change::Retire { tenant } => ("retired its older webhook secrets", tenant),
    }
}

#[allow(clippy::too_many_arguments)]
fn report(
    out: &mut String,
    json: bool,
    provider: &str,
    verb: &str,
    tenant: Option<&str>,
    generated: Option<&str>,
    document: &Document,
    tenants: &str,
) {
    if json {
        let mut answer = json!({
            "provider": provider,
            "done": verb,
            "written_to": document.describe(),
            "picked_up": document.picked_up(),
        });
        if let Some(tenant) = tenant {
            answer["tenant"] = Value::from(tenant);
        }
        if let Some(secret) = generated {
            answer["webhook_secret"] = Value::from(secret);
        }
        writeln!(out, "{}", pretty(&answer)).ok();
        return;
    }
    match tenant {
        Some(tenant) => writeln!(out, "{provider} tenant {tenant}: {verb}").ok(),
        None => writeln!(out, "{provider}: {verb}; its tenants now: {tenants}").ok(),
    };
    writeln!(
        out,
        "written to {}; {}",
        document.describe(),
        document.picked_up()
    )
    .ok();
    if let Some(secret) = generated {
        writeln!(
            out,
            "the new webhook secret, shown this once — enter it at the provider now:\n  {secret}"
        )
        .ok();
    }
}

fn print_list(out: &mut String, json: bool, provider: &str, tenants: &[Value]) {
    if json {
        let masked: Vec<Value> = tenants.iter().map(tenant_changes::masked).collect();
        writeln!(
            out,
            "{}",
            pretty(&json!({ "provider": provider, "tenants": masked }))
        )
        .ok();
        return;
    }
    if tenants.is_empty() {
        writeln!(
            out,
            "{provider} has no tenants: add one with `webhooks … tenants add {provider} <id> …`"
        )
        .ok();
        return;
    }
    for tenant in tenants {
        let secrets = tenant["webhook_secrets"].as_array().map_or(0, Vec::len);
        let api = tenant["api"]["base_url"]
            .as_str()
            .unwrap_or("no API access");
        writeln!(
            out,
            "{:<24} {secrets} webhook secret(s)  api {api}",
            tenant["id"].as_str().unwrap_or("(no id)")
        )
        .ok();
    }
}

/// The webhook secret to use: the one given, else a generated one where the receiver chooses
/// it (and whether it was generated, to be shown once).
fn secret_for(provider: &dyn Provider, given: Option<String>) -> Result<(String, bool)> {
    if let Some(secret) = given {
        return Ok((secret, false));
    }
    if !provider.auth().receiver_chooses_secret {
        return Err(Failure::Usage(format!(
            "{} issues the webhook secret: pass the one it gave you with --secret VALUE",
            provider.name()
        )));
    }
    let secret = tenant_changes::generate_secret().map_err(Failure::Operation)?;
    Ok((secret, true))
}

pub(crate) fn known_provider(name: &str) -> Result<Arc<dyn Provider>> {
    shared::providers::by_name(name).ok_or_else(|| {
        Failure::Usage(format!(
            "{name:?} is not a provider; one of {}",
            shared::providers::names().join(", ")
        ))
    })
}

fn unknown_tenant(provider: &str, tenant: &str, tenants: &[Value]) -> Failure {
    Failure::Operation(format!(
        "{provider} has no tenant {tenant:?}; its tenants: {}",
        tenant_changes::ids(tenants).join(", ")
    ))
}

impl Document {
    async fn open(args: &TargetArgs, provider: &str) -> Result<Document> {
        if args.local.is_some() {
            return Ok(Document::Toml {
                path: args.config.clone(),
            });
        }
        let Some(name) = &args.stack else {
            return Err(Failure::Usage(
                "tenants live in the stack's secrets (--stack NAME) or in the dev server's \
                 devserver.toml (--local devserver.db, with --config PATH if it is elsewhere)"
                    .into(),
            ));
        };
        let config = sdk_config().await?;
        let stack = Stack::read(&config, name).await?;
        let tenants = stack.tenants_secret(&config, provider).await?.ok_or_else(|| {
            Failure::Operation(format!(
                "stack {name} names no secret for {provider}'s tenants: deploy the current template.yaml"
            ))
        })?;
        Ok(Document::Secrets {
            client: aws_sdk_secretsmanager::Client::new(&config),
            tenants,
            api: stack.api_secret(&config, provider).await?,
            webhook_url: stack
                .outputs
                .get(&format!("{}WebhookUrl", logical_name(provider)))
                .cloned(),
        })
    }

    fn describe(&self) -> String {
        match self {
            Document::Secrets { tenants, api, .. } => {
                let api = api
                    .as_ref()
                    .map_or(String::new(), |api| format!(" and {api}"));
                format!(
                    "secret {tenants}{api} (a new version of each; the one before is AWSPREVIOUS)"
                )
            }
            Document::Toml { path } => format!(
                "{} (the file before kept as {})",
                path.display(),
                previous(path).display()
            ),
        }
    }

    fn picked_up(&self) -> &'static str {
        match self {
            Document::Secrets { .. } => {
                "running functions read it within TENANTS_REFRESH_SECONDS (5 minutes by default), new ones at once"
            }
            Document::Toml { .. } => "the dev server reads it when it starts: restart it",
        }
    }

    async fn read(&self, provider: &dyn Provider) -> Result<Vec<Value>> {
        match self {
            Document::Secrets { .. } => self.read_secrets(None).await,
            Document::Toml { path } => tenants_of_toml(&read_file(path)?, provider.name(), path),
        }
    }

    /// The tenants in the secrets (at `stage`, else current), with their `api` joined back.
    async fn read_secrets(&self, stage: Option<&str>) -> Result<Vec<Value>> {
        let Document::Secrets {
            client,
            tenants,
            api,
            ..
        } = self
        else {
            unreachable!("secrets only")
        };
        let listed = tenants_of_json(&read_secret(client, tenants, stage).await?, tenants)?;
        let Some(api) = api else {
            return Ok(listed);
        };
        let access = match read_secret(client, api, stage).await {
            Ok(text) => tenants_of_json(&text, api)?,
            // An API secret never changed has no previous version: it stays as it is.
            Err(_) if stage.is_some() => {
                tenants_of_json(&read_secret(client, api, None).await?, api)?
            }
            Err(error) => return Err(error),
        };
        Ok(tenant_changes::join_api(listed, &access))
    }

    async fn write(&self, provider: &dyn Provider, tenants: &[Value]) -> Result<()> {
        match self {
            Document::Secrets {
                client,
                tenants: tenants_id,
                api,
                ..
            } => {
                tenant_changes::check(provider, tenants).map_err(|e| refused(tenants_id, &e))?;
                let Some(api) = api else {
                    return put_secret(client, tenants_id, tenants).await;
                };
                let (listed, access) = tenant_changes::split_api(tenants);
                // Both are written, each as a new version, so that a rollback of both is the
                // state before this change.
                put_secret(client, tenants_id, &listed).await?;
                put_secret(client, api, &access).await
            }
            Document::Toml { path } => {
                let before = read_file(path)?;
                let after = toml_with_tenants(&before, provider.name(), tenants, path)?;
                check_toml(provider, &after, path)?;
                replace_file(path, &before, &after)
            }
        }
    }

    /// Puts the version before the current one back (as a new version), if it loads.
    async fn rollback(&self, provider: &dyn Provider) -> Result<Vec<Value>> {
        match self {
            Document::Secrets { .. } => {
                let tenants = self.read_secrets(Some("AWSPREVIOUS")).await?;
                self.write(provider, &tenants).await?;
                Ok(tenants)
            }
            Document::Toml { path } => {
                let earlier = previous(path);
                let text = std::fs::read_to_string(&earlier).map_err(|e| {
                    Failure::Operation(format!(
                        "{}: {e}: nothing to roll back to (it is written by each change)",
                        earlier.display()
                    ))
                })?;
                check_toml(provider, &text, &earlier)?;
                let now = read_file(path)?;
                replace_file(path, &now, &text)?;
                tenants_of_toml(&text, provider.name(), path)
            }
        }
    }
}

async fn read_secret(
    client: &aws_sdk_secretsmanager::Client,
    id: &str,
    stage: Option<&str>,
) -> Result<String> {
    let answer = client
        .get_secret_value()
        .secret_id(id)
        .set_version_stage(stage.map(str::to_string))
        .send()
        .await
        .map_err(|e| {
            let what = stage.map_or(String::new(), |stage| format!(" ({stage})"));
            Failure::Operation(format!("secret {id}{what}: {}", aws_hint(e)))
        })?;
    answer
        .secret_string()
        .map(str::to_string)
        .ok_or_else(|| Failure::Operation(format!("secret {id} has no string value")))
}

/// Writes `{"tenants": …}` as the secret's new version.
async fn put_secret(
    client: &aws_sdk_secretsmanager::Client,
    id: &str,
    tenants: &[Value],
) -> Result<()> {
    let text = serde_json::to_string_pretty(&json!({ "tenants": tenants }))
        .map_err(|e| Failure::Operation(e.to_string()))?;
    client
        .put_secret_value()
        .secret_id(id)
        .secret_string(text)
        .send()
        .await
        .map_err(|e| Failure::Operation(format!("secret {id}: {}", aws_hint(e))))?;
    Ok(())
}

fn tenants_of_json(text: &str, place: &str) -> Result<Vec<Value>> {
    let document: Value = serde_json::from_str(text).map_err(|e| {
        Failure::Operation(format!(
            "{place}: not a JSON tenants document ({{\"tenants\": [...]}}): line {}, column {}",
            e.line(),
            e.column()
        ))
    })?;
    Ok(document["tenants"].as_array().cloned().unwrap_or_default())
}

fn tenants_of_toml(text: &str, provider: &str, path: &Path) -> Result<Vec<Value>> {
    let table: toml::Table = toml::from_str(text).map_err(|_| {
        Failure::Operation(format!(
            "{}: not TOML (the dev server names the line)",
            path.display()
        ))
    })?;
    let tenants = table
        .get(provider)
        .and_then(|section| section.get("tenants"))
        .cloned()
        .unwrap_or(toml::Value::Array(Vec::new()));
    let tenants = serde_json::to_value(tenants).map_err(|e| Failure::Operation(e.to_string()))?;
    Ok(tenants.as_array().cloned().unwrap_or_default())
}

/// `text` with `provider`'s tenants replaced by `tenants` (`[[<provider>.tenants]]` tables,
/// nested settings inline as the file writes them); every other line kept as it was.
fn toml_with_tenants(text: &str, provider: &str, tenants: &[Value], path: &Path) -> Result<String> {
    let mut document: toml_edit::DocumentMut = text.parse().map_err(|_| {
        Failure::Operation(format!(
            "{}: not TOML (the dev server names the line)",
            path.display()
        ))
    })?;
    let mut tables = toml_edit::ArrayOfTables::new();
    for tenant in tenants {
        let mut table = toml_edit::Table::new();
        for (key, value) in tenant.as_object().into_iter().flatten() {
            if let Some(value) = toml_value(value) {
                table.insert(key, toml_edit::Item::Value(value));
            }
        }
        tables.push(table);
    }
    let section = document.entry(provider).or_insert_with(|| {
        let mut table = toml_edit::Table::new();
        table.set_implicit(true);
        toml_edit::Item::Table(table)
    });
    let Some(section) = section.as_table_mut() else {
        return Err(Failure::Operation(format!(
            "{}: {provider} is not a table",
            path.display()
        )));
    };
    section.insert("tenants", toml_edit::Item::ArrayOfTables(tables));
    Ok(document.to_string())
}

/// A JSON value as TOML writes it (tables inline); `None` for null, which TOML has not.
fn toml_value(value: &Value) -> Option<toml_edit::Value> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64()?.into(),
        },
        Value::String(s) => s.as_str().into(),
        Value::Array(items) => {
            toml_edit::Value::Array(items.iter().filter_map(toml_value).collect())
        }
        Value::Object(entries) => {
            let mut table = toml_edit::InlineTable::new();
            for (key, value) in entries {
                if let Some(value) = toml_value(value) {
                    table.insert(key, value);
                }
            }
            toml_edit::Value::InlineTable(table)
        }
    })
}

/// Whether the dev server would start with `text`: its parser, then the provider's checks.
fn check_toml(provider: &dyn Provider, text: &str, path: &Path) -> Result<()> {
    let config = devserver::parse_config(text, SANDBOX_BASE)
        .map_err(|e| refused(&path.display().to_string(), &e.to_string()))?;
    let tenants = config
        .providers
        .get(provider.name())
        .cloned()
        .unwrap_or_default();
    let directory = shared::tenants::TenantDirectory::new(tenants)
        .map_err(|e| refused(&path.display().to_string(), &e.to_string()))?;
    shared::providers::check_tenants(provider, &directory)
        .map_err(|e| refused(&path.display().to_string(), &e.to_string()))
}

fn refused(place: &str, problem: &str) -> Failure {
    Failure::Operation(format!("not written: {place} would not load: {problem}"))
}

fn previous(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".previous");
    PathBuf::from(name)
}

fn read_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| {
        Failure::Operation(format!(
            "{}: {e}: pass the dev server's configuration with --config PATH",
            path.display()
        ))
    })
}

/// Keeps `before` as `<path>.previous`, then puts `after` in place (a rename: never half a file).
fn replace_file(path: &Path, before: &str, after: &str) -> Result<()> {
    let failed = |e: std::io::Error| Failure::Operation(format!("{}: {e}", path.display()));
    std::fs::write(previous(path), before).map_err(failed)?;
    let mut next = path.as_os_str().to_owned();
    next.push(".next");
    std::fs::write(&next, after).map_err(failed)?;
    std::fs::rename(&next, path).map_err(failed)
}
