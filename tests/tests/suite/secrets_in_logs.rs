//! Captures every log line (debug level, SDKs included) of a full run — valid, invalid and
//! rotated credentials for every tenant of every provider's test kit, processing with API keys
//! and token exchanges, failures, the sweeper — and checks that no webhook secret, signing key,
//! API key, app secret or access token appears in it, not even an 8-character piece of one.

use rusty_fork::rusty_fork_test;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use testkit::{Expect, Kit};
use tests::fake_api::{Behavior, FakeApi};
use tests::{Backend, Captured};
use webhook_core::process::{Processor, ProcessorSettings, ProviderTenants};
use webhook_core::tenants::{TenantDirectory, TenantSource};
use webhook_core::{Ingest, IngestSettings};

/// A fresh random-looking secret (base62) so that no log text can match it by accident.
fn secret(label: &str) -> String {
    let seed = format!(
        "{label}{:?}{}",
        std::time::SystemTime::now(),
        std::process::id()
    );
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    Sha256::digest(seed.as_bytes())
        .iter()
        .take(28)
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// Where a tenants document keeps secrets.
const SECRET_FIELDS: [&str; 3] = ["/signing_key", "/api/api_key", "/api/app_secret"];

/// The kit's demo tenants (API at `api_base`) with every secret replaced by a fresh one: the
/// tenants document and the secrets.
fn fresh_tenants(kit: &Kit, api_base: &str) -> (String, Vec<String>) {
    let mut document: Value = serde_json::from_str(&kit.tenants_json(api_base)).unwrap();
    let mut secrets = Vec::new();
    let mut fresh = |value: &mut Value| {
        let new = secret(&format!("{}-{}", kit.name(), secrets.len()));
        *value = new.clone().into();
        secrets.push(new);
    };
    for tenant in document["tenants"].as_array_mut().unwrap() {
        for value in tenant["webhook_secrets"].as_array_mut().unwrap() {
            fresh(value);
        }
        for pointer in SECRET_FIELDS {
            if let Some(value) = tenant.pointer_mut(pointer) {
                fresh(value);
            }
        }
    }
    (document.to_string(), secrets)
}

fn directory(json: &str) -> TenantDirectory {
    TenantDirectory::from_json(json).unwrap()
}

/// Delivers, as every tenant, a new event with each of its secrets and one with a wrong
/// secret, then the kit's first case whose processing calls the API.
async fn deliver_all(kit: &Kit, ingest: &Ingest, tenants: &TenantDirectory) {
    let wrong = secret("wrong");
    let mut seq = 0;
    for tenant in tenants.iter() {
        let secrets = tenant.webhook_secrets.iter().map(|s| s.expose());
        for (credential, valid) in secrets.map(|s| (s, true)).chain([(wrong.as_str(), false)]) {
            seq += 1;
            let status = ingest
                .handle(kit.unique(seq, tenant, credential))
                .await
                .status();
            assert_eq!(
                status.is_success(),
                valid,
                "{} {}: {status}",
                kit.name(),
                tenant.id
            );
        }
    }
    let calls_api = |case: &&testkit::Case| matches!(&case.process, Some(Expect::Calls(calls)) if !calls.is_empty());
    if let Some(case) = kit.cases().iter().find(calls_api) {
        let status = ingest
            .handle(kit.request_from(case, tenants))
            .await
            .status();
        assert!(
            status.is_success(),
            "{}/{}: {status}",
            kit.name(),
            case.name
        );
    }
}

/// Tenant documents with secrets where they do not belong (a key where a list is expected, a
/// number, a document cut off inside a secret), loaded the way the functions load them and
/// their errors logged as the functions log them. Returns the secrets they held.
async fn load_malformed_tenant_documents() -> Vec<String> {
    let held: Vec<String> = (0..6).map(|n| secret(&format!("malformed-{n}"))).collect();
    let documents = [
        format!(
            r#"{{"tenants": [{{"id": "a", "webhook_secrets": "{}"}}]}}"#,
            held[0]
        ),
        format!(
            r#"{{"tenants": [{{"id": "a", "webhook_secrets": [{{"key": "{}"}}]}}]}}"#,
            held[1]
        ),
        format!(
            r#"{{"tenants": [{{"id": "a", "api": {{"base_url": "https://x", "api_key": ["{}"]}}}}]}}"#,
            held[2]
        ),
        format!(
            r#"{{"tenants": [{{"id": "a", "signing_key": {{"v": "{}"}}}}]}}"#,
            held[3]
        ),
        format!(
            r#"{{"tenants": [{{"id": "a", "webhook_secrets": ["{}"#,
            held[4]
        ),
        format!(
            r#"{{"tenants": [{{"id": "a", "unknown": "{}", "api": {{"base_url": "https://x", "apikey": "{}"}}}}]}}"#,
            held[5], held[5]
        ),
    ];
    for document in &documents {
        let source = webhook_core::config::TenantsSource::Json(document.clone());
        let error = webhook_core::tenants::load(&source, &webhook_core::tenants::NoSecrets)
            .await
            .expect_err("a malformed document does not load");
        tracing::error!(error = %error, "tenant configuration did not load");
        tracing::debug!(error = ?error, "tenant configuration did not load");
    }
    held
}

/// The functions' own lines as a Lambda function writes them (one EMF line per webhook and
/// per message), into the same capture as the log lines.
fn emf(captured: &Captured) -> std::sync::Arc<webhook_core::metrics::Emf<Captured>> {
    std::sync::Arc::new(webhook_core::metrics::Emf::new(
        "Webhooks/test",
        webhook_core::clock::system(),
        captured.clone(),
    ))
}

rusty_fork_test! {
    /// In a process of its own: it installs the global log subscriber it reads.
    #[test]
    fn no_secret_appears_in_any_log_line() {
        tests::block_on(run());
    }
}

async fn run() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .init();

    let backend = Backend::with_dead_letter_queue(2).await;
    let api = FakeApi::start().await;
    let mut secrets = Vec::new();
    let mut processing = Vec::new();
    for (index, provider) in webhook_core::providers::all().into_iter().enumerate() {
        let kit = Kit::of(provider.as_ref());
        let (tenants, fresh) = fresh_tenants(&kit, &api.base_url);
        secrets.extend(fresh);
        api.trust(kit.name(), &directory(&tenants));
        // Some APIs refuse or fail, so that the error paths log too.
        match index % 4 {
            1 => api.set(&format!("/{}/", kit.name()), Behavior::Status(401)),
            3 => api.set(&format!("/{}/", kit.name()), Behavior::Status(500)),
            _ => {}
        }
        let mut ingest = Ingest::new(
            provider.clone(),
            directory(&tenants),
            backend.ports(),
            IngestSettings::default(),
        );
        // Half the providers write their lines as the Lambda functions do (EMF).
        if index % 2 == 1 {
            ingest = ingest.with_metrics(emf(&captured));
        }
        deliver_all(&kit, &ingest, &directory(&tenants)).await;
        processing.push(ProviderTenants {
            provider,
            tenants: TenantSource::fixed(directory(&tenants)),
        });
    }

    let processor = Processor::new(
        processing,
        backend.ports(),
        webhook_core::fetch::DetailClient::new(
            Duration::from_secs(2),
            webhook_core::clock::system(),
        ),
        ProcessorSettings {
            max_receives: 2,
            retry_backoff: Duration::ZERO,
            ..ProcessorSettings::default()
        },
    )
    .with_metrics(emf(&captured));
    backend.pump_until_empty(&processor, 60).await;
    backend.sweeper().sweep(100).await.unwrap();
    secrets.extend(load_malformed_tenant_documents().await);
    assert!(
        api.total_calls() >= webhook_core::providers::all().len(),
        "the processor called the provider APIs with their keys"
    );
    secrets.extend(api.tokens());

    let logs = captured.text();
    assert!(
        logs.contains("\"webhook\""),
        "webhook log lines were captured"
    );
    assert!(
        logs.contains("\"processed\""),
        "processor log lines were captured"
    );
    assert!(logs.contains("\"_aws\""), "EMF lines were captured");
    for value in &secrets {
        for start in 0..=value.len() - 8 {
            let piece = &value[start..start + 8];
            assert!(
                !logs.contains(piece),
                "a piece of a secret ({piece}) is in the logs"
            );
        }
    }
}
