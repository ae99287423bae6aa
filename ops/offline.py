"""What resources "become" when nothing is deployed: ids, ARNs and generated values.

`OfflineHandler` gives every resource a plausible, deterministic state (ARNs in a
fake account, DNS names, ...) so the program's outputs resolve. Random resources
get values from `random_value`, which the rehearsal replaces with real randomness
and the plan keeps deterministic.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Callable

from ops.program import Handler, Resource

ACCOUNT = "123456789012"


def _short_hash(text: str, length: int = 6) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def deterministic_password(resource: Resource) -> str:
    """A stable stand-in for a generated value (plans must be byte-identical)."""
    length = int(resource.inputs.get("length", 32))
    return ("offline-" + hashlib.sha256(resource.urn.encode()).hexdigest() * 4)[:length]


class OfflineHandler(Handler):
    """Plausible state for AWS, random and postgresql resources; `region` names fake ARNs."""

    def __init__(self, region: str = "eu-west-1",
                 random_value: Callable[[Resource], str] = deterministic_password,
                 admin_secret: dict[str, str] | None = None):
        self.region = region
        self.random_value = random_value
        self.admin_secret = admin_secret or {"username": "postgres", "password": "offline-admin-password"}

    def arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.region}:{ACCOUNT}:{resource}"

    def new_resource(self, resource: Resource) -> tuple[str, dict[str, Any]]:
        state = dict(resource.inputs)
        rid = f"{resource.name}-{_short_hash(resource.urn)}"
        package, module = resource.type.split(":")[0], resource.type.split(":")[1].split("/")[0]
        if package == "random":
            state["result"] = self.random_value(resource)
            rid = "none"
        elif package == "postgresql":
            rid = str(resource.inputs.get("name") or rid)
        elif package == "aws":
            rid, extra = self.aws_state(resource, module)
            state.update(extra)
        return rid, state

    def aws_state(self, resource: Resource, module: str) -> tuple[str, dict[str, Any]]:
        name = str(resource.inputs.get("name") or resource.name)
        token = resource.type.split(":")[-1]
        if token == "Secret":
            arn = self.arn("secretsmanager", f"secret:{name}-{_short_hash(name)}")
            return arn, {"arn": arn, "id": arn}
        if token == "SecretVersion":
            return f"{resource.inputs.get('secretId')}|v1", {"versionId": "v1"}
        if module == "iam":
            arn = f"arn:aws:iam::{ACCOUNT}:{token.lower()}/{name}"
            return name, {"arn": arn, "name": name, "uniqueId": _short_hash(arn, 16)}
        if token in ("LoadBalancer", "TargetGroup", "Listener", "ListenerRule"):
            arn = self.arn("elasticloadbalancing", f"{token.lower()}/{name}/{_short_hash(resource.urn, 16)}")
            extra = {"arn": arn, "arnSuffix": arn.split(":", 5)[-1].split("/", 1)[-1]}
            if token == "LoadBalancer":
                extra["dnsName"] = f"{name}-{_short_hash(name, 8)}.{self.region}.elb.amazonaws.com"
                extra["zoneId"] = "Z32O12XQLNTSW2"
            return arn, extra
        rid = f"{module}-{_short_hash(resource.urn, 17)}"
        return rid, {"arn": self.arn(module, f"{token.lower()}/{name}"), "id": rid, "name": name}

    def call(self, token: str, args: dict[str, Any]) -> dict[str, Any]:
        if token == "aws:secretsmanager/getSecretVersion:getSecretVersion":
            secret_id = args.get("secretId", "")
            return {"arn": secret_id, "id": secret_id, "secretId": secret_id,
                    "secretString": json.dumps(self.admin_secret), "versionId": "v1",
                    "versionStages": ["AWSCURRENT"]}
        if token == "aws:index/getRegion:getRegion":
            return {"name": self.region, "region": self.region, "id": self.region}
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:user/offline", "id": ACCOUNT,
                    "userId": "OFFLINE"}
        if token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}
        return super().call(token, args)
