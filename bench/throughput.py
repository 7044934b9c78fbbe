"""Throughput of the local server (functions/devserver) on its embedded SQLite store and queue:
a bounded wrk run on loopback of mixed new and duplicate Magicline and EGYM webhooks
(bench/load.lua), requests/s and latency percentiles.

Each run starts a fresh `devserver --listen 127.0.0.1:PORT --admin-listen 127.0.0.1:PORT2
--data <fresh file> --workers W` (ready once its admin index answers) with
the checked-in devserver.toml: with W = 2 (the default) its processor workers drain the queue
(and fetch details from the built-in sandbox) while the load runs, as they do in use; W = 0
shows the webhook path alone. wrk runs on the same 2 cores.

Usage: throughput.py --devserver PATH --out FILE.json [--requests N] [--runs W:C,...]
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url, process, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("devserver exited during start-up")
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("devserver did not start")


def run_wrk(url, threads, connections, per_thread, run_id, max_seconds):
    """One wrk run of `threads` x `per_thread` requests; ends wrk as soon as every thread has
    its answers (wrk would otherwise wait out -d, the upper bound)."""
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as done_dir:
        env = dict(
            os.environ,
            BENCH_REQUESTS_PER_THREAD=str(per_thread),
            BENCH_RUN=str(run_id),
            BENCH_DONE_DIR=done_dir,
        )
        command = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max_seconds}s",
            "--timeout",
            "5s",
            "-s",
            str(ROOT / "bench/load.lua"),
            url,
        ]
        wrk = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        deadline = time.monotonic() + max_seconds + 30
        while wrk.poll() is None and time.monotonic() < deadline:
            if len(os.listdir(done_dir)) >= threads:
                wrk.send_signal(signal.SIGINT)
                break
            time.sleep(0.01)
        try:
            output, _ = wrk.communicate(timeout=max_seconds + 30)
        except subprocess.TimeoutExpired:
            wrk.kill()
            output, _ = wrk.communicate()
    for line in output.splitlines():
        if line.startswith("BENCH_RESULT "):
            return json.loads(line[len("BENCH_RESULT "):]), output
    raise SystemExit(f"wrk printed no result:\n{output}")


def measure(args, workers, connections, run_id, out_dir):
    """A fresh server with `workers` processor workers: warm-up, then the measured run."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    admin_port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-devserver-") as data_dir:
        log = open(out_dir / f"devserver-w{workers}-c{connections}.log", "wb")
        process = subprocess.Popen(
            [
                str(Path(args.devserver).resolve()),
                "--listen",
                f"127.0.0.1:{port}",
                "--admin-listen",
                f"127.0.0.1:{admin_port}",
                "--data",
                f"{data_dir}/bench.db",
                "--config",
                str(ROOT / "devserver.toml"),
                "--workers",
                str(workers),
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_ready(f"http://127.0.0.1:{admin_port}/", process)
            warmup, _ = run_wrk(
                url, args.threads, connections, args.warmup // args.threads, run_id, args.max_seconds
            )
            result, raw = run_wrk(
                url,
                args.threads,
                connections,
                args.requests // args.threads,
                run_id + 1,
                args.max_seconds,
            )
            (out_dir / f"wrk-w{workers}-c{connections}.txt").write_text(raw)
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()
    seconds = result["duration_us"] / 1e6
    expected = {"200", "202"}
    return {
        "workers": workers,
        "threads": args.threads,
        "connections": connections,
        "requests": result["requests"],
        "duplicates_sent": result["duplicates_sent"],
        "seconds": seconds,
        "requests_per_second": result["requests"] / seconds,
        "latency_ms": {k: v / 1000 for k, v in result["latency_us"].items()},
        "statuses": result["statuses"],
        "unexpected_statuses": {k: v for k, v in result["statuses"].items() if k not in expected},
        "socket_errors": result["errors"],
        "warmup_requests": warmup["requests"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devserver", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--warmup", type=int, default=4_000)
    parser.add_argument(
        "--runs",
        default="2:32,2:64,0:32",
        help="comma-separated WORKERS:CONNECTIONS, one fresh server each; the first is the headline",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-seconds", type=int, default=120)
    args = parser.parse_args()

    out = Path(args.out)
    report = {"tool": "wrk 4 (bench/load.lua)", "runs": []}
    run_id = int(time.time())
    for index, spec in enumerate(args.runs.split(",")):
        workers, connections = (int(part) for part in spec.split(":"))
        run = measure(args, workers, connections, run_id + 10 * index, out.parent)
        report["runs"].append(run)
        print(
            f"  workers {workers}, {connections} connections: {run['requests']} requests in "
            f"{run['seconds']:.2f} s: {run['requests_per_second']:.0f}/s, "
            f"p50 {run['latency_ms']['p50']:.2f} ms, p99 {run['latency_ms']['p99']:.2f} ms, "
            f"statuses {run['statuses']}",
            flush=True,
        )
    out.write_text(json.dumps(report, indent=2))

if __name__ == "__main__":
    main()
