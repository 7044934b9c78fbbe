#!/usr/bin/env python3
"""Writes, from the provider test kits (shared/testkit/data/<provider>.json), the sample API
Gateway HTTP API (payload 2.0) events under events/<provider>/, the SQS events under
events/processor/, events/manifest.json (what each must get), events/env.json (for `sam local
invoke --env-vars` and the tests: every function pointed at scripts/local-aws, the webhooks' demo
tenants), devserver.toml and the event table of events/README.md.

This file holds no provider's data and never branches on a provider's name: add or change a
case in the kit data and run it again. `--check` writes nothing; it names every file that
differs from what it would write and exits non-zero. Signatures are computed with Python's own
hmac module, independently of the Rust code they test.
"""

import argparse
import base64
import hashlib
import hmac
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
DATA = ROOT / "shared" / "testkit" / "data"
EVENTS = ROOT / "events"
README = ROOT / "events" / "README.md"
TABLE_BEGIN = "<!-- events:begin (written by scripts/make_events.py) -->"
TABLE_END = "<!-- events:end -->"

HOST = "abc123.execute-api.eu-central-1.amazonaws.com"
TIME_EPOCH = 1795640400000  # 2026-11-25T19:00:00Z
# events/env.json points tenants' APIs at a port nothing listens on; the tests replace it.
UNREACHABLE_API = "http://127.0.0.1:9"
SANDBOX_API = "{sandbox}"
SENDER_ID = "AROAEXAMPLE:magicline-webhook"


def load_kits():
    kits = {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in DATA.glob("*.json")}
    return dict(sorted(kits.items(), key=lambda item: item[1]["order"]))


def api_gateway_event(provider, body, headers, method="POST", query="", is_base64=False):
    path = f"/webhooks/{provider}"
    all_headers = {
        "content-type": "application/json",
        "host": HOST,
        "user-agent": f"{provider}-webhooks/1.0",
        "x-forwarded-for": "203.0.113.10",
        "x-forwarded-proto": "https",
    }
    all_headers.update({k.lower(): v for k, v in headers.items()})
    event = {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": all_headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": HOST,
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.10",
                "userAgent": all_headers["user-agent"],
            },
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "routeKey": f"{method} {path}",
            "stage": "$default",
            "time": "25/Nov/2026:19:00:00 +0000",
            "timeEpoch": TIME_EPOCH,
        },
        "isBase64Encoded": is_base64,
    }
    if query:
        event["queryStringParameters"] = dict(p.split("=", 1) for p in query.split("&"))
    if body is not None:
        event["body"] = body
    return event


# ---------------------------------------------------------------------------------------------
# Cases: body, credential, request
# ---------------------------------------------------------------------------------------------

def body_text(case, field="body"):
    """The raw body: `raw` as is, else the JSON `body` (plus a `pad`-byte padding field)."""
    if field == "body" and "raw" in case:
        return case["raw"]
    if field not in case:
        return None
    value = case[field]
    if "pad" in case and field == "body":
        value = {**value, "padding": "x" * case["pad"]}
    return json.dumps(value, ensure_ascii=False)


def tenant_of(kits, provider, case):
    return kits[provider]["tenants"][case.get("tenant", 0)]


def secret_of(kits, provider, case):
    """`secret`: an index into the case tenant's secrets, a literal text, or a reference
    {"provider"?, "tenant"?, "index"?} to another tenant's (or provider's) secret."""
    spec = case.get("secret", 0)
    if isinstance(spec, str):
        return spec
    if isinstance(spec, int):
        return tenant_of(kits, provider, case)["webhook_secrets"][spec]
    owner = kits[spec.get("provider", provider)]["tenants"][spec.get("tenant", 0)]
    return owner["webhook_secrets"][spec.get("index", 0)]


def b64_hmac(key, message):
    return base64.b64encode(hmac.new(key.encode(), message.encode(), hashlib.sha256).digest()).decode()


def credential_headers(kits, provider, case, body):
    """The case's `headers`, else the provider's `webhook_auth` (`webhook_auth_signed` for a
    tenant with a signing key, which signs every delivery), placeholders filled in."""
    tenant = tenant_of(kits, provider, case)
    scheme = "webhook_auth_signed" if "signing_key" in tenant else "webhook_auth"
    templates = case.get("headers", kits[provider][scheme])
    secret = secret_of(kits, provider, case)

    def fill(text, headers=None):
        if "{secret}" in text:
            text = text.replace("{secret}", secret)
        if "{header}" in text:
            text = text.replace("{header}", tenant["header"])
        if "{url_body_signature}" in text:
            signed = body_text(case, "signed_body") or body
            url = case.get("signed_url", tenant.get("url"))
            text = text.replace("{url_body_signature}", b64_hmac(secret, url + signed))
        if "{date_body_signature}" in text:
            signature = b64_hmac(tenant["signing_key"], headers["date"] + "\n" + body)
            text = text.replace("{date_body_signature}", signature)
        return text

    # A date signature covers the `date` header, so the other headers are filled in first.
    plain = {fill(name): fill(value) for name, value in templates.items() if "{date_body_signature}" not in value}
    return {fill(name): plain[fill(name)] if fill(name) in plain else fill(value, plain)
            for name, value in templates.items()}


