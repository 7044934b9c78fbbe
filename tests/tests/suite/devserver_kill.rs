//! The dev server killed with SIGKILL under load loses nothing it acknowledged: it runs as a
//! process of its own (`devserver-process`) on a fresh database file, concurrent clients post
//! new deliveries until it dies, and a server restarted on the same file holds every delivery
//! answered 2xx, processes (or quarantines) each, and still counts a copy as a duplicate.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use devserver::Options;
use tests::{root, unique_name};
use webhook_core::clock::ManualClock;
use webhook_core::model::{Record, Status};

/// Concurrent clients, each posting new deliveries back to back until the server dies.
const CONNECTIONS: usize = 16;
/// The server is killed once this many deliveries were acknowledged.
const ACKNOWLEDGED_BEFORE_KILL: usize = 500;
/// Every this many deliveries one is authentic but unreadable (no `uuid`): quarantined.
const UNREADABLE_EVERY: u64 = 7;

/// The dev server process; killed when dropped, should the test fail before it kills it.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `devserver-process` on `data`, its log lines to `logs`; its webhook address once it
/// serves.
async fn spawn_server(data: &Path, logs: Stdio) -> (Process, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_devserver-process"))
        .arg(root().join("devserver.toml"))
        .arg(data)
        .stdin(Stdio::piped())
        .stdout(logs)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stderr.take().unwrap();
    let process = Process(child);
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        line
    })
    .await
    .unwrap();
    let addr = line
        .split_whitespace()
        .next()
        .unwrap_or_else(|| panic!("devserver-process did not start: {line:?}"))
        .parse()
        .unwrap();
    (process, addr)
}

/// The restarted server, in this process. Its clock starts past every lease and visibility
/// timeout the killed server left (ingest 60 s, claim 90 s): what the dead server held is
/// taken over at once instead of minutes later.
fn restart_options(data: &Path) -> Options {
    let clock = ManualClock::now();
    clock.advance(Duration::from_secs(10 * 60));
    Options {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: "127.0.0.1:0".parse().unwrap(),
        config: root().join("devserver.toml"),
        data: data.to_path_buf(),
        workers: 2,
        visibility: Duration::from_secs(30),
        max_receives: 5,
        retry_backoff: Duration::from_secs(10),
        poll_interval: Duration::from_millis(20),
        sweep_interval: Duration::from_millis(100),
        clock,
    }
}

/// Magicline deliveries (events/magicline/customer-created.json's headers and body), each
/// made new by its number `n`.
struct Deliveries {
    headers: reqwest::header::HeaderMap,
    body: serde_json::Value,
    run: String,
}

impl Deliveries {
    fn load() -> Deliveries {
        let text =
            std::fs::read_to_string(root().join("events/magicline/customer-created.json")).unwrap();
        let event: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in event["headers"].as_object().unwrap() {
            if ["host", "content-length"].contains(&name.as_str())
                || name.starts_with("x-forwarded")
            {
                continue;
            }
            headers.insert(
                reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.as_str().unwrap().parse().unwrap(),
            );
        }
        Deliveries {
            headers,
            body: serde_json::from_str(event["body"].as_str().unwrap()).unwrap(),
            run: unique_name("kill"),
        }
    }

    fn readable(n: u64) -> bool {
        !n.is_multiple_of(UNREADABLE_EVERY)
    }

    /// Delivery `n`'s body: its own `uuid`, or (unreadable) no `uuid` but its number.
    fn body(&self, n: u64) -> String {
        let mut body = self.body.clone();
        if Self::readable(n) {
            body["uuid"] = serde_json::json!(format!("{}-{n:08}", self.run));
        } else {
            body.as_object_mut().unwrap().remove("uuid");
            body["delivery"] = serde_json::json!(format!("{}-{n:08}", self.run));
        }
        body.to_string()
    }

