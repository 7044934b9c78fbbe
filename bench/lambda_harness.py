"""Cold start, warm invocations and memory of a Lambda function process under a minimal local
Lambda Runtime API, against the local DynamoDB + SQS endpoint (bench/local_aws_timed.py).

The same harness runs both contenders on the same events:
- ours: the release `bootstrap` of the Magicline webhook function (lambda_runtime client);
- the peer: bench/peer-python/app.py under the AWS Lambda Runtime Interface Client for Python
  (`python -m awslambdaric app.lambda_handler`), as the Python managed runtime runs handlers.

Per process start ("cold start"): from just before the process is spawned to the moment the
first invocation's response arrived in the emulator's socket. Warm: from the moment the emulator
has handed an invocation (the /next answer) to its socket to the moment the response's first
bytes arrived in its socket (the kernel's receive timestamp, as the endpoint measures its own
time), so the emulator's own formatting and parsing, in Python, are charged to neither contender.
The endpoint's own time (what the timing middleware saw inside moto for the requests that started
within that interval) is reported beside each figure and subtracted in the `*_ex_endpoint`
figures. Max RSS: VmHWM of the function process, read from /proc after its last invocation.

Usage: lambda_harness.py --endpoint http://127.0.0.1:PORT --bootstrap PATH --out FILE.json
"""

import argparse
import bisect
import http.server
import json
import os
import queue
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid as uuidlib
from pathlib import Path

import boto3
from http_body import arrival_ns, enable_arrival_times, read_body

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_PREFIX = "/2018-06-01/runtime"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:bench-magicline-webhook"


# -------------------------------------------------------------------------------------------------
# The Runtime API emulator
# -------------------------------------------------------------------------------------------------


