"""The local server's SQLite write-ahead log under sustained full-speed load (functions/devserver,
release build): wrk on loopback with bench/load.lua, as bench/throughput.py runs it, but for a
fixed time instead of a fixed count, while the `-wal` file's size and the server's RSS are
sampled every 100 ms.

Reports the peak WAL size, throughput, latency percentiles, peak RSS (VmHWM), and the WAL and
database sizes after a graceful shutdown (SIGINT).

With --kill-after S the server is killed with SIGKILL S seconds into the load instead, while a
few witness clients post Magicline webhooks of their own and note every acknowledged id; the
server is then restarted on the same file and the run passes only if every webhook acknowledged
before the kill (wrk's 202 answers by count, the witnesses' by id) is stored and, once the
restarted server's workers are done, PROCESSED.

Usage: wal.py --devserver PATH [--seconds 60] [--connections 32] [--workers 2]
              [--kill-after S] [--out FILE.json]
"""

import argparse
import http.client
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import throughput  # noqa: E402  (free_port, wait_ready, ROOT)

ROOT = throughput.ROOT
MIB = 1024 * 1024


def supports_admin_listener(devserver):
    help_text = subprocess.run(
        [devserver, "--help"], capture_output=True, text=True, check=True
    ).stdout
    return "--admin-listen" in help_text


class Server:
    """One devserver process on `data`; webhooks on `url`, admin routes on `admin_url`."""

    def __init__(self, devserver, data, workers, log_path):
        port = throughput.free_port()
        self.url = f"http://127.0.0.1:{port}"
        command = [
            devserver,
            "--listen",
            f"127.0.0.1:{port}",
            "--data",
            str(data),
            "--config",
            str(ROOT / "devserver.toml"),
            "--workers",
            str(workers),
        ]
        self.admin_url = self.url
        if supports_admin_listener(devserver):
            admin_port = throughput.free_port()
            self.admin_url = f"http://127.0.0.1:{admin_port}"
            command += ["--admin-listen", f"127.0.0.1:{admin_port}"]
        self.log = open(log_path, "ab")
        started = time.monotonic()
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT
        )
        throughput.wait_ready(f"{self.admin_url}/", self.process, seconds=600)
        self.start_seconds = time.monotonic() - started

    def stop(self):
        """Graceful (SIGINT, as Ctrl-C); seconds until the process had exited."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise SystemExit("devserver did not stop within 120 s of SIGINT")
        self.log.close()
        return time.monotonic() - started

    def kill(self):
        self.process.kill()
        self.process.wait()
        self.log.close()


def file_size(path):
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def memory_kib(pid):
    """(VmRSS, VmHWM) in KiB, or None once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])
    except (OSError, KeyError, ValueError):
        return None


def busy_ticks():
    """CPU time spent busy by the whole machine so far, in clock ticks (/proc/stat)."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return user + nice + system + irq + softirq + steal


def process_ticks(pid):
    """CPU time (user + system) of one process so far, in clock ticks; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None


