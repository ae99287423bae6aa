"""The policy pack's wiring: every policy mandatory, each wired to its invariant, reporting violations.

`PolicyPack(...)` starts the analyzer's gRPC server, so the pack's `__main__.py`
is only checked statically; the policies themselves are called the way the
engine calls them, with `ResourceValidationArgs` / `StackValidationArgs`.
"""

from __future__ import annotations

import ast
import copy
import subprocess
import sys
from typing import Any

import pytest
import yaml
from pulumi_policy import (EnforcementLevel, PolicyCustomTimeouts, PolicyResource, PolicyResourceOptions,
                           ResourceValidationArgs, ResourceValidationPolicy, StackValidationArgs,
                           StackValidationPolicy)

from ops.engine.offline import OfflineHandler
from ops.engine.program import PROJECT_ROOT, ProgramRun, Resource, read_stack_config, run_program

POLICY_DIR = PROJECT_ROOT / "policy"
sys.path.insert(0, str(POLICY_DIR))
import policies  # noqa: E402  (as the pack imports it)


@pytest.fixture(scope="module")
def dev() -> ProgramRun:
    return run_program(OfflineHandler(), stack="dev", config=read_stack_config("dev"))


def options(protect: bool) -> PolicyResourceOptions:
    return PolicyResourceOptions(protect, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def validate(policy: ResourceValidationPolicy, resource: Resource, props: dict[str, Any] | None = None,
             protect: bool | None = None) -> list[str]:
    reported: list[str] = []
    args = ResourceValidationArgs(resource.type, props if props is not None else resource.inputs, resource.urn,
                                  resource.name, options(resource.protect if protect is None else protect), None)
    policy.validate(args, lambda message, urn=None: reported.append(message))
    return reported


def validate_stack(policy: StackValidationPolicy, run: ProgramRun,
                   edit: dict[str, dict[str, Any]] | None = None) -> list[tuple[str, str]]:
    reported: list[tuple[str, str]] = []
    resources = [PolicyResource(r.type, (edit or {}).get(r.name, r.inputs), r.urn, r.name, options(r.protect),
                                None, None, [], {}) for r in run.resources]
    policy.validate(StackValidationArgs(resources), lambda message, urn=None: reported.append((urn, message)))
    return reported


def by_name(name: str):
    return next(p for p in policies.POLICIES if p.name == name)


def test_every_policy_is_mandatory_and_uniquely_named():
    names = [p.name for p in policies.POLICIES]
    assert len(names) == len(set(names)) == 11
    assert all(p.enforcement_level == EnforcementLevel.MANDATORY for p in policies.POLICIES)


def test_the_pack_manifest_and_entry_point():
    manifest = yaml.safe_load((POLICY_DIR / "PulumiPolicy.yaml").read_text())
    assert manifest["runtime"]["name"] == "python" and manifest["runtime"]["options"]["virtualenv"] == "venv"
    assert "pulumi-policy" in (POLICY_DIR / "requirements.txt").read_text()
    tree = ast.parse((POLICY_DIR / "__main__.py").read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "PolicyPack"]
    assert len(calls) == 1
    keywords = {k.arg: k.value for k in calls[0].keywords}
    assert isinstance(keywords["policies"], ast.Name) and keywords["policies"].id == "POLICIES"
    assert ast.unparse(keywords["enforcement_level"]) == "EnforcementLevel.MANDATORY"


def test_the_entry_point_imports_the_shared_facts_from_any_directory(tmp_path):
    """As `pulumi preview --policy-pack policy` runs it: from elsewhere, in an environment with
    pulumi-policy only (the project's editable install is taken off the path); `PolicyPack` is
    replaced because the real one starts the analyzer."""
    script = ("import runpy, sys, pulumi_policy\n"
              "sys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in getattr(f, '__module__', '')]\n"
              "sys.path[:] = [p for p in sys.path if '__editable__' not in p]\n"
              "sys.path_importer_cache.clear()\n"
              "pulumi_policy.PolicyPack = lambda **kwargs: print(len(kwargs['policies']))\n"
              f"runpy.run_path({str(POLICY_DIR / '__main__.py')!r}, run_name='__main__')\n"
              "import facts, invariants\n"
              "assert invariants.FARGATE_SIZES is facts.FARGATE_SIZES\n"
              f"assert facts.__file__ == {str(PROJECT_ROOT / 'facts.py')!r}, facts.__file__\n")
    done = subprocess.run([sys.executable, "-I", "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(len(policies.POLICIES))


def test_resource_policies_pass_the_program_and_report_a_violation(dev):
    service = dev.one("aws:ecs/service:Service")
    assert validate(by_name("ecs-tasks-no-public-ip"), service) == []
    public = copy.deepcopy(service.inputs)
    public["networkConfiguration"]["assignPublicIp"] = True
    assert validate(by_name("ecs-tasks-no-public-ip"), service, public) == [
        "networkConfiguration.assignPublicIp is true: tasks must not get a public IP"]

    role = dev.one("postgresql:index/role:Role")
    assert validate(by_name("postgresql-role-least-privilege"), role) == []
    assert validate(by_name("postgresql-role-least-privilege"), role, dict(role.inputs, superuser=True)) == [
        "role umami_user has SUPERUSER"]


def test_protection_policy_reads_the_resource_option(dev):
    schema = dev.one("postgresql:index/schema:Schema")
    policy = by_name("stateful-database-resources-protected")
    assert validate(policy, schema) == []
    assert validate(policy, schema, protect=False) == [
        "Schema is not protected; set protect (umami:protectStatefulResources)"]


def test_stack_policies_pass_the_program_and_report_with_the_urn(dev):
    grants = by_name("postgresql-grants-only-on-stack-schema")
    assert validate_stack(grants, dev) == []
    grant = dev.one("postgresql:index/grant:Grant")
    reported = validate_stack(grants, dev, {grant.name: dict(grant.inputs, schema="public")})
    assert reported == [(grant.urn, "grants on schema public; only the stack's schema is allowed (umami)")]

    subnets = by_name("ecs-tasks-in-private-subnets")
    assert validate_stack(subnets, dev) == []
    service = dev.one("aws:ecs/service:Service")
    balancer = dev.one("aws:lb/loadBalancer:LoadBalancer")
    moved = copy.deepcopy(service.inputs)
    moved["networkConfiguration"]["subnets"] = list(balancer.inputs["subnets"])
    reported = validate_stack(subnets, dev, {service.name: moved})
    assert [urn for urn, _ in reported] == [service.urn]
