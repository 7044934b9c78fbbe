//! Every setting of every entry point, read from the environment in this one place. Entry
//! points call [`Settings::from_env`]; tests build [`Settings`] values directly or through
//! [`Settings::from_lookup`].

use std::time::Duration;

/// A setting that is present but not usable. Names the variable, never its value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{name} must be {expected}")]
pub struct SettingError {
    pub name: String,
    pub expected: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestSettings {
    pub max_body_bytes: usize,
    /// How long a stored record is left to the delivery that stored it (it sends the message
    /// but, to keep the ack path at two round trips, does not mark the record `QUEUED`): once
    /// this is over and no processor has claimed it, the sweeper re-sends it. Longer than the
    /// function timeout, so a live delivery is never overtaken; long enough that a queue
    /// working normally claims every record first.
    pub lease: Duration,
    /// How long records are kept (DynamoDB TTL).
    pub retention: Duration,
    /// How long the write path of one request may take (`ACK_BUDGET_MILLISECONDS`; the
    /// functions' default is [`ACK_BUDGET`]). Providers give up after 5 s and the function is
    /// stopped at 6 s; a DynamoDB call that hangs would take the SDK's whole 3 s operation
    /// timeout, and a spill to an SQS that hangs too another 3 s. So the put gets half of the
    /// budget ([`Self::store_budget`]): one that has not answered by then is treated as an
    /// outage and the delivery spilled; the call after the put (the spill, or the send of a
    /// stored record's message) gets what is left. `None` (as in [`IngestSettings::default`],
    /// which tests and the dev server use) leaves each call to its adapter's own timeouts: a
    /// put that is merely slow, as on a loaded single-threaded local endpoint, is then waited
    /// for rather than spilled.
    pub ack_budget: Option<Duration>,
}

/// The webhook functions' ack budget: both DynamoDB and SQS hanging, the answer (a 503) comes
/// after 4 s, inside the providers' 5 s once API Gateway and the network have taken their
/// share; the put's 2 s, and the spill's, leave the SDK room for a second attempt after a hung
/// first one (1 s per attempt, retried within 100 ms: `adapter_aws::sdk`).
pub const ACK_BUDGET: Duration = Duration::from_millis(4000);

impl IngestSettings {
    /// How long the put may take before the delivery is spilled instead: half the ack budget,
    /// the other half being what the spill may need.
    pub fn store_budget(&self) -> Option<Duration> {
        self.ack_budget.map(|budget| budget / 2)
    }

    /// When a record received at `now_ms` expires (DynamoDB TTL, epoch seconds).
    pub fn expires_at(&self, now_ms: i64) -> i64 {
        (now_ms / 1000) + self.retention.as_secs() as i64
    }
}

impl Default for IngestSettings {
    fn default() -> Self {
        IngestSettings {
            max_body_bytes: 256 * 1024,
            lease: Duration::from_secs(60),
            retention: Duration::from_secs(30 * 24 * 3600),
            ack_budget: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessorSettings {
    /// Messages of one batch handled at once.
    pub concurrency: usize,
    /// How long a claim lasts; longer than one attempt can take.
    pub lease: Duration,
    /// The queue's redrive `maxReceiveCount`: the attempt after which a message goes to the DLQ.
    pub max_receives: u32,
    /// First wait before a transient failure is retried, doubled per attempt (at most 15 min);
    /// zero leaves it to the queue's visibility timeout. A 429's Retry-After takes precedence.
    pub retry_backoff: Duration,
    /// Timeout of one provider API request.
    pub fetch_timeout: Duration,
}

impl Default for ProcessorSettings {
    fn default() -> Self {
        ProcessorSettings {
            concurrency: 10,
            lease: Duration::from_secs(90),
            max_receives: 5,
            retry_backoff: Duration::from_secs(10),
            fetch_timeout: Duration::from_secs(10),
        }
    }
}

impl ProcessorSettings {
    /// Seconds to wait before the next delivery after `attempt` failed transiently.
    pub fn backoff_seconds(&self, attempt: u32) -> u32 {
        let doubled = self
            .retry_backoff
            .as_secs()
            .saturating_mul(1 << attempt.clamp(1, 16).saturating_sub(1));
        doubled.min(u64::from(crate::model::MAX_DELAY_SECONDS)) as u32
    }
}

/// Where one provider's tenants document comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantsSource {
    /// The document itself (`TENANTS_JSON`).
    Json(String),
    /// A file holding it (`TENANTS_FILE`).
    File(String),
    /// An AWS Secrets Manager secret holding it (`TENANTS_SECRET_ID`).
    Secret(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub ingest: IngestSettings,
    pub processor: ProcessorSettings,
    /// How often warm functions reload their tenants.
    pub tenants_refresh: Duration,
    /// The events table (`TABLE_NAME`).
    pub table_name: Option<String>,
    /// The work queue (`QUEUE_URL`).
    pub queue_url: Option<String>,
    /// Where processed events are published (`EVENT_BUS_NAME`; unset: not published).
    pub event_bus_name: Option<String>,
    /// The CloudWatch namespace of the functions' metrics (`METRICS_NAMESPACE`; unset: none
    /// written).
    pub metrics_namespace: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            ingest: IngestSettings {
                ack_budget: Some(ACK_BUDGET),
                ..IngestSettings::default()
            },
            processor: ProcessorSettings::default(),
            tenants_refresh: Duration::from_secs(300),
            table_name: None,
            queue_url: None,
            event_bus_name: None,
            metrics_namespace: None,
        }
    }
}

impl Settings {
    pub fn from_env() -> Result<Settings, SettingError> {
        Self::from_lookup(&env_lookup)
    }

