//! An operator's changes to a provider's tenants (`webhooks tenants …`): made on the tenants as
//! written (JSON values, so that every other setting stays exactly as it was), then read back
//! by the parser the functions use and checked against what the provider can verify — before
//! anything is written. Secrets are generated here where the receiver chooses them, and never
//! shown again: what is shown of a tenant has its secrets masked.

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::providers::{check_tenants, Provider};
use crate::tenants::{tenants_from_section, TenantDirectory};

/// The settings that hold a secret, at any depth of a tenant.
const SECRET_SETTINGS: [&str; 4] = ["webhook_secrets", "signing_key", "api_key", "app_secret"];

/// Bytes of randomness in a generated secret (256 bits; 43 characters of URL-safe Base64).
const SECRET_BYTES: usize = 32;

/// One change to a provider's tenants.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A new tenant: its settings as a JSON object, `id` among them.
    Add(Value),
    /// One setting of a tenant, by its dotted path (`api.base_url`), to a value.
    Set {
        tenant: String,
        path: String,
        value: Value,
    },
    Remove {
        tenant: String,
    },
    /// A new webhook secret, first; the ones before it are still accepted until `Retire`.
    Rotate {
        tenant: String,
        secret: String,
    },
    /// Only the newest webhook secret is kept.
    Retire {
        tenant: String,
    },
}

/// `tenants` after `change` — to be [`check`]ed where they will be read before they are
/// written. A refusal names the tenant or the setting, never a value.
pub fn apply(
    provider: &dyn Provider,
    tenants: &[Value],
    change: &Change,
) -> Result<Vec<Value>, String> {
    let mut changed = tenants.to_vec();
    let name = provider.name();
    match change {
        Change::Add(tenant) => {
            let id = tenant
                .get("id")
                .and_then(Value::as_str)
                .ok_or("the new tenant needs an \"id\" (a string)")?;
            if position(&changed, id).is_some() {
                return Err(format!(
                    "{name} already has a tenant {id:?}: change it with `tenants set`, or remove it first"
                ));
            }
            changed.push(tenant.clone());
        }
        Change::Set {
            tenant,
            path,
            value,
        } => set_path(tenant_mut(&mut changed, name, tenant)?, path, value.clone())?,
        Change::Remove { tenant } => {
            let index = position(&changed, tenant).ok_or_else(|| no_such(name, tenant, tenants))?;
            changed.remove(index);
        }
        Change::Rotate { tenant, secret } => {
            secrets_mut(tenant_mut(&mut changed, name, tenant)?)
                .insert(0, Value::from(secret.as_str()));
        }
        Change::Retire { tenant } => {
            let secrets = secrets_mut(tenant_mut(&mut changed, name, tenant)?);
            if secrets.len() < 2 {
                return Err(format!(
                    "{name} tenant {tenant:?} has {} webhook secret(s): nothing older to retire",
                    secrets.len()
                ));
            }
            secrets.truncate(1);
        }
    }
    Ok(changed)
}

/// Whether `tenants` load as the functions load them (their parser, then what the provider
/// needs of a tenant), naming the problem's place, never a value.
pub fn check(provider: &dyn Provider, tenants: &[Value]) -> Result<TenantDirectory, String> {
    let document = json!({ "tenants": tenants });
    let parsed = tenants_from_section(&document).map_err(|e| e.to_string())?;
    let directory = TenantDirectory::new(parsed).map_err(|e| e.to_string())?;
    check_tenants(provider, &directory).map_err(|e| e.to_string())?;
    Ok(directory)
}

/// The tenants as a deployed stack keeps them: the tenants document without `api`, which the
/// webhook functions read, and the API access document (`{"id", "api"}` by tenant), which only
/// the processor reads.
pub fn split_api(tenants: &[Value]) -> (Vec<Value>, Vec<Value>) {
    let mut access = Vec::new();
    let without: Vec<Value> = tenants
        .iter()
        .map(|tenant| {
            let mut tenant = tenant.clone();
            if let Some(api) = tenant.as_object_mut().and_then(|t| t.remove("api")) {
                access.push(json!({ "id": tenant["id"], "api": api }));
            }
            tenant
        })
        .collect();
    (without, access)
}

