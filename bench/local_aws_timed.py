"""The local DynamoDB + SQS wire endpoint of scripts/local_aws.py (moto), with a timing
log for the benchmarks.

Unlike scripts/local_aws.py (werkzeug's server, which closes the connection after every answer),
it keeps HTTP/1.1 connections open between calls, as DynamoDB and SQS do, so neither contender
pays a TCP set-up per call that it would not pay in AWS: one thread per connection, moto's own
work serialised under one lock (conditional writes serialised per item, as in the tests).

Every request's time inside the endpoint is logged (CLOCK_MONOTONIC, the same clock as the
harness's time.monotonic_ns()): from the moment its first bytes arrived in the endpoint's socket
(the kernel's receive timestamp, SO_TIMESTAMPNS: so the endpoint thread's wake-up counts as the
endpoint's, not the caller's), through reading the request and moto's work, to the moment the
answer has been handed to the socket. The harness subtracts it from cold-start and
per-invocation figures as "the endpoint's own latency". Assumes clients wait for each answer
before they send the next request on a connection (no pipelining), as the SDKs do.

GET /_bench/timings returns the log as JSON [[start_ns, end_ns, operation], ...] and clears it.

Usage: local_aws_timed.py HOST PORT
"""

import http.server
import io
import json
import socket
import sys
import threading
import time
import urllib.parse

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from http_body import arrival_ns, enable_arrival_times, read_body

LOG = []
MOTO = threading.Lock()
# Framing is this server's business: moto's values for these are replaced.
HOP_HEADERS = {"content-length", "connection", "transfer-encoding", "keep-alive"}


class KeepAliveHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    app = None  # set in main()

    def setup(self):
        super().setup()
        # Nagle off: no delayed-ACK stall for any client.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        enable_arrival_times(self.connection)

    def handle_one_request(self):
        self.bench_arrived = arrival_ns(self.connection)
        super().handle_one_request()

    def parse_request(self):
        # Called as soon as the request line has been read: the start when there is no
        # kernel timestamp.
        self.bench_started = self.bench_arrived or time.monotonic_ns()
        return super().parse_request()

    def log_message(self, *args):
        pass

    def _environ(self, body):
        path, _, query = self.path.partition("?")
        host, port = self.server.server_address[:2]
        environ = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": urllib.parse.unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "SERVER_NAME": host,
            "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name in self.headers.keys():
            key = "HTTP_" + name.upper().replace("-", "_")
            if key in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                continue
            environ[key] = ",".join(self.headers.get_all(name))
        return environ

    def _answer(self):
        body = read_body(self.rfile, self.headers)
        answer = {}

        def start_response(status, headers, exc_info=None):
            answer["status"], answer["headers"] = status, headers
            return lambda data: answer.setdefault("written", []).append(data)

        environ = self._environ(body)
        if environ["PATH_INFO"] == "/_bench/timings":
            answer["status"] = "200 OK"
            answer["headers"] = [("Content-Type", "application/json")]
            payload = json.dumps(LOG).encode()
            LOG.clear()
            timed = False
        else:
            with MOTO:
                chunks = self.app(environ, start_response)
                try:
                    payload = b"".join(answer.get("written", [])) + b"".join(chunks)
                finally:
                    if hasattr(chunks, "close"):
                        chunks.close()
            timed = True
        if self.command == "HEAD":
            payload = b""
        head = [f"HTTP/1.1 {answer['status']}"]
        head += [f"{k}: {v}" for k, v in answer["headers"] if k.lower() not in HOP_HEADERS]
        head.append(f"Content-Length: {len(payload)}")
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)
        if timed:
            operation = self.headers.get("X-Amz-Target") or self.path
            LOG.append([self.bench_started, time.monotonic_ns(), operation])

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _answer


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    KeepAliveHandler.app = DomainDispatcherApplication(create_backend_app)
    server = http.server.ThreadingHTTPServer((host, port), KeepAliveHandler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