    /// Defaults, overridden by whatever `lookup` finds. An empty variable counts as unset
    /// (SAM templates declare variables as `""` so that `--env-vars` may fill them).
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Settings, SettingError> {
        let env = Lookup(lookup);
        let defaults = Settings::default();
        Ok(Settings {
            ingest: IngestSettings {
                max_body_bytes: env
                    .number("MAX_BODY_BYTES")?
                    .map_or(defaults.ingest.max_body_bytes, |v| v as usize),
                lease: env
                    .seconds("INGEST_LEASE_SECONDS")?
                    .unwrap_or(defaults.ingest.lease),
                retention: env
                    .number("RETENTION_DAYS")?
                    .map_or(defaults.ingest.retention, |days| {
                        Duration::from_secs(days.saturating_mul(24 * 3600))
                    }),
                ack_budget: env
                    .positive("ACK_BUDGET_MILLISECONDS")?
                    .map(Duration::from_millis)
                    .or(defaults.ingest.ack_budget),
            },
            processor: ProcessorSettings {
                concurrency: env
                    .number("CONCURRENCY")?
                    .map_or(defaults.processor.concurrency, |v| v.max(1) as usize),
                lease: env
                    .seconds("CLAIM_LEASE_SECONDS")?
                    .unwrap_or(defaults.processor.lease),
                max_receives: env
                    .number("MAX_RECEIVES")?
                    .map_or(defaults.processor.max_receives, |v| v.max(1) as u32),
                retry_backoff: env
                    .seconds("RETRY_BACKOFF_SECONDS")?
                    .unwrap_or(defaults.processor.retry_backoff),
                fetch_timeout: env
                    .seconds("FETCH_TIMEOUT_SECONDS")?
                    .unwrap_or(defaults.processor.fetch_timeout),
            },
            tenants_refresh: env
                .seconds("TENANTS_REFRESH_SECONDS")?
                .unwrap_or(defaults.tenants_refresh),
            table_name: env.text("TABLE_NAME"),
            queue_url: env.text("QUEUE_URL"),
            event_bus_name: env.text("EVENT_BUS_NAME"),
            metrics_namespace: env.text("METRICS_NAMESPACE"),
        })
    }

    /// Where the tenants under `prefix` come from (`""` for a webhook function, `EGYM_` for
    /// EGYM's tenants in the processor): `TENANTS_JSON`, else `TENANTS_FILE`, else
    /// `TENANTS_SECRET_ID`.
    pub fn tenants_source(prefix: &str) -> Option<TenantsSource> {
        Self::tenants_source_in(&env_lookup, prefix)
    }

    /// The secret holding the API access of the tenants under `prefix`, for the processor
    /// only (`EGYM_API_SECRET_ID`): the webhook functions verify requests and never read it.
    pub fn api_secret(prefix: &str) -> Option<String> {
        Lookup(&env_lookup).text(&format!("{prefix}API_SECRET_ID"))
    }