class Sampler(threading.Thread):
    """The `-wal` file's size and the server's memory every `interval` seconds; and how much
    of the machine's CPU went to processes other than the server and wrk meanwhile (another
    build on a 2-core machine shows in latency)."""

    def __init__(self, data, pid, interval=0.1):
        super().__init__(daemon=True)
        self.wal = f"{data}-wal"
        self.pid = pid
        self.wrk_pid = None
        self.ticks = {}  # pid -> last CPU ticks seen
        self.interval = interval
        self.stopped = threading.Event()
        self.samples = []  # (seconds since start, WAL bytes, RSS KiB)
        self.peak_wal = 0
        self.peak_rss_kib = 0

    def run(self):
        started = time.monotonic()
        self.busy_at_start = busy_ticks()
        self.server_ticks_at_start = process_ticks(self.pid) or 0
        while not self.stopped.is_set():
            for pid in (self.pid, self.wrk_pid):
                ticks = process_ticks(pid) if pid else None
                if ticks is not None:
                    self.ticks[pid] = ticks
            wal = file_size(self.wal)
            memory = memory_kib(self.pid)
            rss = memory[0] if memory else 0
            if memory:
                self.peak_rss_kib = max(self.peak_rss_kib, memory[1])
            self.peak_wal = max(self.peak_wal, wal)
            self.samples.append((round(time.monotonic() - started, 2), wal, rss))
            self.stopped.wait(self.interval)

    def stop(self):
        self.stopped.set()
        self.join()

    def other_cpu_share(self, seconds):
        """Share of the machine's CPU time used by other processes while sampling."""
        busy = busy_ticks() - self.busy_at_start
        ours = self.ticks.get(self.pid, 0) - self.server_ticks_at_start
        ours += self.ticks.get(self.wrk_pid, 0) if self.wrk_pid else 0
        capacity = seconds * os.cpu_count() * os.sysconf("SC_CLK_TCK")
        return max(0.0, (busy - ours) / capacity)


def start_wrk(url, threads, connections, seconds, run_id):
    env = dict(
        os.environ,
        BENCH_REQUESTS_PER_THREAD=str(10**9),
        BENCH_RUN=str(run_id),
    )
    env.pop("BENCH_DONE_DIR", None)
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "-s",
        str(ROOT / "bench/load.lua"),
        url,
    ]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def wrk_result(wrk, timeout):
    try:
        output, _ = wrk.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        wrk.kill()
        output, _ = wrk.communicate()
    for line in output.splitlines():
        if line.startswith("BENCH_RESULT "):
            return json.loads(line[len("BENCH_RESULT ") :]), output
    raise SystemExit(f"wrk printed no result:\n{output}")


