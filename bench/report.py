"""Writes BENCHMARKS.md and bench/comparison.png from one scripts/bench run's results.

Usage: report.py --results DIR --markdown BENCHMARKS.md --chart bench/comparison.png
"""

import argparse
import datetime
import math
import json
import os
import platform
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The targets, from the one file the drain bench reads too.
TARGETS = {name: entry["target"] for name, entry in json.loads((ROOT / "bench" / "targets.json").read_text()).items()}
ACK_MEDIAN_US = TARGETS["ack_median_us"]
FLAT_FACTOR = TARGETS["flat_factor"]
COLD_MS = TARGETS["cold_ms"]
RSS_MB = TARGETS["rss_mb"]
COLD_RATIO = TARGETS["cold_ratio"]
WARM_RATIO = TARGETS["warm_ratio"]
MEMORY_RATIO = TARGETS["memory_ratio"]
THROUGHPUT_RPS = TARGETS["throughput_rps"]
P99_MS = TARGETS["p99_ms"]
BOOTSTRAP_MB = TARGETS["bootstrap_mb"]
ACK_SLACK_MS = TARGETS["ack_slack_ms"]
COST_RATIO = TARGETS["cost_ratio"]
SUSTAINED_RPS = TARGETS["sustained_rps"]
SUSTAINED_P99_MS = TARGETS["sustained_p99_ms"]
WAL_MIB = TARGETS["wal_mib"]
DRAIN_MIN_SHARE = TARGETS["drain_min_share"]
DRAIN_MAX_LIMITED = TARGETS["drain_max_limited"]

MB = 1_000_000


def verdict(ok):
    return "✅ met" if ok else "❌ **missed**"


def command_output(command):
    try:
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_started(results):
    settings = Path(results) / "settings.json"
    stamp = settings.stat().st_mtime if settings.exists() else datetime.datetime.now().timestamp()
    return datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc)


def machine(results):
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    commit = command_output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    # The report's own outputs do not make the measured sources dirty.
    dirty = command_output(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", ".", ":!BENCHMARKS.md", ":!bench/comparison.png"]
    )
    try:
        wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()
    except OSError:
        wrk = []
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": memory,
        "kernel": f"{platform.system()} {platform.release()}",
        "rustc": command_output(["rustc", "--version"]),
        "python": command_output([os.environ.get("BENCH_PYTHON", "python3"), "--version"]),
        "wrk": wrk[0].split(" Copyright")[0].strip() if wrk else "unknown",
        "commit": commit + (" (with uncommitted changes)" if dirty not in ("", "unknown") else ""),
        # When the run started (scripts/bench writes its settings first), not when this report
        # was written: a report re-written from the same results keeps the run's date.
        "date": run_started(results).strftime("%Y-%m-%d %H:%M UTC"),
    }


def criterion_results(directory):
    results = {}
    for benchmark_file in Path(directory).rglob("new/benchmark.json"):
        benchmark = json.loads(benchmark_file.read_text())
        estimates = json.loads((benchmark_file.parent / "estimates.json").read_text())
        elements = (benchmark.get("throughput") or {}).get("Elements") or 1
        results[benchmark["full_id"]] = {
            "median_ns": estimates["median"]["point_estimate"],
            "median_low_ns": estimates["median"]["confidence_interval"]["lower_bound"],
            "median_high_ns": estimates["median"]["confidence_interval"]["upper_bound"],
            "elements": elements,
        }
    return results