    pub fn tenants_source_in(
        lookup: &dyn Fn(&str) -> Option<String>,
        prefix: &str,
    ) -> Option<TenantsSource> {
        let env = Lookup(lookup);
        let named = |name: &str| env.text(&format!("{prefix}{name}"));
        named("TENANTS_JSON")
            .map(TenantsSource::Json)
            .or_else(|| named("TENANTS_FILE").map(TenantsSource::File))
            .or_else(|| named("TENANTS_SECRET_ID").map(TenantsSource::Secret))
    }
}

fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

struct Lookup<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Lookup<'_> {
    fn text(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|value| !value.trim().is_empty())
    }

    fn number(&self, name: &str) -> Result<Option<u64>, SettingError> {
        self.text(name)
            .map(|value| {
                value.trim().parse::<u64>().map_err(|_| SettingError {
                    name: name.to_string(),
                    expected: "a whole number",
                })
            })
            .transpose()
    }

    fn positive(&self, name: &str) -> Result<Option<u64>, SettingError> {
        match self.number(name) {
            Ok(Some(0)) | Err(_) => Err(SettingError {
                name: name.to_string(),
                expected: "a whole number above zero",
            }),
            read => read,
        }
    }

    fn seconds(&self, name: &str) -> Result<Option<Duration>, SettingError> {
        Ok(self.number(name)?.map(Duration::from_secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, SettingError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(&|name| map.get(name).cloned())
    }

    #[test]
    fn the_two_leases_have_distinct_names() {
        let read = settings(&[
            ("INGEST_LEASE_SECONDS", "12"),
            ("CLAIM_LEASE_SECONDS", "120"),
        ])
        .unwrap();
        assert_eq!(read.ingest.lease, Duration::from_secs(12));
        assert_eq!(read.processor.lease, Duration::from_secs(120));
        assert_eq!(settings(&[]).unwrap(), Settings::default());
    }

    #[test]
    fn the_functions_ack_budget_is_read_in_milliseconds_and_the_put_gets_half_of_it() {
        let deployed = settings(&[]).unwrap().ingest;
        assert_eq!(deployed.store_budget(), Some(Duration::from_secs(2)));
        assert_eq!(IngestSettings::default().store_budget(), None);
        let read = settings(&[("ACK_BUDGET_MILLISECONDS", "3000")]).unwrap();
        assert_eq!(read.ingest.ack_budget, Some(Duration::from_secs(3)));
        assert_eq!(
            read.ingest.store_budget(),
            Some(Duration::from_millis(1500))
        );
        for refused in ["0", "4s"] {
            let error = settings(&[("ACK_BUDGET_MILLISECONDS", refused)]).unwrap_err();
            assert_eq!(error.expected, "a whole number above zero");
        }
    }

    #[test]
    fn empty_is_unset_and_a_bad_number_names_the_variable_not_the_value() {
        assert_eq!(settings(&[("TABLE_NAME", "")]).unwrap().table_name, None);
        let error = settings(&[("MAX_BODY_BYTES", "lots-secret-looking")]).unwrap_err();
        assert!(error.to_string().contains("MAX_BODY_BYTES"));
        assert!(!error.to_string().contains("lots"));
    }

    #[test]
    fn tenants_come_from_json_then_file_then_secret() {
        let map = HashMap::from([
            ("EGYM_TENANTS_FILE".to_string(), "/t.json".to_string()),
            ("EGYM_TENANTS_SECRET_ID".to_string(), "arn".to_string()),
            ("TENANTS_SECRET_ID".to_string(), "other".to_string()),
        ]);
        let lookup = |name: &str| map.get(name).cloned();
        assert_eq!(
            Settings::tenants_source_in(&lookup, "EGYM_"),
            Some(TenantsSource::File("/t.json".into()))
        );
        assert_eq!(
            Settings::tenants_source_in(&lookup, ""),
            Some(TenantsSource::Secret("other".into()))
        );
        assert_eq!(Settings::tenants_source_in(&lookup, "WAITWHILE_"), None);
    }

    #[test]
    fn backoff_doubles_per_attempt_up_to_fifteen_minutes() {
        let settings = ProcessorSettings::default();
        let waits: Vec<u32> = (1..=8).map(|n| settings.backoff_seconds(n)).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 900]);
        let none = ProcessorSettings {
            retry_backoff: Duration::ZERO,
            ..settings
        };
        assert_eq!(none.backoff_seconds(3), 0);
    }
}
