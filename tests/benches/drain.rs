//! The drain at each provider's published rate limit (`scripts/bench`, section 9): for every
//! provider whose test kit names one, webhooks of one tenant, acknowledged, then processed
//! through the dev server with 4 workers (`BENCH_DRAIN_EVENTS`, 1,000) and through 3 processor
//! instances on DynamoDB + SQS (`BENCH_DRAIN_AWS_EVENTS`, 1,000; the local endpoint of
//! `AWS_ENDPOINT_URL`), against the fake
//! provider API answering 429 to any call over the limit. Through the dev server the providers
//! drain at once (their keys are independent); on the local endpoint one after another. Writes
//! the figures as JSON to the path given as the first argument.
//! `tests/tests/suite/flow_control.rs` runs the same code on a scaled-down window.

use futures::future::join_all;
use tests::drain::{self, Adapters, Drained, Pacing};

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let out = std::env::args()
        .nth(1)
        .filter(|arg| arg != "--bench")
        .unwrap_or_else(|| "target/bench/drain.json".into());
    let events = count("BENCH_DRAIN_EVENTS", 1000);
    let aws_events = count("BENCH_DRAIN_AWS_EVENTS", 1000);
    let kits = drain::rate_limited_kits();
    let mut results = Vec::new();
    eprintln!("drain: {events} events per provider through the dev server (4 workers)");
    let drains = kits
        .iter()
        .map(|kit| drain::through_devserver(kit, 4, events, Pacing::Published));
    results.extend(report(join_all(drains).await));
    // One provider after another: the local endpoint serves one request at a time, and what
    // it can serve, not the pacer, bounds a drain there.
    eprintln!("drain: {aws_events} events per provider through 3 processors on DynamoDB + SQS");
    for kit in &kits {
        let adapters = Adapters::Aws(tests::Backend::with_dead_letter_queue(3).await);
        let drained =
            drain::through_processors(kit, &adapters, 3, aws_events, Pacing::Published).await;
        results.extend(report(vec![drained]));
    }
    std::fs::write(&out, serde_json::to_string_pretty(&results).unwrap()).unwrap();
}

/// The number in the environment variable `name`, else `default`.
fn count(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|n| n.parse().unwrap_or_else(|_| panic!("{name}: a number")))
        .unwrap_or(default)
}

/// A drain's targets, from `bench/targets.json` (the report reads the same file).
struct Targets {
    min_share: f64,
    max_limited: f64,
}

fn targets() -> Targets {
    let path = tests::root().join("bench/targets.json");
    let targets: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let target = |name: &str| {
        targets[name]["target"]
            .as_f64()
            .unwrap_or_else(|| panic!("{}: {name}.target", path.display()))
    };
    Targets {
        min_share: target("drain_min_share"),
        max_limited: target("drain_max_limited"),
    }
}

/// Prints a line per drain as it ends, with whether it met its targets.
fn report(drains: Vec<Drained>) -> Vec<Drained> {
    let targets = targets();
    for d in &drains {
        let limited_share = d.limited as f64 / ((d.calls + d.limited).max(1)) as f64;
        let met = d.processed as u64 == d.events
            && d.dead_letters == 0
            && d.share_of_allowed() >= targets.min_share
            && limited_share <= targets.max_limited;
        eprintln!(
            "  {:<10} {:<28} {}/{} processed, {:.2}/s of {:.2}/s allowed ({:.0} %), {} of {} calls 429, {} dead letters, {:.0} s: {}",
            d.provider,
            d.through,
            d.processed,
            d.events,
            d.achieved_per_second,
            d.allowed_per_second,
            100.0 * d.share_of_allowed(),
            d.limited,
            d.calls + d.limited,
            d.dead_letters,
            d.seconds,
            if met { "met" } else { "MISSED" }
        );
    }
    drains
}
