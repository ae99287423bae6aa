"""The offline plan: the program run in record-only mode, written as a deterministic manifest.

No cloud, no database, no Pulumi CLI: `ops.engine.program.run_program` runs the
unchanged program under Pulumi's mocks with `OfflineHandler`, which gives every
resource a stable fake id and every generated password a stable stand-in.

Two runs of the same program and config give byte-identical files: resources
are ordered by URN, keys are sorted, there are no timestamps. Secret inputs are
masked, and so is every value equal to a generated or configured secret,
wherever it appears (also URL-encoded, as in a DATABASE_URL). A configured
secret is a key given as `secure:` or a key the program treats as a secret
(SECRET_KEYS in its components/config/keys.py), whether it came from the
stack file, `--set` or the environment (PULUMI_CONFIG, PULUMI_CONFIG_<KEY>).
The file is written readable by its owner only.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pulumi
import yaml
from pulumi.runtime.config import get_config_env_key

from facts import DEFAULT_REGION
from facts import SECRET_MASK as MASK
from ops.core import documents
from ops.core.errors import OpsError
from ops.core.private_file import write_private
from ops.engine.offline import OfflineHandler
from ops.core.reporting import dumps as dumps_json
from ops.core.reporting import envelope, text
from ops.engine.program import PROJECT_ROOT, ProgramRun, read_stack_config, run_program

PLAN_FORMAT = "umami-offline-plan"
PLAN_VERSION = 1
# Plans written before the shared envelope spelled the version inside the format.
LEGACY_FORMATS = {"umami-offline-plan/1": 1}
KIND = documents.DocumentType(PLAN_FORMAT, (PLAN_VERSION,), "plan", legacy=LEGACY_FORMATS)
# Stands in for `secure:` config values, which cannot be decrypted offline.
SECRET_PLACEHOLDER = "offline-placeholder-secret"
# Where a program declares the config keys that are secrets by meaning.
SECRET_KEYS_FILE = Path("components") / "config" / "keys.py"


def project_name(project_dir: Path) -> str:
    """The `name` of the project's Pulumi.yaml (it prefixes config keys without a namespace)."""
    try:
        return str(yaml.safe_load((project_dir / "Pulumi.yaml").read_text())["name"])
    except (OSError, KeyError, TypeError) as exc:
        raise OpsError(f"no readable Pulumi.yaml with a name in {project_dir}: {exc}") from None


def declared_secret_keys(project_dir: Path) -> set[str]:
    """The fully qualified keys a program treats as secrets (SECRET_KEYS of its keys.py), for this
    checkout and for `project_dir`. The file is loaded on its own, never as `components`: a base
    checkout planned next must import its own components package, not this one."""
    keys: set[str] = set()
    for root in {PROJECT_ROOT, project_dir.resolve()}:
        path = root / SECRET_KEYS_FILE
        if not path.is_file():
            continue
        name = "_secret_keys_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        keys.update(f"{module.NAMESPACE}:{key}" for key in getattr(module, "SECRET_KEYS", ()))
    return keys


