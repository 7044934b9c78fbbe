//! `webhooks tenants …` where the functions read the tenants: the dev server's `devserver.toml`
//! (`--local`) and the stack's Secrets Manager secret (`--stack`, on the local endpoint). Add,
//! set, rotate, retire, remove and roll back a tenant; the running functions (a dev server
//! started on the file, an ingest reading the secret as the Lambda does) accept a delivery
//! signed with the generated secret; a malformed change is refused by its path, with no
//! secret in the answer, and nothing written.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use adapter_aws::SecretsManager;
use serde_json::{json, Value};
use tests::{demo_tenants_json, post, root, unique_name, Backend};
use webhook_core::tenants::{SecretReader, TenantDirectory, TenantSource};
use webhook_core::{Ingest, IngestSettings};
use webhooks::Output;

pub(crate) async fn cli(place: &[&str], args: &[&str]) -> Output {
    let mut all = vec!["webhooks"];
    all.extend_from_slice(place);
    all.extend_from_slice(args);
    webhooks::run(all.into_iter().map(str::to_string).collect::<Vec<_>>()).await
}

/// The secret a change generated and printed once (`--json`).
fn generated(output: &Output) -> String {
    assert_eq!(output.code, 0, "{output:?}");
    let answer: Value = serde_json::from_str(&output.stdout).unwrap();
    answer["webhook_secret"]
        .as_str()
        .expect("a generated secret")
        .to_string()
}

pub(crate) fn copy_of_devserver_toml() -> PathBuf {
    let path = std::env::temp_dir().join(format!("{}.toml", unique_name("tenants")));
    std::fs::copy(root().join("devserver.toml"), &path).unwrap();
    path
}

fn egym_tenants_in(path: &Path) -> Vec<Value> {
    let table: toml::Table = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let tenants = table["egym"]["tenants"].clone();
    serde_json::to_value(tenants)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn tenant<'a>(tenants: &'a [Value], id: &str) -> Option<&'a Value> {
    tenants.iter().find(|t| t["id"] == id)
}

