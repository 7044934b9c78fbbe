#!/usr/bin/env python3
"""Writes the sample API Gateway HTTP API (payload 2.0) events under events/, the manifest of
their expected answers, and events/env.json (demo tenants for `sam local invoke --env-vars`
and for the tests).

Every id, name and key here is made up. Signatures are computed with Python's own hmac module,
independently of the Rust code they test. Run it again after editing; the output is stable.
"""

import base64
import hashlib
import hmac
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"

# Demo tenants per provider. The first secret of each list is the current one; a second one
# shows rotation (both valid at once).
TENANTS = {
    "magicline": [
        {"id": "studio-1001", "webhook_secrets": ["ml-demo-key-1001-new", "ml-demo-key-1001-old"],
         "api": {"base_url": "http://127.0.0.1:9/magicline", "api_key": "ml-demo-openapi-1001"}},
        {"id": "studio-2002", "webhook_secrets": ["ml-demo-key-2002"],
         "api": {"base_url": "http://127.0.0.1:9/magicline", "api_key": "ml-demo-openapi-2002"}},
    ],
    "egym": [
        {"id": "gym-berlin-01", "webhook_secrets": ["egym-demo-secret-berlin"],
         "api": {"base_url": "http://127.0.0.1:9/egym", "api_key": "egym-demo-api-berlin"}},
        {"id": "gym-hamburg-02", "webhook_secrets": ["egym-demo-secret-hamburg"],
         "api": {"base_url": "http://127.0.0.1:9/egym", "api_key": "egym-demo-api-hamburg"}},
    ],
}

TIME_EPOCH = 1795640400000  # 2026-11-25T19:00:00Z