    /// The number of the delivery a stored body is, if it is one of this run's.
    fn number_of(&self, body: &str) -> Option<u64> {
        let body: serde_json::Value = serde_json::from_str(body).ok()?;
        let id = body["uuid"].as_str().or(body["delivery"].as_str())?;
        id.strip_prefix(&format!("{}-", self.run))?.parse().ok()
    }

    async fn post(
        &self,
        client: &reqwest::Client,
        addr: SocketAddr,
        n: u64,
    ) -> reqwest::Result<(u16, serde_json::Value)> {
        let answer = client
            .post(format!("http://{addr}/webhooks/magicline"))
            .headers(self.headers.clone())
            .body(self.body(n))
            .send()
            .await?;
        let status = answer.status().as_u16();
        Ok((status, answer.json().await?))
    }
}

/// What the clients saw: the deliveries answered 2xx (with their answers) and the ones whose
/// request failed without an answer, and whether that request had reached a live connection.
#[derive(Default)]
struct Seen {
    acknowledged: BTreeMap<u64, serde_json::Value>,
    unanswered: BTreeMap<u64, bool>,
}

/// Waits until the restarted server has finished every record; returns them.
async fn settled(server: &devserver::RunningServer) -> Vec<Record> {
    let started = Instant::now();
    loop {
        let records = server.database.recent_records(100_000).await.unwrap();
        if records
            .iter()
            .all(|r| matches!(r.status, Status::Processed | Status::Quarantined))
        {
            return records;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "processing did not finish after the restart: {:#?}",
            records
                .iter()
                .filter(|r| !matches!(r.status, Status::Processed | Status::Quarantined))
                .take(3)
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_under_load_keeps_every_acknowledged_webhook_and_dedup() {
    let data: PathBuf = std::env::temp_dir().join(format!("{}.db", unique_name("kill")));
    let (mut process, addr) = spawn_server(&data, Stdio::null()).await;
    let deliveries = Arc::new(Deliveries::load());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let numbers = Arc::new(AtomicU64::new(1));
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let (deliveries, seen) = (Arc::clone(&deliveries), Arc::clone(&seen));
            let (numbers, acknowledged) = (Arc::clone(&numbers), Arc::clone(&acknowledged));
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                loop {
                    let n = numbers.fetch_add(1, Ordering::Relaxed);
                    match deliveries.post(&client, addr, n).await {
                        Ok((status, answer)) => {
                            assert_eq!(status, 202, "delivery {n}: {answer}");
                            seen.lock().unwrap().acknowledged.insert(n, answer);
                            acknowledged.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(error) => {
                            let reached_the_server = !error.is_connect();
                            seen.lock()
                                .unwrap()
                                .unanswered
                                .insert(n, reached_the_server);
                            return;
                        }
                    }
                }
            })
        })
        .collect();
    let waiting = Arc::clone(&acknowledged);
    tests::wait_until(Duration::from_secs(60), move || {
        waiting.load(Ordering::Relaxed) >= ACKNOWLEDGED_BEFORE_KILL
    })
    .await;
    process.0.kill().unwrap(); // SIGKILL
    process.0.wait().unwrap();
    for client in clients {
        client.await.unwrap();
    }
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(
        seen.unanswered.len(),
        CONNECTIONS,
        "every client posted until the server died"
    );
    assert!(
        seen.unanswered.values().any(|&reached| reached),
        "no request was in the server when it was killed: {:?}",
        seen.unanswered
    );

    let restarted = devserver::start(restart_options(&data)).await.unwrap();
    let number_of = |record: &Record| {
        deliveries
            .number_of(&record.body)
            .unwrap_or_else(|| panic!("{} is no delivery of this test", record.key))
    };
    let at_restart = restarted.database.recent_records(100_000).await.unwrap();
    let stored: BTreeSet<u64> = at_restart.iter().map(number_of).collect();
    let unfinished = at_restart
        .iter()
        .filter(|r| !matches!(r.status, Status::Processed | Status::Quarantined))
        .count();
    eprintln!(
        "killed after {} acknowledged; {} unanswered; {} stored, {unfinished} of them unfinished",
        seen.acknowledged.len(),
        seen.unanswered.len(),
        stored.len()
    );
    assert!(unfinished > 0, "the kill interrupted no processing");
    for (n, answer) in &seen.acknowledged {
        assert!(stored.contains(n), "acknowledged {answer} is not stored");
    }
    for n in &stored {
        assert!(
            seen.acknowledged.contains_key(n) || seen.unanswered.contains_key(n),
            "delivery {n} was never sent, or refused, yet stored"
        );
    }

    // The senders retry what was never answered, and a copy of an acknowledged delivery comes
    // in: a stored one is a duplicate (a quarantined one keeps its single record).
    let client = reqwest::Client::new();
    let first_readable = *seen
        .acknowledged
        .keys()
        .find(|&&n| Deliveries::readable(n))
        .unwrap();
    let first_unreadable = *seen
        .acknowledged
        .keys()
        .find(|&&n| !Deliveries::readable(n))
        .unwrap();
    let last = *seen.acknowledged.keys().next_back().unwrap();
    let copies = [first_readable, first_unreadable, last]
        .into_iter()
        .chain(seen.unanswered.keys().copied());
    for n in copies {
        let (status, answer) = deliveries.post(&client, restarted.addr, n).await.unwrap();
        if !Deliveries::readable(n) {
            assert_eq!(
                (status, &answer["status"]),
                (202, &serde_json::json!("quarantined")),
                "{n}"
            );
        } else if stored.contains(&n) {
            assert_eq!(
                (status, &answer["duplicate"]),
                (200, &serde_json::json!(true)),
                "{n}: {answer}"
            );
        } else {
            assert_eq!(
                (status, &answer["duplicate"]),
                (202, &serde_json::json!(false)),
                "{n}: {answer}"
            );
        }
        if let Some(first) = seen.acknowledged.get(&n) {
            assert_eq!(answer["id"], first["id"], "{n}");
        }
    }

    // Every delivery sent is stored once, and ends processed, or quarantined when unreadable.
    let records = settled(&restarted).await;
    let mut numbers: Vec<u64> = records.iter().map(number_of).collect();
    numbers.sort_unstable();
    let sent: Vec<u64> = seen
        .acknowledged
        .keys()
        .chain(seen.unanswered.keys())
        .copied()
        .collect::<BTreeSet<u64>>()
        .into_iter()
        .collect();
    assert!(
        numbers == sent,
        "{} records for {} deliveries sent",
        numbers.len(),
        sent.len()
    );
    for record in &records {
        let expected = if Deliveries::readable(number_of(record)) {
            Status::Processed
        } else {
            Status::Quarantined
        };
        assert_eq!(
            record.status, expected,
            "{}: {:?}",
            record.key, record.last_error
        );
    }
    restarted.shutdown().await;
    std::fs::remove_file(&data).ok();
}

/// The dev server's log lines written to a pipe (or a file), not a terminal, carry no colour
/// codes.
#[tokio::test]
async fn log_lines_to_a_pipe_carry_no_colour_codes() {
    let data = std::env::temp_dir().join(format!("{}.db", tests::unique_name("plain-logs")));
    let (mut process, _) = spawn_server(&data, Stdio::piped()).await;
    let stdout = process.0.stdout.take().unwrap();
    let logged = tokio::task::spawn_blocking(move || {
        let mut logged = String::new();
        let mut lines = std::io::BufReader::new(stdout).lines();
        while !logged.contains("dev server ready") {
            let line = lines
                .next()
                .expect("the log ended before the server was ready");
            logged.push_str(&line.unwrap());
            logged.push('\n');
        }
        logged
    })
    .await
    .unwrap();
    assert!(!logged.contains('\u{1b}'), "{logged:?}");
}
