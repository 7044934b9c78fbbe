"""What a webhook costs, measured end to end: N new deliveries per provider and body size through
the release bootstraps (each provider's webhook function, then the processor) under the Runtime
API emulator of bench/lambda_harness.py, against the local DynamoDB + SQS + EventBridge endpoint
(bench/local_aws_timed.py --account, which prices every request in billed units), with every
AWS call held DELAY ms by bench/delay_proxy.py as in a real region and the provider API (the dev
server's sandbox) answering after API_DELAY ms; and the same for the Python + Powertools peer
(bench/peer-python/app.py and processor.py), on the same Magicline events.

Per webhook it reports the quantities AWS bills (bench/report.py prices them):
- the webhook function's billed time (each warm invocation's time from the /next answer handed
  over to the response received, less the endpoint's own time, rounded up to 1 ms as Lambda
  bills) and the processor's (per batch, shared by its messages); the first invocation of each
  process (its cold start) is left out;
- every AWS request by service and operation, from the endpoint's log, with DynamoDB write and
  read units (table and indexes), SQS requests in 64 KB chunks, EventBridge entries in 64 KB
  chunks; the SQS event source's own receives and deletes (which this harness makes, as Lambda's
  poller does, and which are billed to the account) apart from the functions';
- the bytes the functions wrote to stdout and stderr (their log lines, EMF lines included) and
  the lines, to which Lambda adds its START, END and REPORT lines;
- the bytes each webhook keeps in DynamoDB (items and index entries, as DynamoDB counts
  storage), read back at the end.
Messages are handed to the processor as Lambda's SQS event source does (the template's batch
size, 10; the first batch of one message, its cold start); every record must end PROCESSED and
every processed event must be published.

Usage: cost.py --release-dir target/release --devserver target/release/devserver
               --events DIR (written by the ack_path bench with ACK_EVENTS_DIR) --out FILE.json
"""

import argparse
import functools
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import cfn  # noqa: E402
import ddb_units  # noqa: E402
import throughput  # noqa: E402  (free_port, wait_ready)
from lambda_harness import (  # noqa: E402
    RuntimeApi,
    create_resources,
    endpoint_log,
    status_of,
    tag_caller,
)

ROOT = Path(__file__).resolve().parent.parent
PEER = ROOT / "bench/peer-python"
REGION = "us-east-1"
BUS = "bench-processed-events"
MEMORY_MB = 256
BATCH_SIZE = 10


# -------------------------------------------------------------------------------------------------
# Processes
# -------------------------------------------------------------------------------------------------


class Background:
    """A helper process (endpoint, proxy, sandbox) stopped at exit."""

    running = []

    def __init__(self, command, log_path, cwd=ROOT):
        self.log = open(log_path, "ab")
        self.process = subprocess.Popen(command, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT)
        Background.running.append(self)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    @classmethod
    def stop_all(cls):
        for background in reversed(cls.running):
            background.stop()
        cls.running.clear()