def api_gateway_event(provider, body, headers, method="POST", query="", is_base64=False):
    path = f"/webhooks/{provider}"
    all_headers = {
        "content-type": "application/json",
        "host": "abc123.execute-api.eu-central-1.amazonaws.com",
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
            "domainName": "abc123.execute-api.eu-central-1.amazonaws.com",
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


def key_of(provider, tenant=0, secret=0):
    return TENANTS[provider][tenant]["webhook_secrets"][secret]


def magicline(entity_id, event_type, uuid, timestamp=TIME_EPOCH, extra=None):
    body = {"entityId": entity_id, "uuid": uuid,
            "payload": [{"timestamp": timestamp, "type": event_type}]}
    body.update(extra or {})
    return json.dumps(body)


def egym(account_id, event_type, timestamp=TIME_EPOCH):
    return json.dumps({"accountId": account_id, "timestamp": timestamp, "type": event_type})


def cases():
    """(provider, file name, event, expected status, what it shows)"""
    ml = lambda **h: {"x-api-key": key_of("magicline"), **h}
    yield ("magicline", "customer-created.json",
           api_gateway_event("magicline", magicline(7893459, "CUSTOMER_CREATED", "095be615-a8ad-4c33-8e9c-c7612fbf6c9f"), ml()),
           202, "A new customer at studio-1001: verified, stored, queued")
    yield ("magicline", "customer-checkin.json",
           api_gateway_event("magicline", magicline(7893459, "CUSTOMER_CHECKIN", "5b1d8f2e-3c4a-4e1b-9f0a-2d7c6e8b1a93"), ml()),
           202, "A customer checked in; entityId is the customer id")
    yield ("magicline", "rotated-old-key.json",
           api_gateway_event("magicline", magicline(5551234, "CUSTOMER_CREATED", "0e7a3c1b-8d2f-4b6a-9c5e-1f3a7b9d2e40"),
                             {"x-api-key": key_of("magicline", 0, 1)}),
           202, "The studio's previous key still works during rotation")
    yield ("magicline", "unknown-event-type.json",
           api_gateway_event("magicline", magicline(42, "CONTRACT_SIGNED", "7c9e6679-7425-40de-944b-e07fc1f90ae7",
                                                    extra={"futureField": {"nested": True}}), ml()),
           202, "An event type and a field we do not know yet are accepted and stored")
    yield ("magicline", "bad-missing-key.json",
           api_gateway_event("magicline", magicline(1, "CUSTOMER_CREATED", "a1f0c3e2-0000-4000-8000-000000000001"), {}),
           401, "No x-api-key header")
    yield ("magicline", "bad-wrong-key.json",
           api_gateway_event("magicline", magicline(1, "CUSTOMER_CREATED", "a1f0c3e2-0000-4000-8000-000000000002"),
                             {"x-api-key": "ml-demo-key-0000-unknown"}),
           401, "A key no studio has")
    yield ("magicline", "bad-other-provider-key.json",
           api_gateway_event("magicline", magicline(1, "CUSTOMER_CREATED", "a1f0c3e2-0000-4000-8000-000000000003"),
                             {"x-api-key": key_of("egym")}),
           401, "An EGYM gym's key sent to the Magicline URL")
    yield ("magicline", "bad-malformed-json.json",
           api_gateway_event("magicline", '{"entityId": 1, "uuid": "x", "payload": [', ml()),
           400, "Truncated JSON")
    yield ("magicline", "bad-missing-uuid.json",
           api_gateway_event("magicline", json.dumps({"entityId": 1, "payload": [{"timestamp": 1, "type": "CUSTOMER_CREATED"}]}), ml()),
           400, "Required field uuid is missing; the answer names it")
    yield ("magicline", "bad-wrong-method.json",
           api_gateway_event("magicline", None, ml(), method="GET"),
           405, "GET instead of POST")
    padding = "x" * (300 * 1024)
    yield ("magicline", "bad-oversized.json",
           api_gateway_event("magicline", magicline(1, "CUSTOMER_CREATED", "a1f0c3e2-0000-4000-8000-000000000004",
                                                    extra={"padding": padding}), ml()),
           413, "A 300 KiB body, over the 256 KiB limit")

    eg = lambda **h: {"x-api-key": key_of("egym"), **h}
    account = "3f1c2a9e-5b7d-4e8f-a0c1-d2e3f4a5b6c7"
    for event_type, what in [
        ("GYM_CHECKIN", "A member checked in at the gym"),
        ("GYM_CHECKOUT", "A member checked out"),
        ("EQUIPMENT_CHECKIN", "A member logged in to a machine"),
        ("MEMBERSHIP_DELETE", "Member data was deleted at EGYM (the processor erases ours)"),
        ("GENIUS_ONBOARDING_COMPLETED", "A member completed EGYM Genius onboarding"),
        ("TEST", "EGYM's endpoint verification event: acknowledged and stored, never fetched"),
    ]:
        name = event_type.lower().replace("_", "-") + ".json"
        yield ("egym", name, api_gateway_event("egym", egym(account, event_type), eg()), 202, what)
    yield ("egym", "second-gym.json",
           api_gateway_event("egym", egym("9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", "GYM_CHECKIN"),
                             {"x-api-key": key_of("egym", 1)}),
           202, "The same URL serves every gym: the key picks gym-hamburg-02")
    yield ("egym", "unknown-event-type.json",
           api_gateway_event("egym", egym(account, "CLASS_BOOKED"), eg()),
           202, "An event type EGYM has not announced yet is accepted and stored")
    yield ("egym", "bad-missing-key.json",
           api_gateway_event("egym", egym(account, "GYM_CHECKIN"), {}), 401, "No x-api-key header")
    yield ("egym", "bad-wrong-key.json",
           api_gateway_event("egym", egym(account, "GYM_CHECKIN"), {"x-api-key": "egym-demo-secret-nowhere"}),
           401, "A secret no gym has")
    yield ("egym", "bad-other-provider-key.json",
           api_gateway_event("egym", egym(account, "GYM_CHECKIN"), {"x-api-key": key_of("magicline")}),
           401, "A Magicline studio's key sent to the EGYM URL")
    yield ("egym", "bad-malformed-json.json",
           api_gateway_event("egym", '{"accountId": "a", "timestamp": }', eg()), 400, "Not JSON")
    yield ("egym", "bad-missing-account.json",
           api_gateway_event("egym", json.dumps({"timestamp": TIME_EPOCH, "type": "GYM_CHECKIN"}), eg()),
           400, "Required field accountId is missing; the answer names it")
    yield ("egym", "bad-wrong-method.json",
           api_gateway_event("egym", None, eg(), method="PUT"), 405, "PUT instead of POST")
    yield ("egym", "bad-oversized.json",
           api_gateway_event("egym", json.dumps({"accountId": account, "timestamp": TIME_EPOCH, "type": "TEST",
                                                 "padding": padding}), eg()),
           413, "A 300 KiB body, over the 256 KiB limit")


def function_id(provider):
    return provider.capitalize() + "WebhookFunction"


def main():
    manifest = {}
    for provider, name, event, status, what in cases():
        folder = EVENTS / provider
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(json.dumps(event, indent=2, ensure_ascii=False) + "\n")
        manifest[f"{provider}/{name}"] = {"status": status, "shows": what}
    (EVENTS / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    env = {
        function_id(provider): {"TENANTS_JSON": json.dumps({"tenants": tenants})}
        for provider, tenants in TENANTS.items()
    }
    (EVENTS / "env.json").write_text(json.dumps(env, indent=2) + "\n")


if __name__ == "__main__":
    main()
