//! Where the events are: the deployed stack (its outputs name the table and queues), a table and
//! queues named directly, or the dev server's database; the ports on them, and the tenants a
//! release parses with.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::path::PathBuf;
use std::time::Duration;

use adapter_aws::{DynamoStore, SecretsManager, SqsQueue};
use adapter_sqlite::Database;
use webhook_core::config::{IngestSettings, Settings};
use webhook_core::model::Record;
use webhook_core::operate::Operations;
use webhook_core::ports::Ports;
use webhook_core::process::ProcessorSettings;
use webhook_core::tenants::{SecretReader, Tenant, TenantDirectory};

use crate::args::{Filters, TargetArgs};
use crate::{Failure, Result};

/// The stack outputs the command line reads (template.yaml, `Outputs`).
pub const TABLE_OUTPUT: &str = "EventsTableName";
pub const QUEUE_OUTPUT: &str = "WorkQueueUrl";
pub const DEAD_LETTER_OUTPUT: &str = "DeadLetterQueueUrl";
/// The stack parameter holding the retention period (the default `--since`).
const RETENTION_PARAMETER: &str = "RetentionDays";
/// Where the dev server's configuration points a tenant's API at its own sandbox; irrelevant
/// to what the command line does with tenants (parsing a quarantined body again).
const SANDBOX_BASE: &str = "http://127.0.0.1:8081/_sandbox";

/// Where the events are, and the core's operations on them.
pub(crate) struct Target {
    pub(crate) operations: Operations,
    ports: Ports,
    pub(crate) place: Place,
    /// The place flags it was opened with, for hints (`webhooks --local devserver.db …`).
    args: TargetArgs,
}

pub(crate) enum Place {
    Aws(Box<AwsPlace>),
    Local { database: Database, config: PathBuf },
}

/// The deployed (or moto's) table and queues.
pub(crate) struct AwsPlace {
    pub(crate) config: aws_config::SdkConfig,
    pub(crate) table: String,
    pub(crate) queue_url: String,
    pub(crate) dead_letter_url: Option<String>,
    pub(crate) stack: Option<Stack>,
    tenants_file: Option<PathBuf>,
}

pub(crate) struct Stack {
    pub(crate) name: String,
    pub(crate) outputs: BTreeMap<String, String>,
    pub(crate) parameters: BTreeMap<String, String>,
    /// Logical id -> physical id, read when first needed.
    resources: tokio::sync::OnceCell<BTreeMap<String, String>>,
}

impl Target {
    pub(crate) async fn open(args: &TargetArgs) -> Result<Target> {
        let mut settings = Settings::from_env()
            .map(|settings| settings.ingest)
            .unwrap_or_else(|_| IngestSettings::default());
        if let Some(path) = &args.local {
            if !path.is_file() {
                return Err(Failure::Operation(format!(
                    "{}: no such database file: pass the dev server's --data file with --local \
                     (it is created when the dev server first starts: cargo run --release -p \
                     devserver)",
                    path.display()
                )));
            }
            let database = Database::open(path)
                .map_err(|e| Failure::Operation(format!("{}: {e}", path.display())))?;
            let (ports, _) = adapter_sqlite::ports(
                &database,
                ProcessorSettings::default().max_receives,
                webhook_core::clock::system(),
            );
            return Ok(Target {
                operations: Operations::new(ports.clone(), settings),
                ports,
                place: Place::Local {
                    database,
                    config: args.config.clone(),
                },
                args: args.clone(),
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
        let ports = adapter_aws::ports(store, queue, webhook_core::clock::system());
        Ok(Target {
            operations: Operations::new(ports.clone(), settings),
            ports,
            place: Place::Aws(Box::new(aws)),
            args: args.clone(),
        })
    }

    /// `webhooks <the place flags> <rest>`, for a hint.
    pub(crate) fn command(&self, rest: &str) -> String {
        self.args.again(rest)
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.ports.clock.now_ms()
    }

    pub(crate) async fn list(&self, filters: &Filters) -> Result<Vec<Record>> {
        let since_ms = filters.since.map(|since| since.at(self.now_ms()));
        let filter = self.operations.filter(
            filters.provider.as_deref(),
            filters.tenant.as_deref(),
            filters.status,
            since_ms,
            filters.limit,
        )?;
        let filter = match filters.stuck {
            true => webhook_core::reconcile::only_stuck(filter, self.now_ms()),
            false => filter,
        };
        Ok(self.operations.list(&filter).await?)
    }

    /// The current tenants of `provider`, for a release.
    pub(crate) async fn tenants(&self, provider: &str) -> Result<TenantDirectory> {
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
}

impl Stack {
    pub(crate) async fn read(config: &aws_config::SdkConfig, name: &str) -> Result<Stack> {
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
    pub(crate) async fn tenants_secret(
        &self,
        config: &aws_config::SdkConfig,
        provider: &str,
    ) -> Result<Option<String>> {
        self.secret(config, tenants_secret_id(provider)).await
    }

    /// The secret holding `provider`'s API access (`<Provider>ApiSecret`), if the stack has one.
    pub(crate) async fn api_secret(
        &self,
        config: &aws_config::SdkConfig,
        provider: &str,
    ) -> Result<Option<String>> {
        self.secret(config, format!("{}ApiSecret", logical_name(provider)))
            .await
    }

    /// The secret of logical id `id`: the output `<id>Arn` or `<id>`, else the resource.
    async fn secret(&self, config: &aws_config::SdkConfig, id: String) -> Result<Option<String>> {
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
    let mut config = devserver::parse_config(text, SANDBOX_BASE).map_err(|e| e.to_string())?;
    Ok(config.providers.remove(provider).unwrap_or_default())
}

/// `Magicline` of `magicline`: how template.yaml names a provider's resources.
pub(crate) fn logical_name(provider: &str) -> String {
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
pub(crate) async fn sdk_config() -> Result<aws_config::SdkConfig> {
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

pub(crate) async fn aws_place(args: &TargetArgs) -> Result<AwsPlace> {
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
pub(crate) fn aws_hint<E: StdError + 'static>(error: E) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dev_servers_configuration_gives_each_providers_tenants() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../devserver.toml");
        let text = std::fs::read_to_string(path).unwrap();
        for provider in webhook_core::providers::all() {
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
