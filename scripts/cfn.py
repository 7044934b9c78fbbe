#!/usr/bin/env python3
"""template.yaml as data, for the scripts and tests that read it (scripts/make_events.py,
scripts/local-aws, scripts/sam-local-check, tests/tests/suite/template.rs).

`load` reads CloudFormation's short tags as the long forms (`!Ref X` -> {"Ref": "X"}, `!GetAtt A.B`
-> {"Fn::GetAtt": ["A", "B"]}, `!Sub s` -> {"Fn::Sub": "s"}, ...), resolving nothing. `LocalStack`
resolves them for the template deployed on the local endpoint (scripts/local-aws): each table,
queue, secret and event bus named by its logical id, parameters at their defaults. Run as a
script, this prints the template (default template.yaml) as JSON.
"""

import json
import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """YAML with CloudFormation's tags (libyaml's parser where PyYAML has it: ten times faster)."""


def _tagged(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "Condition":
        return {"Condition": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {"Fn::" + suffix: value}


_Loader.add_multi_constructor("!", _tagged)


def load(path=TEMPLATE):
    with open(path, encoding="utf-8") as file:
        return yaml.load(file, Loader=_Loader)  # noqa: S506 (a SafeLoader with tags)


def resources(template, kind):
    """{logical id: resource} of one type (`AWS::SQS::Queue`)."""
    return {name: resource for name, resource in template.get("Resources", {}).items()
            if resource.get("Type") == kind}


def functions(template):
    return resources(template, "AWS::Serverless::Function")


def declared_variables(template, function_id):
    """The environment variables the template declares for a function (Globals, then its own)
    with their raw values: all that `sam local --env-vars` may set."""
    declared = dict(
        template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}))
    own = template["Resources"][function_id]["Properties"].get("Environment", {}).get("Variables", {})
    declared.update(own)
    return declared


# Where a Lambda container reaches scripts/local-aws on its default port (Docker's name for the
# host; on Linux `--add-host host.docker.internal:host-gateway` provides it).
CONTAINER_ENDPOINT = "http://host.docker.internal:4566"
REGION = "us-east-1"
ACCOUNT = "123456789012"

# What the local endpoint creates, and what `Ref` / `Fn::GetAtt` give for each (a name is the
# logical id).
SERVED = {
    "AWS::DynamoDB::Table": {
        "Ref": lambda stack, name: name,
        "Arn": lambda stack, name: f"arn:aws:dynamodb:{stack.region}:{stack.account}:table/{name}",
    },
    "AWS::SQS::Queue": {
        "Ref": lambda stack, name: f"{stack.endpoint}/{stack.account}/{name}",
        "Arn": lambda stack, name: f"arn:aws:sqs:{stack.region}:{stack.account}:{name}",
        "QueueName": lambda stack, name: name,
        "QueueUrl": lambda stack, name: f"{stack.endpoint}/{stack.account}/{name}",
    },
    "AWS::SecretsManager::Secret": {
        # An ARN in AWS; the name finds the secret just as well, and is known before creation.
        "Ref": lambda stack, name: name,
    },
    "AWS::Events::EventBus": {
        "Ref": lambda stack, name: name,
        "Name": lambda stack, name: name,
        "Arn": lambda stack, name: f"arn:aws:events:{stack.region}:{stack.account}:event-bus/{name}",
    },
}


class Unresolvable(Exception):
    pass


class LocalStack:
    """The template as deployed on the local endpoint at `endpoint` (as a container reaches it)."""

    def __init__(self, template, endpoint=CONTAINER_ENDPOINT, region=REGION, account=ACCOUNT):
        self.template, self.endpoint = template, endpoint.rstrip("/")
        self.region, self.account = region, account
        self.pseudo = {"AWS::Region": region, "AWS::AccountId": account, "AWS::StackName": "local",
                       "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com", "AWS::NoValue": None}

    def served(self):
        """{logical id: resource} of everything the local endpoint creates."""
        return {name: resource for name, resource in self.template.get("Resources", {}).items()
                if resource.get("Type") in SERVED}

    def _attribute(self, name, attribute):
        resource = self.template.get("Resources", {}).get(name)
        kind = resource and resource.get("Type")
        if kind not in SERVED or attribute not in SERVED[kind]:
            raise Unresolvable(f"{name}.{attribute}: the local endpoint has no {kind or 'such resource'}")
        return SERVED[kind][attribute](self, name)

    def ref(self, name):
        if name in self.pseudo:
            return self.pseudo[name]
        parameter = self.template.get("Parameters", {}).get(name)
        if parameter is not None:
            if "Default" not in parameter:
                raise Unresolvable(f"parameter {name} has no default")
            return parameter["Default"]
        return self._attribute(name, "Ref")

    def condition(self, name):
        return bool(self.resolve(self.template.get("Conditions", {})[name]))

    def resolve(self, value):
        """`value` with every intrinsic function worked out; Unresolvable names what is not."""
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {key: self.resolve(item) for key, item in value.items()}
        (key, arg), = value.items()
        if key == "Ref":
            return self.ref(arg)
        if key == "Condition":
            return self.condition(arg)
        if key == "Fn::GetAtt":
            return self._attribute(*arg)
        if key == "Fn::If":
            name, then, otherwise = arg
            return self.resolve(then if self.condition(name) else otherwise)
        if key == "Fn::Equals":
            left, right = (self.resolve(item) for item in arg)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not self.resolve(arg[0])
        if key == "Fn::And":
            return all(self.resolve(item) for item in arg)
        if key == "Fn::Or":
            return any(self.resolve(item) for item in arg)
        if key == "Fn::Join":
            separator, items = arg
            return separator.join(str(item) for item in self.resolve(items))
        if key == "Fn::Select":
            index, items = arg
            return self.resolve(items)[int(self.resolve(index))]
        if key == "Fn::Sub":
            text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

            def variable(match):
                name = match.group(1)
                if name.startswith("!"):
                    return "${" + name[1:] + "}"
                if name in extra:
                    return str(extra[name])
                if "." in name:
                    return str(self._attribute(*name.split(".", 1)))
                return str(self.ref(name))

            return re.sub(r"\$\{([^}]+)\}", variable, text)
        if key.startswith("Fn::"):
            raise Unresolvable(f"{key} is not resolved locally")
        return {key: self.resolve(arg)}


def references_resources(template, value):
    """True if `value` names a resource (`Ref`, `Fn::GetAtt`, `${Name}` in `Fn::Sub`): what
    `sam local` cannot resolve (a `Ref` becomes the logical id, anything else "")."""
    resources = template.get("Resources", {})
    if isinstance(value, list):
        return any(references_resources(template, item) for item in value)
    if not isinstance(value, dict):
        return False
    if "Ref" in value and value["Ref"] in resources:
        return True
    if "Fn::GetAtt" in value:
        return True
    if isinstance(value.get("Fn::Sub"), (str, list)):
        text = value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]
        names = re.findall(r"\$\{([^}!][^}]*)\}", text)
        if any(name.split(".", 1)[0] in resources for name in names):
            return True
    return any(references_resources(template, item) for item in value.values())


def routes(template):
    """{(METHOD, path): function logical id} of the HTTP API events."""
    found = {}
    for name, function in functions(template).items():
        for event in function["Properties"].get("Events", {}).values():
            if event.get("Type") in ("HttpApi", "Api"):
                found[(event["Properties"]["Method"].upper(), event["Properties"]["Path"])] = name
    return found


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else TEMPLATE
    json.dump(load(path), sys.stdout, indent=1, sort_keys=True, default=str)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
