#!/usr/bin/env python3
"""Writes the per-provider parts of template.yaml from the provider test kits
(shared/testkit/data/<provider>.json, their `template` texts): each provider's secrets, log
group, role and function with its route; the keys the sweeper may update; the processor's
secrets and their variables; the alarms over every provider or function; the function lines
of the dashboard and its alarm list; the URL and secret outputs.

Each part sits between `# >>> <part>` and `# <<< <part>` in template.yaml (the dashboard's
lines inside its body are found by their form instead); everything outside them is written
by hand and kept as it is. This file holds no provider's data and never branches on a
provider's name. `--check` writes nothing; it says whether template.yaml differs from what it
would write and exits non-zero if so. `--root DIR` works on DIR's template.yaml and kits.
"""

import argparse
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent

# An alarm's metric math takes at most 10 metrics.
METRICS_PER_ALARM = 10
BEGIN = "# >>> {part} (scripts/make_template.py writes this part from the provider test kits)"
END = "# <<< {part}"


class Provider:
    def __init__(self, name, kit):
        texts = kit["template"]
        self.name = name  # magicline
        self.title = texts["title"]  # Magicline
        self.resource = name[:1].upper() + name[1:]  # Magicline (CloudFormation ids)
        self.env = name.upper()  # MAGICLINE (the processor's variables)
        self.tenant_example = texts["tenant_example"]
        self.auth = texts["auth"]
        self.register = texts["register"]


def load_providers(root):
    data = root / "shared" / "testkit" / "data"
    kits = {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in data.glob("*.json")}
    ordered = sorted(kits.items(), key=lambda item: item[1]["order"])
    return [Provider(name, kit) for name, kit in ordered]


def quoted(text):
    return json.dumps(text, ensure_ascii=False)


