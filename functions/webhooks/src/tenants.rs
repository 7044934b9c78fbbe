//! `webhooks tenants …`: a provider's tenants where the functions read them — the document in
//! the stack's Secrets Manager secret (`--stack`) or the dev server's `devserver.toml`
//! (`--local`) — changed through [`webhook_core::tenant_changes`], so that a change that would not
//! load is refused before anything is written. Every change is a new version (a new version
//! of the secret; on disk, the file as it was kept beside it as `<file>.previous`), which
//! `tenants rollback` restores.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};
use webhook_core::providers::Provider;
use webhook_core::tenant_changes::{self, Change};
use webhook_core::tenants::{Tenant, TenantDirectory};

use crate::args::{parse_setting, TargetArgs, TenantsCommand};
use crate::place::{aws_hint, logical_name, sdk_config, Stack};
use crate::print::pretty;
use crate::{Failure, Result};

/// Where the dev server's configuration points a tenant's API at its own sandbox, for the
/// check of an edited `devserver.toml` (the address does not matter to the check).
const SANDBOX_BASE: &str = "http://127.0.0.1:8081/_sandbox";

/// One tenant as the functions read it (its `api` joined back; `None` if there is none of
/// that id), and the stack's webhook URL output for the provider (`None` locally).
pub(crate) async fn tenant_as_read(
    args: &TargetArgs,
    provider: &dyn Provider,
    id: &str,
) -> Result<(Option<Tenant>, Option<String>)> {
    let document = Document::open(args, provider.name()).await?;
    let tenants = document.read(provider).await?;
    let url = match &document {
        Document::Secrets { webhook_url, .. } => webhook_url.clone(),
        Document::Toml { .. } => None,
    };
    if !tenants.iter().any(|t| t["id"] == id) {
        return Ok((None, url));
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
    Ok((directory.get(id).cloned(), url))
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
            changes.extend(settings_of(&tenant, &settings)?);
            (changes, generated.then_some(secret))
        }
        TenantsCommand::Set {
            tenant, settings, ..
        } => (settings_of(&tenant, &settings)?, None),
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

/// Each `PATH=TEXT` or `PATH:=JSON` of the command line as a change of `tenant`.
fn settings_of(tenant: &str, settings: &[String]) -> Result<Vec<Change>> {
    settings
        .iter()
        .map(|setting| {
            let (path, value) = parse_setting(setting).map_err(Failure::Usage)?;
            Ok(Change::Set {
                tenant: tenant.to_string(),
                path,
                value,
            })
        })
        .collect()
}

/// What a change did, and to which tenant, for the answer.
fn describe(change: &Change) -> (&'static str, &str) {
    match change {
        Change::Add(new) => ("added", new["id"].as_str().unwrap_or_default()),
        Change::Set { tenant, .. } => ("changed", tenant),
        Change::Remove { tenant } => ("removed: its webhooks are refused once this is read", tenant),
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
    match given.as_deref() {
        Some("-") => return Ok((secret_from_stdin()?, false)),
        Some(_) => return Ok((given.unwrap_or_default(), false)),
        None => {}
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

/// The first line of standard input, without its line end.
fn secret_from_stdin() -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| Failure::Operation(format!("--secret -: standard input: {e}")))?;
    let secret = line.trim_end_matches(['\r', '\n']).to_string();
    if secret.is_empty() {
        return Err(Failure::Usage(
            "--secret - read an empty line: pipe the secret in (printf %s \"$KEY\" | webhooks …)"
                .into(),
        ));
    }
    Ok(secret)
}

pub(crate) fn known_provider(name: &str) -> Result<Arc<dyn Provider>> {
    webhook_core::providers::by_name(name).ok_or_else(|| {
        Failure::Usage(format!(
            "{name:?} is not a provider; one of {}",
            webhook_core::providers::names().join(", ")
        ))
    })
}

fn unknown_tenant(provider: &str, tenant: &str, tenants: &[Value]) -> Failure {
    Failure::Operation(tenant_changes::no_such(provider, tenant, tenants))
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
                "{} (the file before kept as {}.<provider>.previous)",
                path.display(),
                path.display()
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
            Document::Secrets { .. } => self.read_secrets(Stage::Current).await,
            Document::Toml { path } => tenants_of_toml(&read_file(path)?, provider.name(), path),
        }
    }

    /// The tenants in the secrets at `stage`, with their `api` joined back.
    async fn read_secrets(&self, stage: Stage) -> Result<Vec<Value>> {
        let Document::Secrets {
            client,
            tenants,
            api,
            ..
        } = self
        else {
            unreachable!("secrets only")
        };
        let Some(text) = read_secret(client, tenants, stage).await? else {
            return Err(Failure::Operation(format!(
                "secret {tenants} has no version before the current one: nothing to roll back to"
            )));
        };
        let listed = tenants_of_json(&text, tenants)?;
        let Some(api) = api else {
            return Ok(listed);
        };
        // Every change writes both secrets, so their previous versions belong together; an
        // API secret that has none yet (set by hand before the first change) stays as it is.
        let text = match read_secret(client, api, stage).await? {
            Some(text) => text,
            None => read_secret(client, api, Stage::Current)
                .await?
                .unwrap_or_else(|| json!({ "tenants": [] }).to_string()),
        };
        Ok(tenant_changes::join_api(
            listed,
            &tenants_of_json(&text, api)?,
        ))
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
                put_secret(client, api, &access).await.map_err(
                    |(Failure::Operation(e) | Failure::Usage(e))| {
                        Failure::Operation(format!(
                            "{e}; secret {tenants_id} was written, the API access in it was not: \
                         run the same command again once the cause is mended (the tenant's \
                         api settings then reach the processor), or `tenants rollback {}` \
                         to go back",
                            provider.name()
                        ))
                    },
                )
            }
            Document::Toml { path } => {
                let before = read_file(path)?;
                let after = toml_with_tenants(&before, provider.name(), tenants, path)?;
                check_toml(provider, &after, path)?;
                replace_file(path, &before, &after, &previous(path, provider.name()))
            }
        }
    }

    /// Puts the version before the current one back (as a new version), if it loads.
    async fn rollback(&self, provider: &dyn Provider) -> Result<Vec<Value>> {
        match self {
            Document::Secrets { .. } => {
                let tenants = self.read_secrets(Stage::Previous).await?;
                self.write(provider, &tenants).await?;
                Ok(tenants)
            }
            Document::Toml { path } => {
                let earlier = previous(path, provider.name());
                let text = std::fs::read_to_string(&earlier).map_err(|e| {
                    Failure::Operation(format!(
                        "{}: {e}: nothing to roll back to (each change of {}'s tenants writes it)",
                        earlier.display(),
                        provider.name()
                    ))
                })?;
                let tenants = tenants_of_toml(&text, provider.name(), &earlier)?;
                self.write(provider, &tenants).await?;
                Ok(tenants)
            }
        }
    }
}

