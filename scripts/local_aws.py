"""Local AWS wire endpoint (moto: DynamoDB, SQS, Secrets Manager, EventBridge), single-threaded,
plus what scripts/local-aws adds on it: template.yaml's stack and a sandbox of the provider APIs.

Real DynamoDB serialises conditional writes per item; moto's stock threaded server does not,
so two concurrent conditional puts could both succeed. One request at a time keeps the tests honest.

Usage: local_aws.py HOST PORT   (the bare endpoint, as scripts/test runs it; empty, nothing created)
The command for `sam local` is scripts/local-aws, which uses this module.
"""

import json
import os
import pathlib
import re
import secrets
import subprocess
import sys
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
REQUIREMENTS = ROOT / "scripts" / "requirements-test.txt"
sys.path.insert(0, str(ROOT / "scripts"))

SANDBOX_PREFIX = "/_sandbox/"
STATUS_PATH = "/_local/"


# ---------------------------------------------------------------------------------------------
# The endpoint
# ---------------------------------------------------------------------------------------------

def ensure_venv(script):
    """Runs `script` again under the project's venv (made as scripts/test makes it, if need
    be), unless this is that venv's Python."""
    if pathlib.Path(sys.prefix).resolve() == VENV.resolve():
        return
    installed = VENV / "requirements.installed"
    if not (VENV / "bin" / "python").exists() or not installed.exists() \
            or installed.read_bytes() != REQUIREMENTS.read_bytes():
        print("==> installing the local AWS endpoint into .venv", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
                        "-r", str(REQUIREMENTS)], check=True)
        installed.write_bytes(REQUIREMENTS.read_bytes())
    os.execv(str(VENV / "bin" / "python"), [str(VENV / "bin" / "python"), script, *sys.argv[1:]])


def moto_app():
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    return DomainDispatcherApplication(create_backend_app)


