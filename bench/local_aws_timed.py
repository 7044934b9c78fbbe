"""The local DynamoDB + SQS wire endpoint of scripts/local_aws.py (moto), with a timing
middleware for the benchmarks.

Unlike scripts/local_aws.py (single-threaded, HTTP/1.0: a new TCP connection per call), it keeps
connections open between calls (HTTP/1.1 keep-alive, one thread per connection) as DynamoDB and
SQS do, so neither contender pays a TCP set-up per call that it would not pay in AWS. moto's own
work stays serialised under one lock, as in the single-threaded server: conditional writes are
serialised per item.

Every request's time inside the endpoint is logged (CLOCK_MONOTONIC, the same clock as the
harness's time.monotonic_ns()): from the moment the request line has been read, through header
parsing and moto's work, to the moment the last bytes of the answer were handed to the socket. The harness subtracts it from
cold-start and per-invocation figures as "the endpoint's own latency".

GET /_bench/timings returns the log as JSON [[start_ns, end_ns, operation], ...] and clears it.

Usage: local_aws_timed.py HOST PORT
"""

import json
import socket
import sys
import threading
import time

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import WSGIRequestHandler, run_simple


LOG = []
MOTO = threading.Lock()


class Timings:
    """WSGI app: GET /_bench/timings answers the log and clears it; everything else goes to moto."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == "/_bench/timings":
            body = json.dumps(LOG).encode()
            LOG.clear()
            start_response(
                "200 OK",
                [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
            )
            return [body]
        with MOTO:
            return list(self.app(environ, start_response))


class StampedWriter:
    """The handler's socket writer, noting when the last bytes of an answer were handed over."""

    def __init__(self, inner, handler):
        self.inner = inner
        self.handler = handler

    def write(self, data):
        written = self.inner.write(data)
        self.handler.bench_written = time.monotonic_ns()
        return written

    def __getattr__(self, name):
        return getattr(self.inner, name)


class TimedHandler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # Nagle off: headers and body are separate writes; no delayed-ACK stall for any client.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.wfile = StampedWriter(self.wfile, self)

    def handle_one_request(self):
        self.bench_started = None
        self.bench_written = None
        super().handle_one_request()
        if self.bench_started is not None and self.path != "/_bench/timings":
            headers = getattr(self, "headers", None)
            operation = (headers.get("X-Amz-Target") if headers else None) or self.path
            ended = self.bench_written or time.monotonic_ns()
            LOG.append([self.bench_started, ended, operation])

    def parse_request(self):
        # Called as soon as the request line has been read.
        self.bench_started = time.monotonic_ns()
        return super().parse_request()

    def log_request(self, *args, **kwargs):
        pass


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    app = Timings(DomainDispatcherApplication(create_backend_app))
    run_simple(
        host,
        port,
        app,
        threaded=True,
        use_reloader=False,
        use_debugger=False,
        request_handler=TimedHandler,
    )


if __name__ == "__main__":
    main()
