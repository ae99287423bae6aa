"""The service section: the Umami container and its ECS service."""

from __future__ import annotations

import re
from dataclasses import dataclass

from components.config.reader import HOSTNAME, Reader, first_problem, pattern_problem, region_problem
from facts import FARGATE_SIZES

ECS_CLUSTER_ARN = re.compile(r"^arn:aws[a-z-]*:ecs:[a-z0-9-]+:\d{12}:cluster/(?P<name>[A-Za-z0-9_-]{1,255})$")
NAMESPACE_ID = re.compile(r"^ns-[a-z0-9]{16}$")
# An OCI image reference: [registry[:port]/]path[:tag][@sha256:digest].
IMAGE_REFERENCE = re.compile(
    r"^(?P<name>(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)
# Umami's release tags: 3.1.0, v2.19.0, postgresql-v2.19.0 (a suffix such as -arm64 from a mirror is kept).
VERSION_TAG = re.compile(r"^(?:postgresql-)?v?(?P<version>(?P<major>\d+)\.\d+\.\d+)(?:[-+.][0-9A-Za-z.-]+)?$")
DEFAULT_IMAGE = "ghcr.io/umami-software/umami:3.1.0"
# The story's Fargate sizes as memory choices per cpu: {256: (512, 1024), 512: (1024,)}.
MEMORY_BY_CPU = {cpu: tuple(m for c, m in FARGATE_SIZES if c == cpu) for cpu, _ in FARGATE_SIZES}
CPU_ARCHITECTURES = ("ARM64", "X86_64")
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
                      1096, 1827, 2192, 2557, 2922, 3288, 3653)


@dataclass(frozen=True)
class ServiceConfig:
    """The Umami container and its ECS service."""

    image: str
    umami_version: str | None
    cpu: int
    memory: int
    cpu_architecture: str
    log_retention_days: int
    health_check_grace_period_seconds: int
    enable_execute_command: bool
    existing_cluster_arn: str | None
    service_discovery_namespace: str | None
    service_discovery_namespace_id: str | None

    @property
    def existing_cluster_name(self) -> str | None:
        if self.existing_cluster_arn is None:
            return None
        return ECS_CLUSTER_ARN.match(self.existing_cluster_arn).group("name")


def read_image(reader: Reader) -> tuple[str, str | None]:
    """The container image and the Umami version its tag names (None for a digest-only or moving tag)."""
    image = reader.string("image", DEFAULT_IMAGE)
    match = IMAGE_REFERENCE.match(image)
    if not match:
        reader.fail("image", image, "is not an image reference; use REGISTRY/REPOSITORY:TAG or REPOSITORY@sha256:DIGEST")
        return image, None
    tag, digest = match.group("tag"), match.group("digest")
    version = VERSION_TAG.match(tag) if tag else None
    if version and int(version.group("major")) < 2:
        reader.fail("image", image, "is Umami 1.x, which this stack does not support; use 2.x or 3.x (e.g. 3.1.0)")
    allow_moving = reader.boolean("allowMovingImageTag", False)
    if not digest and not version and not allow_moving:
        reader.fail("image", image, f"uses the moving tag {tag or 'latest (implicit)'}; pin a version such as "
                    f"{DEFAULT_IMAGE} or a digest @sha256:..., or set {reader.key('allowMovingImageTag')}=true")
    return image, version.group("version") if version else None


def read_size(reader: Reader) -> tuple[int, int]:
    """Task CPU units and memory MiB, only as the story's Fargate combinations."""
    cpu = reader.integer("cpu", 256, 1, 16384)
    memory = reader.integer("memory", 512, 1, 122880)
    if cpu not in MEMORY_BY_CPU:
        reader.fail("cpu", cpu, "is not a Fargate size in the story's range; use 256 (memory 512 or 1024) or 512 (memory 1024)")
    elif memory not in MEMORY_BY_CPU[cpu]:
        allowed = " or ".join(str(m) for m in MEMORY_BY_CPU[cpu])
        reader.fail("memory", memory, f"is not a Fargate size for cpu {cpu} in the story's range; use {allowed}")
    return cpu, memory


def read_service(reader: Reader) -> ServiceConfig:
    image, version = read_image(reader)
    cpu, memory = read_size(reader)
    reported = len(reader.problems)
    retention = reader.integer("logRetentionDays", 30, 1, 3653, " days")
    if len(reader.problems) == reported and retention not in LOG_RETENTION_DAYS:
        reader.fail("logRetentionDays", retention, "is not a CloudWatch retention; use one of "
                    + ", ".join(map(str, LOG_RETENTION_DAYS)))
    namespace = reader.string("serviceDiscoveryNamespace", check=lambda v: None if HOSTNAME.match(v)
                              else "is not a DNS namespace name (e.g. umami.internal)")
    namespace_id = reader.string("serviceDiscoveryNamespaceId", check=pattern_problem(
        NAMESPACE_ID, "is not a Cloud Map namespace id (ns-...)"))
    if namespace and namespace_id:
        reader.problems.append(f"{reader.key('serviceDiscoveryNamespace')} and {reader.key('serviceDiscoveryNamespaceId')} "
                               "are both set; create a namespace or use an existing one, not both")
    return ServiceConfig(
        image=image,
        umami_version=version,
        cpu=cpu,
        memory=memory,
        cpu_architecture=reader.choice("cpuArchitecture", "ARM64", CPU_ARCHITECTURES),
        log_retention_days=retention,
        # Long enough for the first start's migrations (DESIGN: a failed one blocks every later start).
        health_check_grace_period_seconds=reader.integer("healthCheckGracePeriodSeconds", 300, 60, 3600, " seconds"),
        enable_execute_command=reader.boolean("enableExecuteCommand", False),
        existing_cluster_arn=reader.string("existingClusterArn", check=first_problem(pattern_problem(
            ECS_CLUSTER_ARN, "is not an ECS cluster ARN (arn:aws:ecs:REGION:ACCOUNT:cluster/NAME)"), region_problem)),
        service_discovery_namespace=namespace,
        service_discovery_namespace_id=namespace_id,
    )
