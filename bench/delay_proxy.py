"""A TCP proxy that makes every call to the local endpoint take a fixed extra time, as a call to
DynamoDB, SQS or EventBridge in a real region does (network and service time, a few ms).

Every chunk a client sends is passed on to the target DELAY ms after it arrived in the proxy's
socket (the kernel's receive timestamp), never earlier; answers go back at once. A request and
its answer on a kept-alive connection thus take DELAY ms more than without the proxy, however
the client splits its writes. Connections are opened at once (a TLS handshake to a real region
would cost round trips of its own; the functions open theirs during initialisation).

On SIGTERM/SIGINT it writes to --stats how late each chunk left against its due time (the
proxy's own precision): count, median, p99, max in µs.

Usage: delay_proxy.py --listen 127.0.0.1:PORT --target 127.0.0.1:PORT --delay-ms 5 [--stats F]
"""

import argparse
import json
import signal
import socket
import struct
import sys
import threading
import time

SO_TIMESTAMPNS = 35
SPIN_NS = 400_000
LATENESS_US = []
LOCK = threading.Lock()


def arrival_and_data(connection):
    """The next chunk and when it arrived (CLOCK_MONOTONIC ns; now if no kernel timestamp)."""
    data, ancillary, _, _ = connection.recvmsg(1 << 16, 64)
    now = time.monotonic_ns()
    for level, kind, raw in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(raw) >= 16:
            seconds, nanoseconds = struct.unpack("qq", raw[:16])
            since = time.time_ns() - (seconds * 1_000_000_000 + nanoseconds)
            return data, now - max(since, 0)
    return data, now


def forward_delayed(source, target, delay_ns):
    try:
        while True:
            data, arrived = arrival_and_data(source)
            if not data:
                break
            due = arrived + delay_ns
            # Sleep to within SPIN of the due time, then poll the clock (giving up the GIL on
            # every turn): a sleep alone wakes up 0.1 ms or more late on a busy machine.
            wait = due - SPIN_NS - time.monotonic_ns()
            if wait > 0:
                time.sleep(wait / 1e9)
            while time.monotonic_ns() < due:
                time.sleep(0)
            target.sendall(data)
            late = (time.monotonic_ns() - due) / 1000
            with LOCK:
                if len(LATENESS_US) < 1_000_000:
                    LATENESS_US.append(late)
    except OSError:
        pass
    finally:
        for s in (source, target):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def forward(source, target):
    try:
        while True:
            data = source.recv(1 << 16)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    finally:
        for s in (source, target):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(server, target, delay_ns):
    while True:
        client, _ = server.accept()
        try:
            upstream = socket.create_connection(target)
        except OSError:
            client.close()
            continue
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        threading.Thread(target=forward_delayed, args=(client, upstream, delay_ns), daemon=True).start()
        threading.Thread(target=forward, args=(upstream, client), daemon=True).start()


def address(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, type=address)
    parser.add_argument("--target", required=True, type=address)
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("--stats")
    args = parser.parse_args()

    def stop(*_):
        if args.stats:
            with LOCK:
                values = sorted(LATENESS_US)
            summary = {"delay_ms": args.delay_ms, "chunks": len(values)}
            if values:
                summary.update(
                    {
                        "late_us_median": values[len(values) // 2],
                        "late_us_p99": values[int(len(values) * 0.99)],
                        "late_us_max": values[-1],
                    }
                )
            with open(args.stats, "w") as out:
                json.dump(summary, out)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(args.listen)
    server.listen(128)
    threading.Thread(
        target=serve, args=(server, args.target, int(args.delay_ms * 1e6)), daemon=True
    ).start()
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