def handler_latency(log_path, skip):
    """p50 and p99 (ms) of the webhook log lines' latency_us, after the first `skip` lines."""
    if not log_path.exists():
        return None
    escape = re.compile(r"\x1b\[[0-9;]*m")
    values = []
    for line in log_path.read_text(errors="replace").splitlines():
        line = escape.sub("", line)
        if " webhook " in line and "latency_us=" in line:
            values.append(int(line.rsplit("latency_us=", 1)[1].split()[0]))
    values = sorted(values[skip:])
    if not values:
        return None
    return values[len(values) // 2] / 1000, values[int(len(values) * 0.99)] / 1000


def ack_providers(criterion):
    """Every provider the ack bench measured (`ack/<provider>/<tenants>`), in name order."""
    return sorted({name.split("/")[1] for name in criterion if name.startswith("ack/")})


def us(ns):
    return f"{ns / 1000:.2f} µs"


def ms(value):
    return f"{value:.2f} ms" if value < 100 else f"{value:.0f} ms"


def mb_from_kb(kb):
    return kb * 1024 / MB


def ratio(theirs, ours):
    return theirs / ours if ours > 0 else float("inf")


def chart(lambda_results, path, roundtrips=None, costs=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rust, python = lambda_results["rust"], lambda_results["python"]
    panels = [
        (
            "Cold start to first response (ms, median)",
            [
                ("raw", rust["cold_ms"]["median"], python["cold_ms"]["median"]),
                (
                    "excl. endpoint",
                    rust["cold_ex_endpoint_ms"]["median"],
                    python["cold_ex_endpoint_ms"]["median"],
                ),
            ],
        ),
        (
            f"Warm invocation (ms, median of {rust['warm_ms']['n']:,})",
            [
                ("raw", rust["warm_ms"]["median"], python["warm_ms"]["median"]),
                (
                    "excl. endpoint",
                    rust["warm_ex_endpoint_ms"]["median"],
                    python["warm_ex_endpoint_ms"]["median"],
                ),
            ],
        ),
        (
            "Max RSS (MB)",
            [("", mb_from_kb(rust["max_rss_kb"]), mb_from_kb(python["max_rss_kb"]))],
        ),
    ]
    if roundtrips:
        groups = [("now, 2 calls", roundtrips["rust"]["median"], roundtrips["python"]["median"])]
        panels.append((f"Ack, {roundtrips['delay']:g} ms per AWS call (ms, median)", groups))
    if costs and costs.get("pairs"):
        groups = []
        for size, pair in sorted(costs["pairs"].items()):
            if "ours" in pair and "peer" in pair:
                label = f"{pair['ours'][0]['body_bytes']:,} B body"
                groups.append(
                    (label, sum(pair["ours"][1]["arm64"][0].values()), sum(pair["peer"][1]["arm64"][0].values()))
                )
        if groups:
            panels.append(("USD per million webhooks, arm64", groups))
    columns = 3
    rows = (len(panels) + columns - 1) // columns
    figure, grid = plt.subplots(rows, columns, figsize=(13, 4.6 * rows), squeeze=False)
    axes = [axis for row in grid for axis in row]
    for axis in axes[len(panels):]:
        axis.axis("off")
    for axis, (title, groups) in zip(axes, panels):
        labels = [g[0] for g in groups]
        positions = range(len(groups))
        width = 0.38
        ours = [g[1] for g in groups]
        theirs = [g[2] for g in groups]
        bars_ours = axis.bar(
            [p - width / 2 for p in positions], ours, width, label="Rust (this project)", color="#d9622b"
        )
        bars_theirs = axis.bar(
            [p + width / 2 for p in positions],
            theirs,
            width,
            label="Python 3.11 + Powertools idempotency",
            color="#3b73b9",
        )
        axis.set_yscale("log")
        axis.set_title(title, fontsize=10)
        axis.set_xticks(list(positions))
        axis.set_xticklabels(labels)
        for bar, value in list(zip(bars_ours, ours)) + list(zip(bars_theirs, theirs)):
            axis.annotate(
                f"{value:.3g}",
                (bar.get_x() + bar.get_width() / 2, value),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        for position, a, b in zip(positions, ours, theirs):
            axis.annotate(
                f"{ratio(b, a):.2f}×" if ratio(b, a) < 2 else f"{ratio(b, a):.1f}×",
                (position, max(a, b) * 2.2),
                ha="center",
                fontsize=10,
                fontweight="bold",
            )
        low = min(ours + theirs) / 3
        high = max(ours + theirs) * 6
        axis.set_ylim(low, high)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=2, fontsize=9, frameon=False)
    figure.suptitle(
        "Magicline webhook Lambda, same harness, same events, same local DynamoDB/SQS endpoint "
        "(bold: peer ÷ ours; below 1× ours is the larger)",
        fontsize=11,
    )
    figure.tight_layout(rect=(0, 0.07 / rows, 1, 1))
    figure.savefig(path, dpi=110)
    plt.close(figure)



# -------------------------------------------------------------------------------------------------
# 4. Round trips
# -------------------------------------------------------------------------------------------------


def stats_ms(values_ms):
    values = sorted(values_ms)
    if not values:
        return {}

    def pct(p):
        return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]

    return {"n": len(values), "median": pct(50), "p90": pct(90), "p99": pct(99), "mean": sum(values) / len(values)}


def operations_text(operations):
    """`DynamoDB_20120810.PutItem: 1` and the like, as "DynamoDB PutItem 1, SQS SendMessage 1"."""
    names = {"DynamoDB_20120810": "DynamoDB", "AmazonSQS": "SQS", "AWSEvents": "EventBridge",
             "dynamodb": "DynamoDB", "sqs": "SQS", "events": "EventBridge"}
    parts = []
    for operation, count in operations.items():
        service, _, name = operation.rpartition(".")
        parts.append(f"{names.get(service, service)} {name} {count:g}")
    return ", ".join(parts)


def roundtrip_section(add, results, summary_rows):
    """Ack latency through bench/delay_proxy.py: the release bootstraps (ours, the peer) and the
    core in process before and after (three and two round trips)."""
    harness_file = results / "ack-proxy.json"
    inprocess_file = results / "roundtrip.json"
    if not harness_file.exists():
        add("## 4. Round trips to AWS")
        add("")
        add("Not measured in this run (`target/bench/ack-proxy.json` is missing).")
        add("")
        summary_rows.append(("Ack latency, 5 ms per AWS call", "not measured", f"≤ {2 * 5 + ACK_SLACK_MS:g} ms", verdict(False)))
        return None
    harness = json.loads(harness_file.read_text())
    settings = json.loads((results / "ack-proxy-settings.json").read_text())
    delay = settings["delay_ms"]
    proxy = settings.get("proxy") or {}
    rust, python = harness["rust"], harness["python"]
    limit = 2 * delay + ACK_SLACK_MS
    add("## 4. Round trips to AWS: what the ack waits for")
    add("")
    add(
        f"In a region, every call to DynamoDB or SQS takes a few ms (network and service time); on "
        f"loopback to moto it takes moto's time instead, which the figures above subtract. Here every "
        f"AWS call goes through `bench/delay_proxy.py`, a TCP proxy in front of the local endpoint "
        f"that passes each chunk a client sends on **{delay:g} ms** after it arrived in the proxy's "
        f"socket (the kernel's receive timestamp; answers go back at once), so each call takes "
        f"{delay:g} ms more, as in a region. The figures are the warm invocation times of section 2 "
        f"(the same harness, {rust['warm_ms']['n']:,} invocations, one process each, Magicline "
        f"events), less the endpoint's own time (moto's, which in AWS is part of the {delay:g} ms); "
        f"what remains is the {delay:g} ms per call, the function's own work, the SDK's and "
        f"loopback. The proxy left each chunk a median {proxy.get('late_us_median', 0):.0f} µs after "
        f"its due time (p99 {proxy.get('late_us_p99', 0) / 1000:.2f} ms, on a machine that was not "
        f"reserved), which is counted against the function. The calls are counted from the "
        f"endpoint's own log: every request that started within an invocation, by service and operation."
    )
    add("")
    add(
        f"| Ack path, {delay:g} ms per AWS call | AWS calls per webhook (endpoint's log) | median | p90 | p99 "
        f"| ≤ 2 × {delay:g} + {ACK_SLACK_MS:g} ms |"
    )
    add("|---|---|---|---|---|---|")
    ours = rust["warm_ex_endpoint_ms"]
    peer = python["warm_ex_endpoint_ms"]
    add(
        f"| **ours, now**: release bootstrap under the Runtime API emulator | "
        f"{operations_text(rust.get('warm_operations_per_invocation', {}))} | **{ours['median']:.2f} ms** | "
        f"{ours['p90']:.2f} ms | {ours['p99']:.2f} ms | {verdict(ours['median'] <= limit)} |"
    )
    inprocess = json.loads(inprocess_file.read_text()) if inprocess_file.exists() else None
    if inprocess:
        labels = {
            "three_calls": "ours, **before** (put, send, mark queued): the core in process, `Outbox::enqueue` on the ack path",
            "two_calls": "ours, now (put, send): the core in process",
        }
        for name in ("three_calls", "two_calls"):
            variant = inprocess["variants"][name]
            ex = stats_ms([(r - e) / 1e6 for r, e in zip(variant["raw_ns"], variant["endpoint_ns"])])
            per_webhook = {op: count / len(variant["raw_ns"]) for op, count in variant["operations"].items()}
            add(
                f"| {labels[name]} | {operations_text(per_webhook)} | {ex['median']:.2f} ms | "
                f"{ex['p90']:.2f} ms | {ex['p99']:.2f} ms | {verdict(ex['median'] <= limit)} |"
            )
    add(
        f"| peer (Python + Powertools): under the same emulator | "
        f"{operations_text(python.get('warm_operations_per_invocation', {}))} | {peer['median']:.2f} ms | "
        f"{peer['p90']:.2f} ms | {peer['p99']:.2f} ms | {verdict(peer['median'] <= limit)} |"
    )
    add("")
    add(
        "\"Before\" is the ack path of the previous commit (put, send, then mark the record "
        "`QUEUED`), reproduced by giving the core's `Ingest` an outbox whose fresh send is "
        "`Outbox::enqueue` (send, then mark: what the sweeper still does), measured in process "
        "(`tests/benches/ack_path.rs` with `ACK_ROUNDTRIP_JSON`: the AWS adapters, the SDK "
        "configured as the functions configure it, one webhook of each variant in turn, "
        f"{inprocess['webhooks'] if inprocess else 0:,} each, the endpoint's time per webhook "
        "read from its log and subtracted); the in-process rows have no Runtime API round trip. "
        f"Raw (endpoint included): ours {rust['warm_ms']['median']:.2f} ms, peer "
        f"{python['warm_ms']['median']:.2f} ms (median)."
    )
    add("")
    summary_rows.append(
        (
            f"Ack latency with {delay:g} ms per AWS call (release bootstrap, median)",
            f"{ours['median']:.2f} ms, {sum(rust.get('warm_operations_per_invocation', {}).values()):g} calls",
            f"≤ {limit:g} ms",
            verdict(ours["median"] <= limit),
        )
    )
    return {"rust": ours, "python": peer, "delay": delay, "inprocess": inprocess}


# -------------------------------------------------------------------------------------------------
# 5. Cost
# -------------------------------------------------------------------------------------------------

GIB = 1024**3
LOG_EVENT_OVERHEAD = 26  # bytes per log event, as CloudWatch Logs counts an event's size


def platform_log(duration_ms, billed, memory_mb, max_used_mb):
    """Bytes and lines of the START, END and REPORT lines Lambda writes per invocation (text
    format, the template's default)."""
    rid = "8f507cfc-7f1a-4f4f-a7b2-4c3a0a8f1b2e"
    lines = [
        f"START RequestId: {rid} Version: $LATEST",
        f"END RequestId: {rid}",
        f"REPORT RequestId: {rid}\tDuration: {duration_ms:.2f} ms\tBilled Duration: {billed:.0f} ms\t"
        f"Memory Size: {memory_mb} MB\tMax Memory Used: {max_used_mb:.0f} MB\t",
    ]
    return sum(len(line) + 1 for line in lines), len(lines)


def cost_of(run, arch, settings, max_used_mb):
    """USD per million webhooks by component, and the quantities behind them."""
    import prices

    price = prices.price
    gb = settings["memory_mb"] / 1024
    ack, proc = run["ack"], run["process"]
    ack_units, proc_units, esm_units = ack["units_per_webhook"], proc["units_per_message"], proc["esm_units_per_message"]
    ack_platform, ack_platform_lines = platform_log(
        ack["duration_ms"]["median"], ack["billed_ms_mean"], settings["memory_mb"], max_used_mb
    )
    batch_ms = (proc.get("batch_ms") or {}).get("median", 0)
    proc_platform, proc_platform_lines = platform_log(batch_ms, batch_ms, settings["memory_mb"], max_used_mb)
    log_bytes = (
        ack["log_bytes_per_invocation"]
        + LOG_EVENT_OVERHEAD * ack["log_lines_per_invocation"]
        + ack_platform
        + LOG_EVENT_OVERHEAD * ack_platform_lines
        + proc["log_bytes_per_message"]
        + LOG_EVENT_OVERHEAD * proc["log_lines_per_message"]
        + (proc_platform + LOG_EVENT_OVERHEAD * proc_platform_lines) * proc["invocations_per_message"]
    )
    quantities = {
        "lambda_requests": 1 + proc["invocations_per_message"],
        "gb_s": (ack["billed_ms_mean"] + proc["billed_ms_per_message"]) / 1000 * gb,
        "wru": ack_units["wru"] + proc_units["wru"],
        "rru": ack_units["rru"] + proc_units["rru"],
        "sqs_requests": ack_units["sqs_requests"] + proc_units["sqs_requests"] + esm_units["sqs_requests"],
        "events": proc_units["events_units"] + ack_units["events_units"],
        "log_bytes": log_bytes,
        "storage_bytes": run["storage_bytes_per_webhook"],
    }
    dollars = {
        "API Gateway HTTP API": price("apigw_http_request"),
        "Lambda requests": quantities["lambda_requests"] * price("lambda_request"),
        "Lambda duration": quantities["gb_s"] * price(f"lambda_gb_s_{arch}"),
        "DynamoDB writes": quantities["wru"] * price("dynamodb_wru"),
        "DynamoDB reads": quantities["rru"] * price("dynamodb_rru"),
        "SQS": quantities["sqs_requests"] * price("sqs_request"),
        "EventBridge": quantities["events"] * price("eventbridge_event"),
        "CloudWatch Logs ingestion": log_bytes / GIB * price("logs_ingest_gb"),
        "CloudWatch Logs storage, 30 days": log_bytes / GIB * price("logs_storage_gb_month"),
        "DynamoDB storage, 30 days": quantities["storage_bytes"] / GIB * price("dynamodb_storage_gb_month"),
    }
    return {k: v * 1e6 for k, v in dollars.items()}, quantities


def money(value):
    return f"${value:,.2f}" if value >= 0.1 else f"${value:,.3f}"


def cost_section(add, results, summary_rows, lambda_results):
    import prices

    cost_file = results / "cost.json"
    add("## 5. What a webhook costs: per million webhooks, measured")
    add("")
    if not cost_file.exists():
        add("Not measured in this run (`target/bench/cost.json` is missing).")
        add("")
        summary_rows.append(("Cost per million webhooks vs peer", "not measured", f"≤ {COST_RATIO}×", verdict(False)))
        return None
    cost = json.loads(cost_file.read_text())
    settings = cost["settings"]
    runs = cost["runs"]
    used = {
        "ours": mb_from_kb(lambda_results["rust"]["max_rss_kb"]) if "rust" in lambda_results else 8,
        "peer": mb_from_kb(lambda_results["python"]["max_rss_kb"]) if "python" in lambda_results else 65,
    }
    webhooks = runs[0]["webhooks"] if runs else 0
    add(
        f"Every provider's webhook function and the processor, as released (the release "
        f"bootstraps, not the core in process), under the Runtime API emulator of section 2, "
        f"against the local endpoint with every AWS call held {settings['aws_delay_ms']:g} ms by the "
        f"proxy of section 4, and the providers' APIs (the dev server's sandbox) answering after "
        f"{settings['api_delay_ms']:g} ms (a second proxy): for each provider and body size, "
        f"{webhooks:,} new deliveries (the provider kit's unique deliveries, signed with its own "
        "scheme; the body padded with a field no parser reads to 300 bytes or 50 KiB where the "
        "delivery is shorter) through the webhook function, then the queue through the processor, "
        f"fed as Lambda's SQS event source feeds it (batches of {settings['batch_size']}, failed "
        "items back to the queue, the rest deleted), every processed event published to an "
        "EventBridge bus (`EVENT_BUS_NAME` set, as the template sets it). The same for the Python + "
        "Powertools peer on the same Magicline events: its webhook (`bench/peer-python/app.py`, as "
        "in section 2) and a **minimal peer processor implemented for this** "
        "(`bench/peer-python/processor.py`: Powertools `BatchProcessor` with partial batch "
        "failures, `@idempotent_function` around fetch the customer, store it on the event item, "
        "put the event on the bus). `bench/cost.py` runs it; `bench/report.py` prices it."
    )
    add("")
    add("What is counted, per webhook:")
    add("")
    add(
        "- **AWS requests** by service and operation, from the endpoint's own log (requests that "
        "started within an invocation; the harness's own set-up and read-back are marked and left "
        "out). The SQS event source's polls and deletes, which Lambda makes and bills to the account, "
        "are made here by the harness as Lambda does and counted apart (its empty polls while "
        "the queue is idle cost the same every month whatever the volume, so they are not counted "
        "per webhook)."
    )
    add(
        "- **DynamoDB units** from item sizes by DynamoDB's documented rules "
        "(`bench/ddb_units.py`), since the functions do not ask for `ReturnConsumedCapacity` and "
        "moto would answer fixed figures (1 or 0.5) if they did: the endpoint "
        "(`bench/local_aws_timed.py --account`) reads each written item before and after the "
        "request; 1 write unit per started KB of the larger image (2 for each item of a `TransactWriteItems`); for every global secondary "
        "index an entry put or deleted 1 unit per started KB of the entry, a changed index key a "
        "delete and a put, changed projected attributes one write; 1 read unit per started 4 KB "
        "read strongly consistently (a missing item still 1). **SQS** requests count every "
        "started 64 KB of a payload as one request; **EventBridge** entries every started 64 KB."
    )
    add(
        "- **Lambda time**: each warm invocation's time (from the /next answer handed over to the "
        "response received) less the endpoint's own time, rounded up to whole ms as Lambda bills, "
        f"at the template's {settings['memory_mb']} MB for both contenders. The webhook function's "
        "time is its own; a processor batch's is shared by its messages. Our processor handles a "
        "batch's messages concurrently, and moto answers one request at a time, so the endpoint's "
        "time cannot simply be subtracted there: a batch is billed the larger of its measured time "
        "less the time moto was busy, and one message's path (its AWS calls one after the other, "
        "each the delay plus the client's own time per call measured on the ack path, plus the "
        "API's delay where it fetched). The peer's processor handles them one after the other, so "
        "its measured time is used as it is. First invocations (cold starts) are left out: at a "
        "steady rate they are a small share. **arm64 time is assumed equal to the measured "
        "x86_64 time** (this machine is x86_64; most of it is waiting on AWS)."
    )
    add(
        "- **Log bytes**: what the functions wrote to stdout and stderr (their log lines and EMF "
        "metric lines), plus Lambda's START, END and REPORT lines per invocation (text format, the "
        f"template's), each line counted with {LOG_EVENT_OVERHEAD} bytes more, as CloudWatch Logs "
        "sizes an event; kept 30 days (`LogRetentionDays`), storage priced uncompressed (an upper bound)."
    )
    add(
        "- **Storage**: every item the webhook left in DynamoDB and its index entries, by "
        "DynamoDB's storage rule (size + 100 bytes each), kept 30 days (`RetentionDays`); the "
        "peer's idempotency records for the share of the 30 days they are kept."
    )
    add("")
    add(
        f"Prices: AWS list prices in **{prices.REGION}**, on demand, without free tiers or "
        f"discounts, checked on {prices.CHECKED} ({prices.PAGES_DATED}). This machine has no live "
        "web: each price was checked against stored copies of public pages (named below), not "
        "read from AWS's own price pages on the day, so a change AWS made since those copies "
        "would not show; the one marked \"from memory\" could not be checked that way. API Gateway and "
        "EventBridge are the same for both contenders and are included, since they are part of "
        "what a webhook costs. Not included: data transfer (a webhook's request into AWS is free, "
        "answers are a few hundred bytes), Secrets Manager (tenant documents are read at a cold "
        "start and every `TENANTS_REFRESH_SECONDS`, not per webhook), CloudWatch custom metrics "
        "from the EMF lines (billed per metric and month, not per webhook), alarms, the dashboard, "
        "point-in-time recovery (the template enables it: $0.20 per GB-month from memory, about "
        "80 % on top of the DynamoDB storage line), and the sweeper (one scheduled run a minute, "
        "a fixed cost per month)."
    )
    add("")
    add("| Price | USD | Source (stored copy) |")
    add("|---|---|---|")
    for name, (value, unit, source) in prices.PRICES.items():
        if "GB-second" in unit:
            shown = f"{value:.10f}".rstrip("0")
        elif value < 1e-3:
            per_million = value * 1e6
            digits = 2 if round(per_million, 2) == round(per_million, 3) else 3
            shown = f"{per_million:.{digits}f} per million"
        else:
            shown = f"{value:.2f}"
        add(f"| {unit} | {shown} | {source} |")
    add("")

    # Quantities.
    add(f"**Measured per webhook** ({webhooks:,} webhooks per row; \"proc.\" is the processor's share):")
    add("")
    add(
        "| Contender | Provider | Body | Ack, billed | Proc., billed | AWS requests: ack | AWS requests: proc. "
        "| Event source (SQS) | Write units | Read units | SQS req. | EventBridge | Log bytes | Stored bytes | Records |"
    )
    add("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    priced = []
    for run in runs:
        contender = run["contender"]
        by_arch = {arch: cost_of(run, arch, settings, used[contender]) for arch in ("arm64", "x86_64")}
        priced.append((run, by_arch))
        q = by_arch["arm64"][1]
        ack, proc = run["ack"], run["process"]
        add(
            f"| {contender} | {run['provider']} | {run['body_bytes']:,} B | {ack['billed_ms_mean']:.1f} ms "
            f"| {proc['billed_ms_per_message']:.1f} ms | {operations_text(ack['requests_per_webhook'])} "
            f"| {operations_text(proc['requests_per_message'])} | {operations_text(proc['esm_requests_per_message'])} "
            f"| {q['wru']:.1f} | {q['rru']:.1f} | {q['sqs_requests']:.2f} | {q['events']:.2f} "
            f"| {q['log_bytes']:,.0f} | {q['storage_bytes']:,.0f} "
            f"| {', '.join(f'{STATUS_LABELS.get(k, k)} {v}' for k, v in run['records_by_status'].items())} |"
        )
    add("")
    index_units = {}
    for run, _ in priced:
        if run["contender"] == "ours":
            run_units = {}
            for phase in (run["ack"]["units_per_webhook"], run["process"]["units_per_message"]):
                for index, value in phase.get("wru_indexes", {}).items():
                    run_units[index] = run_units.get(index, 0) + value
            for index, value in run_units.items():
                index_units[index] = max(index_units.get(index, 0), value)
    if index_units:
        add(
            "Of ours' write units, the indexes take: "
            + ", ".join(f"`{k}` {v:g}" for k, v in sorted(index_units.items()))
            + " per webhook (a record is put into `by_subject`, `by_day` and the sparse "
            "`pending_by_lease` on the ack; the claim takes it out of `pending_by_lease`; "
            "`by_attention` holds it under `OPEN#…` until it is finished, then under its final "
            "status where that needs attention)."
        )
        add("")
    link_price = 2 * prices.price("dynamodb_wru") * 1e6
    add(
        "**Links from a person to the records that name them** (erasure by person): the events "
        "measured here name nobody but their subject, so they write none. Each other person an "
        "event or its fetched detail names (a booking's customer, each customer of a check-out "
        "list, a message's visit) costs the processor one `PutItem` of a link item when the "
        "record is finished, off the ack path: 1 write unit for the item and 1 for its "
        f"`by_subject` entry, **${link_price:.2f} per million links** at the write price below, "
        "plus its storage (about 250 bytes with the index entry) for the retention period."
    )
    add("")
    add(
        "A body over one write unit (1 KB) is kept in an item of its own "
        "(RELIABILITY.md, \"Large bodies on DynamoDB\"): the webhook writes it once, with the "
        "record in one `TransactWriteItems` call (still one round trip; DynamoDB bills a "
        "transactional write at twice a standard one, which the write units above include), the "
        "processor's claim reads it back (the read units above), and the claim and the finish "
        "rewrite a record of one write unit instead of the whole body. The peer writes its "
        "event item with the body and updates it once."
    )
    add("")

    # Dollars: ours vs the peer, Magicline.
    pairs = {}
    for run, by_arch in priced:
        if run["provider"] == "magicline":
            pairs.setdefault(run["size"], {})[run["contender"]] = (run, by_arch)
    verdicts = []
    for size in sorted(pairs):
        pair = pairs[size]
        if "ours" not in pair or "peer" not in pair:
            continue
        body = pair["ours"][0]["body_bytes"]
        add(f"**USD per million Magicline webhooks, {body:,}-byte body**, ours and the peer:")
        add("")
        add("| Component | ours, arm64 | peer, arm64 | ours, x86_64 | peer, x86_64 |")
        add("|---|---|---|---|---|")
        components = list(pair["ours"][1]["arm64"][0])
        for component in components:
            values = [pair[c][1][a][0][component] for a in ("arm64", "x86_64") for c in ("ours", "peer")]
            add(f"| {component} | " + " | ".join(money(v) for v in [values[0], values[1], values[2], values[3]]) + " |")
        totals = {
            (c, a): sum(pair[c][1][a][0].values()) for c in ("ours", "peer") for a in ("arm64", "x86_64")
        }
        add(
            f"| **Total** | **{money(totals[('ours', 'arm64')])}** | **{money(totals[('peer', 'arm64')])}** "
            f"| **{money(totals[('ours', 'x86_64')])}** | **{money(totals[('peer', 'x86_64')])}** |"
        )
        for arch in ("arm64", "x86_64"):
            share = totals[("ours", arch)] / totals[("peer", arch)]
            verdicts.append((body, arch, share, totals[("ours", arch)], totals[("peer", arch)]))
        add(
            f"| ours ÷ peer | {totals[('ours', 'arm64')] / totals[('peer', 'arm64')]:.2f}× | "
            f"| {totals[('ours', 'x86_64')] / totals[('peer', 'x86_64')]:.2f}× | |"
        )
        add("")

    add("**USD per million webhooks, ours, every provider** (total; arm64 / x86_64):")
    add("")
    add("| Provider | Body | arm64 | x86_64 | of which DynamoDB (writes, reads, storage) |")
    add("|---|---|---|---|---|")
    for run, by_arch in priced:
        if run["contender"] != "ours":
            continue
        dollars = by_arch["arm64"][0]
        dynamo = dollars["DynamoDB writes"] + dollars["DynamoDB reads"] + dollars["DynamoDB storage, 30 days"]
        add(
            f"| {run['provider']} | {run['body_bytes']:,} B | {money(sum(dollars.values()))} | "
            f"{money(sum(by_arch['x86_64'][0].values()))} | {money(dynamo)} |"
        )
    add("")

    if verdicts:
        worst = max(verdicts, key=lambda v: v[2])
        met = all(v[2] <= COST_RATIO for v in verdicts)
        summary_rows.append(
            (
                "Cost per million webhooks vs peer (Magicline, worst of 300 B / 50 KiB, arm64 / x86_64)",
                f"{worst[2]:.2f}× ({money(worst[3])} vs {money(worst[4])}, {worst[0]:,} B, {worst[1]})",
                f"≤ {COST_RATIO}×",
                verdict(met),
            )
        )
        add(
            f"Against the target (ours ≤ {COST_RATIO:g} × the peer per million webhooks): "
            + "; ".join(f"{b:,} B {a}: {r:.2f}× {'✅' if r <= COST_RATIO else '❌'}" for b, a, r, _, _ in verdicts)
            + "."
        )
        add("")
        if not met:
            cost_diagnosis(add, pairs)
    return {"pairs": pairs, "verdicts": verdicts}


# Items without a status in ours' table are bodies kept in an item of their own.
STATUS_LABELS = {"-": "+ body items"}


def cost_diagnosis(add, pairs):
    """Why ours costs what it does next to the peer, from the measured components, and what
    changes to ours would save, each estimated from the same measured quantities."""
    import prices

    # Per million webhooks.
    wru, rru = prices.price("dynamodb_wru") * 1e6, prices.price("dynamodb_rru") * 1e6
    log_gb = (prices.price("logs_ingest_gb") + prices.price("logs_storage_gb_month")) * 1e6
    add("**Why the cost target is missed, and what it would take** (arm64; x86_64 differs by cents):")
    add("")
    add(
        "- What is billed per request and per byte is the same for any language, and it is most "
        "of the bill: API Gateway and EventBridge alone are $2.00 per million for both, DynamoDB "
        "the bulk of the rest. Lambda time, where Rust saves most (section 4: the ack waits on "
        "two AWS calls instead of four; the processor handles a batch concurrently), is cents per "
        "million at 256 MB. DynamoDB write units and log bytes are where the two differ."
    )
    smallest = min(pairs) if pairs else None
    for size in sorted(pairs):
        pair = pairs[size]
        if "ours" not in pair or "peer" not in pair:
            continue
        ours_run, ours = pair["ours"][0], pair["ours"][1]["arm64"]
        peer = pair["peer"][1]["arm64"]
        body = ours_run["body_bytes"]
        ours_total, peer_total = sum(ours[0].values()), sum(peer[0].values())
        target = COST_RATIO * peer_total
        if ours_total <= target:
            add(
                f"- **{body:,}-byte body**: ours {money(ours_total)}, the peer {money(peer_total)} per "
                f"million: {ours_total / peer_total:.2f} × the peer, the target met. Write units per "
                f"webhook: ours {ours[1]['wru']:.0f}, the peer {peer[1]['wru']:.0f}."
            )
            continue
        differences = sorted(((ours[0][k] - peer[0][k], k) for k in ours[0]), reverse=True)
        more = [f"{k} +{money(d)}" for d, k in differences if d > 0.005]
        less = [f"{k} −{money(-d)}" for d, k in differences if d < -0.005]
        add(
            f"- **{body:,}-byte body**: ours {money(ours_total)}, the peer {money(peer_total)} per "
            f"million; {COST_RATIO:g} × the peer is {money(target)}, {money(ours_total - target)} less than ours. "
            f"Ours costs more in {', '.join(more) or 'nothing'}; less in {', '.join(less) or 'nothing'}. "
            f"Write units per webhook: ours {ours[1]['wru']:.0f}, the peer {peer[1]['wru']:.0f}."
        )
        # Changes to ours, each priced from this run's quantities.
        ack, proc = ours_run["ack"], ours_run["process"]
        options = []
        proc_indexes = sum(proc["units_per_message"].get("wru_indexes", {}).values())
        proc_table = proc["units_per_message"]["wru"] - proc_indexes
        small_table = proc_table
        if smallest is not None and smallest in pairs and "ours" in pairs[smallest]:
            small = pairs[smallest]["ours"][0]["process"]["units_per_message"]
            small_table = small["wru"] - sum(small.get("wru_indexes", {}).values())
        if proc_table > small_table:
            read_units = math.ceil(body / 4096)
            saving = (proc_table - small_table) * wru - read_units * rru
            options.append(
                (saving, f"the body in an item of its own, written once by the webhook (the claim and "
                 f"finish then rewrite a record of under 1 KB instead of {body / 1024:.0f} KiB: "
                 f"{proc_table - small_table:.0f} write units less; a read of the body where the "
                 f"processor needs it, {read_units} read units more)")
            )
        pending = ack["units_per_webhook"].get("wru_indexes", {}).get("pending_by_lease", 0) + proc[
            "units_per_message"
        ].get("wru_indexes", {}).get("pending_by_lease", 0)
        if pending:
            options.append(
                (pending * wru, f"no `pending_by_lease` entry ({pending:g} write units: put on the ack, "
                 "deleted on the claim; the sweeper would find unqueued records another way)")
            )
        ack_lines, proc_lines = ack["log_lines_per_invocation"], proc["log_lines_per_message"]
        if ack_lines > 1 or proc_lines > 1:
            line_bytes = (
                (ack["log_bytes_per_invocation"] / ack_lines if ack_lines else 0) * max(0, ack_lines - 1)
                + (proc["log_bytes_per_message"] / proc_lines if proc_lines else 0) * max(0, proc_lines - 1)
            )
            saving = (line_bytes + LOG_EVENT_OVERHEAD * (max(0, ack_lines - 1) + max(0, proc_lines - 1))) / GIB * log_gb
            options.append(
                (saving, f"one log line per webhook and per processed message with the metrics in it "
                 f"(now {ack_lines:g} and {proc_lines:g}: the log line and EMF lines)")
            )
        reads = ack["units_per_webhook"]["rru"] + proc["units_per_message"]["rru"]
        if reads:
            options.append((reads * rru, f"the processor's erasure checks ({reads:g} strongly consistent reads) folded into the claim"))
        by_day = ack["units_per_webhook"].get("wru_indexes", {}).get("by_day", 0)
        if by_day:
            options.append((by_day * wru, f"no `by_day` listing index ({by_day:g} write unit; listings would need another way)"))
        if options:
            after = ours_total - sum(saving for saving, _ in options)
            add(
                f"  What would bring ours down, each from this run's quantities: "
                + "; ".join(f"{text}: −{money(saving)}" for saving, text in sorted(options, reverse=True))
                + f". All of them together: {money(after)}, {after / peer_total:.2f} × the peer "
                + ("(the target met)." if after <= target else "(still above the target).")
            )
    add(
        "- These are changes to the core (`shared/`) and the table, not to the benchmark, and none "
        "of them is made. Two that the first cost run pointed to are made: a large body is no longer "
        "rewritten by the claim and the finish (see above), and each webhook and each handled "
        "message writes one line, its log line and its metrics in one (there were two and three). "
        "The floor for any design on this stack is what both pay alike: API "
        "Gateway, EventBridge, SQS, Lambda requests, one put and two updates of a small record "
        "and the platform's log lines."
    )
    add("")


# -------------------------------------------------------------------------------------------------
# 7. Sustained load
# -------------------------------------------------------------------------------------------------


def sustained_section(add, results, summary_rows):
    wal_file = results / "wal.json"
    add("## 7. Sustained load on the local server: 60 s at full speed, 32 connections, 2 workers")
    add("")
    if not wal_file.exists():
        add("Not measured in this run (`target/bench/wal.json` is missing).")
        add("")
        for label in ("Sustained throughput", "Sustained p99", "Sustained WAL peak"):
            summary_rows.append((label, "not measured", "", verdict(False)))
        return
    wal = json.loads(wal_file.read_text())
    latency = wal["latency_ms"]
    add(
        f"`bench/wal.py`: a fresh release `devserver` (`--workers {wal['workers']}`, the default, so "
        "the processor drains the queue and fetches details from the sandbox meanwhile) on a fresh "
        f"SQLite file, loaded by wrk with bench/load.lua (the same mix as section 6) for "
        f"{wal['seconds']:.0f} s at full speed with {wal['connections']} connections and 2 threads "
        "after a warm-up, while the `-wal` file's size and the server's RSS are sampled every "
        "100 ms; then a graceful stop (SIGINT)."
    )
    add("")
    add("| Figure | Measured | Target | |")
    add("|---|---|---|---|")
    rps = wal["requests_per_second"]
    peak_wal = wal["peak_wal_bytes"] / 1024 / 1024
    add(f"| Webhooks/s ({wal['requests']:,} in {wal['seconds']:.1f} s) | {rps:,.0f} | ≥ {SUSTAINED_RPS:,.0f} | {verdict(rps >= SUSTAINED_RPS)} |")
    add(f"| p50 latency | {latency['p50']:.2f} ms | | |")
    add(f"| p99 latency | {latency['p99']:.2f} ms | < {SUSTAINED_P99_MS:g} ms | {verdict(latency['p99'] < SUSTAINED_P99_MS)} |")
    add(f"| p99.9 / max latency | {latency['p999']:.2f} / {latency['max']:.2f} ms | | |")
    add(f"| Peak RSS of the server | {wal['peak_rss_kib'] / 1024:.1f} MiB | | |")
    add(f"| Peak WAL size | {peak_wal:.1f} MiB | ≤ {WAL_MIB:g} MiB | {verdict(peak_wal <= WAL_MIB)} |")
    add(
        f"| WAL after the graceful stop | {wal['wal_bytes_after_shutdown'] / 1024 / 1024:.1f} MiB "
        f"(file {'present' if wal['wal_file_after_shutdown'] else 'removed'}; stop took {wal['stop_seconds']:.1f} s) | | |"
    )
    add(f"| Database file after the stop | {wal['database_bytes_after_shutdown'] / 1024 / 1024:.1f} MiB | | |")
    add(
        f"| Answers | {', '.join(f'{k}: {v:,}' for k, v in sorted(wal['statuses'].items()))} "
        f"(socket errors {sum(wal['socket_errors'].values())}) | | |"
    )
    add(f"| CPU taken by other processes meanwhile | {wal['other_processes_cpu_share']:.0%} of the machine | | |")
    add("")
    summary_rows.append(("Sustained 60 s, 32 connections, 2 workers: throughput", f"{rps:,.0f} webhooks/s", f"≥ {SUSTAINED_RPS:,.0f}/s", verdict(rps >= SUSTAINED_RPS)))
    summary_rows.append(("Sustained 60 s: p99 latency", f"{latency['p99']:.2f} ms", f"< {SUSTAINED_P99_MS:g} ms", verdict(latency["p99"] < SUSTAINED_P99_MS)))
    summary_rows.append(("Sustained 60 s: peak WAL (peak RSS)", f"{peak_wal:.1f} MiB ({wal['peak_rss_kib'] / 1024:.0f} MiB RSS)", f"≤ {WAL_MIB:g} MiB", verdict(peak_wal <= WAL_MIB)))


def drain_section(add, results, summary_rows):
    drain_file = results / "drain.json"
    add("## 9. Draining at the providers' published rate limits")
    add("")
    if not drain_file.exists():
        add("Not measured in this run (`target/bench/drain.json` is missing).")
        add("")
        summary_rows.append(("Drain at the published rate limits", "not measured", "", verdict(False)))
        return
    drains = json.loads(drain_file.read_text())
    add(
        "`tests/benches/drain.rs` (the code of `tests/tests/suite/flow_control.rs`'s drains, at "
        "full scale): for each provider whose test kit names a published rate limit, webhooks of "
        "one tenant are acknowledged, then processed by several consumers at once — the dev "
        "server's 4 workers on its SQLite file (the providers at once: their keys are "
        "independent), or 3 processor instances on DynamoDB + SQS (the local endpoint, one "
        "provider at a time), sharing the key's pacer — against the fake provider API, which "
        "answers 429 to any call over the limit (a sliding window per API key, as providers "
        "count). The tenants carry no `api.rate`: the providers' own defaults pace them. The "
        "achieved rate is served calls a second from the first served call to the last; a "
        "message is received at most 3 times, so a wait counted as a receive would show as a "
        "dead letter. On the local endpoint (moto: one request at a time, about ten per "
        "processed event) the endpoint's own speed bounds a drain as much as the pacer does."
    )
    add("")
    add("| Provider | Through | Consumers | Processed | Allowed | Achieved | Share | Calls 429 | Dead letters | Time | |")
    add("|---|---|---|---|---|---|---|---|---|---|---|")
    for d in drains:
        calls = d["calls"] + d["limited"]
        limited_share = d["limited"] / calls if calls else 0
        share = d["achieved_per_second"] / d["allowed_per_second"]
        ok = (
            d["processed"] == d["events"]
            and d["dead_letters"] == 0
            and limited_share <= DRAIN_MAX_LIMITED
            and share >= DRAIN_MIN_SHARE
        )
        add(
            f"| {d['provider']} | {d['through']} | {d['consumers']} | {d['processed']:,} of {d['events']:,} | "
            f"{d['allowed_per_second']:.2f}/s | {d['achieved_per_second']:.2f}/s | {share:.0%} | "
            f"{d['limited']} of {calls:,} ({limited_share:.1%}) | {d['dead_letters']} | {d['seconds']:.0f} s | {verdict(ok)} |"
        )
        summary_rows.append(
            (
                f"Drain, {d['provider']} through {d['through']}: share of the allowed rate (429s)",
                f"{share:.0%} ({limited_share:.1%} answered 429)",
                f"≥ {DRAIN_MIN_SHARE:.0%} (≤ {DRAIN_MAX_LIMITED:.0%})",
                verdict(share >= DRAIN_MIN_SHARE and limited_share <= DRAIN_MAX_LIMITED),
            )
        )
    add("")
    add(
        "The pacer spaces a key's calls evenly over the window widened by 5 % or 150 ms, "
        "whichever is more (a request's travel time varies, and the provider counts arrivals), so "
        "95 % of the allowed rate is the ceiling by design (87 % for a 5-a-second limit). A message whose slot is more than 2 s away is "
        "delayed to a turn of its own (the pacer hands those out one after another, as the "
        "slots free up), and a processor's messages ask the pacer one at a time, so that a "
        "batch does not lose the store's conditional update to itself."
    )
    add("")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", required=True)
    parser.add_argument("--markdown", required=True)
    parser.add_argument("--chart", required=True)
    parser.add_argument("--elapsed", type=float, default=None, help="seconds the benchmarks took")
    parser.add_argument("--total-elapsed", type=float, default=None, help="seconds with the builds")
    args = parser.parse_args()
    results = Path(args.results)

    host = machine(args.results)
    settings = json.loads((results / "settings.json").read_text())
    criterion = criterion_results(results / "criterion")
    lambda_results = json.loads((results / "lambda.json").read_text())
    throughput = json.loads((results / "throughput.json").read_text())
    sizes = json.loads((results / "sizes.json").read_text())
    chart_link = os.path.relpath(args.chart, Path(args.markdown).parent)

    lines = []
    add = lines.append
    add("# Benchmarks")
    add("")
    add(
        "Written by `scripts/bench` from one run on the machine below; do not edit by hand "
        "(run `scripts/bench` again). Speed and memory are measured here, never asserted by tests."
    )
    add("")
    add("## Machine")
    add("")
    add("| | |")
    add("|---|---|")
    add(f"| CPU | {host['cpu']}, {host['cores']} cores |")
    add(f"| Memory | {host['memory']} |")
    add(f"| OS | {host['kernel']} |")
    add(f"| Toolchain | {host['rustc']}; release profile: opt-level \"s\", LTO, 1 codegen unit, panic=abort, stripped |")
    add(f"| Peer | {host['python']}, aws-lambda-powertools, boto3, awslambdaric (pinned in `bench/requirements.txt`) |")
    add(f"| Load tool | {host['wrk']} |")
    add(f"| Commit | {host['commit']} |")
    add(f"| Date | {host['date']} |")
    after = results / "loadavg_after"
    add(
        f"| Load average | {settings.get('loadavg_before', 'unknown')} before, "
        f"{after.read_text().strip() if after.exists() else 'unknown'} after "
        "(1, 5, 15 min; the machine was not reserved for the benchmarks) |"
    )
    steps_file = results / "loadavg-steps.tsv"
    if steps_file.exists():
        steps = [line.split("\t") for line in steps_file.read_text().splitlines() if "\t" in line]
        add(
            "| Load average by step (1 min) | "
            + ", ".join(f"{name} {load.split()[0]}" for name, load in steps)
            + " |"
        )
    if args.elapsed:
        total = f", {args.total_elapsed / 60:.1f} min with the release builds" if args.total_elapsed else ""
        add(f"| Run time | {args.elapsed / 60:.1f} min of benchmarks{total} |")
    add("")

    # ---------------------------------------------------------------------------------------------
    rust, python = lambda_results["rust"], lambda_results["python"]
    summary_rows = []

    add("## 1. Ack path CPU (criterion, in-memory ports)")
    add("")
    add(
        "`Ingest::handle` on a new delivery with an in-memory store and queue "
        "(`tests/benches/ack_path.rs`): verify + tenant lookup + parse + dedup key + record build + "
        "store put + queue message build and JSON encoding + answer; no I/O (no log subscriber "
        "installed, so the log line's formatting and writing are not included). Every iteration is "
        "a new delivery from a tenant spread across the directory. Median time per webhook, "
        f"criterion's 95 % interval in brackets; {settings['criterion']}."
    )
    add("")
    flatness_file = results / "flatness.json"
    flatness = json.loads(flatness_file.read_text()) if flatness_file.exists() else {}
    interleaved = flatness.get("median_ns", {})
    add(
        "| Provider | 1 tenant | 10,000 tenants | 10,000 / 1 | 10,000 / 1, interleaved "
        f"| ≤ {ACK_MEDIAN_US:g} µs | flat (≤ {FLAT_FACTOR:g}×, interleaved) |"
    )
    add("|---|---|---|---|---|---|---|")
    worst_ack = 0.0
    all_flat = True
    for provider in ack_providers(criterion):
        one = criterion.get(f"ack/{provider}/1")
        many = criterion.get(f"ack/{provider}/10000")
        pair = interleaved.get(provider) or {}
        if not one or not many or "1" not in pair or "10000" not in pair:
            add(f"| {provider} | missing | missing | | | ❌ | ❌ |")
            all_flat = False
            worst_ack = float("inf")
            continue
        factor = many["median_ns"] / one["median_ns"]
        interleaved_factor = pair["10000"] / pair["1"]
        slowest = max(one["median_ns"], many["median_ns"]) / 1000
        worst_ack = max(worst_ack, slowest)
        flat = interleaved_factor <= FLAT_FACTOR
        all_flat = all_flat and flat
        add(
            f"| {provider} | {us(one['median_ns'])} [{us(one['median_low_ns'])}–{us(one['median_high_ns'])}] "
            f"| {us(many['median_ns'])} [{us(many['median_low_ns'])}–{us(many['median_high_ns'])}] "
            f"| {factor:.2f}× | {interleaved_factor:.2f}× "
            f"| {verdict(slowest <= ACK_MEDIAN_US)} | {verdict(flat)} |"
        )
    add("")
    add(
        "Each provider's criterion runs go 1, then 10,000 tenants (interval: criterion's for "
        "the median). Benchmarks measured one after the other see the drift of a machine that "
        "is not reserved (see the load average), so flatness is judged on the interleaved "
        "measurement: one webhook with 1 "
        "tenant, then one with 10,000, in turn, each timed on its own "
        f"(the last 90 % of {flatness.get('rounds', 0):,} rounds; "
        "median per tenant count; the figures include `block_on` and timer overhead, so only "
        "their ratio is used). What a lookup that is not flat looks like is shown by the "
        "linear cases further down."
    )
    add("")
    decode = criterion.get("ack_from_apigw_json/magicline/1")
    if decode:
        add(
            f"Including the decoding of the API Gateway event JSON into the request (what the Lambda "
            f"runtime does before the handler), Magicline takes {us(decode['median_ns'])} per webhook."
        )
        add("")
    worst = [(k, v) for k, v in sorted(criterion.items()) if k.startswith("ack_worst_case/")]
    if worst:
        add(
            "Lookups that are linear by design, for the record (not part of the targets): a "
            "Waitwhile **account-wide** webhook (no `?tenant=` in the registered URL) tries the "
            "signature against every Waitwhile tenant's URL; TIMIFY looks at each distinct "
            "tenant-chosen header name (in the table above all tenants share one name; here every "
            "tenant has its own)."
        )
        add("")
        add("| Case | Tenants | Median per webhook |")
        add("|---|---|---|")
        for key, value in worst:
            _, case, count = key.split("/")
            add(f"| {case.replace('_', ' ')} | {int(count):,} | {us(value['median_ns'])} |")
        add("")
    processor = criterion.get("processor/message_skip")
    batch = criterion.get("processor/sqs_batch_of_10_skip")
    add("### Processor, per message, network excluded")
    add("")
    add(
        "`Processor::process` on a queued EGYM `TEST` event (stored without a fetch): read the "
        "message, claim the record, decide, finish it, on the in-memory store. `handle_sqs` "
        "takes an SQS batch of 10 such records as Lambda delivers it."
    )
    add("")
    add("| Case | Median |")
    add("|---|---|")
    if processor:
        add(f"| one message (`process`) | {us(processor['median_ns'])} |")
    if batch:
        add(
            f"| SQS batch of 10 (`handle_sqs`) | {us(batch['median_ns'])} per batch, "
            f"{us(batch['median_ns'] / batch['elements'])} per message |"
        )
    add("")
    summary_rows.append(
        ("Ack path CPU, slowest provider, median", f"{worst_ack:.2f} µs", f"≤ {ACK_MEDIAN_US:g} µs", verdict(worst_ack <= ACK_MEDIAN_US))
    )
    summary_rows.append(
        ("Ack path flat from 1 to 10,000 tenants (interleaved)", "yes" if all_flat else "no", f"≤ {FLAT_FACTOR:g}×", verdict(all_flat))
    )

    # ---------------------------------------------------------------------------------------------
    add("## 2. Cold start and 3. side by side with the Python + Powertools peer")
    add("")
    add(
        "Both functions run as processes under the same minimal Lambda Runtime API emulator "
        "(`bench/lambda_harness.py`), on the same API Gateway events (`events/magicline/customer-created.json` "
        "with a fresh `uuid` per invocation, so every invocation is a new delivery), against the same "
        "local DynamoDB + SQS endpoint (moto behind a keep-alive HTTP/1.1 server, one request at a time, `bench/local_aws_timed.py`):"
    )
    add("")
    add(f"- **ours**: the release `bootstrap` of `functions/lambda/src/bin/magicline-webhook.rs` (`{rust['command']}`).")
    add(
        f"- **peer**: `bench/peer-python/app.py`, written as the Powertools docs show it: "
        "`@idempotent_function` with the `DynamoDBPersistenceLayer` around \"put the event item, "
        "send the SQS message\", Powertools `Logger`, boto3 clients created at module level; run by "
        f"the AWS Lambda Runtime Interface Client for Python (`{python['command']}`), as the "
        "managed Python runtime runs handlers."
    )
    add("")
    add(
        "**Cold start** = from just before the process is spawned to the moment the first "
        "invocation's response arrives in the emulator's socket (process start, initialisation, "
        "/next, the handler, the response). **Warm** = from the moment the emulator has handed an "
        "invocation's /next answer to its socket to the moment the response's first bytes arrive "
        "in its socket (the kernel's receive timestamp, as for the endpoint below: the emulator's "
        "own formatting and parsing, in Python, are charged to neither contender), over "
        f"{rust['warm_ms']['n']:,} invocations of one process. **Max RSS** = the process's VmHWM "
        "from /proc after its last invocation."
    )
    add("")
    add(
        "**What is subtracted** (the \"excl. endpoint\" figures): the time the endpoint itself spent "
        "on the requests that started within the interval, measured by the endpoint's HTTP "
        "server for each request: from the moment the request's first bytes arrived in its socket "
        "(the kernel's receive timestamp, so the endpoint thread's wake-up is the endpoint's), "
        "through reading the request and moto's work, to the moment the answer is complete and "
        "about to be written to the socket (CLOCK_MONOTONIC, the harness's clock; the write "
        "itself, tens of µs, stays with the contender). Both contenders get the "
        "same treatment. "
        "Not subtracted: loopback transfer, TCP connection set-up where a client opens one (the "
        "endpoint keeps connections open between calls, as DynamoDB and SQS do), the client's own work "
        "(building, signing and sending the request, parsing the answer), and the function's "
        "own Runtime API calls — all counted against each contender. "
        "Ours calls the endpoint "
        f"{len(rust['cold_endpoint_operations'])} times in a cold start "
        f"({', '.join(op.split('.')[-1] for op in rust['cold_endpoint_operations'])}: "
        "connection warm-up at init, then the conditional put and the send) and "
        f"{sum(rust.get('warm_operations_per_invocation', {}).values()):.0f} times per warm invocation "
        f"({', '.join(op.split('.')[-1] for op in rust.get('warm_operations_per_invocation', {}))}); the peer "
        f"{len(python['cold_endpoint_operations'])} times "
        f"({', '.join(op.split('.')[-1] for op in python['cold_endpoint_operations'])}: "
        "Powertools' idempotency record, the event item, the message, Powertools' completion "
        "update). moto is much slower than DynamoDB and SQS, which is why raw figures are "
        "dominated by it; moto's SendMessage also slows down with every message a queue holds, "
        "so each warm run has its own table and queue, and the harness empties the queue every "
        "50 invocations, between invocations."
    )
    add("")
    add(
        f"{rust['cold_ms']['n']} cold starts each, alternating ours and the peer's, after one "
        "discarded start each (page cache; the peer's bytecode cache is warm, which favours it)."
    )
    add("")
    add("| Figure (median unless said) | Ours (Rust) | Peer (Python + Powertools) | Peer / ours |")
    add("|---|---|---|---|")

    def row(label, ours_value, theirs_value, fmt):
        add(
            f"| {label} | {fmt(ours_value)} | {fmt(theirs_value)} | **{ratio(theirs_value, ours_value):.1f}×** |"
        )

    row("Cold start, raw", rust["cold_ms"]["median"], python["cold_ms"]["median"], ms)
    row("— of which the endpoint", rust["cold_endpoint_ms"]["median"], python["cold_endpoint_ms"]["median"], ms)
    row("Cold start, excl. endpoint", rust["cold_ex_endpoint_ms"]["median"], python["cold_ex_endpoint_ms"]["median"], ms)
    row("Cold start, excl. endpoint, p90", rust["cold_ex_endpoint_ms"]["p90"], python["cold_ex_endpoint_ms"]["p90"], ms)
    row("Warm invocation, raw", rust["warm_ms"]["median"], python["warm_ms"]["median"], ms)
    row("Warm invocation, raw, p99", rust["warm_ms"]["p99"], python["warm_ms"]["p99"], ms)
    row("— of which the endpoint", rust["warm_endpoint_ms"]["median"], python["warm_endpoint_ms"]["median"], ms)
    row("Warm invocation, excl. endpoint", rust["warm_ex_endpoint_ms"]["median"], python["warm_ex_endpoint_ms"]["median"], ms)
    row("Warm invocation, excl. endpoint, mean", rust["warm_ex_endpoint_ms"]["mean"], python["warm_ex_endpoint_ms"]["mean"], ms)
    row("Warm invocation, excl. endpoint, p99", rust["warm_ex_endpoint_ms"]["p99"], python["warm_ex_endpoint_ms"]["p99"], ms)
    row(
        "RSS after the first response",
        mb_from_kb(rust["cold_rss_kb"]["median"]),
        mb_from_kb(python["cold_rss_kb"]["median"]),
        lambda v: f"{v:.1f} MB",
    )
    row(
        f"Max RSS over 1 + {rust['warm_ms']['n']:,} invocations",
        mb_from_kb(rust["max_rss_kb"]),
        mb_from_kb(python["max_rss_kb"]),
        lambda v: f"{v:.1f} MB",
    )
    add("")
    add(
        f"Answers: ours {rust['warm_statuses']}, peer {python['warm_statuses']} (status code: count) "
        "over the warm run; every cold start answered "
        f"{', '.join(rust['cold_statuses'])} (ours) and {', '.join(python['cold_statuses'])} (peer)."
    )
    add("")
    add(
        "Initialisation alone (process start to the first /next request, less the endpoint's "
        "time for ours' two connection warm-up calls) took "
        f"{ms(rust['init_ex_endpoint_ms']['median'])} for ours and "
        f"{ms(python['init_ex_endpoint_ms']['median'])} for the peer. Ours reads the system's "
        "single CA bundle file at start (`lambda::start` in `functions/lambda` points `SSL_CERT_FILE` at it "
        "unless set), not every file of the certificate directory."
    )
    add("")
    floor = lambda_results.get("floor")
    if floor:
        add(
            "What the harness leaves in each warm figure: a function process that answers every "
            "invocation at once (`bench/null_runtime.py`: Python's `http.client`, no AWS calls) "
            f"takes {ms(floor['warm_ms']['median'])} per warm invocation (median of "
            f"{floor['warm_ms']['n']}): loopback HTTP and that minimal client's own work."
        )
        add("")
    add(
        "Where ours goes on a warm invocation: its handler's own work is under 20 µs "
        "(section 1); the rest is two calls through the AWS SDK for Rust (request building, "
        "SigV4 signing, the SDK's interceptor pipeline, the response parsed) and loopback TCP. "
        "An earlier profile (`perf`, not part of this run) of the bootstrap in this harness "
        "showed no single hot spot to remove."
    )
    add("")
    add(f"![Side by side]({chart_link})")
    add("")
    cold_ex = rust["cold_ex_endpoint_ms"]["median"]
    max_rss = mb_from_kb(rust["max_rss_kb"])
    cold_ratio = ratio(python["cold_ex_endpoint_ms"]["median"], cold_ex)
    warm_ratio = ratio(python["warm_ex_endpoint_ms"]["median"], rust["warm_ex_endpoint_ms"]["median"])
    memory_ratio = ratio(python["max_rss_kb"], rust["max_rss_kb"])
    summary_rows.append(("Cold start to first response, excl. endpoint", ms(cold_ex), f"≤ {COLD_MS:g} ms", verdict(cold_ex <= COLD_MS)))
    summary_rows.append(("Max RSS of the function", f"{max_rss:.1f} MB", f"≤ {RSS_MB:g} MB", verdict(max_rss <= RSS_MB)))
    summary_rows.append(("Cold start vs peer (excl. endpoint)", f"{cold_ratio:.1f}× faster", f"≥ {COLD_RATIO:g}×", verdict(cold_ratio >= COLD_RATIO)))
    summary_rows.append(("Warm time per invocation vs peer (excl. endpoint)", f"{warm_ratio:.1f}× less", f"≥ {WARM_RATIO:g}×", verdict(warm_ratio >= WARM_RATIO)))
    summary_rows.append(("Memory vs peer (max RSS)", f"{memory_ratio:.1f}× less", f"≥ {MEMORY_RATIO:g}×", verdict(memory_ratio >= MEMORY_RATIO)))
    raw_cold_ratio = ratio(python["cold_ms"]["median"], rust["cold_ms"]["median"])
    raw_warm_ratio = ratio(python["warm_ms"]["median"], rust["warm_ms"]["median"])
    add(
        f"Raw ratios, endpoint included: cold start {raw_cold_ratio:.1f}×, warm invocation "
        f"{raw_warm_ratio:.1f}×. The targets are judged on the figures excluding the endpoint, "
        "since a local moto is far slower than DynamoDB and SQS and would otherwise set both sides' figures."
    )
    add("")

    # ---------------------------------------------------------------------------------------------
    roundtrips = roundtrip_section(add, results, summary_rows)
    costs = cost_section(add, results, summary_rows, lambda_results)

    # ---------------------------------------------------------------------------------------------
    add("## 6. Throughput of the local server")
    add("")
    runs = throughput["runs"]
    headline = runs[0]
    add(
        f"`devserver` (release), a fresh one per run on a fresh SQLite file with the checked-in "
        f"`devserver.toml`, loaded on loopback by {throughput['tool']} with "
        f"{headline['threads']} threads: a fixed {headline['requests']:,} requests per run "
        f"(± the few already in flight when each wrk thread reaches its quota) after "
        f"{headline['warmup_requests']:,} warm-up requests; half Magicline, half EGYM; every 5th "
        "request (past the first 1,000 of each wrk thread) repeats a delivery sent 501 requests "
        "earlier, so it is answered as a duplicate (200) rather than accepted (202). wrk runs on "
        "the same 2 cores as the server. With `--workers 2` (the default) the server's processor "
        "workers drain the queue and fetch each event's details from the built-in sandbox (over "
        "HTTP, from the same process) while the load runs; `--workers 0` shows the webhook path "
        "alone. Latency is wrk's, per request, in a closed loop (each connection sends its next "
        "request when the previous one is answered), so mean latency ≈ connections ÷ throughput "
        "(Little's law): the latency target only means something together with the number of "
        f"connections. The targets are judged on the first run (the default server, "
        f"{headline['connections']} connections)."
    )
    add("")
    add(
        "| Workers | Connections | Requests | Time | Webhooks/s | p50 | p90 | p99 | p99.9 | max "
        "| In the handler: p50 / p99 | Answers |"
    )
    add("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        latency = run["latency_ms"]
        inside = handler_latency(
            results / f"devserver-w{run['workers']}-c{run['connections']}.log",
            run["warmup_requests"],
        )
        inside_text = f"{inside[0]:.2f} / {inside[1]:.2f} ms" if inside else "n/a"
        add(
            f"| {run['workers']} | {run['connections']} | {run['requests']:,} | {run['seconds']:.2f} s | "
            f"{run['requests_per_second']:,.0f} | {latency['p50']:.2f} ms | {latency['p90']:.2f} ms | "
            f"{latency['p99']:.2f} ms | {latency['p999']:.2f} ms | {latency['max']:.2f} ms | "
            f"{inside_text} | "
            f"{', '.join(f'{k}: {v:,}' for k, v in sorted(run['statuses'].items()))} |"
        )
    add("")
    add(
        "\"In the handler\" is the server's own `latency_us` from its log line of each webhook of the "
        "measured run (`Ingest::handle` on the SQLite store and queue, HTTP excluded); the rest of "
        "wrk's figure is waiting for a turn and HTTP."
    )
    add("")
    for run in runs:
        socket_errors = sum(run["socket_errors"].values())
        if run["unexpected_statuses"] or socket_errors:
            add(
                f"Unexpected answers (workers {run['workers']}, {run['connections']} connections): "
                f"{run['unexpected_statuses']}; socket errors: {run['socket_errors']}."
            )
            add("")
    latency = headline["latency_ms"]
    rps_ok = headline["requests_per_second"] >= THROUGHPUT_RPS
    p99_ok = latency["p99"] < P99_MS
    summary_rows.append(
        (
            f"Local server throughput (2 cores, {headline['connections']} connections)",
            f"{headline['requests_per_second']:,.0f} webhooks/s",
            f"≥ {THROUGHPUT_RPS:,.0f}/s",
            verdict(rps_ok),
        )
    )
    summary_rows.append(
        (
            f"Local server p99 latency ({headline['connections']} connections)",
            f"{latency['p99']:.2f} ms",
            f"< {P99_MS:g} ms",
            verdict(p99_ok),
        )
    )

    # ---------------------------------------------------------------------------------------------
    sustained_section(add, results, summary_rows)

    add("## 8. Size")
    add("")
    arm64_file = results / "sizes-arm64.json"
    arm64 = json.loads(arm64_file.read_text()) if arm64_file.exists() else None
    add(
        "Release binaries (each is a function's `bootstrap`) and their deployment zips (the binary "
        "as `bootstrap`, deflated), x86_64 as built by this run (`cargo build --release`, "
        "stripped). 1 MB = 1,000,000 bytes. arm64 (what the template deploys by default): "
        + (
            f"cross-compiled by this run with cargo-lambda and zig (`{arm64['command']}`, "
            f"{arm64['seconds']:.0f} s"
            + (", `target/sam` already held a build of these sources" if arm64["seconds"] < 60 else "")
            + "), stripped as the release profile says."
            if arm64
            else "not built by this run (no cargo-lambda or zig in `.venv`, or `BENCH_ARM64=0`): "
            "**not measured**."
        )
    )
    add("")
    add(f"| Function | x86_64 bootstrap | ≤ {BOOTSTRAP_MB:g} MB | x86_64 zip | arm64 bootstrap | ≤ {BOOTSTRAP_MB:g} MB |")
    add("|---|---|---|---|---|---|")
    largest = 0
    largest_arm64 = 0
    arm64_sizes = arm64["sizes"] if arm64 else {}
    for name, size in sizes.items():
        largest = max(largest, size["bootstrap_bytes"])
        other = arm64_sizes.get(name)
        largest_arm64 = max(largest_arm64, other or 0)
        other_text = (
            f"{other / MB:.2f} MB ({other:,} bytes) | {verdict(other <= BOOTSTRAP_MB * MB)}"
            if other
            else "— | —"
        )
        add(
            f"| {name} | {size['bootstrap_bytes'] / MB:.2f} MB ({size['bootstrap_bytes']:,} bytes) | "
            f"{verdict(size['bootstrap_bytes'] <= BOOTSTRAP_MB * MB)} | {size['zip_bytes'] / MB:.2f} MB | "
            f"{other_text} |"
        )
    add("")
    summary_rows.append(
        ("Largest bootstrap (x86_64, measured)", f"{largest / MB:.2f} MB", f"≤ {BOOTSTRAP_MB:g} MB", verdict(largest <= BOOTSTRAP_MB * MB))
    )
    if arm64:
        summary_rows.append(
            (
                "Largest bootstrap (arm64, cross-compiled in this run)",
                f"{largest_arm64 / MB:.2f} MB",
                f"≤ {BOOTSTRAP_MB:g} MB",
                verdict(largest_arm64 <= BOOTSTRAP_MB * MB),
            )
        )

    drain_section(add, results, summary_rows)

    # ---------------------------------------------------------------------------------------------
    add("## How to read this")
    add("")
    add(
        "- The local endpoint is moto, not DynamoDB/SQS, and the Runtime API is an emulator, not "
        "Lambda's: absolute cold-start figures in AWS add Lambda's own sandbox start (and, for "
        "Python, the managed runtime's start), which neither side controls. The comparison is "
        "what is meaningful: same machine, same harness, same events, same endpoint, same run."
    )
    add(
        "- The local endpoint (bench/local_aws_timed.py) keeps HTTP/1.1 connections open between "
        "calls, as DynamoDB and SQS do (and their TLS sessions, which a local http:// endpoint "
        "has none of); moto's work is serialised under one lock, as in the test suite's "
        "single-threaded endpoint."
    )
    add(
        "- The peer does two more endpoint calls than ours per webhook (Powertools keeps its own "
        "idempotency record besides the event item: put, then update); the \"excl. endpoint\" "
        "figures take those calls' endpoint time out, not their client-side cost (signing, "
        "serialising, parsing), which is part of doing it the Powertools way; with a few ms per "
        "call (section 4) the calls themselves are what the ack waits for."
    )
    add(
        "- The peer does less than ours: no outbox (a failed send after the put leaves the event "
        "stored and never queued), no listing, replay or erasure indexes, no metrics, no "
        "quarantine, Magicline only. Its cost (section 5) is what that smaller job costs; ours "
        "pays for its indexes and its metrics lines."
    )
    add(
        "- Costs are measured quantities (requests, units, bytes, ms) at list prices of one "
        "region (section 5): moto is not DynamoDB, so the units come from item sizes by "
        "DynamoDB's documented rules, not from DynamoDB's own counters."
    )
    add(
        "- Criterion medians are the time of one request on one core (a current-thread runtime, "
        "in-memory ports), on a machine that was not reserved for the run (see the load average)."
    )
    add(
        "- Reproduce: `scripts/bench` (see the run time above; it installs wrk with apt-get and "
        "its Python tools into `bench/.venv`). Raw results of the run: "
        "`target/bench/` (JSON, logs, wrk output, criterion data). `cargo bench -p tests` runs the "
        "criterion benches alone with criterion's default timings."
    )
    add("")

    summary = ["## Summary", "", "| Target | Measured | Target | |", "|---|---|---|---|"]
    for label, value, target, ok in summary_rows:
        summary.append(f"| {label} | {value} | {target} | {ok} |")
    summary.append("")
    insert_at = lines.index("## 1. Ack path CPU (criterion, in-memory ports)")
    lines[insert_at:insert_at] = summary
    chart(lambda_results, args.chart, roundtrips, costs)
    Path(args.markdown).write_text("\n".join(lines) + "\n")
    print("\n".join(summary))


if __name__ == "__main__":
    main()