class RuntimeApi:
    """A minimal Lambda Runtime API: /next hands out queued events, /response and /error
    collect the answers with the time they arrived."""

    def __init__(self):
        self.events = queue.Queue()
        self.results = queue.Queue()
        self.stopped = threading.Event()
        self.sent_at = {}
        self.sent = threading.Condition()
        self.first_next_at = None
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Each answer leaves in one write (flushed in _send), with Nagle off: no delayed-ACK
            # stalls added by the emulator to either contender.
            wbufsize = 1 << 16

            def setup(self):
                super().setup()
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                enable_arrival_times(self.connection)

            def handle_one_request(self):
                self.arrived = arrival_ns(self.connection)
                super().handle_one_request()

            def log_message(self, *args):
                pass

            def _send(self, status, body=b"", headers=()):
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body:
                    self.wfile.write(body)
                # The answer is formatted; the flush hands it to the socket.
                self.handed_over = time.monotonic_ns()
                self.wfile.flush()

            def do_GET(self):
                if self.path != f"{RUNTIME_PREFIX}/invocation/next":
                    self._send(404)
                    return
                if api.first_next_at is None:
                    api.first_next_at = self.arrived or time.monotonic_ns()
                while True:
                    if api.stopped.is_set():
                        self.close_connection = True
                        return
                    try:
                        event = api.events.get(timeout=0.2)
                        break
                    except queue.Empty:
                        continue
                request_id = str(uuidlib.uuid4())
                deadline = int(time.time() * 1000) + 30_000
                self._send(
                    200,
                    event,
                    [
                        ("Content-Type", "application/json"),
                        ("Lambda-Runtime-Aws-Request-Id", request_id),
                        ("Lambda-Runtime-Deadline-Ms", str(deadline)),
                        ("Lambda-Runtime-Invoked-Function-Arn", FUNCTION_ARN),
                        ("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000"),
                    ],
                )
                with api.sent:
                    api.sent_at[request_id] = self.handed_over
                    api.sent.notify_all()

            def do_POST(self):
                body = read_body(self.rfile, self.headers)
                received = self.arrived or time.monotonic_ns()
                path = self.path
                if path == f"{RUNTIME_PREFIX}/init/error":
                    api.results.put(("init_error", None, received, body))
                elif path.startswith(f"{RUNTIME_PREFIX}/invocation/"):
                    request_id, _, kind = path[len(f"{RUNTIME_PREFIX}/invocation/"):].partition("/")
                    api.results.put((kind, request_id, received, body))
                else:
                    self._send(404)
                    return
                self._send(202, b'{"status":"OK"}', [("Content-Type", "application/json")])

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a function process stopped while waiting for /next

        self.server = Server(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def sent_time(self, request_id):
        """When the invocation's /next answer was handed to the socket (the emulator thread
        records it after the write, so a response can arrive before it is recorded)."""
        with self.sent:
            if not self.sent.wait_for(lambda: request_id in self.sent_at, timeout=10):
                raise RuntimeError(f"invocation {request_id} was never handed out")
            return self.sent_at.pop(request_id)

    def close(self):
        self.stopped.set()
        self.server.shutdown()
        self.server.server_close()


# -------------------------------------------------------------------------------------------------
# The local AWS endpoint
# -------------------------------------------------------------------------------------------------


def endpoint_log(endpoint):
    """The endpoint's per-request log since the last call: [[start_ns, end_ns, op, facts], ...]."""
    with urllib.request.urlopen(f"{endpoint}/_bench/timings", timeout=10) as answer:
        return json.load(answer)


def endpoint_time(log, start_ns, end_ns):
    """Time spent inside the endpoint by requests that started within [start_ns, end_ns].
    An end past `end_ns` (the endpoint process descheduled between writing its answer and
    reading the clock) is clipped to it."""
    return sum(min(e, end_ns) - s for s, e, *_ in log if start_ns <= s <= end_ns)


def operations_within(log, intervals):
    """How many requests of each operation started within any of `intervals`."""
    counts = {}
    intervals = sorted(intervals)
    for entry in log:
        index = bisect.bisect_right(intervals, (entry[0], float("inf"))) - 1
        if index >= 0 and intervals[index][0] <= entry[0] <= intervals[index][1]:
            counts[entry[2]] = counts.get(entry[2], 0) + 1
    return counts


def tag_caller(client, caller="harness"):
    """Marks a boto3 client's requests as the harness's own in the endpoint's log."""

    def add_header(request, **_):
        request.headers["X-Bench-Caller"] = caller

    client.meta.events.register("before-sign.*.*", add_header)
    return client


def create_resources(endpoint, suffix):
    session = boto3.session.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    )
    dynamodb = tag_caller(session.client("dynamodb", endpoint_url=endpoint))
    sqs = tag_caller(session.client("sqs", endpoint_url=endpoint))
    table = f"bench-events-{suffix}"
    dynamodb.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "subject", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by_subject",
                "KeySchema": [{"AttributeName": "subject", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
    )
    idempotency = f"bench-idempotency-{suffix}"
    dynamodb.create_table(
        TableName=idempotency,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    )
    queue_url = sqs.create_queue(QueueName=f"bench-work-{suffix}")["QueueUrl"]
    return table, idempotency, queue_url


# -------------------------------------------------------------------------------------------------
# Events
# -------------------------------------------------------------------------------------------------

TEMPLATE_UUID = "095be615-a8ad-4c33-8e9c-c7612fbf6c9f"


class Events:
    """API Gateway events from events/magicline/customer-created.json, each a new delivery."""

    def __init__(self, run_id):
        self.template = (ROOT / "events/magicline/customer-created.json").read_text()
        if TEMPLATE_UUID not in self.template:
            raise SystemExit("events/magicline/customer-created.json changed: update the harness")
        self.run_id = run_id
        self.count = 0

    def next(self):
        self.count += 1
        fresh = f"{self.run_id:08x}-a8ad-4c33-8e9c-{self.count:012x}"
        return self.template.replace(TEMPLATE_UUID, fresh).encode()


# -------------------------------------------------------------------------------------------------
# One function process
# -------------------------------------------------------------------------------------------------


def read_status(pid):
    fields = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmHWM", "VmRSS"):
                fields[name] = int(value.split()[0])
    except OSError:
        pass
    return fields


def status_of(body):
    try:
        return int(json.loads(body).get("statusCode", 0))
    except (ValueError, AttributeError):
        return 0


_SQS_CLIENTS = {}


def purge_queue(endpoint, queue_url):
    """Empties the work queue (receive + delete; moto allows PurgeQueue once a minute): moto's
    SendMessage slows down with every message a queue holds, which would make later
    invocations slower than earlier ones for both contenders."""
    if endpoint not in _SQS_CLIENTS:
        session = boto3.session.Session(
            aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
        )
        _SQS_CLIENTS[endpoint] = tag_caller(session.client("sqs", endpoint_url=endpoint))
    sqs = _SQS_CLIENTS[endpoint]
    while True:
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])
        if not messages:
            return
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )


