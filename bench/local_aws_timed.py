"""The local DynamoDB + SQS + EventBridge wire endpoint of scripts/local_aws.py (moto), with a
timing log for the benchmarks and, with --account, what each request costs in billed units.

Unlike scripts/local_aws.py (werkzeug's server, which closes the connection after every answer),
it keeps HTTP/1.1 connections open between calls, as DynamoDB and SQS do, so neither contender
pays a TCP set-up per call that it would not pay in AWS: one thread per connection, moto's own
work serialised under one lock (conditional writes serialised per item, as in the tests).

Every request's time inside the endpoint is logged (CLOCK_MONOTONIC, the same clock as the
harness's time.monotonic_ns()): from the moment its first bytes arrived in the endpoint's socket
(the kernel's receive timestamp, SO_TIMESTAMPNS: so the endpoint thread's wake-up counts as the
endpoint's, not the caller's), through reading the request and moto's work, to the moment the
answer is complete and about to be written to the socket (the write itself, tens of µs, is
left to the caller: once it wakes the caller, this thread may not read the clock again for a
while on a busy machine). The harness subtracts it from cold-start and
per-invocation figures as "the endpoint's own latency". Assumes clients wait for each answer
before they send the next request on a connection (no pipelining), as the SDKs do.

GET /_bench/timings returns the log as JSON [[start_ns, end_ns, operation, facts], ...] and
clears it. `operation` is the X-Amz-Target (e.g. `DynamoDB_20120810.PutItem`) or the path;
`facts` says the service, the HTTP status, who called (the `X-Bench-Caller` header the harnesses
put on their own requests, else "function") and, with --account, the billed units of the request
by DynamoDB's, SQS's and EventBridge's rules (bench/ddb_units.py): DynamoDB write and read units
for the table and each index, from the item as it was before and after the request (read from
moto within the same lock, so the request's own time includes that work: use --account for
counting, not for timing), SQS requests in 64 KB chunks, EventBridge entries in 64 KB chunks.

Usage: local_aws_timed.py HOST PORT [--account]
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
import ddb_units

LOG = []
# Requests being answered: /_bench/timings waits for them, since each is logged only once its
# answer has been handed to the socket (after the client may already have read it).
IN_FLIGHT = [0]
IN_FLIGHT_CHANGED = threading.Condition()
ACCOUNT = False
SCHEMAS = {}  # table name -> ddb_units.Schema
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
            with IN_FLIGHT_CHANGED:
                IN_FLIGHT_CHANGED.wait_for(lambda: IN_FLIGHT[0] == 0, timeout=2)
            answer["status"] = "200 OK"
            answer["headers"] = [("Content-Type", "application/json")]
            payload = json.dumps(LOG).encode()
            LOG.clear()
        else:
            with IN_FLIGHT_CHANGED:
                IN_FLIGHT[0] += 1
            try:
                self._moto(environ, body, answer, start_response)
            finally:
                with IN_FLIGHT_CHANGED:
                    IN_FLIGHT[0] -= 1
                    IN_FLIGHT_CHANGED.notify_all()
            return
        self._write(answer, payload)

    def _moto(self, environ, body, answer, start_response):
        with MOTO:
            accounting = Accounting(self, environ, body) if ACCOUNT else None
            if accounting:
                accounting.before()
            chunks = self.app(environ, start_response)
            try:
                payload = b"".join(answer.get("written", [])) + b"".join(chunks)
            finally:
                if hasattr(chunks, "close"):
                    chunks.close()
            units = accounting.after(answer["status"], payload) if accounting else None
        # The answer is complete: the clock is read before the write, since the client may be
        # woken by it and take the CPU before this thread reads the clock again.
        ended = time.monotonic_ns()
        self._write(answer, payload)
        operation = self.headers.get("X-Amz-Target") or form_action(environ, body) or self.path
        facts = {
            "service": service_of(operation, self.headers.get("Authorization", "")),
            "status": int(answer["status"].split()[0]),
            "caller": self.headers.get("X-Bench-Caller", "function"),
        }
        if units:
            facts["units"] = units
        LOG.append([self.bench_started, ended, operation, facts])

    def _write(self, answer, payload):
        if self.command == "HEAD":
            payload = b""
        head = [f"HTTP/1.1 {answer['status']}"]
        head += [f"{k}: {v}" for k, v in answer["headers"] if k.lower() not in HOP_HEADERS]
        head.append(f"Content-Length: {len(payload)}")
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _answer

    def moto_json(self, environ, target, payload):
        """Calls moto itself (under the lock already held) with a JSON-protocol request."""
        data = json.dumps(payload).encode()
        inner = dict(environ)
        inner.update(
            {
                "REQUEST_METHOD": "POST",
                "PATH_INFO": "/",
                "QUERY_STRING": "",
                "CONTENT_TYPE": "application/x-amz-json-1.0",
                "CONTENT_LENGTH": str(len(data)),
                "HTTP_X_AMZ_TARGET": target,
                "wsgi.input": io.BytesIO(data),
            }
        )
        status = {}

        def start_response(code, headers, exc_info=None):
            status["code"] = code
            return lambda _: None

        chunks = self.app(inner, start_response)
        try:
            text = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
        if not status.get("code", "").startswith("200"):
            return None
        return json.loads(text or b"{}")


def form_action(environ, body):
    """The Action of a query-protocol request (SQS's older protocol)."""
    if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        return urllib.parse.parse_qs(body.decode("latin-1")).get("Action", [None])[0]
    return None


def service_of(operation, authorization):
    prefix = operation.split(".", 1)[0]
    known = {"DynamoDB_20120810": "dynamodb", "AmazonSQS": "sqs", "AWSEvents": "events",
             "secretsmanager": "secretsmanager"}
    if prefix in known:
        return known[prefix]
    # SigV4: Credential=<key>/<date>/<region>/<service>/aws4_request
    try:
        return authorization.split("Credential=", 1)[1].split("/")[3]
    except IndexError:
        return "other"


class Accounting:
    """The billed units of one request (see bench/ddb_units.py)."""

    DYNAMODB_WRITES = {"PutItem", "UpdateItem", "DeleteItem"}

    def __init__(self, handler, environ, body):
        self.handler, self.environ = handler, environ
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        self.service, _, self.operation = target.partition(".")
        if not self.operation:
            self.operation = form_action(environ, body) or ""
        try:
            self.request = json.loads(body or b"{}")
        except ValueError:
            self.request = {}
        self.images = None

    def schema(self, table):
        if table not in SCHEMAS:
            described = self.handler.moto_json(
                self.environ, "DynamoDB_20120810.DescribeTable", {"TableName": table}
            )
            if described is None:
                return None
            SCHEMAS[table] = ddb_units.Schema(described)
        return SCHEMAS[table]

    def item(self, table, key):
        got = self.handler.moto_json(
            self.environ,
            "DynamoDB_20120810.GetItem",
            {"TableName": table, "Key": key, "ConsistentRead": True},
        )
        return (got or {}).get("Item")

    def before(self):
        if self.service != "DynamoDB_20120810":
            return
        table = self.request.get("TableName")
        schema = self.schema(table) if table else None
        if schema is None and self.operation != "TransactWriteItems":
            return
        if self.operation == "TransactWriteItems":
            return self.before_transaction()
        if self.operation == "PutItem":
            key = schema.key_of(self.request.get("Item", {}))
        elif self.operation in ("UpdateItem", "DeleteItem", "GetItem"):
            key = self.request.get("Key", {})
        else:
            return
        self.images = (schema, key, self.item(table, key))

    def before_transaction(self):
        """Each item a transaction writes, as (schema, key, image before, what it does)."""
        self.transaction = []
        for element in self.request.get("TransactItems", []):
            for action, spec in element.items():
                schema = self.schema(spec.get("TableName"))
                if schema is None:
                    continue
                key = schema.key_of(spec["Item"]) if action == "Put" else spec.get("Key", {})
                self.transaction.append((schema, key, self.item(schema.name, key), action))

    def transaction_units(self):
        """DynamoDB bills a transactional write at 2 write units per started KB of each item
        (a ConditionCheck too); index entries are written as in a standard write."""
        wru_table, indexes = 0, {}
        for schema, key, before, action in getattr(self, "transaction", []):
            after = None if action == "Delete" else self.item(schema.name, key)
            if action == "ConditionCheck":
                after = before
            size = max(ddb_units.item_size(before), ddb_units.item_size(after))
            wru_table += 2 * ddb_units.write_units(size)
            if action != "ConditionCheck":
                for index, units in schema.index_write_units(before, after).items():
                    indexes[index] = indexes.get(index, 0) + units
        return {"wru": wru_table + sum(indexes.values()), "wru_table": wru_table, "wru_indexes": indexes}

    def after(self, status, payload):
        try:
            if self.service == "DynamoDB_20120810":
                return self.dynamodb(payload)
            if self.service == "AmazonSQS" or self.environ.get("HTTP_AUTHORIZATION", "").find("/sqs/") > 0:
                return self.sqs(status, payload)
            if self.service == "AWSEvents":
                return self.events()
        except (ValueError, KeyError, TypeError) as error:
            return {"error": str(error)}
        return None

    def dynamodb(self, payload):
        operation = self.operation
        if operation == "TransactWriteItems":
            return self.transaction_units()
        if operation in self.DYNAMODB_WRITES and self.images:
            schema, key, before = self.images
            after = self.item(schema.name, key) if operation != "DeleteItem" else None
            size = max(ddb_units.item_size(before), ddb_units.item_size(after))
            indexes = schema.index_write_units(before, after)
            return {
                "wru": ddb_units.write_units(size) + sum(indexes.values()),
                "wru_table": ddb_units.write_units(size),
                "wru_indexes": indexes,
                "item_bytes_before": ddb_units.item_size(before),
                "item_bytes_after": ddb_units.item_size(after),
            }
        if operation == "GetItem" and self.images:
            _, _, item = self.images
            consistent = bool(self.request.get("ConsistentRead"))
            return {"rru": ddb_units.read_units(ddb_units.item_size(item), consistent),
                    "item_bytes": ddb_units.item_size(item)}
        if operation == "BatchGetItem":
            total = 0
            for table, spec in self.request.get("RequestItems", {}).items():
                for key in spec.get("Keys", []):
                    size = ddb_units.item_size(self.item(table, key))
                    total += ddb_units.read_units(size, bool(spec.get("ConsistentRead")))
            return {"rru": total}
        if operation in ("Query", "Scan"):
            answer = json.loads(payload or b"{}")
            size = sum(ddb_units.item_size(i) for i in answer.get("Items", []))
            consistent = bool(self.request.get("ConsistentRead")) and not self.request.get("IndexName")
            return {"rru": ddb_units.read_units(size, consistent)}
        return None

    def sqs(self, status, payload):
        operation = self.operation
        if operation == "SendMessage":
            size = len(self.request.get("MessageBody", "").encode())
            size += len(json.dumps(self.request.get("MessageAttributes", {})).encode()) \
                if self.request.get("MessageAttributes") else 0
            return {"requests": ddb_units.chunks_64k(size), "bytes": size}
        if operation == "SendMessageBatch":
            size = sum(len(e.get("MessageBody", "").encode()) for e in self.request.get("Entries", []))
            return {"requests": ddb_units.chunks_64k(size), "bytes": size}
        if operation == "ReceiveMessage":
            answer = json.loads(payload or b"{}") if status.startswith("200") else {}
            size = sum(len(m.get("Body", "").encode()) for m in answer.get("Messages", []))
            return {"requests": ddb_units.chunks_64k(size), "bytes": size,
                    "messages": len(answer.get("Messages", []))}
        return {"requests": 1}

    def events(self):
        if self.operation != "PutEvents":
            return {"entries": 0, "units": 0}
        entries = self.request.get("Entries", [])
        sizes = [ddb_units.eventbridge_entry_size(e) for e in entries]
        return {"entries": len(entries), "units": sum(ddb_units.chunks_64k(s) for s in sizes),
                "bytes": sum(sizes)}


def main() -> None:
    global ACCOUNT
    host, port = sys.argv[1], int(sys.argv[2])
    ACCOUNT = "--account" in sys.argv[3:]
    KeepAliveHandler.app = DomainDispatcherApplication(create_backend_app)
    server = http.server.ThreadingHTTPServer((host, port), KeepAliveHandler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