def application(sandbox, status):
    """moto, except `/_sandbox/<provider>/…` (the sandbox) and `/_local/` (what was created)."""
    moto = moto_app()

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith(SANDBOX_PREFIX):
            return sandbox(environ, start_response)
        if path == STATUS_PATH:
            ready = status.get("ready", False)
            body = json.dumps(status, indent=2).encode()
            start_response("200 OK" if ready else "503 Service Unavailable",
                           [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        return moto(environ, start_response)

    return app


def sam_region(command="local_invoke"):
    """The region `sam local` gives the functions (AWS_REGION) when no --region is passed:
    samconfig.toml's (the command's section, then global), else the AWS CLI configuration's,
    else us-east-1. The local stack must be in it: the endpoint keeps each region apart."""
    config = ROOT / "samconfig.toml"
    if config.exists():
        import tomllib

        default = tomllib.loads(config.read_text(encoding="utf-8")).get("default", {})
        for section in (command, "global"):
            region = default.get(section, {}).get("parameters", {}).get("region")
            if region:
                return region
    try:
        import boto3

        region = boto3.session.Session().region_name
    except Exception:  # noqa: BLE001 (no usable AWS configuration: SAM's default)
        region = None
    return region or "us-east-1"


def reset(endpoint):
    """Forgets every table, queue, secret and bus (moto's reset)."""
    request = urllib.request.Request(endpoint.rstrip("/") + "/moto-api/reset", data=b"", method="POST")
    urllib.request.urlopen(request, timeout=10).close()


# ---------------------------------------------------------------------------------------------
# template.yaml's stack on the endpoint
# ---------------------------------------------------------------------------------------------

def clients(endpoint, region):
    import boto3

    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test",
                                    region_name=region)
    return {service: session.client(service, endpoint_url=endpoint)
            for service in ("dynamodb", "sqs", "secretsmanager", "events")}


def _attribute_text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def tenant_secrets(template, kits, sandbox_url):
    """{secret logical id: tenants document}: each provider's tenants secret (named by a
    function's `<PROVIDER>_TENANTS_SECRET_ID`, or `TENANTS_SECRET_ID` of the function on
    /webhooks/<provider>) holds the kit's demo tenants with their API at the sandbox."""
    import cfn
    from make_events import tenants_at

    by_function = {function: path.rsplit("/", 1)[-1] for (_, path), function in cfn.routes(template).items()}
    owners = {}
    for function in cfn.functions(template):
        for name, value in cfn.declared_variables(template, function).items():
            match = re.fullmatch(r"(?:([A-Z0-9]+)_)?TENANTS_SECRET_ID", name)
            if not match or not isinstance(value, dict) or "Ref" not in value:
                continue
            provider = match.group(1).lower() if match.group(1) else by_function.get(function)
            if provider in kits:
                owners[value["Ref"]] = provider
    return {secret: json.dumps({"tenants": tenants_at(kits[provider], provider, sandbox_url)})
            for secret, provider in owners.items()}


def create_stack(endpoint, container_url, region=None, template=None, aws=None):
    """Creates on the endpoint at `endpoint` every table, queue, secret and event bus of
    template.yaml as it declares them, each named by its logical id (`container_url`: where a
    Lambda container reaches the endpoint, for queue URLs and the tenants' API). Returns what
    was created: {logical id: name or URL}. `aws` (from `clients()`) saves making clients."""
    import cfn
    from make_events import load_kits

    template = template or cfn.load()
    region = region or cfn.REGION
    stack = cfn.LocalStack(template, container_url, region)
    aws = aws or clients(endpoint, region)
    created = {}
    served = {name: (resource["Type"], stack.resolve(resource.get("Properties", {})))
              for name, resource in stack.served().items()}

    for name, (kind, props) in served.items():
        if kind != "AWS::DynamoDB::Table":
            continue
        wanted = ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "LocalSecondaryIndexes",
                  "BillingMode", "ProvisionedThroughput", "StreamSpecification")
        aws["dynamodb"].create_table(TableName=name, **{key: props[key] for key in wanted if key in props})
        if "TimeToLiveSpecification" in props:
            aws["dynamodb"].update_time_to_live(TableName=name,
                                                TimeToLiveSpecification=props["TimeToLiveSpecification"])
        created[name] = stack.ref(name)

    # Queues first without their redrive policies, which name other queues' ARNs.
    later = {}
    for name, (kind, props) in served.items():
        if kind != "AWS::SQS::Queue":
            continue
        attributes = {key: _attribute_text(value) for key, value in props.items()
                      if key not in ("QueueName", "Tags", "RedrivePolicy", "RedriveAllowPolicy")}
        aws["sqs"].create_queue(QueueName=name, Attributes=attributes)
        later[name] = {key: _attribute_text(props[key]) for key in ("RedrivePolicy", "RedriveAllowPolicy")
                       if key in props}
        created[name] = stack.ref(name)
    for name, attributes in later.items():
        if attributes:
            url = aws["sqs"].get_queue_url(QueueName=name)["QueueUrl"]
            aws["sqs"].set_queue_attributes(QueueUrl=url, Attributes=attributes)

    documents = tenant_secrets(template, load_kits(), container_url.rstrip("/") + SANDBOX_PREFIX.rstrip("/"))
    for name, (kind, props) in served.items():
        if kind == "AWS::SecretsManager::Secret":
            text = documents.get(name, props.get("SecretString", "{}"))
            aws["secretsmanager"].create_secret(Name=name, SecretString=text)
            created[name] = name
        elif kind == "AWS::Events::EventBus":
            aws["events"].create_event_bus(Name=name)
            created[name] = name
    return created


# ---------------------------------------------------------------------------------------------
# The provider-API sandbox: each kit's documented routes and token exchange, lenient about
# credentials (any non-empty value of the documented shape; tokens must be ones it issued),
# answering the made-up fixtures marked "sandbox": true. (testkit's ApiDouble, which the tests
# and the dev server's sandbox use, is strict: only the configured tenants' credentials.)
# ---------------------------------------------------------------------------------------------

_NAME = re.compile(r"\{([A-Za-z0-9_]+)\}")


def _parts(text):
    """[("literal", text) | ("name", name)], adjacent literals merged."""
    parts, position = [], 0
    for match in _NAME.finditer(text):
        if match.start() > position:
            parts.append(("literal", text[position:match.start()]))
        parts.append(("name", match.group(1)))
        position = match.end()
    if position < len(text):
        parts.append(("literal", text[position:]))
    return parts