def run_process(command, env, cwd, endpoint, events, warm, log_file):
    """Starts one function process, invokes it 1 + `warm` times, returns its figures. Between
    invocations (outside every timed interval) the work queue is emptied every 50 invocations.
    `endpoint` is where the endpoint's log is read and the queue emptied (the endpoint itself,
    never the delaying proxy the function may be pointed at)."""
    api = RuntimeApi()
    environment = dict(env, AWS_LAMBDA_RUNTIME_API=api.address)
    api.events.put(events.next())
    endpoint_log(endpoint)  # clear
    with open(log_file, "ab") as log:
        started = time.monotonic_ns()
        process = subprocess.Popen(
            command, env=environment, cwd=cwd, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            kind, _, received, body = api.results.get(timeout=60)
            if kind != "response":
                raise RuntimeError(f"{command[0]}: first invocation: {kind}: {body[:500]!r}")
            first_status = status_of(body)
            after_first = read_status(process.pid)
            cold_log = endpoint_log(endpoint)
            cold_ns = received - started
            init_ns = (api.first_next_at or received) - started
            init_endpoint_ns = endpoint_time(cold_log, started, api.first_next_at or received)
            cold_endpoint_ns = endpoint_time(cold_log, started, received)
            operations = [entry[2] for entry in cold_log if started <= entry[0] <= received]
            invocations = []
            statuses = {str(first_status): 1}
            for index in range(warm):
                if index % 50 == 0 and env.get("QUEUE_URL"):
                    purge_queue(endpoint, env["QUEUE_URL"])
                api.events.put(events.next())
                kind, request_id, received, body = api.results.get(timeout=60)
                if kind != "response":
                    raise RuntimeError(f"{command[0]}: invocation: {kind}: {body[:500]!r}")
                sent = api.sent_time(request_id)
                status = str(status_of(body))
                statuses[status] = statuses.get(status, 0) + 1
                invocations.append((sent, received))
            after_all = read_status(process.pid)
            warm_log = endpoint_log(endpoint) if warm else []
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            api.close()
    warm_total = [(r - s) for s, r in invocations]
    warm_endpoint = [endpoint_time(warm_log, s, r) for s, r in invocations]
    warm_operations = operations_within(warm_log, invocations)
    return {
        "cold_ns": cold_ns,
        "init_ns": init_ns,
        "init_endpoint_ns": init_endpoint_ns,
        "cold_endpoint_ns": cold_endpoint_ns,
        "cold_endpoint_operations": operations,
        "rss_after_first_kb": after_first.get("VmRSS"),
        "hwm_after_first_kb": after_first.get("VmHWM"),
        "hwm_kb": after_all.get("VmHWM"),
        "warm_ns": warm_total,
        "warm_endpoint_ns": warm_endpoint,
        "warm_operations": warm_operations,
        "statuses": statuses,
    }


def summary(values):
    values = sorted(values)
    if not values:
        return {}

    def pct(p):
        return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]

    return {
        "n": len(values),
        "median": statistics.median(values),
        "mean": statistics.fmean(values),
        "p90": pct(90),
        "p99": pct(99),
        "min": values[0],
        "max": values[-1],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True, help="where the functions send their AWS calls")
    parser.add_argument(
        "--timings",
        default=None,
        help="the endpoint itself, when --endpoint is a proxy in front of it (its log is read there)",
    )
    parser.add_argument("--no-floor", action="store_true", help="skip the null runtime")
    parser.add_argument("--bootstrap", required=True, help="release magicline-webhook binary")
    parser.add_argument("--python", default=sys.executable, help="Python for the peer")
    parser.add_argument("--cold-runs", type=int, default=20)
    parser.add_argument("--warm", type=int, default=1000)
    parser.add_argument("--out", required=True)
    parser.add_argument("--logs", default=None, help="directory for the processes' output")
    parser.add_argument("--only", default=None, help="run one contender (rust or python)")
    args = parser.parse_args()

    logs = Path(args.logs or Path(args.out).parent)
    logs.mkdir(parents=True, exist_ok=True)
    timings = args.timings or args.endpoint
    suffix = f"{os.getpid()}-{int(time.time())}"
    table, idempotency, queue_url = create_resources(timings, suffix)
    tenants = json.loads((ROOT / "events/env.json").read_text())["MagiclineWebhookFunction"][
        "TENANTS_JSON"
    ]
    base_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "AWS_ENDPOINT_URL": args.endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_LAMBDA_FUNCTION_NAME": "bench-magicline-webhook",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/bench-magicline-webhook",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "TABLE_NAME": table,
        "QUEUE_URL": queue_url,
        "TENANTS_JSON": tenants,
    }
    peer_dir = ROOT / "bench/peer-python"
    contenders = {
        "rust": {
            "command": [str(Path(args.bootstrap).resolve())],
            "env": dict(base_env, RUST_LOG="info"),
            "cwd": str(ROOT),
        },
        "python": {
            # abspath, not resolve(): a venv's python must keep its own path.
            "command": [os.path.abspath(args.python), "-m", "awslambdaric", "app.lambda_handler"],
            "env": dict(
                base_env,
                IDEMPOTENCY_TABLE_NAME=idempotency,
                LAMBDA_TASK_ROOT=str(peer_dir),
                PYTHONPATH=str(peer_dir),
                AWS_EXECUTION_ENV="AWS_Lambda_python3.11",
                POWERTOOLS_SERVICE_NAME="magicline-webhook",
            ),
            "cwd": str(peer_dir),
        },
    }
    if not args.no_floor:
        contenders["floor"] = {
            "command": [os.path.abspath(args.python), str(ROOT / "bench/null_runtime.py")],
            "env": base_env,
            "cwd": str(ROOT),
        }
    if args.only:
        contenders = {args.only: contenders[args.only]}
    events = Events(os.getpid() & 0xFFFFFFFF)
    results = {name: {"cold": [], "warm": None} for name in contenders}

    def run(name, warm):
        spec = contenders[name]
        env = spec["env"]
        if warm:
            # moto slows down as a table and a queue fill up: each warm run gets its own.
            table, idempotency, queue_url = create_resources(timings, f"{suffix}-{name}-warm")
            env = dict(env, TABLE_NAME=table, QUEUE_URL=queue_url)
            if "IDEMPOTENCY_TABLE_NAME" in env:
                env["IDEMPOTENCY_TABLE_NAME"] = idempotency
        return run_process(
            spec["command"],
            env,
            spec["cwd"],
            timings,
            events,
            warm,
            logs / f"{name}-function.log",
        )

    # One discarded start each: page cache, the peer's bytecode cache (favours the peer).
    for name in contenders:
        run(name, 0)
    # Cold starts, alternating so that drift on the machine hits both alike.
    for index in range(args.cold_runs):
        for name in [n for n in contenders if n != "floor"]:
            sample = run(name, 0)
            results[name]["cold"].append(sample)
            print(
                f"  cold start {index + 1:2d}/{args.cold_runs} {name:6s} "
                f"{sample['cold_ns'] / 1e6:8.2f} ms (endpoint {sample['cold_endpoint_ns'] / 1e6:6.2f} ms,"
                f" init {sample['init_ns'] / 1e6:7.2f} ms)"
                f" RSS {sample['hwm_after_first_kb']} kB",
                flush=True,
            )
    # Warm: one process each, 1 + N invocations.
    for name in contenders:
        sample = run(name, args.warm if name != "floor" else min(args.warm, 300))
        results[name]["warm"] = sample
        if not args.warm:
            continue
        print(
            f"  warm {name:6s} {len(sample['warm_ns'])} invocations: median "
            f"{statistics.median(sample['warm_ns']) / 1e6:.2f} ms, max RSS {sample['hwm_kb']} kB, "
            f"statuses {sample['statuses']}",
            flush=True,
        )

    report = {}
    for name, data in results.items():
        if not args.warm:
            break
        cold = data["cold"]
        warm = data["warm"]
        if name == "floor":
            report[name] = {"warm_ms": summary([v / 1e6 for v in warm["warm_ns"]])}
            continue
        figures = {
            "command": " ".join(Path(c).name if i == 0 else c for i, c in enumerate(contenders[name]["command"])),
            "warm_ms": summary([v / 1e6 for v in warm["warm_ns"]]),
            "warm_endpoint_ms": summary([v / 1e6 for v in warm["warm_endpoint_ns"]]),
            "warm_ex_endpoint_ms": summary(
                [(t - e) / 1e6 for t, e in zip(warm["warm_ns"], warm["warm_endpoint_ns"])]
            ),
            # Per warm invocation, by the endpoint's log.
            "warm_operations_per_invocation": {
                op: count / len(warm["warm_ns"]) for op, count in sorted(warm["warm_operations"].items())
            },
            "warm_statuses": warm["statuses"],
            "max_rss_kb": warm["hwm_kb"],
        }
        if cold:
            figures.update(
                {
                    "cold_ms": summary([s["cold_ns"] / 1e6 for s in cold]),
                    "cold_endpoint_ms": summary([s["cold_endpoint_ns"] / 1e6 for s in cold]),
                    "cold_ex_endpoint_ms": summary(
                        [(s["cold_ns"] - s["cold_endpoint_ns"]) / 1e6 for s in cold]
                    ),
                    "init_ex_endpoint_ms": summary(
                        [(s["init_ns"] - s["init_endpoint_ns"]) / 1e6 for s in cold]
                    ),
                    "cold_endpoint_operations": cold[0]["cold_endpoint_operations"],
                    "cold_rss_kb": summary([s["hwm_after_first_kb"] for s in cold]),
                    "cold_statuses": sorted({k for s in cold for k in s["statuses"]}),
                }
            )
        report[name] = figures
    Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
