#!/usr/bin/env python3
"""Writes the hostile-request corpus under tests/hostile/: one JSON file per request, each with
the status and the words of the error it must get. tests/tests/suite/hostile.rs replays them through
the real handlers (as API Gateway HTTP API events) and checks that nothing was stored or queued.
It also writes the corpus's size and each class's count into RELIABILITY.md's "Bad input" table,
which hostile.rs holds the corpus to.

Every provider's part comes from its test kit (shared/testkit/data/<provider>.json, section
`hostile`): a good body, bodies with a bad field, whose key to present as another provider's,
scheme-specific extras; the credentials are its demo tenant's (`hostile.tenant`, default the
first). Signatures are computed with Python's own hmac module. `--check` writes nothing; it names
every file that differs from what it would write and exits non-zero.

Fields: provider, method, headers (pairs; API Gateway joins repeated headers with a comma, so
the corpus does too), query, body (text) or body_base64 (+ is_base64), pad_to (the harness pads
the JSON object with a "padding" field to exactly this many bytes), status, outcome (`refused`:
nothing stored; `quarantined`: an authentic delivery the provider's parser cannot read, stored
once and never queued; `accepted`: stored and queued), says (what the error or the quarantine
reason names), why.
"""

import argparse
import base64
import hashlib
import hmac
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "shared" / "testkit" / "data"
OUT = ROOT / "tests" / "hostile"


def load_kits():
    kits = {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in DATA.glob("*.json")}
    return dict(sorted(kits.items(), key=lambda item: item[1]["order"]))


KITS = load_kits()


def tenant_of(provider):
    kit = KITS[provider]
    return kit["tenants"][kit["hostile"].get("tenant", 0)]


def secret_of(provider, ref=None):
    """A secret reference as the kits write them: {"provider"?, "tenant"?, "index"?}."""
    if ref is None:
        return tenant_of(provider)["webhook_secrets"][0]
    owner = KITS[ref.get("provider", provider)]["tenants"][ref.get("tenant", 0)]
    return owner["webhook_secrets"][ref.get("index", 0)]


def mac(secret, message: bytes):
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()


def fill(provider, template, secret, body: bytes):
    """Fills {secret}, {header}, {url_body_signature}, {url_body_signature_hex},
    {body_signature}; `{name:N}` keeps the first N characters."""
    url = tenant_of(provider).get("url", "").encode()
    values = {
        "secret": lambda: secret,
        "header": lambda: tenant_of(provider)["header"],
        "url_body_signature": lambda: base64.b64encode(mac(secret, url + body)).decode(),
        "url_body_signature_hex": lambda: mac(secret, url + body).hex(),
        "body_signature": lambda: base64.b64encode(mac(secret, body)).decode(),
    }

    def one(match):
        value = values[match.group(1)]()
        return value[: int(match.group(2))] if match.group(2) else value

    return re.sub(r"\{(\w+)(?::(\d+))?\}", one, template)


def headers_from(provider, templates, body: bytes, secret=None):
    secret = secret if secret is not None else secret_of(provider)
    return [[fill(provider, name, secret, body).lower(), fill(provider, value, secret, body)]
            for name, value in templates.items()]


def creds(provider, body: bytes):
    return headers_from(provider, KITS[provider]["webhook_auth"], body)


def signs_body(provider):
    return any("signature" in value for value in KITS[provider]["webhook_auth"].values())


def query_of(provider):
    url = tenant_of(provider).get("url", "")
    return url.split("?", 1)[1] if "?" in url else ""


def good_body(provider):
    return KITS[provider]["hostile"]["body"]


def case(provider, name, status, says, why, body=None, headers=None, method="POST", body_bytes=None,
         content_type="application/json", pad_to=None, outcome="accepted"):
    raw = body_bytes if body_bytes is not None else (body if body is not None else good_body(provider)).encode()
    hs = [["content-type", content_type]] if content_type else []
    hs += creds(provider, raw) if headers is None else headers
    item = {"provider": provider, "method": method, "headers": hs, "query": query_of(provider),
            "status": status, "outcome": "refused" if status >= 400 else outcome, "says": says, "why": why}
    try:
        item["body"] = raw.decode("utf-8")
        item["is_base64"] = False
    except UnicodeDecodeError:
        item["body_base64"] = base64.b64encode(raw).decode()
        item["is_base64"] = True
    if pad_to:
        item["pad_to"] = pad_to
    return provider + "-" + name, item


def quarantined(provider, name, says, why, **request):
    """An authentic delivery the provider's parser cannot read: kept, answered as accepted."""
    return case(provider, name, KITS[provider]["accepted_status"], says, why, outcome="quarantined", **request)