def folded(text, indent, width=100):
    """`text` as the lines of a folded scalar (`>`), each at most `width` wide where words allow."""
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(indent) + len(line) + 1 + len(word) > width:
            lines.append(indent + line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(indent + line)
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The parts
# ---------------------------------------------------------------------------------------------

def resources(p):
    heading = f"  # ---- {p.title} "
    tenants = (f'{p.title} tenants: {{"tenants": [{p.tenant_example}]}} (API access: '
               f"{p.resource}ApiSecret). Set the value after deploy.")
    return f"""{heading + "-" * max(4, 96 - len(heading))}
  {p.resource}TenantsSecret:
    Type: AWS::SecretsManager::Secret
    Properties:
      Description: >
        {tenants}
      SecretString: '{{"tenants": []}}'
  # Read by the processor only: the webhook functions verify requests and never hold API keys.
  {p.resource}ApiSecret:
    Type: AWS::SecretsManager::Secret
    Properties:
      Description: >
        {p.title} API access, for the processor only: {{"tenants": [{{"id": "<tenant>",
        "api": {{"base_url": "...", "api_key": "..."}}}}]}}. Set the value after deploy.
      SecretString: '{{"tenants": []}}'

  {p.resource}WebhookLogGroup:
    Type: AWS::Logs::LogGroup
    Properties:
      LogGroupName: !Sub "/aws/lambda/${{AWS::StackName}}/{p.name}-webhook"
      RetentionInDays: !Ref LogRetentionDays

  # A role of its own rather than SAM's, whose basic execution policy lets it write to every
  # log group of the account: logs to its own group only.
  {p.resource}WebhookRole:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Principal:
              Service: lambda.amazonaws.com
            Action: sts:AssumeRole
      Policies:
        - PolicyName: {p.name}WebhookFunction
          PolicyDocument:
            Version: "2012-10-17"
            Statement:
              - Effect: Allow
                Action:
                  - logs:CreateLogStream
                  - logs:PutLogEvents
                Resource: !GetAtt {p.resource}WebhookLogGroup.Arn
              # X-Ray active tracing (Globals): the function's segments. X-Ray grants these
              # actions on no narrower resource.
              - Effect: Allow
                Action:
                  - xray:PutTraceSegments
                  - xray:PutTelemetryRecords
                Resource: "*"
              - Effect: Allow
                Action:
                  - dynamodb:GetItem
                  - dynamodb:PutItem
                  - dynamodb:UpdateItem
                Resource: !GetAtt EventsTable.Arn
                Condition:
                  ForAllValues:StringLike:
                    dynamodb:LeadingKeys:
                      - "{p.name}#*"
              - Effect: Allow
                Action:
                  - sqs:SendMessage
                  # The cold start's warm-up call.
                  - sqs:GetQueueAttributes
                Resource: !GetAtt WorkQueue.Arn
              - Effect: Allow
                Action: secretsmanager:GetSecretValue
                Resource: !Ref {p.resource}TenantsSecret

  {p.resource}WebhookFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: rust-cargolambda
      BuildProperties:
        Binary: {p.name}-webhook
    Properties:
      CodeUri: .
      Description: {quoted(f"Receives {p.title} webhooks ({p.auth}).")}
      LoggingConfig:
        LogGroup: !Ref {p.resource}WebhookLogGroup
      Environment:
        Variables:
          TENANTS_SECRET_ID: !Ref {p.resource}TenantsSecret
      Role: !GetAtt {p.resource}WebhookRole.Arn
      Events:
        Webhook:
          Type: HttpApi
          Properties:
            ApiId: !Ref WebhookApi
            Path: /webhooks/{p.name}
            Method: POST
"""


def record_keys(providers):
    return "".join(f'                      - "{p.name}#*"\n' for p in providers)


def processor_secrets(providers):
    return "".join(f"                  - !Ref {p.resource}TenantsSecret\n"
                   f"                  - !Ref {p.resource}ApiSecret\n" for p in providers)


def processor_environment(providers):
    return "".join(f"          {p.env}_TENANTS_SECRET_ID: !Ref {p.resource}TenantsSecret\n"
                   f"          {p.env}_API_SECRET_ID: !Ref {p.resource}ApiSecret\n" for p in providers)


def groups(items, size):
    return [items[start:start + size] for start in range(0, len(items), size)]


def suffixed(name, index):
    return name if index == 0 else f"{name}{index + 1}"


def webhook_count(provider, outcome, index):
    return f"""        - Id: {outcome[0]}{index}
          ReturnData: false
          MetricStat:
            Metric:
              Namespace: !Sub "Webhooks/${{AWS::StackName}}"
              MetricName: Webhooks
              Dimensions:
                - Name: Provider
                  Value: {provider.name}
                - Name: Outcome
                  Value: {outcome}
            Period: 300
            Stat: Sum
"""


def unauthorized_alarms(providers):
    """One provider's deliveries all refused, for 15 minutes: two metrics a provider."""
    out = ["""  # One provider's deliveries all refused: a broken or rotated-away secret in its tenants
  # document makes every delivery a 401 the sender sees and we would not (two metrics a
  # provider; an alarm's metric math takes at most 10, so every five providers get an alarm).
"""]
    for number, group in enumerate(groups(providers, METRICS_PER_ALARM // 2)):
        indexes = range(1, len(group) + 1)
        expression = " + ".join(f"IF(FILL(u{i}, 0) >= 5 AND FILL(a{i}, 0) == 0, 1, 0)" for i in indexes)
        out.append(f"""  {suffixed("UnauthorizedRunAlarm", number)}:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmDescription: >
        For 15 minutes a provider's webhooks were all refused with 401 (5 or more every 5
        minutes, none accepted): its tenants document lacks the secret the provider now sends
        (see docs/configuration.md, rotation), or someone is probing the URL.
      Metrics:
        - Id: refusedrun
          Label: Providers refused throughout
          Expression: >-
            {expression}
""")
        for i, provider in zip(indexes, group):
            out.append(webhook_count(provider, "unauthorized", i))
            out.append(webhook_count(provider, "accepted", i))
        out.append(alarm_end(periods=3))
    return "".join(out)


def alarm_end(periods):
    """An alarm's closing properties: above zero for `periods` periods tells AlarmTopic."""
    return f"""      EvaluationPeriods: {periods}
      Threshold: 0
      ComparisonOperator: GreaterThanThreshold
      TreatMissingData: notBreaching
      AlarmActions:
        - !Ref AlarmTopic

"""


FUNCTION_ALARMS = {
    "Errors": ("FunctionErrorsAlarm", "Errors, all functions", """        A function invocation failed (a crash, a timeout or a start-up error such as a tenants
        document that does not load): see the function's log group.""", "errors", 1),
    "Throttles": ("FunctionThrottlesAlarm", "Throttles, all functions", """        Lambda refused to run a function (the account's or the function's concurrency is used
        up): webhooks got 5xx and will be retried by the provider; queued events wait.""", "throttles", 1),
}


def functions(providers):
    return [f"{p.resource}WebhookFunction" for p in providers] + ["SweeperFunction", "ProcessorFunction"]


def function_alarms(providers):
    out = ["""  # Every function's errors in one alarm, and its throttles in another (an alarm's metric math
  # takes at most 10 metrics: every ten functions get an alarm of each).
"""]
    for metric, (name, label, description, expression_id, periods) in FUNCTION_ALARMS.items():
        for number, group in enumerate(groups(functions(providers), METRICS_PER_ALARM)):
            ids = ", ".join(f"m{i}" for i in range(1, len(group) + 1))
            out.append(f"""  {suffixed(name, number)}:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmDescription: >
{description}
      Metrics:
        - Id: {expression_id}
          Label: {label}
          Expression: SUM([{ids}])
""")
            for i, function in enumerate(group, start=1):
                out.append(f"""        - Id: m{i}
          ReturnData: false
          MetricStat:
            Metric:
              Namespace: AWS/Lambda
              MetricName: {metric}
              Dimensions:
                - Name: FunctionName
                  Value: !Ref {function}
            Period: 60
            Stat: Sum
""")
            out.append(alarm_end(periods))
    return "".join(out)


def webhook_urls(providers):
    return "".join(f"""  {p.resource}WebhookUrl:
    Description: >
{folded(p.register, " " * 6)}
    Value: !If
      - HasDomain
      - !Sub "https://${{DomainName}}/webhooks/{p.name}"
      - !Sub "https://${{WebhookApi}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}/webhooks/{p.name}"
""" for p in providers)


def secret_outputs(providers):
    return "".join(f"""  {p.resource}TenantsSecretArn:
    Description: {p.title}'s tenants document (Secrets Manager).
    Value: !Ref {p.resource}TenantsSecret
  {p.resource}ApiSecretArn:
    Description: {p.title}'s API access document (Secrets Manager).
    Value: !Ref {p.resource}ApiSecret
""" for p in providers)


PARTS = {
    "webhook functions": lambda providers: "\n".join(resources(p) for p in providers),
    "record keys": record_keys,
    "processor secrets": processor_secrets,
    "processor environment": processor_environment,
    "unauthorized alarms": unauthorized_alarms,
    "function alarms": function_alarms,
    "webhook urls": webhook_urls,
    "secret outputs": secret_outputs,
}

# The dashboard's body is one string: its lines per function are found by their form.
DASHBOARD_LINE = re.compile(
    r'^(?P<indent> *)\["AWS/Lambda", "(?P<metric>\w+)", "FunctionName", "\$\{\w+\}", \{"label": "[\w-]+"\}\](?P<end>\]*\}*,?)$')


def dashboard_lines(text, providers):
    """Each run of per-function metric lines rewritten for every function, in the same order."""
    out, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        first = DASHBOARD_LINE.match(lines[i])
        if not first:
            out.append(lines[i])
            i += 1
            continue
        while i < len(lines) and DASHBOARD_LINE.match(lines[i]):
            last = DASHBOARD_LINE.match(lines[i])
            i += 1
        names = functions(providers)
        for n, function in enumerate(names):
            label = function.removesuffix("WebhookFunction").removesuffix("Function").lower()
            end = last["end"] if n == len(names) - 1 else ","
            out.append(f'{first["indent"]}["AWS/Lambda", "{first["metric"]}", "FunctionName", '
                       f'"${{{function}}}", {{"label": "{label}"}}]{end}')
    return "\n".join(out)


def generated_alarms(providers):
    """The alarms the parts above write, by logical id."""
    names = [suffixed("UnauthorizedRunAlarm", n) for n, _ in enumerate(groups(providers, METRICS_PER_ALARM // 2))]
    for name, *_ in FUNCTION_ALARMS.values():
        names += [suffixed(name, n) for n, _ in enumerate(groups(functions(providers), METRICS_PER_ALARM))]
    return names


# The dashboard's alarm widget: every alarm the template has a place for, the generated ones
# among them.
ALARM_LIST = re.compile(r'(?P<head>\n(?P<indent> *)"alarms": \[)(?P<items>[^\]]*)\]')
GENERATED_ALARM = re.compile(r"^(UnauthorizedRunAlarm|FunctionErrorsAlarm|FunctionThrottlesAlarm)\d*$")


def dashboard_alarms(text, providers):
    found = ALARM_LIST.search(text)
    if not found:
        raise SystemExit('template.yaml: the dashboard has no "alarms": [...] widget')
    listed = re.findall(r'"\$\{(\w+)\.Arn\}"', found["items"])
    kept = [name for name in listed if not GENERATED_ALARM.match(name)]
    names = kept + generated_alarms(providers)
    cells = [f'"${{{name}.Arn}}"' for name in names]
    pad = " " * (len(found["indent"]) + len('"alarms": ['))
    rows = [", ".join(cells[i:i + 3]) for i in range(0, len(cells), 3)]
    items = (",\n" + pad).join(rows)
    return text[:found.start("items")] + items + text[found.end("items"):]


def written(text, providers):
    for part, render in PARTS.items():
        begin, end = BEGIN.format(part=part), END.format(part=part)
        found = re.search(rf"^ *{re.escape(begin)}\n(.*?)^ *{re.escape(end)}$", text, re.M | re.S)
        if not found:
            raise SystemExit(f"template.yaml has no `{begin}` … `{end}`")
        text = text[:found.start(1)] + render(providers) + text[found.end(1):]
    return dashboard_alarms(dashboard_lines(text, providers), providers)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; fail if template.yaml differs")
    parser.add_argument("--root", type=pathlib.Path, default=ROOT, help="the project (default: this one)")
    args = parser.parse_args()
    template = args.root / "template.yaml"
    text = template.read_text(encoding="utf-8")
    wanted = written(text, load_providers(args.root))
    if args.check:
        if text != wanted:
            print("template.yaml differs from what scripts/make_template.py writes: run it", file=sys.stderr)
            return 1
        return 0
    if text != wanted:
        template.write_text(wanted, encoding="utf-8")
        print("wrote template.yaml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
