"""HTTP/1.1 helpers for the benchmark's small servers (bench/lambda_harness.py's Runtime API
emulator, bench/local_aws_timed.py): reading a request body (Content-Length or chunked), and when
a request's first bytes arrived in the server's socket (the kernel's receive timestamp)."""

import socket
import struct
import time

# Linux: receive timestamps (struct timespec, CLOCK_REALTIME) as ancillary data.
SO_TIMESTAMPNS = 35


def enable_arrival_times(connection):
    connection.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)


def arrival_ns(connection):
    """Waits for the next request's first bytes (without reading them) and returns when they
    arrived, in CLOCK_MONOTONIC ns (time.monotonic_ns()'s clock); None if the kernel gave no
    timestamp or the peer closed the connection. Needs enable_arrival_times()."""
    try:
        data, ancillary, _, _ = connection.recvmsg(1, 64, socket.MSG_PEEK)
    except OSError:
        return None
    if not data:
        return None
    for level, kind, raw in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(raw) >= 16:
            seconds, nanoseconds = struct.unpack("qq", raw[:16])
            since = time.time_ns() - (seconds * 1_000_000_000 + nanoseconds)
            return time.monotonic_ns() - max(since, 0)
    return None


def read_body(rfile, headers):
    if headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int(rfile.readline().strip().split(b";")[0] or b"0", 16)
            if size == 0:
                # Trailers, up to the empty line that ends the request.
                while rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            chunks.append(rfile.read(size))
            rfile.readline()
    length = int(headers.get("Content-Length") or 0)
    return rfile.read(length) if length else b""
