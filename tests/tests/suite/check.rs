//! `webhooks check`: each provider's sample delivery, signed as the provider signs, is accepted
//! by its real webhook, stored, and processed as a check — no call to the provider's API,
//! nothing published. The command reports every hop on the dev server and on the local AWS
//! endpoint, and names the hop that failed when the work queue is down.

use std::sync::Arc;
use std::time::Duration;

use adapter_aws::SqsQueue;
use serde_json::Value;
use tests::fake_api::FakeApi;
use tests::{demo_tenants_at, serve_ingest, Backend, InMemory, Published};
use webhook_core::check::{self, Sample};
use webhook_core::model::Status;
use webhook_core::process::ProcessorSettings;
use webhook_core::tenants::TenantSource;
use webhook_core::{Ingest, IngestSettings};

use super::tenants_cli::{cli, copy_of_devserver_toml, devserver_on, stack_with_egym_secrets};

fn sample() -> Sample {
    let now = jiff::Timestamp::now();
    Sample::new(now.as_millisecond(), now.to_string()).unwrap()
}

/// The sample as the webhook receives it.
fn request(delivery: &check::CheckDelivery, url: &str) -> webhook_core::WebhookRequest {
    let mut request = http::Request::post(url);
    for (name, value) in &delivery.headers {
        request = request.header(name, value);
    }
    request
        .body(bytes::Bytes::from(delivery.body.clone()))
        .unwrap()
}

#[tokio::test]
async fn every_providers_sample_is_accepted_and_processed_as_a_check_without_a_call() {
    let api = FakeApi::start().await;
    let published = Arc::new(Published::default());
    let mut local = InMemory::new(&api, ProcessorSettings::default());
    local.processor = local.processor.with_publisher(published.clone());
    let mut checked = 0;
    for provider in webhook_core::providers::all() {
        let tenants = demo_tenants_at(provider.name(), &api.base_url);
        for tenant in tenants.iter() {
            let Some(secret) = tenant.webhook_secrets.first() else {
                continue;
            };
            // Where `webhooks check` sends it: the tenant's URL, else the webhook's naming it.
            let url = tenant.url.clone().unwrap_or_else(|| {
                format!(
                    "https://hooks.example/webhooks/{}?tenant={}",
                    provider.name(),
                    tenant.id
                )
            });
            let delivery =
                check::delivery(provider.as_ref(), tenant, secret.expose(), &url, &sample())
                    .unwrap_or_else(|e| panic!("{}/{}: {e}", provider.name(), tenant.id));
            let key = local
                .deliver_request(provider.name(), request(&delivery, &url))
                .await;
            assert_eq!(key, delivery.key, "{}/{}", provider.name(), tenant.id);
            assert_eq!(local.pump().await, 1);
            let record = local.record(&key).await;
            assert_eq!(record.status, Status::Processed, "{key}");
            let detail: Value = serde_json::from_str(record.detail.as_deref().unwrap()).unwrap();
            assert_eq!(detail["check"]["fetched"], false, "{key}");
            checked += 1;
        }
    }
    assert!(checked >= 5, "every provider's demo tenants: {checked}");
    assert_eq!(api.total_calls(), 0, "{:?}", api.requests());
    assert_eq!(published.count(), 0, "{}", published.since(0));
}