def wait_for(url, process, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{process.args[:3]} exited during start-up")
        try:
            import urllib.request

            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer")


class Function:
    """One function process under the Runtime API emulator."""

    def __init__(self, command, env, cwd, log_path):
        self.api = RuntimeApi()
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            command,
            env=dict(env, AWS_LAMBDA_RUNTIME_API=self.api.address),
            cwd=cwd,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def invoke(self, event):
        """(status code or answer, answer body, handed over ns, answered ns)."""
        self.api.events.put(event)
        kind, request_id, received, body = self.api.results.get(timeout=120)
        if kind != "response":
            raise RuntimeError(f"{self.process.args[0]}: {kind}: {body[:500]!r}")
        return body, self.api.sent_time(request_id), received

    def log_size(self):
        self.log.flush()
        return self.log_path.stat().st_size

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.api.close()
        self.log.close()


def log_segment(path, start, end):
    """Bytes and lines the function wrote between two offsets of its log."""
    with open(path, "rb") as log:
        log.seek(start)
        data = log.read(end - start)
    return len(data), data.count(b"\n")


# -------------------------------------------------------------------------------------------------
# The endpoint's log, summed
# -------------------------------------------------------------------------------------------------


def within(log, intervals):
    """Entries that started within one of `intervals` (sorted (start, end) pairs)."""
    import bisect

    starts = [s for s, _ in intervals]
    for entry in log:
        index = bisect.bisect_right(starts, entry[0]) - 1
        if index >= 0 and intervals[index][0] <= entry[0] <= intervals[index][1]:
            yield entry


def tally(entries):
    """Requests by service.operation and the billed units they add up to."""
    requests, units = {}, {"wru": 0, "rru": 0.0, "sqs_requests": 0, "events_entries": 0, "events_units": 0}
    wru_indexes = {}
    for _, _, operation, facts in entries:
        name = f"{facts['service']}.{operation.split('.')[-1]}"
        requests[name] = requests.get(name, 0) + 1
        billed = facts.get("units") or {}
        if facts["service"] == "dynamodb":
            units["wru"] += billed.get("wru", 0)
            units["rru"] += billed.get("rru", 0)
            for index, value in (billed.get("wru_indexes") or {}).items():
                wru_indexes[index] = wru_indexes.get(index, 0) + value
        elif facts["service"] == "sqs":
            units["sqs_requests"] += billed.get("requests", 1)
        elif facts["service"] == "events":
            units["events_entries"] += billed.get("entries", 0)
            units["events_units"] += billed.get("units", 0)
    units["wru_indexes"] = wru_indexes
    return requests, units


def endpoint_time(log, start_ns, end_ns):
    """Time within [start_ns, end_ns] during which the endpoint was working on a request that
    started in it: the union of those requests' intervals (the processor's concurrent calls wait
    for one another in moto, which answers one at a time; in AWS they would overlap)."""
    spans = sorted((s, min(e, end_ns)) for s, e, *_ in log if start_ns <= s <= end_ns)
    total, current_start, current_end = 0, None, None
    for s, e in spans:
        if current_end is None or s > current_end:
            if current_end is not None:
                total += current_end - current_start
            current_start, current_end = s, e
        else:
            current_end = max(current_end, e)
    if current_end is not None:
        total += current_end - current_start
    return total


def per(value, count):
    if isinstance(value, dict):
        return {k: per(v, count) for k, v in value.items()}
    return value / count if count else 0


# -------------------------------------------------------------------------------------------------
# The two phases
# -------------------------------------------------------------------------------------------------


def summary(values):
    values = sorted(values)
    if not values:
        return {}
    return {
        "n": len(values),
        "median": values[len(values) // 2],
        "mean": sum(values) / len(values),
        "p99": values[min(len(values) - 1, int(len(values) * 0.99))],
    }


def billed_ms(duration_ns):
    """Lambda bills every invocation in whole ms, rounded up."""
    return max(1, math.ceil(duration_ns / 1e6))


def acknowledge(direct, command, env, cwd, events, log_path, accepted):
    """The webhook function on every event: the first one starts the process (left out of
    every figure), the rest are the measured warm invocations."""
    function = Function(command, env, cwd, log_path)
    try:
        endpoint_log(direct)
        body, _, _ = function.invoke(events[0])
        if status_of(body) != accepted:
            raise RuntimeError(f"{command[-1]}: first webhook answered {body[:300]!r}")
        log_start = function.log_size()
        intervals, statuses = [], {}
        for event in events[1:]:
            body, sent, received = function.invoke(event)
            intervals.append((sent, received))
            status = str(status_of(body))
            statuses[status] = statuses.get(status, 0) + 1
        log = endpoint_log(direct)
        log_end = function.log_size()
    finally:
        function.stop()
    mine = [e for e in within(log, intervals) if e[3]["caller"] == "function"]
    requests, units = tally(mine)
    durations = [r - s - endpoint_time(log, s, r) for s, r in intervals]
    log_bytes, log_lines = log_segment(log_path, log_start, log_end)
    count = len(intervals)
    return {
        "invocations": count,
        "statuses": statuses,
        "duration_ms": summary([d / 1e6 for d in durations]),
        "billed_ms_mean": sum(billed_ms(d) for d in durations) / count,
        "endpoint_ms": summary([endpoint_time(log, s, r) / 1e6 for s, r in intervals]),
        "log_bytes_per_invocation": log_bytes / count,
        "log_lines_per_invocation": log_lines / count,
        "requests_per_webhook": per(requests, count),
        "units_per_webhook": per(units, count),
    }


def sqs_event(messages, queue_arn):
    records = []
    for message in messages:
        attributes = dict(message.get("Attributes", {}))
        attributes.setdefault("ApproximateReceiveCount", "1")
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
        )
    return {"Records": records}


def process(direct, esm, queue_url, command, env, cwd, log_path, critical_path=None):
    """The processor on the queue, fed as Lambda's SQS event source feeds it: receive up to
    BATCH_SIZE, invoke, delete what the function did not report failed.

    A batch's time is its time less the endpoint's (see endpoint_time). For a processor that
    handles a batch's messages concurrently that is too little: moto answers one request at a
    time, so the concurrent messages' held calls overlap moto's work on the others and are
    taken out with it. `critical_path` then gives the least a batch takes in AWS, one message's
    calls one after the other: its AWS calls (from the endpoint's log) x (the delay + the
    client's own time per call, `per_call_ms`, as measured on the ack path) + the provider API's
    delay for the share of messages whose log line says they fetched; a batch is billed the
    larger of the two."""
    queue_arn = esm.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    function = Function(command, env, cwd, log_path)
    batches = []
    try:
        endpoint_log(direct)
        log_start = None
        empty = 0
        while empty < 3:
            wanted = 1 if not batches else BATCH_SIZE
            messages = esm.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=wanted,
                VisibilityTimeout=360,
                AttributeNames=["All"],
                WaitTimeSeconds=0,
            ).get("Messages", [])
            if not messages:
                empty += 1
                time.sleep(0.2)
                continue
            empty = 0
            body, sent, received = function.invoke(json.dumps(sqs_event(messages, queue_arn)).encode())
            failed = {f["itemIdentifier"] for f in json.loads(body).get("batchItemFailures", [])}
            done = [m for m in messages if m["MessageId"] not in failed]
            if done:
                esm.delete_message_batch(
                    QueueUrl=queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
                )
            batches.append({"sent": sent, "received": received, "messages": len(messages), "failed": len(failed)})
            if log_start is None:
                log_start = function.log_size()
        log = endpoint_log(direct)
        log_end = function.log_size()
    finally:
        function.stop()
    intervals = sorted((b["sent"], b["received"]) for b in batches)
    messages = sum(b["messages"] for b in batches)
    mine = [e for e in within(log, intervals) if e[3]["caller"] == "function"]
    requests, units = tally(mine)
    # The event source's polls that found nothing (the end of this run; in AWS, its idle long
    # polls) are a cost per month, not per webhook.
    esm_requests, esm_units = tally(
        [
            e
            for e in log
            if e[3]["caller"] == "esm"
            and not (e[2].endswith("ReceiveMessage") and not (e[3].get("units") or {}).get("messages"))
        ]
    )
    measured = batches[1:]  # the first batch starts the process
    measured_messages = sum(b["messages"] for b in measured) or 1
    durations = [b["received"] - b["sent"] - endpoint_time(log, b["sent"], b["received"]) for b in measured]
    log_bytes, log_lines = log_segment(log_path, log_start or 0, log_end)
    path_ms = None
    if critical_path:
        calls = sum(per(requests, messages).values())
        fetched = Path(log_path).read_bytes().count(critical_path["fetched_marker"]) / messages
        path_ms = calls * (critical_path["aws_delay_ms"] + critical_path["per_call_ms"]) + fetched * critical_path[
            "api_delay_ms"
        ]
        measured_ms = summary([d / 1e6 for d in durations])
        durations = [max(d, path_ms * 1e6) for d in durations]
    return {
        "critical_path_ms": path_ms,
        "batch_ms_measured": measured_ms if critical_path else None,
        "messages": messages,
        "invocations": len(batches),
        "failed": sum(b["failed"] for b in batches),
        "batch_ms": summary([d / 1e6 for d in durations]),
        "billed_ms_per_message": sum(billed_ms(d) for d in durations) / measured_messages,
        "invocations_per_message": len(measured) / measured_messages,
        "log_bytes_per_message": log_bytes / measured_messages,
        "log_lines_per_message": log_lines / measured_messages,
        "requests_per_message": per(requests, messages),
        "units_per_message": per(units, messages),
        "esm_requests_per_message": per(esm_requests, messages),
        "esm_units_per_message": per(esm_units, messages),
    }