/// Which version of a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Current,
    /// The one before the current (`AWSPREVIOUS`).
    Previous,
}

/// The secret's text at `stage`; `None` for a previous version that does not exist.
async fn read_secret(
    client: &aws_sdk_secretsmanager::Client,
    id: &str,
    stage: Stage,
) -> Result<Option<String>> {
    let request = client.get_secret_value().secret_id(id);
    let request = match stage {
        Stage::Current => request,
        Stage::Previous => request.version_stage("AWSPREVIOUS"),
    };
    let answer = match request.send().await {
        Ok(answer) => answer,
        Err(error)
            if stage == Stage::Previous
                && error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            return Ok(None)
        }
        Err(error) => {
            return Err(Failure::Operation(format!(
                "secret {id}: {}",
                aws_hint(error)
            )))
        }
    };
    answer
        .secret_string()
        .map(|text| Some(text.to_string()))
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

/// `text` with `provider`'s tenants made `tenants` (`[[<provider>.tenants]]` tables): a tenant
/// already there keeps its table — its comments, its settings' order and every unchanged
/// setting as written — and only what changed is written anew (nested settings inline, as the
/// file writes them); a new tenant's table starts with its `id`. Every other line stays.
fn toml_with_tenants(text: &str, provider: &str, tenants: &[Value], path: &Path) -> Result<String> {
    let mut document: toml_edit::DocumentMut = text.parse().map_err(|_| {
        Failure::Operation(format!(
            "{}: not TOML (the dev server names the line)",
            path.display()
        ))
    })?;
    let existing: Vec<toml_edit::Table> = document
        .get(provider)
        .and_then(|section| section.get("tenants"))
        .and_then(toml_edit::Item::as_array_of_tables)
        .map(|tables| tables.iter().cloned().collect())
        .unwrap_or_default();
    let mut tables = toml_edit::ArrayOfTables::new();
    for tenant in tenants {
        let settings = tenant.as_object().cloned().unwrap_or_default();
        let id = settings.get("id").and_then(Value::as_str);
        let mut table = existing
            .iter()
            .find(|table| table.get("id").and_then(toml_edit::Item::as_str) == id)
            .cloned()
            .unwrap_or_default();
        let gone: Vec<String> = table
            .iter()
            .map(|(key, _)| key.to_string())
            .filter(|key| !settings.contains_key(key))
            .collect();
        for key in gone {
            table.remove(&key);
        }
        let id_first = settings.iter().filter(|(key, _)| *key == "id");
        for (key, value) in id_first.chain(settings.iter().filter(|(key, _)| *key != "id")) {
            if table.get(key).and_then(json_of) == Some(value.clone()) {
                continue;
            }
            match toml_value(value) {
                Some(value) => table.insert(key, toml_edit::Item::Value(value)),
                None => table.remove(key),
            };
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

/// A setting as written in the file, as JSON (to tell whether a change touches it).
fn json_of(item: &toml_edit::Item) -> Option<Value> {
    let value = item.as_value()?;
    let table: toml::Table = toml::from_str(&format!("v = {}", value.to_string().trim())).ok()?;
    serde_json::to_value(table.get("v")?).ok()
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
    let directory = webhook_core::tenants::TenantDirectory::new(tenants)
        .map_err(|e| refused(&path.display().to_string(), &e.to_string()))?;
    webhook_core::providers::check_tenants(provider, &directory)
        .map_err(|e| refused(&path.display().to_string(), &e.to_string()))
}

fn refused(place: &str, problem: &str) -> Failure {
    let hint = if problem.contains("wrong type") {
        " (a number, true or false, a list or a table is given as PATH:=JSON)"
    } else {
        ""
    };
    Failure::Operation(format!(
        "not written: {place} would not load: {problem}{hint}"
    ))
}

/// Where `provider`'s tenants as they were before its last change are kept: the file then.
fn previous(path: &Path, provider: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{provider}.previous"));
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

/// Keeps `before` as `earlier`, then puts `after` in place (a rename: never half a file), both
/// with the file's own permissions (it holds secrets: a file only its owner reads stays so).
fn replace_file(path: &Path, before: &str, after: &str, earlier: &Path) -> Result<()> {
    let failed = |e: std::io::Error| Failure::Operation(format!("{}: {e}", path.display()));
    let permissions = std::fs::metadata(path).map_err(failed)?.permissions();
    let mut next = path.as_os_str().to_owned();
    next.push(".next");
    for (file, text) in [(earlier, before), (Path::new(&next), after)] {
        std::fs::write(file, text).map_err(failed)?;
        std::fs::set_permissions(file, permissions.clone()).map_err(failed)?;
    }
    std::fs::rename(&next, path).map_err(failed)
}