def query_of(tenant, case):
    if "query" in case:
        return case["query"]
    url = tenant.get("url", "")
    return url.split("?", 1)[1] if "?" in url else ""


def webhook_event(kits, provider, case):
    body = body_text(case)
    return api_gateway_event(provider, body, credential_headers(kits, provider, case, body),
                             method=case.get("method", "POST"),
                             query=query_of(tenant_of(kits, provider, case), case))


def event_cases(kits):
    """(provider, case) for every case written as an event file (those with a `shows` text)."""
    for provider, kit in kits.items():
        for case in kit["cases"]:
            if "shows" in case:
                yield provider, case


# ---------------------------------------------------------------------------------------------
# Processor events
# ---------------------------------------------------------------------------------------------

def at_pointer(document, pointer):
    for part in pointer.split("/")[1:]:
        document = document[int(part)] if isinstance(document, list) else document[part]
    return document if isinstance(document, str) else json.dumps(document)


def queue_message(kits, file, tenant, written):
    """The message the webhook function queues, derived independently of the Rust code."""
    provider = file.split("/")[0]
    envelope = kits[provider]["envelope"]
    body = json.loads(written[file]["body"])
    parts = [at_pointer(body, pointer) for pointer in envelope["dedup"]]
    return {"provider": provider, "tenant": tenant, "key": "#".join([provider, tenant, *parts]),
            "event_type": at_pointer(body, envelope["event_type"]),
            "entity_id": at_pointer(body, envelope["entity"])}


def sqs_record(kits, message_id, file, tenant, written):
    message = queue_message(kits, file, tenant, written)
    return {
        "messageId": message_id,
        "receiptHandle": "AQEB" + message_id.replace("-", "") + "demo-receipt-handle",
        "body": json.dumps(message),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(TIME_EPOCH),
                       "SenderId": SENDER_ID, "ApproximateFirstReceiveTimestamp": str(TIME_EPOCH + 40)},
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(json.dumps(message).encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-central-1:123456789012:webhooks-WorkQueue",
        "awsRegion": "eu-central-1",
    }


def processor_roles(kits):
    """{role: [(file, tenant id)]} for the cases marked `"processor": "sample" | "orphan" | "kept"`."""
    roles = {"sample": [], "orphan": [], "kept": []}
    for provider, case in event_cases(kits):
        if "processor" in case:
            tenant = tenant_of(kits, provider, case)["id"]
            roles[case["processor"]].append((f"{provider}/{case['name']}.json", tenant))
    assert len(roles["orphan"]) == 1 and len(roles["kept"]) == 1, "one orphan and one kept case"
    return roles


def processor_cases(kits, written):
    """(file name, SQS event, webhook files delivered first, message ids expected to fail, what)"""
    roles = processor_roles(kits)
    samples = roles["sample"]
    for n, (file, tenant) in enumerate(samples):
        provider = file.split("/")[0]
        mid = "0a1b2c3d-0000-4000-8000-00000000000%d" % n
        yield (provider + ".json", {"Records": [sqs_record(kits, mid, file, tenant, written)]}, [file], [],
               f"One {provider} event: its detail is fetched and stored")
    records = [sqs_record(kits, "5e6f7a8b-0000-4000-8000-00000000001%d" % n, f, t, written)
               for n, (f, t) in enumerate(samples)]
    yield ("mixed-batch.json", {"Records": records}, [f for f, _ in samples], [],
           "A batch with one event of every provider")
    orphan = sqs_record(kits, "9f8e7d6c-0000-4000-8000-000000000099", *roles["orphan"][0], written)
    kept_file, kept_tenant = roles["kept"][0]
    kept = sqs_record(kits, "9f8e7d6c-0000-4000-8000-000000000001", kept_file, kept_tenant, written)
    yield ("missing-record.json", {"Records": [kept, orphan]}, [kept_file],
           [orphan["messageId"]],
           "A message whose record does not exist is reported failed (retried, then dead-lettered); the other is processed")


# ---------------------------------------------------------------------------------------------
# Tenants: events/env.json and devserver.toml
# ---------------------------------------------------------------------------------------------

def tenants_at(kit, provider, api_base):
    """The kit's demo tenants with `{api}` in their API base URL set to `<api_base>/<provider>`."""
    tenants = json.loads(json.dumps(kit["tenants"]))
    for tenant in tenants:
        if "api" in tenant:
            tenant["api"]["base_url"] = tenant["api"]["base_url"].replace("{api}", f"{api_base}/{provider}")
    return tenants