def generic_cases(provider):
    kit = KITS[provider]
    good = good_body(provider)
    yield quarantined(provider, "empty-body", "malformed body", "No body at all", body="")
    yield quarantined(provider, "invalid-utf8", "malformed body", "Bytes that are not UTF-8 (base64-flagged)",
                      body_bytes=b'{"x": "\xff\xfe\xfd"}')
    yield quarantined(provider, "base64-flagged-garbage", "malformed body",
                      "A base64-flagged body that decodes to non-JSON", body_bytes=b"\x00\x01\x02 not json")
    yield quarantined(provider, "wrong-content-type", "content-type", "Valid JSON declared as text/plain",
                      content_type="text/plain")
    yield quarantined(provider, "form-content-type", "content-type", "Declared as a form post",
                      content_type="application/x-www-form-urlencoded")
    yield quarantined(provider, "nested-10000-deep", "malformed body", "JSON nested 10,000 levels deep",
                      body="[" * 10000 + "]" * 10000)
    yield quarantined(provider, "array-not-object", "malformed body", "An array where the envelope object belongs",
                      body="[" + good + "]")
    yield quarantined(provider, "trailing-garbage", "malformed body", "A valid envelope followed by more data",
                      body=good + " {}")
    for n, bad in enumerate(kit["hostile"]["bad_fields"]):
        why = f"Null, out-of-range or misshapen {bad['field']}"
        if bad["outcome"] == "quarantined":
            yield quarantined(provider, f"bad-field-{n}", bad["field"], why, body=bad["body"])
        else:
            yield case(provider, f"bad-field-{n}", kit["accepted_status"], "", why + ": read as it is",
                       body=bad["body"])
    for method in ["GET", "PUT", "DELETE", "PATCH"]:
        yield case(provider, f"method-{method.lower()}", 405, "method not allowed", f"{method} instead of POST",
                   method=method, body="" if method in ("GET", "DELETE") else None)
    yield case(provider, "over-limit", 413, "larger than", "One byte over the 256 KiB limit", pad_to=262145)
    # The harness pads after signing, so a body-signing scheme cannot be accepted at the limit.
    if not signs_body(provider):
        yield case(provider, "at-limit", kit["accepted_status"], "",
                   "Exactly 256 KiB: accepted (the boundary)", pad_to=262144)
    yield case(provider, "missing-credential", 401, "unauthorized", "No credential at all", headers=[])
    other = kit["hostile"]["other_provider"]
    yield case(provider, "other-provider-key", 401, "unauthorized", "Another provider's demo key",
               headers=headers_from(provider, other.get("headers", kit["webhook_auth"]), good.encode(),
                                    secret_of(provider, other["secret"])))
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


def extra_cases(provider):
    """Scheme-specific near misses; their signatures cover the good body."""
    good = good_body(provider)
    for extra in KITS[provider]["hostile"].get("extra", []):
        secret = secret_of(provider, extra.get("secret"))
        yield case(provider, extra["name"], 401, "unauthorized", extra["why"],
                   body=good + extra.get("body_suffix", ""),
                   headers=headers_from(provider, extra["headers"], good.encode(), secret))


def cases():
    for provider in KITS:
        yield from generic_cases(provider)
    for provider in KITS:
        yield from extra_cases(provider)


# RELIABILITY.md's "Bad input" table: the row of each class, by how its first cell begins; the
# count is the last `(N)` or `(N cases)` of the row.
RELIABILITY = ROOT / "RELIABILITY.md"
CLASS_ROWS = {
    "401": "| Missing credential",
    "405": "| GET, PUT",
    "413": "| Body 1 byte over",
    "quarantined": "| Authentic: empty body",
    "accepted": "| Authentic with readable",
}
NUMBER_WORDS = ["no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]


def class_of(item):
    """A case's class: the refusal's status, or `quarantined` / `accepted` (as hostile.rs splits them)."""
    return str(item["status"]) if item["outcome"] == "refused" else item["outcome"]


def reliability_with_counts(items):
    """RELIABILITY.md with the corpus's size, its providers and each class's count written in."""
    text = RELIABILITY.read_text(encoding="utf-8")
    counts = {cls: sum(1 for item in items if class_of(item) == cls) for cls in CLASS_ROWS}
    providers = len(KITS)
    words = NUMBER_WORDS[providers] if providers < len(NUMBER_WORDS) else str(providers)
    text = re.sub(r"\d+ hostile requests across the \w+ providers",
                  f"{len(items)} hostile requests across the {words} providers", text, count=1)
    lines = text.split("\n")
    for cls, start in CLASS_ROWS.items():
        row = next(i for i, line in enumerate(lines) if line.startswith(start))
        found = list(re.finditer(r"\((\d+)( cases)?\)", lines[row]))
        last = found[-1]
        lines[row] = lines[row][:last.start(1)] + str(counts[cls]) + lines[row][last.end(1):]
    return "\n".join(lines)


def outputs():
    items = dict(cases())
    files = {OUT / (name + ".json"): json.dumps(item, indent=1, ensure_ascii=False) + "\n" for name, item in items.items()}
    files[RELIABILITY] = reliability_with_counts(list(items.values()))
    return files


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; fail if any file differs")
    files = outputs()
    stale = sorted(set(OUT.glob("*.json")) - {path for path in files if path.parent == OUT})
    if parser.parse_args().check:
        differ = [path for path, text in files.items()
                  if not path.exists() or path.read_text(encoding="utf-8") != text]
        for path in differ + stale:
            print(f"differs from the kit data: {path.relative_to(ROOT)}", file=sys.stderr)
        return 1 if differ or stale else 0
    OUT.mkdir(parents=True, exist_ok=True)
    for path in stale:
        path.unlink()
    for path, text in files.items():
        path.write_text(text, encoding="utf-8")
    print(f"{len(files) - 1} cases; RELIABILITY.md's counts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