class Witness(threading.Thread):
    """Posts new Magicline webhooks one after another on a keep-alive connection and keeps the
    id of every one acknowledged (2xx); stops at the first connection error."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.host, self.port = url.removeprefix("http://").split(":")
        self.acknowledged = []
        self.stopped = threading.Event()

    def run(self):
        connection = http.client.HTTPConnection(self.host, int(self.port), timeout=10)
        headers = {"Content-Type": "application/json", "x-api-key": "ml-demo-key-1001-new"}
        while not self.stopped.is_set():
            body = json.dumps(
                {
                    "entityId": 7000001,
                    "uuid": str(uuid.uuid4()),
                    "payload": [{"timestamp": 1795640400000, "type": "CUSTOMER_CREATED"}],
                }
            )
            try:
                connection.request("POST", "/webhooks/magicline", body, headers)
                answer = connection.getresponse()
                text = answer.read()
            except (OSError, http.client.HTTPException):
                return
            if 200 <= answer.status < 300:
                self.acknowledged.append(json.loads(text)["id"])


def settle(data, seconds):
    """Waits until every record is PROCESSED or FAILED and the queue is empty (reading the
    database file directly, read-only); the final counts."""
    deadline = time.monotonic() + seconds
    while True:
        database = sqlite3.connect(f"file:{data}?mode=ro", uri=True, timeout=30)
        try:
            counts = dict(
                database.execute("SELECT status, count(*) FROM records GROUP BY status").fetchall()
            )
            messages = database.execute("SELECT count(*) FROM messages").fetchone()[0]
        finally:
            database.close()
        waiting = sum(n for s, n in counts.items() if s not in ("PROCESSED", "FAILED"))
        if (waiting == 0 and messages == 0) or time.monotonic() > deadline:
            return counts, messages
        time.sleep(1)


def failures(data):
    """Records that ended FAILED, by provider and error (a processing outcome, not a loss)."""
    database = sqlite3.connect(f"file:{data}?mode=ro", uri=True, timeout=30)
    try:
        return [
            {"provider": provider, "last_error": error, "records": count}
            for provider, error, count in database.execute(
                "SELECT provider, last_error, count(*) FROM records WHERE status = 'FAILED' "
                "GROUP BY provider, last_error ORDER BY count(*) DESC LIMIT 10"
            )
        ]
    finally:
        database.close()


def statuses_of(data, keys):
    database = sqlite3.connect(f"file:{data}?mode=ro", uri=True, timeout=30)
    try:
        found = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(
                database.execute(
                    f"SELECT pk, status FROM records WHERE pk IN ({marks})", chunk
                ).fetchall()
            )
        return found
    finally:
        database.close()


def load_run(args, data, out_dir):
    server = Server(args.devserver, data, args.workers, out_dir / "wal-devserver.log")
    run_id = int(time.time())
    if args.warmup:
        warmup, _ = throughput.run_wrk(
            server.url, args.threads, args.connections, args.warmup // args.threads, run_id, 120
        )
    sampler = Sampler(data, server.process.pid)
    sampler.start()
    load_started = time.monotonic()
    wrk = start_wrk(server.url, args.threads, args.connections, args.seconds, run_id + 1)
    sampler.wrk_pid = wrk.pid
    result, raw = wrk_result(wrk, args.seconds + 60)
    other_cpu = sampler.other_cpu_share(time.monotonic() - load_started)
    (out_dir / "wal-wrk.txt").write_text(raw)
    wal_at_end_of_load = file_size(f"{data}-wal")
    stop_seconds = server.stop()
    sampler.stop()
    seconds = result["duration_us"] / 1e6
    return {
        "seconds": seconds,
        "connections": args.connections,
        "workers": args.workers,
        "requests": result["requests"],
        "requests_per_second": result["requests"] / seconds,
        "latency_ms": {k: v / 1000 for k, v in result["latency_us"].items()},
        "statuses": result["statuses"],
        "socket_errors": result["errors"],
        "peak_wal_bytes": sampler.peak_wal,
        "wal_bytes_at_end_of_load": wal_at_end_of_load,
        "peak_rss_kib": sampler.peak_rss_kib,
        "other_processes_cpu_share": other_cpu,
        "stop_seconds": stop_seconds,
        "wal_bytes_after_shutdown": file_size(f"{data}-wal"),
        "wal_file_after_shutdown": os.path.exists(f"{data}-wal"),
        "database_bytes_after_shutdown": file_size(data),
        "samples": sampler.samples,
    }


def kill_run(args, data, out_dir):
    server = Server(args.devserver, data, args.workers, out_dir / "wal-kill-devserver.log")
    sampler = Sampler(data, server.process.pid)
    sampler.start()
    wrk = start_wrk(
        server.url, args.threads, args.connections, int(args.kill_after) + 60, int(time.time())
    )
    witnesses = [Witness(server.url) for _ in range(4)]
    for witness in witnesses:
        witness.start()
    time.sleep(args.kill_after)
    server.kill()
    sampler.stop()
    wal_at_kill = file_size(f"{data}-wal")
    for witness in witnesses:
        witness.stopped.set()
        witness.join(timeout=30)
    wrk.send_signal(signal.SIGINT)
    result, raw = wrk_result(wrk, 60)
    (out_dir / "wal-kill-wrk.txt").write_text(raw)
    acknowledged_ids = [key for w in witnesses for key in w.acknowledged]
    acknowledged_by_wrk = result["statuses"].get("202", 0)

    restarted = Server(args.devserver, data, args.workers, out_dir / "wal-kill-devserver.log")
    counts, messages = settle(data, args.settle_seconds)
    witness_statuses = statuses_of(data, acknowledged_ids)
    failed = failures(data)
    stop_seconds = restarted.stop()
    records = sum(counts.values())
    missing = [k for k in acknowledged_ids if k not in witness_statuses]
    unprocessed = [k for k, s in witness_statuses.items() if s != "PROCESSED"]
    # Every acknowledged webhook stored (the witnesses' by id, wrk's by count: each 202 is a
    # delivery of its own), the witnesses' processed, and no record left unfinished. A record
    # FAILED is one the processor finished (a permanent answer of the provider API): reported.
    passed = (
        not missing
        and not unprocessed
        and records >= acknowledged_by_wrk + len(acknowledged_ids)
        and set(counts) <= {"PROCESSED", "FAILED"}
        and messages == 0
    )
    return {
        "kill_after_seconds": args.kill_after,
        "peak_wal_bytes_before_kill": sampler.peak_wal,
        "wal_bytes_at_kill": wal_at_kill,
        "wrk_requests": result["requests"],
        "wrk_statuses": result["statuses"],
        "acknowledged_new_by_wrk": acknowledged_by_wrk,
        "acknowledged_by_witnesses": len(acknowledged_ids),
        "restart_seconds": restarted.start_seconds,
        "records_after_restart": records,
        "records_by_status": counts,
        "messages_left": messages,
        "failed_by_provider_and_error": failed,
        "witness_ids_missing": missing[:20],
        "witness_ids_not_processed": unprocessed[:20],
        "stop_seconds_after_settling": stop_seconds,
        "wal_bytes_after_shutdown": file_size(f"{data}-wal"),
        "passed": passed,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devserver", required=True)
    parser.add_argument("--out")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=4000)
    parser.add_argument(
        "--kill-after",
        type=float,
        help="SIGKILL the server this many seconds into the load, restart it, check every ack",
    )
    parser.add_argument("--settle-seconds", type=int, default=900)
    args = parser.parse_args()
    args.devserver = str(Path(args.devserver).resolve())
    out = Path(args.out) if args.out else None
    out_dir = out.parent if out else Path(tempfile.gettempdir())
    out_dir.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="bench-wal-") as data_dir:
        data = Path(data_dir) / "bench.db"
        if args.kill_after is not None:
            report = kill_run(args, data, out_dir)
            print(
                f"  kill -9 after {args.kill_after:.0f} s: WAL peak "
                f"{report['peak_wal_bytes_before_kill'] / MIB:.1f} MiB, "
                f"{report['acknowledged_new_by_wrk']} new webhooks acknowledged to wrk and "
                f"{report['acknowledged_by_witnesses']} to the witnesses; after restart "
                f"({report['restart_seconds']:.1f} s): {report['records_after_restart']} records "
                f"{report['records_by_status']}, {report['messages_left']} messages left, "
                f"missing witness ids {len(report['witness_ids_missing'])}: "
                f"{'PASS' if report['passed'] else 'FAIL'}",
                flush=True,
            )
        else:
            report = load_run(args, data, out_dir)
            latency = report["latency_ms"]
            print(
                f"  {report['seconds']:.1f} s, {report['connections']} connections, "
                f"{report['workers']} workers: {report['requests']} requests, "
                f"{report['requests_per_second']:.0f}/s, p50 {latency['p50']:.2f} ms, "
                f"p99 {latency['p99']:.2f} ms, statuses {report['statuses']}\n"
                f"  WAL peak {report['peak_wal_bytes'] / MIB:.1f} MiB "
                f"(at the end of the load {report['wal_bytes_at_end_of_load'] / MIB:.1f} MiB), "
                f"after shutdown {report['wal_bytes_after_shutdown'] / MIB:.1f} MiB "
                f"(file {'present' if report['wal_file_after_shutdown'] else 'absent'}, "
                f"shutdown {report['stop_seconds']:.1f} s); database "
                f"{report['database_bytes_after_shutdown'] / MIB:.1f} MiB; "
                f"peak RSS {report['peak_rss_kib'] / 1024:.1f} MiB; other processes used "
                f"{report['other_processes_cpu_share']:.0%} of the CPU meanwhile",
                flush=True,
            )
    if out:
        out.write_text(json.dumps(report, indent=2))
    if report.get("passed") is False:
        sys.exit(1)


if __name__ == "__main__":
    main()