/// A body that merely mentions the mark, or carries it below the top level, is processed as
/// what it is: fetched.
#[tokio::test]
async fn only_a_top_level_mark_in_the_signed_body_makes_a_check() {
    let api = FakeApi::start().await;
    let local = InMemory::new(&api, ProcessorSettings::default());
    let bodies = [
        r#"{"entityId": 7893459, "uuid": "nested", "payload": [{"timestamp": 1, "type": "CUSTOMER_CREATED", "content": {"webhooks_check": "c1"}}]}"#,
        r#"{"entityId": 7893459, "uuid": "mention", "note": "webhooks_check", "payload": [{"timestamp": 1, "type": "CUSTOMER_CREATED"}]}"#,
    ];
    for body in bodies {
        let request = tests::post(
            "magicline",
            &[
                ("x-api-key", "ml-demo-key-1001-new"),
                ("content-type", "application/json"),
            ],
            body,
        );
        let key = local.deliver_request("magicline", request).await;
        assert_eq!(local.pump().await, 1);
        let record = local.record(&key).await;
        assert_eq!(record.status, Status::Processed, "{body}");
        assert!(check::check_of(&record).is_none(), "{body}");
        assert!(
            !record.detail.unwrap_or_default().contains("\"check\""),
            "{body}"
        );
    }
    assert_eq!(api.total_calls(), 2, "each fetched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_every_hop_on_the_dev_server() {
    let config = copy_of_devserver_toml();
    let (server, data) = devserver_on(config.clone()).await;
    let config_arg = config.display().to_string();
    let place = ["--local", data.as_str(), "--config", &config_arg];
    for (provider, tenant) in [("egym", "gym-berlin-01"), ("waitwhile", "loc-downtown")] {
        let url = format!("http://{}/webhooks/{provider}?tenant={tenant}", server.addr);
        let args = [
            "check", provider, "--tenant", tenant, "--url", &url, "--wait", "20",
        ];
        let output = cli(&place, &args).await;
        assert_eq!(output.code, 0, "{output:?}");
        for hop in ["answer", "stored", "queued", "processed"] {
            assert!(output.stdout.contains(&format!("  {hop}")), "{output:?}");
        }
        assert!(output.stdout.contains("passed"), "{output:?}");

        let mut json = vec!["--json"];
        json.extend_from_slice(&args);
        let output = cli(&place, &json).await;
        assert_eq!(output.code, 0, "{output:?}");
        let report: Value = serde_json::from_str(&output.stdout).unwrap();
        assert_eq!(report["passed"], true);
        assert_eq!(report["hops"].as_array().unwrap().len(), 4);
        assert!(report["hops"][3]["after_ms"].as_i64().is_some(), "{report}");
    }

    let refused = cli(
        &place,
        &["check", "egym", "--tenant", "no-such-gym", "--wait", "1"],
    )
    .await;
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.contains("tenants list egym"), "{refused:?}");
    server.shutdown().await;
    let _ = std::fs::remove_file(&config);
}

/// A healthy stack passes every hop; with the work queue gone the record is stored and the
/// check fails at `queued`, saying what that means.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_passes_on_a_healthy_stack_and_names_the_queue_when_it_is_down() {
    let backend = Arc::new(Backend::new().await);
    let (stack, _, _) = stack_with_egym_secrets(&backend).await;
    let api = FakeApi::start().await;
    let processor = backend.processor(&api, ProcessorSettings::default(), Duration::from_secs(2));
    let (healthy, _server) = serve_ingest(backend.ingest("egym")).await;
    let processing = {
        let backend = Arc::clone(&backend);
        tokio::spawn(async move {
            loop {
                backend.pump(&processor).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let place = ["--stack", stack.as_str()];
    let url = format!("http://{healthy}/webhooks/egym");
    let args = [
        "check",
        "egym",
        "--tenant",
        "gym-berlin-01",
        "--url",
        &url,
        "--wait",
        "30",
    ];
    let passed = cli(&place, &args).await;
    assert_eq!(passed.code, 0, "{passed:?}");
    assert!(passed.stdout.contains("passed"), "{passed:?}");
    assert_eq!(api.total_calls(), 0);

    let aws = tests::local_aws().await;
    let gone = format!("{}-gone", backend.queue_url);
    let broken = adapter_aws::ports(
        backend.store(),
        SqsQueue::new(aws_sdk_sqs::Client::new(&aws), &gone),
        webhook_core::clock::system(),
    );
    let ingest = Ingest::new(
        webhook_core::providers::by_name("egym").unwrap(),
        TenantSource::fixed(tests::demo_tenants("egym")),
        broken,
        IngestSettings::default(),
    );
    let (down, _server) = serve_ingest(ingest).await;
    let url = format!("http://{down}/webhooks/egym");
    let failed = cli(
        &place,
        &[
            "check",
            "egym",
            "--tenant",
            "gym-berlin-01",
            "--url",
            &url,
            "--wait",
            "3",
        ],
    )
    .await;
    processing.abort();
    assert_eq!(failed.code, 1, "{failed:?}");
    assert!(
        failed.stdout.contains("  stored") && failed.stdout.contains("queued     FAILED"),
        "{failed:?}"
    );
    assert!(failed.stdout.contains("work queue"), "{failed:?}");
}
