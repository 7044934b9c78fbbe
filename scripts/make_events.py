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
PUBLIC = "https://abc123.execute-api.eu-central-1.amazonaws.com"

TENANTS = {
    "magicline": [
        {"id": "studio-1001", "webhook_secrets": ["ml-demo-key-1001-new", "ml-demo-key-1001-old"],
         "api": {"base_url": "http://127.0.0.1:9/magicline", "api_key": "ml-demo-openapi-1001"}},
        {"id": "studio-2002", "webhook_secrets": ["ml-demo-key-2002"],
         "api": {"base_url": "http://127.0.0.1:9/magicline", "api_key": "ml-demo-openapi-2002"}},
    ],
    "egym": [
        {"id": "gym-berlin-01", "webhook_secrets": ["egym-demo-secret-berlin", "egym-demo-secret-berlin-old"],
         "api": {"base_url": "http://127.0.0.1:9/egym", "api_key": "egym-demo-api-berlin"}},
        {"id": "gym-hamburg-02", "webhook_secrets": ["egym-demo-secret-hamburg"],
         "api": {"base_url": "http://127.0.0.1:9/egym", "api_key": "egym-demo-api-hamburg"}},
    ],
    "timify": [
        {"id": "app-berlin", "header": "X-Timify-Secret",
         "webhook_secrets": ["timify-demo-secret-berlin-new", "timify-demo-secret-berlin-old"],
         "api": {"base_url": "http://127.0.0.1:9/timify", "api_key": "timify-demo-token-berlin"}},
        {"id": "app-munich", "header": "X-Webhook-Token", "webhook_secrets": ["timify-demo-secret-munich"],
         "api": {"base_url": "http://127.0.0.1:9/timify", "api_key": "timify-demo-token-munich"}},
    ],
    "flybuy": [
        {"id": "project-41", "webhook_secrets": ["FBDEMO41TOKEN", "FBDEMO41OLDTOKEN"],
         "api": {"base_url": "http://127.0.0.1:9/flybuy", "api_key": "flybuy-demo-api-41"}},
        {"id": "project-42", "webhook_secrets": ["FBDEMO42TOKEN"],
         "api": {"base_url": "http://127.0.0.1:9/flybuy", "api_key": "flybuy-demo-api-42"}},
    ],
    "waitwhile": [
        {"id": "loc-downtown", "url": f"{PUBLIC}/webhooks/waitwhile?tenant=loc-downtown",
         "webhook_secrets": ["ww-demo-secret-downtown"],
         "api": {"base_url": "http://127.0.0.1:9/waitwhile", "api_key": "ww-demo-api-downtown"}},
        {"id": "acct-main", "url": f"{PUBLIC}/webhooks/waitwhile",
         "webhook_secrets": ["ww-demo-secret-account-new", "ww-demo-secret-account-old"],
         "api": {"base_url": "http://127.0.0.1:9/waitwhile", "api_key": "ww-demo-api-account"}},
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
    yield ("egym", "rotated-old-secret.json",
           api_gateway_event("egym", egym(account, "GYM_CHECKIN", TIME_EPOCH + 1000), {"x-api-key": key_of("egym", 0, 1)}),
           202, "The gym's previous secret still works during rotation")
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


def timify(event, object_id, updated_at, extra=None):
    data = {"id": object_id, "updatedAt": updated_at}
    data.update(extra or {})
    return json.dumps({"event": event, "companyId": "company-5f1e", "data": data})


def flybuy(order_id, state, customer_state, updated_at, **extra):
    data = {
        "type": "order", "id": order_id, "arrived_at": None, "customer_state": customer_state,
        "eta_at": "2026-11-25T17:15:33.645Z", "partner_identifier": "24667", "state": state,
        "redemption_code": "NNSE9J", "created_at": "2026-11-25T17:14:50.941Z", "updated_at": updated_at,
        "area_name": None, "customer_id": 135, "site_id": 43, "site_partner_identifier": "",
        "customer_name": "Demo Customer", "customer_car_type": "Demo Hatchback", "customer_car_color": "Red",
        "customer_license_plate": "DEMO-123", "pickup_window": None,
        "customer_state_changed": False, "state_changed": False,
    }
    data.update(extra)
    return json.dumps({"data": data})


def waitwhile(event_type, object_id, updated, data=None):
    body = {"id": "evt-" + object_id + "-" + event_type.replace(".", "-"), "created": updated,
            "accountId": "acct-demo-0001", "type": event_type,
            "data": {"id": object_id, "updated": updated, **(data or {})}}
    return json.dumps(body, ensure_ascii=False)


def sign(secret, url, body):
    return base64.b64encode(hmac.new(secret.encode(), (url + body).encode(), hashlib.sha256).digest()).decode()


def waitwhile_event(body, tenant=0, secret=0, signed_url=None, signed_body=None, headers=None):
    t = TENANTS["waitwhile"][tenant]
    url = t["url"]
    query = url.split("?", 1)[1] if "?" in url else ""
    signature = sign(t["webhook_secrets"][secret], signed_url or url, signed_body if signed_body is not None else body)
    h = {"x-waitwhile-signature": signature} if headers is None else headers
    return api_gateway_event("waitwhile", body, h, query=query)


def more_cases():
    berlin = lambda: {"x-timify-secret": key_of("timify")}
    for n, (name, event, what) in enumerate([
        ("customers-created", "customers.created", "Customers webhook: a customer was created"),
        ("customers-updated", "customers.updated", "Customers webhook: a customer was updated"),
        ("customers-deleted", "customers.deleted", "Customers webhook: a customer was deleted (the processor erases our copy)"),
        ("event-created", "event.created", "Event webhook: a booking was created"),
        ("events-deleted", "events.deleted", "Events webhook (Deleted)"),
        ("services-updated", "services.updated", "Services webhook"),
        ("resource-created", "resource.created", "Resource webhook"),
        ("company-updated", "company.updated", "Company webhook"),
        ("manager-created", "manager.created", "Manager webhook"),
        ("enterprise-updated", "enterprise.updated", "Enterprise webhook (Updated)"),
        ("customer-fields-created", "customerFields.created", "Customer Fields webhook"),
        ("shift-deleted", "shift.deleted", "Shift webhook"),
        ("notification-created", "notification.created", "Notification webhook (Created)"),
        ("service-groups-updated", "serviceGroups.updated", "Service Groups webhook"),
        ("sync-before-confirmations", "beforeConfirmations.sync", "Sync webhook Before Confirmations: answered 200 {} on the fast path, still stored and queued"),
        ("sync-before-reminders", "beforeReminders.sync", "Sync webhook Before Reminders: answered 200 {} on the fast path, still stored and queued"),
    ]):
        object_id = "cust-4711" if name.startswith("customers") else "obj-" + name
        body = timify(event, object_id, "2026-11-25T18:%02d:00.000Z" % n)
        yield ("timify", name + ".json", api_gateway_event("timify", body, berlin()), 200, what)
    yield ("timify", "second-app-own-header.json",
           api_gateway_event("timify", timify("customers.created", "c-2", "2026-11-25T18:01:00Z"),
                             {"x-webhook-token": key_of("timify", 1)}),
           200, "app-munich's subscription uses its own header name")
    yield ("timify", "rotated-old-secret.json",
           api_gateway_event("timify", timify("customers.updated", "c-3", "2026-11-25T18:02:00Z"),
                             {"x-timify-secret": key_of("timify", 0, 1)}),
           200, "The previous secret still works during rotation")
    good = timify("customers.created", "c-bad", "2026-11-25T18:03:00Z")
    yield ("timify", "bad-missing-credential.json", api_gateway_event("timify", good, {}), 401,
           "No custom header (no tenant allows unauthenticated webhooks)")
    yield ("timify", "bad-wrong-credential.json",
           api_gateway_event("timify", good, {"x-timify-secret": "timify-demo-secret-unknown"}), 401, "A secret no app has")
    yield ("timify", "bad-other-tenant-credential.json",
           api_gateway_event("timify", good, {"x-timify-secret": key_of("timify", 1)}), 401,
           "app-munich's secret in app-berlin's header")
    yield ("timify", "bad-other-provider-credential.json",
           api_gateway_event("timify", good, {"x-timify-secret": key_of("egym")}), 401, "An EGYM key")
    yield ("timify", "bad-malformed-json.json",
           api_gateway_event("timify", '{"event": "customers.created", "data": {', berlin()), 400, "Truncated JSON")
    yield ("timify", "bad-missing-object-id.json",
           api_gateway_event("timify", json.dumps({"event": "customers.created", "data": {}}), berlin()), 400,
           "No object id at the configured pointer (/data/id); the answer names it")

    p41 = lambda: {"authorization": 'Token token="%s"' % key_of("flybuy")}
    for n, (name, state, customer_state, what) in enumerate([
        ("order-created", "created", "created", "Order created"),
        ("order-ready", "ready", "en_route", "Order ready for pickup"),
        ("order-delayed", "delayed", "en_route", "Order delayed"),
        ("order-completed", "completed", "completed", "Order completed"),
        ("order-cancelled", "cancelled", "created", "Order cancelled"),
        ("customer-en-route", "ready", "en_route", "Customer on the way"),
        ("customer-nearby", "ready", "nearby", "Customer nearby"),
        ("customer-arrived", "ready", "arrived", "Customer arrived on site"),
        ("customer-waiting", "ready", "waiting", "Customer waiting"),
        ("customer-departed", "completed", "departed", "Customer departed"),
    ]):
        updated = "2026-11-25T17:%02d:20.442Z" % n
        body = flybuy(187, state, customer_state, updated, customer_state_changed=name.startswith("customer"),
                      state_changed=name.startswith("order"))
        yield ("flybuy", name + ".json", api_gateway_event("flybuy", body, p41()), 202, what)
    yield ("flybuy", "scheme-case-and-spaces.json",
           api_gateway_event("flybuy", flybuy(188, "ready", "nearby", "2026-11-25T17:59:00.000Z"),
                             {"authorization": '  TOKEN token="%s" ' % key_of("flybuy", 1)}),
           202, "Scheme in capitals and surrounding spaces are tolerated; the token picks project-42")
    yield ("flybuy", "rotated-old-token.json",
           api_gateway_event("flybuy", flybuy(187, "ready", "waiting", "2026-11-25T17:59:30.000Z"),
                             {"authorization": 'Token token="%s"' % key_of("flybuy", 0, 1)}),
           202, "The project's previous token still works during rotation")
    yield ("flybuy", "unknown-fields.json",
           api_gateway_event("flybuy", flybuy(189, "ready", "arrived", "2026-11-25T17:58:00.000Z",
                                               spot_identifier="B7", new_nested={"x": 1}), p41()),
           202, "Fields FlyBuy added later are accepted and stored")
    good = flybuy(190, "ready", "nearby", "2026-11-25T17:57:00.000Z")
    yield ("flybuy", "bad-missing-credential.json", api_gateway_event("flybuy", good, {}), 401,
           "No Authorization header (no project allows unauthenticated webhooks)")
    yield ("flybuy", "bad-wrong-credential.json",
           api_gateway_event("flybuy", good, {"authorization": 'Token token="NOPE0000"'}), 401, "A token no project has")
    yield ("flybuy", "bad-unquoted-token.json",
           api_gateway_event("flybuy", good, {"authorization": "Token token=%s" % key_of("flybuy")}), 401,
           "The right token without the required quotes")
    yield ("flybuy", "bad-other-tenant-credential.json",
           api_gateway_event("flybuy", good, {"authorization": 'Token token="%s"' % key_of("flybuy", 1)},
                             query="tenant=project-41"),
           401, "URL registered for project-41, token of project-42")
    yield ("flybuy", "bad-other-provider-credential.json",
           api_gateway_event("flybuy", good, {"authorization": 'Token token="%s"' % key_of("magicline")}), 401,
           "A Magicline key in FlyBuy's format")
    yield ("flybuy", "bad-malformed-json.json",
           api_gateway_event("flybuy", '{"data": {"type": "order", "id": 1,', p41()), 400, "Truncated JSON")
    yield ("flybuy", "bad-missing-updated-at.json",
           api_gateway_event("flybuy", json.dumps({"data": {"type": "order", "id": 191, "state": "ready"}}), p41()),
           400, "Required field data.updated_at is missing; the answer names it")

    for n, (event_type, object_id, data, what) in enumerate([
        ("visit.created", "Kk1BeidF0N4p8wzp2J0x", {"locationId": "loc-downtown", "state": "WAITING", "firstName": "Demo", "partySize": 1}, "A guest joined the waitlist"),
        ("visit.updated", "Kk1BeidF0N4p8wzp2J0x", {"locationId": "loc-downtown", "state": "SERVING"}, "A visit changed state"),
        ("visit.removed", "Kk1BeidF0N4p8wzp2J0x", {"locationId": "loc-downtown", "state": "REMOVED"}, "A visit deleted via the API (the processor erases our copy)"),
        ("location-status.updated", "loc-downtown", {"numWaiting": 4}, "Location status changed"),
        ("message.created", "msg-0001", {"visitId": "Kk1BeidF0N4p8wzp2J0x", "channel": "SMS", "text": "Grüße! Ihr Tisch ist bereit — 你好 🎉"}, "An SMS was created; non-ASCII text is signed byte for byte"),
        ("message.updated", "msg-0001", {"deliveryStatus": "DELIVERED"}, "The SMS was delivered"),
        ("location.created", "loc-uptown", {"name": "Uptown"}, "API-only event: a location was created"),
        ("location.updated", "loc-uptown", {"name": "Uptown (renamed)"}, "API-only event: a location was updated"),
        ("location.removed", "loc-uptown", {}, "API-only event: a location was removed"),
    ]):
        name = event_type.replace(".", "-") + ".json"
        body = waitwhile(event_type, object_id, "2026-11-25T18:%02d:11.638Z" % n, data)
        yield ("waitwhile", name, waitwhile_event(body), 202, what + " (location webhook, ?tenant=loc-downtown)")
    acct = waitwhile("visit.created", "9QvKDkhrXIxNLdS9xMkf", "2026-11-25T18:30:00.000Z", {"state": "BOOKED"})
    yield ("waitwhile", "account-webhook.json", waitwhile_event(acct, tenant=1), 202,
           "Account-wide webhook: the tenant is found by trying each registered URL")
    yield ("waitwhile", "rotated-old-secret.json",
           waitwhile_event(waitwhile("visit.updated", "9QvKDkhrXIxNLdS9xMkf", "2026-11-25T18:31:00.000Z"), tenant=1, secret=1),
           202, "The previous secret still works during rotation")
    good = waitwhile("visit.updated", "bad0", "2026-11-25T18:40:00.000Z")
    yield ("waitwhile", "bad-missing-signature.json", waitwhile_event(good, headers={}), 401, "No X-Waitwhile-Signature")
    yield ("waitwhile", "bad-wrong-secret.json",
           api_gateway_event("waitwhile", good, {"x-waitwhile-signature": sign("ww-not-a-secret", TENANTS["waitwhile"][0]["url"], good)},
                             query="tenant=loc-downtown"),
           401, "Signed with a secret no webhook has")
    yield ("waitwhile", "bad-other-tenant-secret.json",
           api_gateway_event("waitwhile", good, {"x-waitwhile-signature": sign(key_of("waitwhile", 1), TENANTS["waitwhile"][0]["url"], good)},
                             query="tenant=loc-downtown"),
           401, "loc-downtown's URL signed with the account webhook's secret")
    yield ("waitwhile", "bad-other-provider-credential.json",
           waitwhile_event(good, headers={"x-api-key": key_of("magicline")}), 401, "A Magicline key instead of a signature")
    yield ("waitwhile", "bad-signature-other-url.json",
           waitwhile_event(good, signed_url=PUBLIC + "/webhooks/other"), 401, "Signature computed over a different URL")
    yield ("waitwhile", "bad-tampered-body.json",
           waitwhile_event(good.replace("bad0", "bad1"), signed_body=good), 401, "Body changed after signing")
    yield ("waitwhile", "bad-malformed-json.json", waitwhile_event('{"type": "visit.created", "data": {'), 400,
           "Correctly signed, but truncated JSON")
    yield ("waitwhile", "bad-missing-object-id.json",
           waitwhile_event(json.dumps({"type": "visit.created", "data": {"state": "WAITING"}})), 400,
           "Correctly signed, but no object id at /data/id; the answer names it")


def dedup_key(provider, tenant, body):
    """The key the webhook function stores, derived independently of the Rust code."""
    b = json.loads(body)
    parts = {
        "magicline": lambda: [b["uuid"]],
        "egym": lambda: [b["accountId"], b["type"], str(b["timestamp"])],
        "timify": lambda: [b["event"], b["data"]["id"], b["data"]["updatedAt"]],
        "flybuy": lambda: [b["data"]["type"], str(b["data"]["id"]), b["data"]["updated_at"]],
        "waitwhile": lambda: [b["type"], b["data"]["id"], b["data"]["updated"]],
    }[provider]()
    return "#".join([provider, tenant, *parts])


def entity_of(provider, body):
    b = json.loads(body)
    return {
        "magicline": lambda: str(b["entityId"]),
        "egym": lambda: b["accountId"],
        "timify": lambda: b["data"]["id"],
        "flybuy": lambda: str(b["data"]["id"]),
        "waitwhile": lambda: b["data"]["id"],
    }[provider]()


def event_type_of(provider, body):
    b = json.loads(body)
    return {
        "magicline": lambda: b["payload"][0]["type"],
        "egym": lambda: b["type"],
        "timify": lambda: b["event"],
        "flybuy": lambda: b["data"]["type"],
        "waitwhile": lambda: b["type"],
    }[provider]()


def sqs_record(message_id, file, tenant, written):
    provider = file.split("/")[0]
    body = written[file]["body"]
    message = {"provider": provider, "tenant": tenant, "key": dedup_key(provider, tenant, body),
               "event_type": event_type_of(provider, body), "entity_id": entity_of(provider, body)}
    return {
        "messageId": message_id,
        "receiptHandle": "AQEB" + message_id.replace("-", "") + "demo-receipt-handle",
        "body": json.dumps(message),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(TIME_EPOCH),
                       "SenderId": "AROAEXAMPLE:magicline-webhook", "ApproximateFirstReceiveTimestamp": str(TIME_EPOCH + 40)},
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(json.dumps(message).encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-central-1:123456789012:webhooks-WorkQueue",
        "awsRegion": "eu-central-1",
    }


ONE_PER_PROVIDER = [
    ("magicline/customer-created.json", "studio-1001"),
    ("egym/gym-checkin.json", "gym-berlin-01"),
    ("timify/customers-created.json", "app-berlin"),
    ("flybuy/order-created.json", "project-41"),
    ("waitwhile/visit-created.json", "loc-downtown"),
]


def processor_cases(written):
    """(file name, SQS event, webhook files delivered first, message ids expected to fail, what)"""
    for n, (file, tenant) in enumerate(ONE_PER_PROVIDER):
        provider = file.split("/")[0]
        mid = "0a1b2c3d-0000-4000-8000-00000000000%d" % n
        yield (provider + ".json", {"Records": [sqs_record(mid, file, tenant, written)]}, [file], [],
               f"One {provider} event: its detail is fetched and stored")
    records = [sqs_record("5e6f7a8b-0000-4000-8000-00000000001%d" % n, f, t, written)
               for n, (f, t) in enumerate(ONE_PER_PROVIDER)]
    yield ("mixed-batch.json", {"Records": records}, [f for f, _ in ONE_PER_PROVIDER], [],
           "A batch with one event of every provider")
    orphan = sqs_record("9f8e7d6c-0000-4000-8000-000000000099", "egym/gym-checkout.json", "gym-berlin-01", written)
    kept = sqs_record("9f8e7d6c-0000-4000-8000-000000000001", "flybuy/order-ready.json", "project-41", written)
    yield ("missing-record.json", {"Records": [kept, orphan]}, ["flybuy/order-ready.json"],
           [orphan["messageId"]],
           "A message whose record does not exist is reported failed (retried, then dead-lettered); the other is processed")


def devserver_toml():
    """The dev server's configuration: the same demo tenants, their API pointed at its sandbox."""
    lines = [
        "# Demo tenants of the local dev server (`cargo run --release -p devserver`). Every key here",
        "# is made up and the same as in events/env.json, so any file under events/ can be sent to",
        "# the server with `devserver send`. `{sandbox}` is the server's own sandbox of the provider",
        "# APIs (made-up fixture data); put a provider's real API base URL and key here to use it.",
        "# Written by scripts/make_events.py.",
    ]
    q = json.dumps
    for provider, tenants in TENANTS.items():
        for tenant in tenants:
            lines += ["", f"[[{provider}.tenants]]", f"id = {q(tenant['id'])}"]
            lines.append("webhook_secrets = [" + ", ".join(q(x) for x in tenant["webhook_secrets"]) + "]")
            for field in ("header", "url"):
                if field in tenant:
                    lines.append(f"{field} = {q(tenant[field])}")
            api = tenant["api"]
            base = api["base_url"].replace("http://127.0.0.1:9", "{sandbox}")
            lines.append(f"api = {{ base_url = {q(base)}, api_key = {q(api['api_key'])} }}")
    return "\n".join(lines) + "\n"


def function_id(provider):
    return provider.capitalize() + "WebhookFunction"


def main():
    manifest = {}
    written = {}
    for provider, name, event, status, what in [*cases(), *more_cases()]:
        folder = EVENTS / provider
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(json.dumps(event, indent=2, ensure_ascii=False) + "\n")
        manifest[f"{provider}/{name}"] = {"status": status, "shows": what}
        written[f"{provider}/{name}"] = event
    folder = EVENTS / "processor"
    folder.mkdir(parents=True, exist_ok=True)
    for name, event, after, failed, what in processor_cases(written):
        (folder / name).write_text(json.dumps(event, indent=2, ensure_ascii=False) + "\n")
        manifest[f"processor/{name}"] = {"after": after, "failed": failed, "shows": what}
    (EVENTS / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    env = {
        function_id(provider): {"TENANTS_JSON": json.dumps({"tenants": tenants})}
        for provider, tenants in TENANTS.items()
    }
    env["ProcessorFunction"] = {
        provider.upper() + "_TENANTS_JSON": json.dumps({"tenants": tenants})
        for provider, tenants in TENANTS.items()
    }
    (EVENTS / "env.json").write_text(json.dumps(env, indent=2) + "\n")
    (ROOT / "devserver.toml").write_text(devserver_toml())


if __name__ == "__main__":
    main()
