#!/usr/bin/env python3
"""Writes the hostile-request corpus under tests/hostile/: one JSON file per request, each with
the status and the words of the error it must get. tests/tests/hostile.rs replays them through
the real handlers (as API Gateway HTTP API events) and checks that nothing was stored or queued.

Fields: provider, method, headers (pairs; API Gateway joins repeated headers with a comma, so
the corpus does too), query, body (text) or body_base64 (+ is_base64), pad_to (the harness pads
the JSON object with a "padding" field to exactly this many bytes), status, says, why.
"""

import base64
import hashlib
import hmac
import json
import pathlib

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "hostile"
WW_URL = "https://abc123.execute-api.eu-central-1.amazonaws.com/webhooks/waitwhile?tenant=loc-downtown"

GOOD = {
    "magicline": ('{"entityId": 1, "uuid": "hostile-0001", "payload": [{"timestamp": 1, "type": "CUSTOMER_CREATED"}]}',
                  [["x-api-key", "ml-demo-key-1001-new"]]),
    "egym": ('{"accountId": "hostile-acc", "timestamp": 1, "type": "GYM_CHECKIN"}',
             [["x-api-key", "egym-demo-secret-berlin"]]),
    "timify": ('{"event": "customers.created", "data": {"id": "hostile-c", "updatedAt": "2026-11-25T10:00:00Z"}}',
               [["x-timify-secret", "timify-demo-secret-berlin-new"]]),
    "flybuy": ('{"data": {"type": "order", "id": 5, "updated_at": "2026-11-25T10:00:00Z"}}',
               [["authorization", 'Token token="FBDEMO41TOKEN"']]),
    "waitwhile": ('{"type": "visit.created", "data": {"id": "hostile-v", "updated": "2026-11-25T10:00:00Z"}}', None),
}

# A body whose required field is null / out of range / of the wrong shape, per provider.
BAD_FIELDS = {
    "magicline": [
        ('{"entityId": 1, "uuid": null, "payload": [{"timestamp": 1, "type": "X"}]}', "uuid"),
        ('{"entityId": 99999999999999999999, "uuid": "u", "payload": [{"timestamp": 1, "type": "X"}]}', "entityId"),
        ('{"entityId": 1, "uuid": "u", "payload": {"timestamp": 1, "type": "X"}}', "payload"),
        ('{"entityId": 1, "uuid": "u", "payload": [[]]}', "payload[0]"),
    ],
    "egym": [
        ('{"accountId": null, "timestamp": 1, "type": "TEST"}', "accountId"),
        ('{"accountId": "a", "timestamp": 1e400, "type": "TEST"}', "number out of range"),
        ('{"accountId": "a", "timestamp": -1.5, "type": "TEST"}', "timestamp"),
        ('{"accountId": ["a"], "timestamp": 1, "type": "TEST"}', "accountId"),
    ],
    "timify": [
        ('{"event": null, "data": {"id": "x"}}', "/event"),
        ('{"event": "customers.created", "data": []}', "/data/id"),
        ('{"event": "customers.created", "data": {"id": {"nested": 1}}}', "/data/id"),
        ('{"event": "customers.created", "data": {"id": 1e999}}', "number out of range"),
    ],
    "flybuy": [
        ('{"data": {"type": "order", "id": null, "updated_at": "x"}}', "data.id"),
        ('{"data": {"type": "order", "id": 5, "updated_at": null}}', "data.updated_at"),
        ('{"data": [{"type": "order", "id": 5, "updated_at": "x"}]}', "data"),
        ('{"data": {"type": "order", "id": 5, "updated_at": "x", "site_id": 1e30}}', "data.site_id"),
    ],
    "waitwhile": [
        ('{"type": null, "data": {"id": "v"}}', "/type"),
        ('{"type": "visit.created", "data": null}', "/data/id"),
        ('{"type": "visit.created", "data": {"id": ""}}', "/data/id"),
        ('{"type": "visit.created", "data": {"id": 1e400}}', "number out of range"),
    ],
}

OTHER_PROVIDER_KEY = {
    "magicline": [["x-api-key", "egym-demo-secret-berlin"]],
    "egym": [["x-api-key", "ml-demo-key-1001-new"]],
    "timify": [["x-timify-secret", "FBDEMO41TOKEN"]],
    "flybuy": [["authorization", 'Token token="ml-demo-key-1001-new"']],
    "waitwhile": [["x-waitwhile-signature", "egym-demo-secret-berlin"]],
}


def sign(body: bytes) -> str:
    return base64.b64encode(hmac.new(b"ww-demo-secret-downtown", WW_URL.encode() + body, hashlib.sha256).digest()).decode()


def creds(provider, body: bytes):
    if provider == "waitwhile":
        return [["x-waitwhile-signature", sign(body)]]
    return [list(h) for h in GOOD[provider][1]]


def case(provider, name, status, says, why, body=None, headers=None, method="POST", body_bytes=None,
         content_type="application/json", pad_to=None):
    raw = body_bytes if body_bytes is not None else (body if body is not None else GOOD[provider][0]).encode()
    hs = [["content-type", content_type]] if content_type else []
    hs += creds(provider, raw) if headers is None else headers
    item = {"provider": provider, "method": method, "headers": hs,
            "query": "tenant=loc-downtown" if provider == "waitwhile" else "",
            "status": status, "says": says, "why": why}
    try:
        item["body"] = raw.decode("utf-8")
        item["is_base64"] = False
    except UnicodeDecodeError:
        item["body_base64"] = base64.b64encode(raw).decode()
        item["is_base64"] = True
    if pad_to:
        item["pad_to"] = pad_to
    return provider + "-" + name, item