# -------------------------------------------------------------------------------------------------
# Resources
# -------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def template_table():
    """EventsTable's key and indexes as template.yaml declares them (read once)."""
    properties = cfn.load()["Resources"]["EventsTable"]["Properties"]
    return {
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "KeySchema": properties["KeySchema"],
        "GlobalSecondaryIndexes": properties["GlobalSecondaryIndexes"],
        "BillingMode": properties["BillingMode"],
    }


def scan_all(dynamodb, table):
    items, start = [], None
    while True:
        arguments = {"TableName": table}
        if start:
            arguments["ExclusiveStartKey"] = start
        page = dynamodb.scan(**arguments)
        items += page["Items"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return items


def stored(dynamodb, table, webhooks, expiry=None):
    """Bytes the table keeps per webhook for the retention period (items and index entries, by
    DynamoDB's storage rule); with `expiry`, the attribute saying when an item expires, each
    item counts for the part of the 30 days it is kept (Powertools' idempotency records)."""
    schema = ddb_units.Schema(dynamodb.describe_table(TableName=table))
    items = scan_all(dynamodb, table)
    now = time.time()

    def share(item):
        if not expiry or expiry not in item:
            return 1.0
        return min(1.0, max(0.0, (float(item[expiry]["N"]) - now) / (30 * 86400)))

    total = sum(schema.storage_bytes(item) * share(item) for item in items)
    statuses = {}
    for item in items:
        status = item.get("status", {}).get("S", "-")
        statuses[status] = statuses.get(status, 0) + 1
    return total / webhooks, statuses, len(items)


# -------------------------------------------------------------------------------------------------
# Runs
# -------------------------------------------------------------------------------------------------


def lines(path):
    return [line.encode() for line in Path(path).read_text().splitlines() if line.strip()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release-dir", required=True)
    parser.add_argument("--devserver", required=True)
    parser.add_argument("--events", required=True)
    parser.add_argument("--python", default=sys.executable, help="Python for the peer")
    parser.add_argument("--out", required=True)
    parser.add_argument("--aws-delay-ms", type=float, default=5.0)
    parser.add_argument("--api-delay-ms", type=float, default=50.0)
    parser.add_argument("--providers", default=None, help="comma-separated; default all")
    parser.add_argument("--no-peer", action="store_true")
    args = parser.parse_args()
    out = Path(args.out)
    logs = out.parent / "cost-logs"
    logs.mkdir(parents=True, exist_ok=True)
    events_dir = Path(args.events)
    index = json.loads((events_dir / "index.json").read_text())
    release = Path(args.release_dir).resolve()

    try:
        # The endpoint, counting; the proxies; the provider APIs (the dev server's sandbox).
        endpoint_port = throughput.free_port()
        direct = f"http://127.0.0.1:{endpoint_port}"
        endpoint = Background(
            [args.python, str(ROOT / "bench/local_aws_timed.py"), "127.0.0.1", str(endpoint_port), "--account"],
            logs / "endpoint.log",
        )
        wait_for(f"{direct}/moto-api/", endpoint.process)
        aws_port = throughput.free_port()
        Background(
            [args.python, str(ROOT / "bench/delay_proxy.py"), "--listen", f"127.0.0.1:{aws_port}",
             "--target", f"127.0.0.1:{endpoint_port}", "--delay-ms", str(args.aws_delay_ms),
             "--stats", str(out.parent / "cost-proxy-aws.json")],
            logs / "proxy-aws.log",
        )
        scratch = tempfile.mkdtemp(prefix="bench-cost-")
        web_port, admin_port = throughput.free_port(), throughput.free_port()
        sandbox = Background(
            [str(Path(args.devserver).resolve()), "--listen", f"127.0.0.1:{web_port}",
             "--admin-listen", f"127.0.0.1:{admin_port}", "--data", f"{scratch}/sandbox.db",
             "--config", str(ROOT / "devserver.toml"), "--workers", "0"],
            logs / "sandbox.log",
        )
        wait_for(f"http://127.0.0.1:{admin_port}/", sandbox.process, seconds=120)
        api_port = throughput.free_port()
        Background(
            [args.python, str(ROOT / "bench/delay_proxy.py"), "--listen", f"127.0.0.1:{api_port}",
             "--target", f"127.0.0.1:{admin_port}", "--delay-ms", str(args.api_delay_ms),
             "--stats", str(out.parent / "cost-proxy-api.json")],
            logs / "proxy-api.log",
        )
        aws = f"http://127.0.0.1:{aws_port}"
        api_base = f"http://127.0.0.1:{api_port}/_sandbox"
        time.sleep(0.5)

        session = boto3.session.Session(
            aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION
        )
        dynamodb = tag_caller(session.client("dynamodb", endpoint_url=direct))
        sqs = tag_caller(session.client("sqs", endpoint_url=direct))
        esm = tag_caller(session.client("sqs", endpoint_url=direct), "esm")
        tag_caller(session.client("events", endpoint_url=direct)).create_event_bus(Name=BUS)

        tenants = {
            name: (events_dir / spec["tenants"]).read_text().replace("{api}", api_base)
            for name, spec in index.items()
        }
        base_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": "C.UTF-8",
            "AWS_ENDPOINT_URL": aws,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(MEMORY_MB),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        }
        # As template.yaml's Globals and the processor's own variables.
        ours_env = dict(
            base_env,
            RUST_LOG="info",
            RETENTION_DAYS="30",
            INGEST_LEASE_SECONDS="60",
            METRICS_NAMESPACE="Webhooks/bench",
        )
        report = {
            "settings": {
                "region": REGION,
                "aws_delay_ms": args.aws_delay_ms,
                "api_delay_ms": args.api_delay_ms,
                "memory_mb": MEMORY_MB,
                "batch_size": BATCH_SIZE,
                "retention_days": 30,
            },
            "runs": [],
        }
        providers = args.providers.split(",") if args.providers else list(index)
        run_number = 0
        for provider in providers:
            for size, spec in index[provider]["sizes"].items():
                run_number += 1
                events = lines(events_dir / spec["file"])
                suffix = f"{os.getpid()}-{run_number}"
                table = f"bench-cost-{suffix}"
                dynamodb.create_table(TableName=table, **template_table())
                queue_url = sqs.create_queue(QueueName=f"bench-cost-{suffix}")["QueueUrl"]
                env = dict(
                    ours_env,
                    TABLE_NAME=table,
                    QUEUE_URL=queue_url,
                    TENANTS_JSON=tenants[provider],
                    AWS_LAMBDA_FUNCTION_NAME=f"bench-{provider}-webhook",
                )
                print(f"  ours {provider} {spec['body_bytes']} B: {len(events)} webhooks", flush=True)
                ack = acknowledge(
                    direct, [str(release / f"{provider}-webhook")], env, str(ROOT), events,
                    logs / f"ours-{provider}-{size}-webhook.log", index[provider]["accepted_status"],
                )
                processor_env = dict(
                    ours_env,
                    TABLE_NAME=table,
                    QUEUE_URL=queue_url,
                    EVENT_BUS_NAME=BUS,
                    CONCURRENCY="10",
                    CLAIM_LEASE_SECONDS="90",
                    FETCH_TIMEOUT_SECONDS="10",
                    MAX_RECEIVES="5",
                    AWS_LAMBDA_FUNCTION_NAME="bench-processor",
                    **{f"{name.upper()}_TENANTS_JSON": doc for name, doc in tenants.items()},
                )
                ack_calls = sum(ack["requests_per_webhook"].values())
                per_call_ms = max(0.0, (ack["duration_ms"]["median"] - ack_calls * args.aws_delay_ms) / ack_calls)
                processing = process(
                    direct, esm, queue_url, [str(release / "processor")], processor_env, str(ROOT),
                    logs / f"ours-{provider}-{size}-processor.log",
                    critical_path={
                        "aws_delay_ms": args.aws_delay_ms,
                        "api_delay_ms": args.api_delay_ms,
                        "per_call_ms": per_call_ms,
                        "fetched_marker": b'"outcome":"fetched"',
                    },
                )
                storage, statuses, items = stored(dynamodb, table, len(events))
                run = {
                    "contender": "ours",
                    "provider": provider,
                    "size": int(size),
                    "body_bytes": spec["body_bytes"],
                    "webhooks": len(events),
                    "ack": ack,
                    "process": processing,
                    "storage_bytes_per_webhook": storage,
                    "records_by_status": statuses,
                }
                report["runs"].append(run)
                print(
                    f"    ack {ack['duration_ms']['median']:.2f} ms, {ack['requests_per_webhook']}, "
                    f"{ack['units_per_webhook']['wru']:.1f} WRU; processing "
                    f"{processing['billed_ms_per_message']:.1f} ms/message, "
                    f"{processing['units_per_message']['wru']:.1f} WRU, "
                    f"{processing['units_per_message']['events_entries']:.2f} events; records {statuses}",
                    flush=True,
                )

        if not args.no_peer and "magicline" in index:
            provider = "magicline"
            for size, spec in index[provider]["sizes"].items():
                run_number += 1
                events = lines(events_dir / spec["file"])
                suffix = f"{os.getpid()}-peer-{run_number}"
                table, idempotency, queue_url = create_resources(direct, suffix)
                peer_env = dict(
                    base_env,
                    TABLE_NAME=table,
                    QUEUE_URL=queue_url,
                    IDEMPOTENCY_TABLE_NAME=idempotency,
                    TENANTS_JSON=tenants[provider],
                    LAMBDA_TASK_ROOT=str(PEER),
                    PYTHONPATH=str(PEER),
                    PYTHONUNBUFFERED="1",
                    AWS_EXECUTION_ENV="AWS_Lambda_python3.11",
                )
                print(f"  peer {provider} {spec['body_bytes']} B: {len(events)} webhooks", flush=True)
                ack = acknowledge(
                    direct,
                    [os.path.abspath(args.python), "-m", "awslambdaric", "app.lambda_handler"],
                    dict(peer_env, AWS_LAMBDA_FUNCTION_NAME="bench-peer-webhook",
                         POWERTOOLS_SERVICE_NAME="magicline-webhook"),
                    str(PEER), events, logs / f"peer-{provider}-{size}-webhook.log",
                    index[provider]["accepted_status"],
                )
                processing = process(
                    direct, esm, queue_url,
                    [os.path.abspath(args.python), "-m", "awslambdaric", "processor.lambda_handler"],
                    dict(peer_env, EVENT_BUS_NAME=BUS, AWS_LAMBDA_FUNCTION_NAME="bench-peer-processor",
                         POWERTOOLS_SERVICE_NAME="webhook-processor"),
                    str(PEER), logs / f"peer-{provider}-{size}-processor.log",
                )
                storage, statuses, _ = stored(dynamodb, table, len(events))
                # Its idempotency records: the webhook's kept 30 days, the processor's 1 hour.
                idempotency_storage, _, _ = stored(dynamodb, idempotency, len(events), "expiration")
                run = {
                    "contender": "peer",
                    "provider": provider,
                    "size": int(size),
                    "body_bytes": spec["body_bytes"],
                    "webhooks": len(events),
                    "ack": ack,
                    "process": processing,
                    "storage_bytes_per_webhook": storage + idempotency_storage,
                    "records_by_status": statuses,
                }
                report["runs"].append(run)
                print(
                    f"    ack {ack['duration_ms']['median']:.2f} ms, {ack['requests_per_webhook']}, "
                    f"{ack['units_per_webhook']['wru']:.1f} WRU; processing "
                    f"{processing['billed_ms_per_message']:.1f} ms/message, "
                    f"{processing['units_per_message']['wru']:.1f} WRU; records {statuses}",
                    flush=True,
                )
    finally:
        Background.stop_all()
    for name in ("aws", "api"):
        stats = out.parent / f"cost-proxy-{name}.json"
        if stats.exists():
            report["settings"][f"proxy_{name}"] = json.loads(stats.read_text())
    out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