def stack_config(stack: str, overrides: dict[str, str],
                 project_dir: Path = PROJECT_ROOT) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The stack's config with overrides applied; `secure:` values replaced by a placeholder.

    Returns the config and the keys that are secret: those given as `secure:` and those the
    program treats as secrets, however they are given.
    """
    config = read_stack_config(stack, project_dir)
    secret_keys = declared_secret_keys(project_dir)
    for key, value in list(config.items()):
        if isinstance(value, dict) and "secure" in value:
            config[key] = SECRET_PLACEHOLDER
            secret_keys.add(key)
    config.update(overrides)
    return config, tuple(sorted(secret_keys))


def supplied_secrets(config: dict[str, Any], secret_keys: tuple[str, ...],
                     environ: dict[str, str] | None = None) -> list[str]:
    """The values a person supplied for the secret keys: in `config` (stack file, --set) and in the
    environment, which the program reads too (PULUMI_CONFIG_<KEY>, then the PULUMI_CONFIG object)."""
    environ = os.environ if environ is None else environ
    try:
        bag = json.loads(environ.get("PULUMI_CONFIG") or "{}")
    except ValueError:  # the program cannot read it either
        bag = {}
    values = []
    for key in secret_keys:
        for source in (config.get(key), environ.get(get_config_env_key(key)),
                       bag.get(key) if isinstance(bag, dict) else None):
            if source is not None and str(source) not in values:
                values.append(str(source))
    return values


def run_offline(stack: str, config: dict[str, Any], secret_keys: tuple[str, ...],
                project_dir: Path, handler: OfflineHandler) -> ProgramRun:
    """Run the program; a configuration the program rejects becomes a one-line OpsError."""
    try:
        return run_program(handler, stack=stack, config=config, secret_keys=secret_keys,
                           project_dir=project_dir, preview=True)
    except pulumi.RunError as exc:
        problems = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise OpsError("; ".join(problems) or "the program rejected its configuration") from None


def secret_values(run: ProgramRun, handler: OfflineHandler, config: dict[str, Any],
                  secret_keys: tuple[str, ...]) -> list[str]:
    """Every value that must never appear in a plan: generated, configured or fetched secrets."""
    values = {SECRET_PLACEHOLDER, handler.admin_secret.get("password", "")}
    values.update(supplied_secrets(config, secret_keys))
    for resource in run.resources:
        if resource.type.startswith("random:") and "result" in resource.state:
            values.add(str(resource.state["result"]))
    values = {v for v in values if len(v) >= 6}  # a short value would mask ordinary words
    encoded = {quote(v, safe="") for v in values}
    # Longest first, so a value is masked whole before any shorter one inside it.
    return sorted(values | encoded, key=lambda v: (-len(v), v))


def mask_value(value: Any, secrets: list[str]) -> Any:
    """`value` with every occurrence of a secret replaced by [secret], at any depth."""
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return value
    if isinstance(value, dict):
        return {k: mask_value(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_value(v, secrets) for v in value]
    return value


def secret_digest(value: Any, supplied: list[str]) -> str:
    """A fingerprint that shows whether a secret input changed, never what it is.

    Offline, generated values are stand-ins derived from the URN, so they reveal
    nothing; values a person supplied (secure config, --set on a secret key) are
    masked before hashing so a weak one cannot be guessed back from the digest.
    """
    canonical = json.dumps(mask_value(value, supplied), sort_keys=True)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def provider_urn(reference: str) -> str:
    """A provider reference is `URN::ID`; the URN alone is stable across runs."""
    return reference.rsplit("::", 1)[0] if reference.count("::") > 3 else reference


def build_plan(stack: str, overrides: dict[str, str] | None = None,
               project_dir: Path = PROJECT_ROOT) -> dict[str, Any]:
    """Run the program offline and return the manifest (a JSON-ready dict)."""
    config, secret_keys = stack_config(stack, overrides or {}, project_dir)
    handler = OfflineHandler(region=str(config.get("aws:region", DEFAULT_REGION)))
    run = run_offline(stack, config, secret_keys, project_dir, handler)
    secrets = secret_values(run, handler, config, secret_keys)

    supplied = supplied_secrets(config, secret_keys)
    resources = []
    for resource in sorted(run.resources, key=lambda r: r.urn):
        inputs = {k: (MASK if k in resource.secret_inputs else v) for k, v in resource.inputs.items()}
        digests = {k: secret_digest(resource.inputs[k], supplied) for k in sorted(resource.secret_inputs)}
        resources.append({
            "urn": resource.urn,
            "type": resource.type,
            "name": resource.name,
            "parent": resource.parent,
            "provider": provider_urn(resource.provider),
            "custom": resource.custom,
            "id": mask_value(resource.id, secrets) if resource.custom else "",
            "protect": resource.protect,
            "retainOnDelete": resource.retain_on_delete,
            "secretInputs": sorted(resource.secret_inputs),
            "secretDigests": digests,
            "inputs": mask_value(inputs, secrets),
        })
    shown_config = {k: (MASK if k in secret_keys else v) for k, v in config.items()}
    return envelope(PLAN_FORMAT, PLAN_VERSION, {
        "project": project_name(project_dir),
        "stack": stack,
        "config": mask_value(shown_config, secrets),
        "resources": resources,
        "outputs": mask_value(run.outputs_json(), secrets),
    })


def dumps(plan: dict[str, Any]) -> str:
    """The canonical text of a plan: sorted keys, two-space indent, final newline."""
    return dumps_json(plan, sort_keys=True, ensure_ascii=False)


def write_plan(path: Path, plan: dict[str, Any]) -> None:
    """The plan in `path`, mode 0600: what it holds is masked, but it describes the stack's secrets."""
    try:
        write_private(path, dumps(plan))
    except OSError as exc:
        raise OpsError(f"cannot write plan {path}: {exc.strerror}") from None


def load_plan(path: str | Path) -> dict[str, Any]:
    """Read a plan written by `plan`, checked against its schema; anything else is a one-line OpsError."""
    data, _ = documents.load(path, KIND)
    seen: set[str] = set()
    for index, resource in enumerate(data["resources"]):
        if resource["urn"] in seen:  # the schema cannot say "each URN once"
            raise OpsError(f"{path}: /resources/{index}/urn: {text(resource['urn'])} is listed twice")
        seen.add(resource["urn"])
    return data


def ensure_comparable(base: dict[str, Any], head: dict[str, Any], base_name: str, head_name: str) -> None:
    """Both plans are of one stack: a diff across stacks would show their config as the change."""
    if base["stack"] != head["stack"]:
        raise OpsError(f"{base_name} plans stack {text(base['stack'])} and {head_name} stack {text(head['stack'])}: "
                       "compare two plans of the same stack")