/// Posts a new EGYM check-in signed with `secret` to the running dev server until it answers
/// `status` (the server reads its tenants again every `TENANTS_RELOAD`); its answer.
async fn answers_within(server: &devserver::RunningServer, secret: &str, status: u16) -> Value {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let deadline = std::time::Instant::now() + devserver::TENANTS_RELOAD * 5;
    loop {
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let body = String::from_utf8(egym_checkin(secret).body().to_vec())
            .unwrap()
            .replace("\"timestamp\": ", &format!("\"timestamp\": {seq}"));
        let answer = reqwest::Client::new()
            .post(format!("http://{}/webhooks/egym", server.addr))
            .header("x-api-key", secret)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let got = answer.status().as_u16();
        let text = answer.text().await.unwrap();
        if got == status {
            return serde_json::from_str(&text).unwrap_or(Value::Null);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {got} {text}, not {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A delivery of EGYM's check-in sample, authenticated with `secret`.
fn egym_checkin(secret: &str) -> webhook_core::WebhookRequest {
    let sample = tests::event("egym/gym-checkin.json");
    let body = String::from_utf8(sample.body().to_vec()).unwrap();
    post(
        "egym",
        &[("x-api-key", secret), ("content-type", "application/json")],
        &body,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_added_rotated_retired_removed_and_rolled_back_in_devserver_toml() {
    let config = copy_of_devserver_toml();
    let config_arg = config.display().to_string();
    let place = ["--local", "unused.db", "--config", &config_arg];
    // A dev server running on the file all along: it reads the tenants again as they change.
    let server = devserver::start(devserver::Options {
        config: config.clone(),
        ..devserver_options()
    })
    .await
    .unwrap();

    let added = cli(
        &place,
        &[
            "--json",
            "tenants",
            "add",
            "egym",
            "gym-new",
            "api.base_url=https://api.example",
            "api.api_key=key-1",
        ],
    )
    .await;
    let first = generated(&added);
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.starts_with("# Demo tenants"),
        "the file's comments stay"
    );
    let tenants = egym_tenants_in(&config);
    let new = tenant(&tenants, "gym-new").expect("added");
    assert_eq!(new["webhook_secrets"], json!([first]));
    assert_eq!(new["api"]["base_url"], "https://api.example");
    assert!(
        tenant(&tenants, "gym-berlin-01").is_some(),
        "the others stay"
    );

    // The running dev server accepts a delivery signed with the new secret, without a restart.
    let stored = answers_within(&server, &first, 202).await;
    assert!(
        stored["id"].as_str().unwrap().starts_with("egym#gym-new#"),
        "{stored}"
    );

    let shown = cli(&place, &["tenants", "show", "egym", "gym-new"]).await;
    assert_eq!(shown.code, 0, "{shown:?}");
    assert!(
        !shown.stdout.contains(&first) && !shown.stdout.contains("key-1"),
        "{shown:?}"
    );
    assert!(shown.stdout.contains("https://api.example"), "{shown:?}");

    let rotated = cli(&place, &["--json", "tenants", "rotate", "egym", "gym-new"]).await;
    let second = generated(&rotated);
    let secrets = |path: &Path| {
        tenant(&egym_tenants_in(path), "gym-new").map(|t| t["webhook_secrets"].clone())
    };
    assert_eq!(
        secrets(&config),
        Some(json!([second, first])),
        "both accepted"
    );
    answers_within(&server, &second, 202).await;
    let retired = cli(&place, &["tenants", "retire", "egym", "gym-new"]).await;
    assert_eq!(retired.code, 0, "{retired:?}");
    assert_eq!(secrets(&config), Some(json!([second])));
    answers_within(&server, &first, 401).await;

    let before = std::fs::read_to_string(&config).unwrap();
    let typo = cli(
        &place,
        &[
            "tenants",
            "set",
            "egym",
            "gym-new",
            "api.api_kye=very-secret-9",
        ],
    )
    .await;
    assert_eq!(typo.code, 1, "{typo:?}");
    assert!(
        typo.stderr.contains("api_kye"),
        "names the setting: {typo:?}"
    );
    assert!(
        !format!("{typo:?}").contains("very-secret-9"),
        "no value: {typo:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        before,
        "nothing written"
    );

    let leaked = cli(
        &place,
        &[
            "tenants",
            "set",
            "egym",
            "gym-new",
            "api.rate:={oops-secret-5",
        ],
    )
    .await;
    assert_eq!(leaked.code, 2, "{leaked:?}");
    assert!(
        leaked.stderr.contains("api.rate:= takes JSON"),
        "{leaked:?}"
    );
    assert!(
        !format!("{leaked:?}").contains("oops-secret-5"),
        "no value: {leaked:?}"
    );

    let removed = cli(&place, &["tenants", "remove", "egym", "gym-new"]).await;
    assert_eq!(removed.code, 0, "{removed:?}");
    assert_eq!(secrets(&config), None);
    answers_within(&server, &second, 401).await;
    // Another provider's change meanwhile: its table (the first, under the file's comment) keeps
    // its comment and its settings' order, and a rollback of EGYM leaves it as it is.
    let magicline = cli(
        &place,
        &[
            "tenants",
            "rotate",
            "magicline",
            "studio-1001",
            "--secret",
            "ml-key-2",
        ],
    )
    .await;
    assert_eq!(magicline.code, 0, "{magicline:?}");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.starts_with("# Demo tenants"), "{text}");
    assert!(
        text.contains(
            "[[magicline.tenants]]\nid = \"studio-1001\"\nwebhook_secrets = [\"ml-key-2\""
        ),
        "{text}"
    );
    let rolled_back = cli(&place, &["tenants", "rollback", "egym"]).await;
    assert_eq!(rolled_back.code, 0, "{rolled_back:?}");
    assert_eq!(
        secrets(&config),
        Some(json!([second])),
        "back as before the removal"
    );
    assert!(
        std::fs::read_to_string(&config)
            .unwrap()
            .contains("ml-key-2"),
        "magicline's change stays"
    );
    answers_within(&server, &second, 202).await;
    server.shutdown().await;

    let issued = cli(&place, &["tenants", "add", "magicline", "studio-9"]).await;
    assert_eq!(issued.code, 2, "{issued:?}");
    assert!(issued.stderr.contains("--secret"), "{issued:?}");
    let listed = cli(&place, &["tenants", "list", "egym"]).await;
    assert!(
        listed.stdout.contains("gym-new") && !listed.stdout.contains(&second),
        "{listed:?}"
    );
    let _ = std::fs::remove_file(&config);
}

pub(crate) fn devserver_options() -> devserver::Options {
    devserver::Options {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        config: PathBuf::new(),
        data: std::env::temp_dir().join(format!("{}.db", unique_name("tenants"))),
        workers: 1,
        visibility: Duration::from_secs(5),
        max_receives: 5,
        retry_backoff: Duration::from_secs(10),
        poll_interval: Duration::from_millis(20),
        sweep_interval: Duration::from_millis(200),
        clock: webhook_core::clock::system(),
    }
}

/// A dev server on its own database with `config`, and that database's path (`--local`).
pub(crate) async fn devserver_on(config: PathBuf) -> (devserver::RunningServer, String) {
    let options = devserver_options();
    let data = options.data.display().to_string();
    let server = devserver::start(devserver::Options { config, ..options })
        .await
        .unwrap();
    (server, data)
}

/// A stack on the local endpoint whose outputs name EGYM's tenants and API access secrets.
pub(crate) async fn stack_with_egym_secrets(backend: &Backend) -> (String, String, String) {
    let aws = tests::local_aws().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&aws);
    let create = |name: &str, value: String| {
        let request = secrets
            .create_secret()
            .name(unique_name(name))
            .secret_string(value);
        async move { request.send().await.unwrap().arn.unwrap() }
    };
    let secret = create("egym-tenants", demo_tenants_json("egym")).await;
    let api = create("egym-api", json!({ "tenants": [] }).to_string()).await;
    let template = json!({
        "Resources": { "Placeholder": { "Type": "AWS::SQS::Queue" } },
        "Outputs": {
            "EventsTableName": { "Value": backend.table },
            "WorkQueueUrl": { "Value": backend.queue_url },
            "EgymTenantsSecretArn": { "Value": secret },
            "EgymApiSecretArn": { "Value": api },
        },
    });
    let name = unique_name("stack");
    aws_sdk_cloudformation::Client::new(&aws)
        .create_stack()
        .stack_name(&name)
        .template_body(template.to_string())
        .send()
        .await
        .unwrap();
    (name, secret, api)
}

#[tokio::test]
async fn tenants_are_changed_as_new_versions_of_the_stacks_secret() {
    let backend = Backend::new().await;
    let (stack, secret, api) = stack_with_egym_secrets(&backend).await;
    let place = ["--stack", stack.as_str()];
    let nothing = cli(&place, &["tenants", "rollback", "egym"]).await;
    assert_eq!(nothing.code, 1, "{nothing:?}");
    assert!(
        nothing.stderr.contains("nothing to roll back to"),
        "{nothing:?}"
    );
    let aws = tests::local_aws().await;
    // The ingest reads the secret as the Lambda does, reloading it at every look.
    let reader = Arc::new(SecretsManager::new(&aws));
    let loader: webhook_core::tenants::Loader = {
        let (reader, secret) = (reader.clone(), secret.clone());
        Arc::new(move || {
            let (reader, secret) = (reader.clone(), secret.clone());
            Box::pin(async move {
                let text = reader
                    .read(&secret)
                    .await
                    .map_err(webhook_core::tenants::ConfigError::Invalid)?;
                TenantDirectory::from_json(&text)
            })
        })
    };
    let source = TenantSource::refreshing(
        loader().await.unwrap(),
        Duration::ZERO,
        loader,
        webhook_core::clock::system(),
    );
    let ingest = Ingest::new(
        webhook_core::providers::by_name("egym").unwrap(),
        source.clone(),
        backend.ports(),
        IngestSettings::default(),
    );
    let deliver = |secret: String| {
        let (ingest, source) = (&ingest, source.clone());
        async move {
            source.current();
            source.settled().await;
            ingest
                .handle(egym_checkin(&secret))
                .await
                .status()
                .is_success()
        }
    };

    let added = cli(
        &place,
        &[
            "--json",
            "tenants",
            "add",
            "egym",
            "gym-cloud",
            "api.base_url=https://api.example",
            "api.api_key=k",
        ],
    )
    .await;
    let first = generated(&added);
    assert!(deliver(first.clone()).await, "picked up on the refresh");
    let tenants_doc = reader.read(&secret).await.unwrap();
    assert!(
        tenants_doc.contains("gym-cloud") && !tenants_doc.contains("api.example"),
        "{tenants_doc}"
    );
    let api_doc: Value = serde_json::from_str(&reader.read(&api).await.unwrap()).unwrap();
    let access = api_doc["tenants"].as_array().unwrap();
    assert!(
        access
            .iter()
            .any(|entry| entry["id"] == "gym-cloud"
                && entry["api"]["base_url"] == "https://api.example"),
        "{api_doc}"
    );

    let rotated = cli(
        &place,
        &["--json", "tenants", "rotate", "egym", "gym-cloud"],
    )
    .await;
    let second = generated(&rotated);
    assert!(deliver(second.clone()).await);
    assert!(deliver(first.clone()).await, "the old one still accepted");
    let retired = cli(&place, &["tenants", "retire", "egym", "gym-cloud"]).await;
    assert_eq!(retired.code, 0, "{retired:?}");
    assert!(!deliver(first.clone()).await, "retired");

    let typo = cli(
        &place,
        &[
            "tenants",
            "set",
            "egym",
            "gym-cloud",
            "webhook_secret=also-secret-7",
        ],
    )
    .await;
    assert_eq!(typo.code, 1, "{typo:?}");
    assert!(typo.stderr.contains("webhook_secret"), "{typo:?}");
    assert!(!format!("{typo:?}").contains("also-secret-7"), "{typo:?}");

    let removed = cli(&place, &["tenants", "remove", "egym", "gym-cloud"]).await;
    assert_eq!(removed.code, 0, "{removed:?}");
    assert!(!deliver(second.clone()).await, "removed");
    let rolled_back = cli(&place, &["tenants", "rollback", "egym"]).await;
    assert_eq!(rolled_back.code, 0, "{rolled_back:?}");
    assert!(deliver(second).await, "back");
    let shown = cli(&place, &["tenants", "show", "egym", "gym-cloud"]).await;
    assert!(
        shown.stdout.contains("characters") && !shown.stdout.contains(&first),
        "{shown:?}"
    );
}

/// `connect egym` registers the tenant's webhook through EGYM's management API (a new
/// subscription, then — the URL registered already — its secret set anew), has EGYM send its
/// `TEST` delivery, and waits until the dev server stored it; the other providers get the
/// steps to take by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_registers_an_egym_webhook_and_waits_for_its_test_delivery() {
    let gym = tests::egym_management::EgymManagement::start("egym-demo-api-berlin").await;
    let config = copy_of_devserver_toml();
    let config_arg = config.display().to_string();
    let options = devserver_options();
    let data = options.data.display().to_string();
    let place = ["--local", data.as_str(), "--config", &config_arg];
    let set = cli(
        &place,
        &[
            "tenants",
            "set",
            "egym",
            "gym-berlin-01",
            &format!("api.base_url={}", gym.base_url),
        ],
    )
    .await;
    assert_eq!(set.code, 0, "{set:?}");
    let server = devserver::start(devserver::Options {
        config: config.clone(),
        ..options
    })
    .await
    .unwrap();
    let url = format!("http://{}/webhooks/egym?tenant=gym-berlin-01", server.addr);

    let connect = [
        "connect",
        "egym",
        "--tenant",
        "gym-berlin-01",
        "--url",
        url.as_str(),
        "--wait",
        "20",
    ];
    let first = cli(&place, &connect).await;
    assert_eq!(first.code, 0, "{first:?}");
    assert!(
        first.stdout.contains("created")
            && first
                .stdout
                .contains("test delivery stored as egym#gym-berlin-01#"),
        "{first:?}"
    );
    let subscriptions = gym.subscriptions();
    assert_eq!(subscriptions.len(), 1);
    assert_eq!(subscriptions[0].url, url);
    assert_eq!(
        subscriptions[0].secret, "egym-demo-secret-berlin",
        "the tenant's newest secret"
    );

    let again = cli(&place, &connect).await;
    assert_eq!(again.code, 0, "{again:?}");
    assert!(
        again.stdout.contains("registered already"),
        "409, then updated: {again:?}"
    );
    assert_eq!(gym.subscriptions().len(), 1);
    assert_eq!(gym.test_deliveries(), [202, 202]);
    assert!(
        !format!("{first:?}{again:?}").contains("egym-demo-secret-berlin"),
        "no secret shown"
    );

    let manual = cli(
        &place,
        &[
            "connect",
            "magicline",
            "--tenant",
            "studio-1001",
            "--url",
            "https://hooks.example/webhooks/magicline",
        ],
    )
    .await;
    assert_eq!(manual.code, 0, "{manual:?}");
    assert!(
        manual.stdout.contains("E-mail Magicline")
            && manual
                .stdout
                .contains("https://hooks.example/webhooks/magicline"),
        "{manual:?}"
    );
    assert!(
        manual.stdout.contains(&format!("webhooks --local {data}")),
        "the place flags in the steps: {manual:?}"
    );
    server.shutdown().await;
    let _ = std::fs::remove_file(&config);
}