def capture(template, value):
    """[(name, value)] if `value` is `template` with each placeholder a non-empty text."""
    parts, rest, captured = _parts(template), value, []
    for index, (kind, text) in enumerate(parts):
        if kind == "literal":
            if not rest.startswith(text):
                return None
            rest = rest[len(text):]
            continue
        following = parts[index + 1] if index + 1 < len(parts) else None
        if following is None:
            taken = rest
        elif following[0] == "name":
            return None
        elif index + 2 == len(parts):
            if not rest.endswith(following[1]):
                return None
            taken = rest[:len(rest) - len(following[1])]
        else:
            at = rest.find(following[1])
            if at < 0:
                return None
            taken = rest[:at]
        if not taken:
            return None
        captured.append((text, taken))
        rest = rest[len(taken):]
    return captured if not rest else None


def fill_value(template, values):
    if isinstance(template, str):
        parts = _parts(template)
        filled = "".join(values.get(text, "{" + text + "}") if kind == "name" else text for kind, text in parts)
        if len(parts) == 1 and parts[0][0] == "name" and filled.isdigit():
            return int(filled)
        return filled
    if isinstance(template, list):
        return [fill_value(item, values) for item in template]
    if isinstance(template, dict):
        return {key: fill_value(item, values) for key, item in template.items()}
    return template


def matches_value(template, got, accept):
    if isinstance(template, dict) and isinstance(got, dict):
        return len(template) == len(got) and all(
            key in got and matches_value(item, got[key], accept) for key, item in template.items())
    if isinstance(template, str) and isinstance(got, str):
        captured = capture(template, got)
        return captured is not None and all(accept(name, value) for name, value in captured)
    return template == got


class Sandbox:
    def __init__(self, kits):
        self.apis = {provider: kit["api"] for provider, kit in kits.items()}
        self.tokens = {}

    def answer(self, provider, method, path, query, header, body):
        api = self.apis.get(provider)
        if api is None:
            return 404, {"error": "no such provider API"}
        exchange = api.get("token")
        if exchange and exchange["method"].upper() == method and exchange["path"] == path and not query:
            try:
                presented = json.loads(body or b"null")
            except ValueError:
                return 400, {"error": "the token request is not JSON"}
            if not matches_value(exchange["body"], presented, lambda name, value: True):
                return 401, {"error": "unknown app credentials"}
            token, refresh = secrets.token_hex(20), secrets.token_hex(20)
            self.tokens[token] = provider
            return 200, fill_value(exchange["answer"], {"token": token, "refresh_token": refresh})
        found = []
        for route in api["routes"]:
            if route["method"].upper() != method:
                continue
            captured = self._route_captures(route, path, query)
            if captured is not None:
                literal = sum(1 for segment in route["path"].split("/") if "{" not in segment)
                found.append((literal, route, captured))
        if not found:
            return 404, {"error": "not found"}
        _, route, captured = max(found, key=lambda item: item[0])

        def accept(name, value):
            return self.tokens.get(value) == provider if name == "token" else True

        for name, template in api["headers"].items():
            value = header(name)
            if value is None or not matches_value(template, value, accept):
                return 401, {"error": "unauthorized"}
        return 200, fill_value(route["answer"], dict(captured))

    @staticmethod
    def _route_captures(route, path, query):
        expected, actual = route["path"].split("/"), path.split("/")
        if len(expected) != len(actual):
            return None
        captured = []
        for template, segment in zip(expected, actual):
            got = capture(template, segment)
            if got is None:
                return None
            captured += got
        pairs = dict(pair.split("=", 1) if "=" in pair else (pair, "") for pair in query.split("&") if pair)
        wanted = route.get("query", {})
        if len(pairs) != len(wanted):
            return None
        for name, template in wanted.items():
            got = capture(template, pairs[name]) if name in pairs else None
            if got is None:
                return None
            captured += got
        return captured

    def __call__(self, environ, start_response):
        provider, _, rest = environ["PATH_INFO"][len(SANDBOX_PREFIX):].partition("/")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        status, answer = self.answer(
            provider, environ["REQUEST_METHOD"].upper(), "/" + rest, environ.get("QUERY_STRING", ""),
            lambda name: environ.get("HTTP_" + name.upper().replace("-", "_")), body)
        if isinstance(answer, dict):
            answer["sandbox"] = True
        text = json.dumps(answer).encode()
        reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}[status]
        start_response(f"{status} {reason}", [("Content-Type", "application/json"),
                                              ("Content-Length", str(len(text)))])
        return [text]


def main() -> None:
    from werkzeug.serving import run_simple

    host, port = sys.argv[1], int(sys.argv[2])
    run_simple(host, port, moto_app(), threaded=False, use_reloader=False, use_debugger=False)


if __name__ == "__main__":
    main()
