//! The dev server's event pages over real HTTP on loopback ports, as a browser uses them: the
//! list renders the delivered events with their status and its filters narrow it, a record's
//! page shows an attacker's body escaped, the Replay button (a form POST) makes a FAILED event
//! processed once, the Release button stores a quarantined delivery under its real key once,
//! the Pause and Resume buttons hold and let go a provider's processing, every page says when
//! the configuration file has changed since the server started, forms from other sites and hosts other than loopback are refused, and the webhook port
//! serves none of it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use devserver::{Options, RunningServer};
use reqwest::header;
use tests::fake_api::{Behavior, FakeApi};
use tests::{root, unique_name};
use webhook_core::model::{Record, Status};

fn options(config: &Path) -> Options {
    Options {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        config: config.to_path_buf(),
        data: std::env::temp_dir().join(format!("{}.db", unique_name("pages"))),
        workers: 1,
        visibility: Duration::from_secs(1),
        max_receives: 5,
        retry_backoff: Duration::from_secs(10),
        poll_interval: Duration::from_millis(20),
        sweep_interval: Duration::from_millis(200),
        clock: webhook_core::clock::system(),
    }
}

async fn start() -> RunningServer {
    devserver::start(options(&root().join("devserver.toml")))
        .await
        .unwrap()
}

/// A server whose tenants call `fake` instead of the sandbox.
async fn start_with(fake: &FakeApi) -> RunningServer {
    let text = std::fs::read_to_string(root().join("devserver.toml")).unwrap();
    let config = temp_file("toml", &text.replace("{sandbox}", &fake.base_url));
    devserver::start(options(&config)).await.unwrap()
}

fn temp_file(extension: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("{}.{extension}", unique_name("pages")));
    std::fs::write(&path, text).unwrap();
    path
}

