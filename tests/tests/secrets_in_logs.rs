//! Captures every log line (debug level, SDKs included) of a full run — valid, invalid and
//! rotated credentials for every provider, processing with API keys, failures, the sweeper —
//! and checks that no webhook secret, token, signing secret or API key appears in it, not even
//! an 8-character piece of one.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use e2e::fake_api::{Behavior, FakeApi};
use e2e::{post, Backend};
use sha2::{Digest, Sha256};
use shared::process::{Processor, ProcessorSettings, ProviderTenants};
use shared::tenants::{TenantDirectory, TenantSource};
use shared::{Ingest, IngestSettings, WebhookRequest};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

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

struct Provider {
    name: &'static str,
    current: String,
    old: String,
    api_key: String,
}

impl Provider {
    fn tenants(&self, api_base: &str) -> TenantDirectory {
        let json = serde_json::json!({ "tenants": [{
            "id": "t1",
            "webhook_secrets": [self.current, self.old],
            "header": "x-hook-secret",
            "url": format!("https://example.test/webhooks/{}?tenant=t1", self.name),
            "api": { "base_url": format!("{api_base}/{}", self.name), "api_key": self.api_key },
        }]});
        TenantDirectory::from_json(&json.to_string()).unwrap()
    }

    fn body(&self, n: u32) -> String {
        match self.name {
            "magicline" => format!(
                r#"{{"entityId": {n}, "uuid": "u-{n}", "payload": [{{"timestamp": 1, "type": "CUSTOMER_CREATED"}}]}}"#
            ),
            "egym" => {
                format!(r#"{{"accountId": "acc-{n}", "timestamp": {n}, "type": "GYM_CHECKIN"}}"#)
            }
            "timify" => format!(
                r#"{{"event": "customers.updated", "data": {{"id": "c-{n}", "updatedAt": "t{n}"}}}}"#
            ),
            "flybuy" => {
                format!(r#"{{"data": {{"type": "order", "id": {n}, "updated_at": "t{n}"}}}}"#)
            }
            _ => format!(
                r#"{{"type": "visit.updated", "data": {{"id": "v-{n}", "updated": "t{n}"}}}}"#
            ),
        }
    }

    /// A delivery carrying `credential` the way this provider's scheme carries it.
    fn request(&self, credential: &str, n: u32) -> WebhookRequest {
        let body = self.body(n);
        let url = format!("https://example.test/webhooks/{}?tenant=t1", self.name);
        let tenants = self.tenants("http://unused");
        let headers = shared::providers::by_name(self.name)
            .unwrap()
            .auth()
            .credential_headers(
                tenants.get("t1").unwrap(),
                credential,
                &url,
                body.as_bytes(),
            );
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        let mut request = post(self.name, &headers, &body);
        *request.uri_mut() = url.parse().unwrap();
        request
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_any_log_line() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .init();

    let providers: Vec<Provider> = shared::providers::all()
        .iter()
        .map(|p| Provider {
            name: p.name(),
            current: secret(&format!("{}-current", p.name())),
            old: secret(&format!("{}-old", p.name())),
            api_key: secret(&format!("{}-api", p.name())),
        })
        .collect();
    let backend = Backend::with_dead_letter_queue(2).await;
    let api = FakeApi::start().await;
    api.set("/egym/", Behavior::Status(401));
    api.set("/flybuy/", Behavior::Status(500));

    for provider in &providers {
        let ingest = Ingest::new(
            shared::providers::by_name(provider.name).unwrap(),
            provider.tenants(&api.base_url),
            backend.ports(),
            IngestSettings::default(),
        );
        let wrong = secret("wrong");
        for (n, credential) in [&provider.current, &provider.old, &wrong]
            .into_iter()
            .enumerate()
        {
            let status = ingest
                .handle(provider.request(credential, n as u32))
                .await
                .status();
            assert_eq!(
                status.is_success(),
                n < 2,
                "{} #{n}: {status}",
                provider.name
            );
        }
    }

    let processor = Processor::new(
        providers
            .iter()
            .map(|p| ProviderTenants {
                provider: shared::providers::by_name(p.name).unwrap(),
                tenants: TenantSource::fixed(p.tenants(&api.base_url)),
            })
            .collect(),
        backend.ports(),
        shared::fetch::DetailClient::new(Duration::from_secs(2), shared::clock::system()),
        ProcessorSettings {
            max_receives: 2,
            retry_backoff: Duration::ZERO,
            ..ProcessorSettings::default()
        },
    );
    backend.pump_until_empty(&processor, 30).await;
    backend.sweeper().sweep(100).await.unwrap();
    assert!(
        api.total_calls() >= 8,
        "the processor called the provider APIs with their keys"
    );

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("\"webhook\""),
        "webhook log lines were captured"
    );
    assert!(
        logs.contains("\"processed\""),
        "processor log lines were captured"
    );
    for provider in &providers {
        for value in [&provider.current, &provider.old, &provider.api_key] {
            for start in 0..=value.len() - 8 {
                let piece = &value[start..start + 8];
                assert!(
                    !logs.contains(piece),
                    "{}: a piece of a secret ({piece}) is in the logs",
                    provider.name
                );
            }
        }
    }
}