def env_json(kits):
    """`--env-vars` for every function of template.yaml. `sam local` sets only variables the
    template declares, and makes of `!Ref <resource>` the logical id (of anything else, ""); so
    each declared variable that names a resource gets what it would be on scripts/local-aws
    (the table, queues, secrets and bus it creates from the template, as a container reaches
    them), AWS_ENDPOINT_URL the endpoint, and each webhook function its provider's demo tenants
    (API unreachable: a webhook never calls it). The processor reads its tenants from the
    endpoint's secrets, where scripts/local-aws puts the same tenants with the API at its sandbox."""
    try:
        import cfn  # noqa: PLC0415 (PyYAML is needed for this part only)
    except ImportError as error:
        sys.exit(f"{error}: run this with the project's venv (.venv/bin/python scripts/make_events.py)")
    template = cfn.load()
    local = cfn.LocalStack(template)
    by_path = {path: function for (_, path), function in cfn.routes(template).items()}
    env = {}
    for function in cfn.functions(template):
        variables = {"AWS_ENDPOINT_URL": cfn.CONTAINER_ENDPOINT}
        for name, value in cfn.declared_variables(template, function).items():
            if cfn.references_resources(template, value):
                variables[name] = str(local.resolve(value))
        env[function] = dict(sorted(variables.items()))
    for provider, kit in kits.items():
        function = by_path.get(f"/webhooks/{provider}")
        if function is None:
            sys.exit(f"template.yaml has no function on /webhooks/{provider}")
        env[function]["TENANTS_JSON"] = json.dumps({"tenants": tenants_at(kit, provider, UNREACHABLE_API)})
    return json.dumps(env, indent=2) + "\n"


def toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{key} = {toml_value(item)}" for key, item in value.items()) + " }"
    return json.dumps(value)


def devserver_toml(kits):
    """The dev server's configuration: the same demo tenants, their API pointed at its sandbox."""
    lines = [
        "# Demo tenants of the local dev server (`cargo run --release -p devserver`). Every key here",
        "# is made up and the same as in events/env.json, so any file under events/ can be sent to",
        "# the server with `devserver send`. `{sandbox}` is the server's own sandbox of the provider",
        "# APIs (made-up fixture data); put a provider's real API base URL and key here to use it.",
        "# Written by scripts/make_events.py.",
    ]
    for provider, kit in kits.items():
        for tenant in tenants_at(kit, provider, SANDBOX_API):
            lines += ["", f"[[{provider}.tenants]]", f"id = {toml_value(tenant['id'])}",
                      f"webhook_secrets = {toml_value(tenant['webhook_secrets'])}"]
            lines += [f"{field} = {toml_value(value)}" for field, value in tenant.items()
                      if field not in ("id", "webhook_secrets", "api")]
            if "api" in tenant:
                lines.append(f"api = {toml_value(tenant['api'])}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# README table, outputs, main
# ---------------------------------------------------------------------------------------------

def readme_with_table(manifest):
    rows = ["| File | Outcome | Shows |", "|---|---|---|"]
    for file, declared in manifest.items():
        if "status" in declared:
            outcome = str(declared["status"])
        elif declared["failed"]:
            outcome = "fails " + ", ".join(declared["failed"])
        else:
            outcome = "all processed"
        rows.append(f"| `{file}` | {outcome} | {declared['shows']} |")
    text = README.read_text(encoding="utf-8")
    before, rest = text.split(TABLE_BEGIN + "\n", 1)
    _, after = rest.split(TABLE_END, 1)
    return before + TABLE_BEGIN + "\n" + "\n".join(rows) + "\n" + TABLE_END + after


def as_file(document):
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def outputs():
    """Every file this script writes: {path: text}."""
    kits = load_kits()
    files, manifest, written = {}, {}, {}
    for provider, case in event_cases(kits):
        file = f"{provider}/{case['name']}.json"
        event = webhook_event(kits, provider, case)
        files[EVENTS / file] = as_file(event)
        manifest[file] = {"status": case.get("status", kits[provider]["accepted_status"]), "shows": case["shows"]}
        if case.get("quarantined"):
            manifest[file]["quarantined"] = True
        written[file] = event
    for name, event, after, failed, what in processor_cases(kits, written):
        files[EVENTS / "processor" / name] = as_file(event)
        manifest[f"processor/{name}"] = {"after": after, "failed": failed, "shows": what}
    files[EVENTS / "manifest.json"] = as_file(manifest)
    files[EVENTS / "env.json"] = env_json(kits)
    files[ROOT / "devserver.toml"] = devserver_toml(kits)
    files[README] = readme_with_table(manifest)
    return files


def stale(files):
    """Event files on disk that no case writes any more."""
    return sorted(set(EVENTS.glob("*/*.json")) - set(files))


def check(files):
    differ = [path for path, text in files.items()
              if not path.exists() or path.read_text(encoding="utf-8") != text]
    for path in differ + stale(files):
        print(f"differs from the kit data: {path.relative_to(ROOT)}", file=sys.stderr)
    if differ or stale(files):
        print("run scripts/make_events.py to write them", file=sys.stderr)
        return 1
    return 0


def write(files):
    for path, text in files.items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    for path in stale(files):
        path.unlink()
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; fail if any file differs")
    files = outputs()
    return check(files) if parser.parse_args().check else write(files)


if __name__ == "__main__":
    sys.exit(main())