/// A browser-like client: asks for HTML, follows no redirects (the tests look at them).
fn browser() -> reqwest::Client {
    let mut headers = header::HeaderMap::new();
    headers.insert(
        header::ACCEPT,
        header::HeaderValue::from_static("text/html,application/xhtml+xml,*/*;q=0.8"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn page(server: &RunningServer, path: &str) -> String {
    let answer = browser()
        .get(format!("http://{}{path}", server.admin_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "{path}");
    assert!(answer.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    answer.text().await.unwrap()
}

/// What a click on a page's form button does: POSTs to the form's action (read from the page,
/// as the browser does), then follows the redirect with the cookie it set. Returns the page
/// it lands on.
async fn click(server: &RunningServer, on_page: &str, button: &str) -> (String, String) {
    let html = page(server, on_page).await;
    let action = form_action(&html, button)
        .unwrap_or_else(|| panic!("no {button} button on {on_page}: {html}"));
    let admin = format!("http://{}", server.admin_addr);
    let answer = browser()
        .post(format!("{admin}{action}"))
        .header(header::ORIGIN, &admin)
        .header("sec-fetch-site", "same-origin")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303, "{action}");
    let location = answer.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_string();
    let cookie = answer.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let landed = browser()
        .get(format!("{admin}{location}"))
        .header(header::COOKIE, cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(landed.status(), 200);
    assert!(
        landed.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0"),
        "the flash message is shown once"
    );
    (location, landed.text().await.unwrap())
}

/// The action of the form whose submit button reads `button`.
fn form_action(html: &str, button: &str) -> Option<String> {
    html.split("<form ").skip(1).find_map(|form| {
        let form = form.split("</form>").next()?;
        if !form.contains(&format!(">{button}</button>")) || !form.contains(r#"method="post""#) {
            return None;
        }
        let action = form.split(r#"action=""#).nth(1)?.split('"').next()?;
        Some(action.replace("&amp;", "&"))
    })
}

/// The flash message of a page.
fn flash(html: &str) -> &str {
    html.split(r#"<p class="flash "#)
        .nth(1)
        .and_then(|rest| rest.split("</p>").next())
        .unwrap_or_else(|| panic!("no flash message: {html}"))
}

/// As the pages write a key in a link: every byte but the unreserved ones percent-encoded.
fn pct(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn link(key: &str) -> String {
    format!(r#"href="/events/{}""#, pct(key))
}

/// The keys a list page links to, in order.
fn listed(html: &str) -> Vec<String> {
    let table = html.split("<tbody>").nth(1).unwrap_or_default();
    table
        .split(r#"<a href="/events/"#)
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_string)
        .collect()
}

async fn send_file(server: &RunningServer, file: &str) -> serde_json::Value {
    let answer = devserver::send::send(
        root().join("events").join(file).to_str().unwrap(),
        &format!("http://{}", server.addr),
    )
    .await
    .unwrap();
    assert!(answer.status < 300, "{file}: {}", answer.body);
    serde_json::from_str(&answer.body).unwrap()
}

/// A Magicline delivery with studio-1001's key, `body` and `content_type` as given.
async fn deliver(server: &RunningServer, body: &str, content_type: &str) -> serde_json::Value {
    let answer = reqwest::Client::new()
        .post(format!("http://{}/webhooks/magicline", server.addr))
        .header("x-api-key", "ml-demo-key-1001-new")
        .header(header::CONTENT_TYPE, content_type)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    answer.json().await.unwrap()
}

/// Waits until no record is waiting for the processor (bounded).
async fn settled(server: &RunningServer) -> Vec<Record> {
    let started = Instant::now();
    loop {
        let records = server.database.recent_records(1000).await.unwrap();
        if records.iter().all(|r| {
            matches!(
                r.status,
                Status::Processed | Status::Failed | Status::Quarantined
            )
        }) {
            return records;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "processing did not settle: {records:#?}"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

async fn record(server: &RunningServer, key: &str) -> Record {
    server
        .database
        .recent_records(1000)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.key == key)
        .unwrap_or_else(|| panic!("no record {key}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_page_shows_the_events_with_their_status_and_filters_narrow_it() {
    let server = start().await;
    let customer = send_file(&server, "magicline/customer-created.json").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let checkin = send_file(&server, "egym/gym-checkin.json").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let unreadable = send_file(&server, "magicline/bad-missing-uuid.json").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    settled(&server).await;

    let html = page(&server, "/events").await;
    assert!(html.to_ascii_lowercase().starts_with("<!doctype html>"));
    // Newest first, each with its status in its colour.
    assert_eq!(
        listed(&html),
        [&unreadable, &checkin, &customer].map(|k| pct(k))
    );
    for (key, status) in [
        (&customer, "processed"),
        (&checkin, "processed"),
        (&unreadable, "quarantined"),
    ] {
        let row = html
            .split(&link(key))
            .next()
            .unwrap()
            .rsplit("<tr>")
            .next()
            .unwrap();
        assert!(
            row.contains(&format!(
                r#"<span class="status s-{status}">{}</span>"#,
                status.to_uppercase()
            )),
            "{key}: {row}"
        );
    }
    // The stats strip counts by status.
    assert!(
        html.contains(r#"s-processed">PROCESSED</span><b>2</b>"#),
        "{html}"
    );
    assert!(html.contains(r#"s-quarantined">QUARANTINED</span><b>1</b>"#));
    assert!(html.contains(r#"s-failed">FAILED</span><b>0</b>"#));
    // The live refresh fetches the list part with the same filters; it works without it.
    assert!(html.contains(r#"<script src="/assets/live.js" defer></script>"#));
    assert!(html.contains(r#"data-source="/events?part=live""#));
    assert!(html.contains("<noscript>"));

    for (query, expected) in [
        ("provider=egym", vec![&checkin]),
        ("provider=magicline", vec![&unreadable, &customer]),
        ("tenant=studio-1001", vec![&unreadable, &customer]),
        ("status=QUARANTINED", vec![&unreadable]),
        ("status=processed&provider=magicline", vec![&customer]),
        ("provider=magicline&tenant=studio-2002", vec![]),
    ] {
        let html = page(&server, &format!("/events?{query}")).await;
        let expected: Vec<String> = expected.into_iter().map(|k| pct(k)).collect();
        assert_eq!(listed(&html), expected, "{query}");
        // The live part has the filters too, and is the table alone.
        let live = page(&server, &format!("/events?{query}&part=live")).await;
        assert_eq!(listed(&live), expected, "{query} (live)");
        assert!(!live.contains("<html"));
    }
    let html = page(&server, "/events?provider=nosuch").await;
    assert!(html.contains("no provider is called"), "{html}");
    let html = page(&server, "/events?status=DONE").await;
    assert!(html.contains("No status is called DONE"), "{html}");

    // Scripts keep their JSON; a browser at / is sent to the list.
    let json: serde_json::Value = reqwest::get(format!("http://{}/_dev/events", server.admin_addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(json.as_array().unwrap().len(), 3);
    let index = browser()
        .get(format!("http://{}/", server.admin_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(index.status(), 303);
    assert_eq!(index.headers()[header::LOCATION], "/events");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_page_shows_an_unreadable_body_escaped() {
    let server = start().await;
    // Authentic (studio-1001's key), unreadable (no uuid): quarantined as it came.
    let body = r#"{"entityId": 1, "note": "<script>alert(1)</script>", "payload": [{"type": "<img src=x onerror=alert(2)>"}]}"#;
    let answer = deliver(&server, body, "application/json").await;
    assert_eq!(answer["status"], "quarantined", "{answer}");
    let key = answer["id"].as_str().unwrap().to_string();

    let html = page(&server, &format!("/events/{}", pct(&key))).await;
    assert!(
        html.contains("&quot;note&quot;: &quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;"),
        "{html}"
    );
    assert!(html.contains("&lt;img src=x onerror=alert(2)&gt;"));
    assert!(!html.contains("<script>alert"));
    assert!(!html.contains("<img"));
    assert!(html.contains(r#"<span class="status s-quarantined">QUARANTINED</span>"#));
    assert!(html.contains("malformed body"), "the reason is shown");
    // The list shows it escaped too, and so does the live part of the record page.
    let list = page(&server, "/events").await;
    assert!(!list.contains("<script>alert") && !list.contains("<img"));
    let live = page(&server, &format!("/events/{}?part=live", pct(&key))).await;
    assert!(live.contains("&lt;script&gt;") && !live.contains("<script>alert"));
    // Quarantined: released, never replayed.
    assert!(form_action(&html, "Release").is_some());
    assert!(form_action(&html, "Replay").is_none());

    let missing = browser()
        .get(format!(
            "http://{}/events/{}",
            server.admin_addr,
            pct("magicline#studio-1001#<nosuch>")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let missing = missing.text().await.unwrap();
    assert!(missing.contains("&lt;nosuch&gt;") && !missing.contains("<nosuch>"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replay_button_makes_a_failed_event_processed_once() {
    let fake = FakeApi::start().await;
    let customer_path = "/magicline/v1/customers/7893459";
    fake.set(customer_path, Behavior::Status(404));
    let server = start_with(&fake).await;
    let key = send_file(&server, "magicline/customer-created.json").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    settled(&server).await;
    let failed = record(&server, &key).await;
    assert_eq!(failed.status, Status::Failed);
    assert!(failed.last_error.as_deref().unwrap().contains("404"));
    assert_eq!(fake.calls(customer_path), 1);
    let on_page = format!("/events/{}", pct(&key));
    let html = page(&server, &on_page).await;
    assert!(html.contains(r#"<span class="status s-failed">FAILED</span>"#));
    assert!(html.contains("provider API answered 404"));

    // A form posted from another site is refused, and nothing happens.
    let admin = format!("http://{}", server.admin_addr);
    for (name, value) in [
        ("origin", "http://evil.example"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let refused = browser()
            .post(format!("{admin}{on_page}/replay"))
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403, "{name}: {value}");
    }
    assert_eq!(record(&server, &key).await.status, Status::Failed);

    // The provider's API answers again; the operator presses Replay.
    fake.clear();
    let (location, landed) = click(&server, &on_page, "Replay").await;
    assert_eq!(location, on_page, "back to the same record");
    assert!(
        flash(&landed).starts_with(r#"ok" role="status">Replay: queued."#),
        "{landed}"
    );
    let records = settled(&server).await;
    assert_eq!(records.len(), 1);
    let replayed = record(&server, &key).await;
    assert_eq!(
        replayed.status,
        Status::Processed,
        "{:?}",
        replayed.last_error
    );
    assert_eq!(replayed.last_error, None);
    assert!(replayed.detail.as_deref().unwrap().contains("Mia"));
    // Processed once: one more call, and no other ever. The server's single worker processes
    // a later delivery only once it has finished, and deleted, every message before it.
    send_file(&server, "egym/gym-checkin.json").await;
    assert_eq!(settled(&server).await.len(), 2);
    assert_eq!(fake.calls(customer_path), 2);
    let html = page(&server, &on_page).await;
    assert!(html.contains(r#"<span class="status s-processed">PROCESSED</span>"#));
    assert!(html.contains("data-settled"), "the live refresh stops");
    assert!(
        html.contains("&quot;firstName&quot;: &quot;Mia&quot;")
            || html.contains(r#""firstName": "Mia""#)
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_release_button_stores_a_quarantined_event_under_its_real_key_once() {
    let server = start().await;
    // The sample's body, declared as text: authentic, but not JSON by its content-type.
    let sample: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("events/magicline/customer-created.json")).unwrap(),
    )
    .unwrap();
    let body = sample["body"].as_str().unwrap();
    let answer = deliver(&server, body, "text/plain").await;
    assert_eq!(answer["status"], "quarantined", "{answer}");
    let quarantined = answer["id"].as_str().unwrap().to_string();
    let real = "magicline#studio-1001#095be615-a8ad-4c33-8e9c-c7612fbf6c9f";
    let on_page = format!("/events/{}", pct(&quarantined));

    let (location, landed) = click(&server, &on_page, "Release").await;
    assert_eq!(location, on_page);
    let message = flash(&landed);
    assert!(
        message.contains(&format!("Released as {real}")),
        "{message}"
    );
    assert!(message.contains(&link(real)), "{message}");
    let records = settled(&server).await;
    assert_eq!(
        records.len(),
        2,
        "the quarantined record and the released one"
    );
    let released = record(&server, real).await;
    assert_eq!(
        released.status,
        Status::Processed,
        "{:?}",
        released.last_error
    );
    assert_eq!(released.attempts, 1);
    assert_eq!(released.body, body);
    assert_eq!(
        record(&server, &quarantined).await.status,
        Status::Processed
    );
    let html = page(&server, &on_page).await;
    assert!(html.contains("Released from quarantine as"), "{html}");
    assert!(html.contains(&link(real)));
    assert!(form_action(&html, "Release").is_none());

    // Released once: a second release (an old tab) says why not and stores nothing.
    let admin = format!("http://{}", server.admin_addr);
    let again = browser()
        .post(format!("{admin}{on_page}/release"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 303);
    let cookie = again.headers()[header::SET_COOKIE].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let html = browser()
        .get(format!("{admin}{on_page}"))
        .header(header::COOKIE, cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(flash(&html).contains("is not quarantined"), "{html}");
    assert_eq!(settled(&server).await.len(), 2);

    // A body that still does not parse stays quarantined, and the page says why.
    let answer = deliver(
        &server,
        r#"{"entityId": 1, "payload": []}"#,
        "application/json",
    )
    .await;
    let unreadable = answer["id"].as_str().unwrap().to_string();
    let (_, landed) = click(&server, &format!("/events/{}", pct(&unreadable)), "Release").await;
    let message = flash(&landed);
    assert!(message.starts_with("warn"), "{message}");
    assert!(message.contains("still does not parse"), "{message}");
    assert_eq!(
        record(&server, &unreadable).await.status,
        Status::Quarantined
    );
    assert_eq!(settled(&server).await.len(), 3);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_port_serves_no_page_and_other_hosts_are_refused() {
    let server = start().await;
    let key = send_file(&server, "magicline/customer-created.json").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    settled(&server).await;
    let on_page = format!("/events/{}", pct(&key));
    let webhooks = format!("http://{}", server.addr);
    for path in [
        "/events".to_string(),
        "/events?part=live".to_string(),
        on_page.clone(),
        "/assets/style.css".to_string(),
        "/assets/live.js".to_string(),
    ] {
        let answer = browser()
            .get(format!("{webhooks}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 404, "{path} on the webhook port");
        let body = answer.text().await.unwrap();
        assert!(!body.contains("7893459"), "{path}: {body}");
    }
    for button in ["replay", "release"] {
        let answer = browser()
            .post(format!("{webhooks}{on_page}/{button}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 404, "{button} on the webhook port");
    }
    let untouched = record(&server, &key).await;
    assert_eq!(
        (untouched.status, untouched.attempts),
        (Status::Processed, 1)
    );

    // On the admin port, a request naming another host (DNS rebinding) gets nothing.
    let admin = format!("http://{}", server.admin_addr);
    for path in ["/events", on_page.as_str(), "/_dev/events"] {
        let answer = browser()
            .get(format!("{admin}{path}"))
            .header(header::HOST, "rebound.example:8081")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 403, "{path}");
        assert!(!answer.text().await.unwrap().contains("7893459"));
    }
    let answer = browser()
        .get(format!("{admin}/events"))
        .header(
            header::HOST,
            format!("localhost:{}", server.admin_addr.port()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    // The page's own headers: no inline script runs, nothing is cached.
    let policy = answer.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    assert_eq!(answer.headers()[header::CACHE_CONTROL], "no-store");
    server.shutdown().await;
}

/// The events page's Pause button holds a provider's processing — its webhooks still
/// acknowledged and stored, none processed, no attempt used up — and its Resume button lets
/// them be processed, once each; another provider goes on meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pause_and_resume_buttons_hold_a_providers_processing() {
    let server = start().await;
    let (landed_at, html) = click(&server, "/events", "Pause magicline").await;
    assert_eq!(landed_at, "/events");
    assert!(flash(&html).contains("Paused magicline"), "{html}");
    assert!(html.contains(">Resume magicline</button>"), "{html}");
    assert!(
        html.contains(">Pause egym</button>"),
        "another provider goes on"
    );

    let held = send_file(&server, "magicline/customer-created.json").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let other = send_file(&server, "egym/gym-checkin.json").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let started = Instant::now();
    while record(&server, &other).await.status != Status::Processed {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "egym not processed"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let waiting = record(&server, &held).await;
    assert_ne!(waiting.status, Status::Processed, "held while paused");
    assert_eq!(waiting.attempts, 0, "not even claimed");

    let (_, html) = click(&server, "/events", "Resume magicline").await;
    assert!(flash(&html).contains("Resumed magicline"), "{html}");
    // A held message is looked at again every 30 s.
    let started = Instant::now();
    while record(&server, &held).await.status != Status::Processed {
        assert!(
            started.elapsed() < Duration::from_secs(45),
            "not processed once resumed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let resumed = record(&server, &held).await;
    assert_eq!(
        (resumed.status, resumed.attempts),
        (Status::Processed, 1),
        "processed once"
    );
    server.shutdown().await;
}

/// Only the tenants are read again while the server runs: once the file on disk says
/// something else, every page says so (and what a restart is still needed for), as does the
/// admin port's index for scripts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_say_when_the_configuration_file_has_changed_since_start() {
    let text = std::fs::read_to_string(root().join("devserver.toml")).unwrap();
    let config = temp_file("toml", &text);
    let server = devserver::start(options(&config)).await.unwrap();
    let index = || async {
        let answer = reqwest::get(format!("http://{}/", server.admin_addr))
            .await
            .unwrap();
        answer.json::<serde_json::Value>().await.unwrap()["config"]["changed_since_start"].clone()
    };
    assert!(!page(&server, "/events")
        .await
        .contains("id=\"config-changed\""));
    assert_eq!(index().await, false);

    std::fs::write(&config, text.replace("studio-1001", "studio-1002")).unwrap();
    let html = page(&server, "/events").await;
    assert!(
        html.contains("has changed since the server started"),
        "{html}"
    );
    assert!(
        html.contains("tenants are read again within 3 s")
            && html.contains("once the server is restarted"),
        "{html}"
    );
    assert_eq!(index().await, true);

    std::fs::write(&config, &text).unwrap();
    assert!(
        !page(&server, "/events")
            .await
            .contains("id=\"config-changed\""),
        "the same again"
    );
    server.shutdown().await;
    let _ = std::fs::remove_file(config);
}