/// The tenants with each one's `api` from the API access document put back, by id (an entry
/// there replaces an `api` left in the tenants document, as the processor reads them).
pub fn join_api(mut tenants: Vec<Value>, access: &[Value]) -> Vec<Value> {
    for entry in access {
        let id = entry.get("id").and_then(Value::as_str).unwrap_or_default();
        if let Some(tenant) = tenants
            .iter_mut()
            .find(|t| t.get("id").and_then(Value::as_str) == Some(id))
            .and_then(Value::as_object_mut)
        {
            tenant.insert(
                "api".into(),
                entry.get("api").cloned().unwrap_or(Value::Null),
            );
        }
    }
    tenants
}

/// A new secret from the operating system's CSPRNG: 256 bits, URL-safe Base64.
pub fn generate_secret() -> Result<String, String> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::getrandom(&mut bytes).map_err(|e| format!("no secure random numbers: {e}"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// `tenant` as it may be shown: every secret replaced by its length.
pub fn masked(tenant: &Value) -> Value {
    match tenant {
        Value::Object(settings) => Value::Object(
            settings
                .iter()
                .map(|(key, value)| {
                    let shown = if SECRET_SETTINGS.contains(&key.as_str()) {
                        mask(value)
                    } else {
                        masked(value)
                    };
                    (key.clone(), shown)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(masked).collect()),
        other => other.clone(),
    }
}

fn mask(secret: &Value) -> Value {
    match secret {
        Value::String(text) => Value::from(format!("•••• ({} characters)", text.chars().count())),
        Value::Array(items) => Value::Array(items.iter().map(mask).collect()),
        _ => Value::from("••••"),
    }
}

/// The id of each tenant, in order.
pub fn ids(tenants: &[Value]) -> Vec<&str> {
    tenants
        .iter()
        .filter_map(|tenant| tenant.get("id").and_then(Value::as_str))
        .collect()
}

fn position(tenants: &[Value], id: &str) -> Option<usize> {
    tenants
        .iter()
        .position(|tenant| tenant.get("id").and_then(Value::as_str) == Some(id))
}

/// Why there is no tenant `id`, naming the ones there are.
pub fn no_such(provider: &str, id: &str, tenants: &[Value]) -> String {
    let known = ids(tenants);
    if known.is_empty() {
        format!("{provider} has no tenants yet: add one with `tenants add {provider} …`")
    } else {
        format!(
            "{provider} has no tenant {id:?}; its tenants: {}",
            known.join(", ")
        )
    }
}

fn tenant_mut<'a>(
    tenants: &'a mut [Value],
    provider: &str,
    id: &str,
) -> Result<&'a mut Map<String, Value>, String> {
    let index = position(tenants, id).ok_or_else(|| no_such(provider, id, tenants))?;
    tenants[index]
        .as_object_mut()
        .ok_or_else(|| format!("{provider} tenant {id:?} is not a table of settings"))
}

fn secrets_mut(tenant: &mut Map<String, Value>) -> &mut Vec<Value> {
    let secrets = tenant
        .entry("webhook_secrets")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !secrets.is_array() {
        *secrets = Value::Array(Vec::new());
    }
    secrets.as_array_mut().expect("made an array above")
}

/// Sets the setting at `path` (`api.base_url`), making the tables on the way.
fn set_path(tenant: &mut Map<String, Value>, path: &str, value: Value) -> Result<(), String> {
    let mut names: Vec<&str> = path.split('.').collect();
    let last = names.pop().filter(|name| !name.is_empty());
    let Some(last) = last.filter(|_| names.iter().all(|name| !name.is_empty())) else {
        return Err(format!(
            "{path:?} is not a setting's path (names joined by dots: api.base_url)"
        ));
    };
    if names.is_empty() && last == "id" {
        return Err("a tenant's id is not changed in place: add the tenant under its new id, then remove the old one".into());
    }
    let mut table = tenant;
    for name in names {
        let next = table
            .entry(name)
            .or_insert_with(|| Value::Object(Map::new()));
        table = next
            .as_object_mut()
            .ok_or_else(|| format!("{name} is a value, not a table of settings"))?;
    }
    table.insert(last.to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn egym() -> std::sync::Arc<dyn Provider> {
        crate::providers::by_name("egym").unwrap()
    }

    fn tenants() -> Vec<Value> {
        vec![
            json!({"id": "gym-1", "webhook_secrets": ["s-new"], "api": {"base_url": "https://api.example", "api_key": "k"}}),
        ]
    }

    #[test]
    fn each_change_is_made_and_checked_by_the_functions_parser() {
        let provider = egym();
        let added = apply(
            provider.as_ref(),
            &tenants(),
            &Change::Add(json!({"id": "gym-2", "webhook_secrets": ["s2"]})),
        )
        .unwrap();
        assert_eq!(ids(&added), ["gym-1", "gym-2"]);
        let rotated = apply(
            provider.as_ref(),
            &added,
            &Change::Rotate {
                tenant: "gym-2".into(),
                secret: "s3".into(),
            },
        )
        .unwrap();
        assert_eq!(rotated[1]["webhook_secrets"], json!(["s3", "s2"]));
        let retired = apply(
            provider.as_ref(),
            &rotated,
            &Change::Retire {
                tenant: "gym-2".into(),
            },
        )
        .unwrap();
        assert_eq!(retired[1]["webhook_secrets"], json!(["s3"]));
        let set = apply(
            provider.as_ref(),
            &retired,
            &Change::Set {
                tenant: "gym-2".into(),
                path: "api.base_url".into(),
                value: json!("https://b.example"),
            },
        )
        .unwrap();
        assert_eq!(set[1]["api"]["base_url"], "https://b.example");
        let removed = apply(
            provider.as_ref(),
            &set,
            &Change::Remove {
                tenant: "gym-1".into(),
            },
        )
        .unwrap();
        assert_eq!(ids(&removed), ["gym-2"]);
        check(provider.as_ref(), &removed).unwrap();
    }

    #[test]
    fn a_change_that_would_not_load_is_refused_by_its_path_without_a_value() {
        let provider = egym();
        let typo = apply(
            provider.as_ref(),
            &tenants(),
            &Change::Set {
                tenant: "gym-1".into(),
                path: "api.api_kye".into(),
                value: json!("secret-value-9"),
            },
        )
        .and_then(|changed| check(provider.as_ref(), &changed))
        .unwrap_err();
        assert!(typo.contains("api_kye"), "{typo}");
        assert!(!typo.contains("secret-value-9"), "{typo}");
        let twice = apply(
            provider.as_ref(),
            &tenants(),
            &Change::Add(json!({"id": "gym-1"})),
        )
        .unwrap_err();
        assert!(twice.contains("already"), "{twice}");
        let missing = apply(
            provider.as_ref(),
            &tenants(),
            &Change::Remove {
                tenant: "gym-9".into(),
            },
        )
        .unwrap_err();
        assert!(missing.contains("gym-1"), "lists the tenants: {missing}");
        let last = apply(
            provider.as_ref(),
            &tenants(),
            &Change::Retire {
                tenant: "gym-1".into(),
            },
        )
        .unwrap_err();
        assert!(last.contains("nothing older"), "{last}");
    }

    #[test]
    fn api_access_is_split_off_and_joined_back_by_tenant() {
        let tenants = vec![
            tenants()[0].clone(),
            json!({"id": "gym-2", "webhook_secrets": ["x"]}),
        ];
        let (without, access) = split_api(&tenants);
        assert!(without.iter().all(|t| t.get("api").is_none()));
        assert_eq!(access, [json!({"id": "gym-1", "api": tenants[0]["api"]})]);
        assert_eq!(join_api(without, &access), tenants);
    }

    #[test]
    fn what_is_shown_has_no_secret_and_generated_ones_differ() {
        let shown = masked(&tenants()[0]).to_string();
        assert!(
            !shown.contains("s-new") && !shown.contains("\"k\""),
            "{shown}"
        );
        assert!(shown.contains("https://api.example"), "{shown}");
        let (a, b) = (generate_secret().unwrap(), generate_secret().unwrap());
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
    }
}
