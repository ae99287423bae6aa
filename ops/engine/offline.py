"""What resources "become" when nothing is deployed: ids, ARNs and generated values.

`OfflineHandler` gives every resource a plausible, deterministic state (ARNs in a
fake account, DNS names, ...) so the program's outputs resolve. Random resources
get values from `random_value`, which the rehearsal replaces with real randomness
and the plan keeps deterministic.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any, Callable

from facts import DEFAULT_REGION
from ops.engine.program import Handler, Resource

ACCOUNT = "123456789012"


def _short_hash(text: str, length: int = 6) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _uuid_like(text: str) -> str:
    digest = hashlib.sha256(text.encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def deterministic_password(resource: Resource) -> str:
    """A stable stand-in for a generated value (plans must be byte-identical)."""
    length = int(resource.inputs.get("length", 32))
    return ("offline-" + hashlib.sha256(resource.urn.encode()).hexdigest() * 4)[:length]


class OfflineHandler(Handler):
    """Plausible state for AWS, random and postgresql resources; `region` names fake ARNs."""

    def __init__(self, region: str = DEFAULT_REGION,
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
        if package == "random" and resource.type == "random:index/randomBytes:RandomBytes":
            # RandomBytes reports its bytes as base64 and hex; derive them from random_value, so a
            # handler that remembers (or randomises) random values does so for these bytes too.
            data = hashlib.shake_256(self.random_value(resource).encode()).digest(int(resource.inputs.get("length", 32)))
            state.update(base64=base64.b64encode(data).decode(), hex=data.hex())
            rid = "none"
        elif package == "random":
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
        if module == "lb":
            return self.load_balancing_state(resource, token, name)
        service_state = self.service_state(resource, token, name)
        if service_state is not None:
            return service_state
        rid = f"{module}-{_short_hash(resource.urn, 17)}"
        return rid, {"arn": self.arn(module, f"{token.lower()}/{name}"), "id": rid, "name": name}

    def load_balancing_state(self, resource: Resource, token: str, name: str) -> tuple[str, dict[str, Any]]:
        """ELBv2 ARNs in AWS's shapes; `arnSuffix` is what CloudWatch uses as the dimension value."""
        unique = _short_hash(resource.urn, 16)
        if token == "LoadBalancer":
            arn = self.arn("elasticloadbalancing", f"loadbalancer/app/{name}/{unique}")
            return arn, {"arn": arn, "id": arn, "arnSuffix": f"app/{name}/{unique}", "name": name,
                         "dnsName": f"{name}-{_short_hash(name, 8)}.{self.region}.elb.amazonaws.com",
                         "zoneId": "Z32O12XQLNTSW2"}
        if token == "TargetGroup":
            arn = self.arn("elasticloadbalancing", f"targetgroup/{name}/{unique}")
            return arn, {"arn": arn, "id": arn, "arnSuffix": f"targetgroup/{name}/{unique}", "name": name}
        if token == "Listener":
            parent_arn = str(resource.inputs.get("loadBalancerArn") or self.arn("elasticloadbalancing", "loadbalancer/app/x/0"))
            arn = parent_arn.replace(":loadbalancer/", ":listener/") + f"/{unique}"
            return arn, {"arn": arn, "id": arn}
        if token == "ListenerRule":
            parent_arn = str(resource.inputs.get("listenerArn") or self.arn("elasticloadbalancing", "listener/app/x/0/0"))
            arn = parent_arn.replace(":listener/", ":listener-rule/") + f"/{unique}"
            return arn, {"arn": arn, "id": arn}
        arn = self.arn("elasticloadbalancing", f"{token.lower()}/{name}/{unique}")
        return arn, {"arn": arn, "id": arn}

    def service_state(self, resource: Resource, token: str, name: str) -> tuple[str, dict[str, Any]] | None:
        """Ids and ARNs of the service and monitoring resources in the shapes AWS returns them."""
        unique = _short_hash(resource.urn, 17)
        if token == "SecurityGroup":
            sg_id = f"sg-{unique}"
            return sg_id, {"id": sg_id, "arn": self.arn("ec2", f"security-group/{sg_id}"), "name": name,
                           "ownerId": ACCOUNT}
        if token in ("SecurityGroupIngressRule", "SecurityGroupEgressRule"):
            rule_id = f"sgr-{unique}"
            return rule_id, {"id": rule_id, "securityGroupRuleId": rule_id,
                             "arn": self.arn("ec2", f"security-group-rule/{rule_id}")}
        if token == "LogGroup":
            return name, {"id": name, "name": name, "arn": self.arn("logs", f"log-group:{name}")}
        if token == "TaskDefinition":
            family = str(resource.inputs.get("family") or name)
            arn = self.arn("ecs", f"task-definition/{family}:1")
            return family, {"id": family, "family": family, "revision": 1, "arn": arn,
                            "arnWithoutRevision": arn.rsplit(":", 1)[0]}
        if token == "Service" and resource.type.startswith("aws:ecs/"):
            cluster = str(resource.inputs.get("cluster") or "default").rsplit("/", 1)[-1]
            arn = self.arn("ecs", f"service/{cluster}/{name}")
            return arn, {"id": arn, "arn": arn, "name": name}
        if token == "Target" and resource.type.startswith("aws:appautoscaling/"):
            resource_id = str(resource.inputs.get("resourceId", name))
            return resource_id, {"id": resource_id, "arn": self.arn(
                "application-autoscaling", f"scalable-target/{_short_hash(resource_id, 32)}")}
        if token == "Policy" and resource.type.startswith("aws:appautoscaling/"):
            arn = self.arn("autoscaling", f"scalingPolicy:{_short_hash(resource.urn, 32)}:"
                                          f"resource/ecs/{resource.inputs.get('resourceId', '')}:policyName/{name}")
            return name, {"id": name, "arn": arn, "name": name, "alarmArns": []}
        if token == "MetricAlarm":
            return name, {"id": name, "name": name, "arn": self.arn("cloudwatch", f"alarm:{name}")}
        if token == "Dashboard":
            dashboard = str(resource.inputs.get("dashboardName") or name)
            return dashboard, {"id": dashboard, "dashboardArn": f"arn:aws:cloudwatch::{ACCOUNT}:dashboard/{dashboard}"}
        if token == "Topic":
            arn = self.arn("sns", name)
            return arn, {"id": arn, "arn": arn, "name": name}
        if token == "TopicSubscription":
            arn = f"{resource.inputs.get('topic', self.arn('sns', 'topic'))}:{_short_hash(resource.urn, 36)}"
            return arn, {"id": arn, "arn": arn, "pendingConfirmation": True}
        if token == "PrivateDnsNamespace":
            ns_id = f"ns-{_short_hash(resource.urn, 16)}"
            return ns_id, {"id": ns_id, "arn": self.arn("servicediscovery", f"namespace/{ns_id}"),
                           "hostedZone": f"Z{_short_hash(resource.urn, 13).upper()}"}
        if token == "Service" and resource.type.startswith("aws:servicediscovery/"):
            srv_id = f"srv-{_short_hash(resource.urn, 16)}"
            return srv_id, {"id": srv_id, "arn": self.arn("servicediscovery", f"service/{srv_id}"), "name": name}
        return None

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
        if token == "aws:kms/getKey:getKey":
            key_id = str(args.get("keyId", ""))
            if key_id.startswith("arn:") and ":key/" in key_id:
                arn = key_id
            else:
                arn = self.arn("kms", f"key/{_uuid_like(key_id)}")
            return {"arn": arn, "id": arn.rsplit("/", 1)[-1], "keyId": key_id, "keyState": "Enabled",
                    "keyUsage": "ENCRYPT_DECRYPT", "keyManager": "CUSTOMER"}
        if token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}
        return super().call(token, args)