def cases():
    for provider in GOOD:
        good = GOOD[provider][0]
        yield case(provider, "empty-body", 400, "malformed body", "No body at all", body="")
        yield case(provider, "invalid-utf8", 400, "malformed body", "Bytes that are not UTF-8 (base64-flagged)",
                   body_bytes=b'{"x": "\xff\xfe\xfd"}')
        b64 = base64.b64encode(good.encode()).decode()
        yield case(provider, "base64-flagged-garbage", 400, "malformed body",
                   "A base64-flagged body that decodes to non-JSON", body_bytes=b"\x00\x01\x02 not json")
        yield case(provider, "wrong-content-type", 415, "content-type", "Valid JSON declared as text/plain",
                   content_type="text/plain")
        yield case(provider, "form-content-type", 415, "content-type", "Declared as a form post",
                   content_type="application/x-www-form-urlencoded")
        yield case(provider, "nested-10000-deep", 400, "malformed body", "JSON nested 10,000 levels deep",
                   body="[" * 10000 + "]" * 10000)
        yield case(provider, "array-not-object", 400, "malformed body", "An array where the envelope object belongs",
                   body="[" + good + "]")
        yield case(provider, "trailing-garbage", 400, "malformed body", "A valid envelope followed by more data",
                   body=good + " {}")
        for n, (body, field) in enumerate(BAD_FIELDS[provider]):
            yield case(provider, f"bad-field-{n}", 400, field, f"Null, out-of-range or misshapen {field}", body=body)
        for method in ["GET", "PUT", "DELETE", "PATCH"]:
            yield case(provider, f"method-{method.lower()}", 405, "method not allowed", f"{method} instead of POST",
                       method=method, body="" if method in ("GET", "DELETE") else None)
        yield case(provider, "over-limit", 413, "larger than", "One byte over the 256 KiB limit", pad_to=262145)
        if provider != "waitwhile":
            yield case(provider, "at-limit", 202 if provider != "timify" else 200, "",
                       "Exactly 256 KiB: accepted (the boundary)", pad_to=262144)
        yield case(provider, "missing-credential", 401, "unauthorized", "No credential at all", headers=[])
        yield case(provider, "other-provider-key", 401, "unauthorized", "Another provider's demo key",
                   headers=OTHER_PROVIDER_KEY[provider])
        name, value = creds(provider, good.encode())[0]
        yield case(provider, "credential-case-swapped", 401, "unauthorized", "The credential with its letter case swapped",
                   headers=[[name, value.swapcase()]])
        yield case(provider, "credential-inner-space", 401, "unauthorized", "A space inside the credential",
                   headers=[[name, value[:4] + " " + value[4:]]])
        yield case(provider, "credential-repeated", 401, "unauthorized",
                   "The credential header twice (API Gateway joins them with a comma)",
                   headers=[[name, value + "," + value]])
        yield case(provider, "credential-8kib", 401, "unauthorized", "An 8 KiB credential",
                   headers=[[name, "k" * 8192]])
    yield case("flybuy", "scheme-bearer", 401, "unauthorized", "Bearer instead of Token",
               headers=[["authorization", 'Bearer token="FBDEMO41TOKEN"']])
    yield case("flybuy", "scheme-mangled", 401, "unauthorized", "A space inside the scheme",
               headers=[["authorization", 'Tok en token="FBDEMO41TOKEN"']])
    yield case("flybuy", "single-quotes", 401, "unauthorized", "Single instead of double quotes",
               headers=[["authorization", "Token token='FBDEMO41TOKEN'"]])
    yield case("flybuy", "space-inside-quotes", 401, "unauthorized", "Whitespace inside the quoted token",
               headers=[["authorization", 'Token token=" FBDEMO41TOKEN"']])
    yield case("timify", "other-tenant-header", 401, "unauthorized", "app-munich's secret in app-berlin's header",
               headers=[["x-timify-secret", "timify-demo-secret-munich"]])
    good = GOOD["waitwhile"][0].encode()
    yield case("waitwhile", "signature-hex", 401, "unauthorized", "The right HMAC, hex instead of base64",
               headers=[["x-waitwhile-signature",
                         hmac.new(b"ww-demo-secret-downtown", WW_URL.encode() + good, hashlib.sha256).hexdigest()]])
    yield case("waitwhile", "signature-truncated", 401, "unauthorized", "The right signature cut short",
               headers=[["x-waitwhile-signature", sign(good)[:20]]])
    yield case("waitwhile", "signature-body-only", 401, "unauthorized", "Signed over the body without the URL",
               headers=[["x-waitwhile-signature",
                         base64.b64encode(hmac.new(b"ww-demo-secret-downtown", good, hashlib.sha256).digest()).decode()]])
    yield case("waitwhile", "signature-trailing-newline", 401, "unauthorized",
               "Signed body, then a newline appended", body=GOOD["waitwhile"][0] + "\n",
               headers=[["x-waitwhile-signature", sign(good)]])


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.json"):
        old.unlink()
    count = 0
    for name, item in cases():
        (OUT / (name + ".json")).write_text(json.dumps(item, indent=1, ensure_ascii=False) + "\n")
        count += 1
    print(f"{count} cases")


if __name__ == "__main__":
    main()
