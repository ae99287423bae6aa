"""Run the unchanged Pulumi program under Pulumi's mocks and record every resource.

This is the engine behind the rehearsal (`ops.rehearse`), the offline plan
(`ops.preview plan`) and the structural unit tests. A `Handler` decides what
each resource "becomes" (its id and output state) and answers data-source
calls; the monitor records what the program declared, including options the
stock mocks do not expose (parent, protect, retainOnDelete, dependencies) and
which inputs were secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import runpy
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from google.protobuf import empty_pb2, json_format
from pulumi.runtime import mocks, rpc, settings
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.stack import run_in_stack

from facts import SECRET_MASK as MASK
from ops.core.errors import OpsError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SECRET_SIG = rpc._special_sig_key  # "4dabf18193072939515e22adb298388d"
SECRET_VALUE = rpc._special_secret_sig


@dataclass
class Resource:
    """One declared resource, as the engine would see it."""

    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    protect: bool
    retain_on_delete: bool
    dependencies: list[str]
    provider: str
    inputs: dict[str, Any]
    secret_inputs: set[str]
    id: str = ""
    state: dict[str, Any] = field(default_factory=dict)
    ignore_changes: list[str] = field(default_factory=list)  # ResourceOptions.ignore_changes
    delete_before_replace: bool = False  # ResourceOptions.delete_before_replace

    def masked_inputs(self) -> dict[str, Any]:
        """Inputs with every secret value (top-level key) replaced by [secret]."""
        return {k: (MASK if k in self.secret_inputs else v) for k, v in self.inputs.items()}


class Handler:
    """Decides the id and state of each resource and answers invokes. Override per use."""

    def new_resource(self, resource: Resource) -> tuple[str, dict[str, Any]]:
        return f"{resource.name}-id", dict(resource.inputs)

    def call(self, token: str, args: dict[str, Any]) -> dict[str, Any]:
        raise OpsError(f"data source {token} has no offline answer")


def _find_secret_keys(struct) -> set[str]:
    """Top-level input keys whose value is (or contains) a Pulumi secret."""
    data = json_format.MessageToDict(struct)

    def contains_secret(value: Any) -> bool:
        if isinstance(value, dict):
            if value.get(SECRET_SIG) == SECRET_VALUE:
                return True
            return any(contains_secret(v) for v in value.values())
        if isinstance(value, list):
            return any(contains_secret(v) for v in value)
        return False

    return {key for key, value in data.items() if contains_secret(value)}


def _asset(value: pulumi.Asset | pulumi.Archive) -> dict[str, Any]:
    """An asset or archive as data: where it comes from and a digest of what it holds, so records
    stay JSON (plans, previews) and a changed file shows as a changed input."""
    if isinstance(value, pulumi.AssetArchive):
        return {"archive": {name: _plain(item) for name, item in sorted(value.assets.items())}}
    if isinstance(value, (pulumi.FileAsset, pulumi.FileArchive)):
        path = Path(value.path).resolve()
        shown = path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        return {"file": str(shown), "sha256": digest}
    if isinstance(value, pulumi.StringAsset):
        return {"sha256": hashlib.sha256(value.text.encode()).hexdigest()}
    return {"uri": getattr(value, "uri", None)}


def _plain(value: Any) -> Any:
    """Values as a program author sees them: whole numbers as int (protobuf carries doubles),
    secrets unwrapped (provider inputs keep their secret envelope), assets as data."""
    if isinstance(value, (pulumi.Asset, pulumi.Archive)):
        return _asset(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == SECRET_VALUE:
            return _plain(value.get("value"))
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class RecordingMonitor(mocks.MockMonitor):
    def __init__(self, handler: Handler):
        super().__init__(_HandlerMocks(handler))
        self.handler = handler
        self.recorded: dict[str, Resource] = {}
        self.order: list[str] = []
        self.stack_outputs: dict[str, Any] = {}
        self.secret_outputs: set[str] = set()
        self._lock = threading.Lock()
        self.thread_loops: list[asyncio.AbstractEventLoop] = []

    def ensure_thread_loop(self) -> None:
        """Give the calling worker thread an event loop we can close after the run
        (the stock mocks create one per thread and leave it to the garbage collector)."""
        try:
            asyncio.get_event_loop_policy().get_event_loop()
        except RuntimeError:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            with self._lock:
                self.thread_loops.append(loop)

    def close_thread_loops(self) -> None:
        for loop in self.thread_loops:
            loop.close()
        self.thread_loops.clear()

    def Invoke(self, request):  # noqa: N802
        self.ensure_thread_loop()
        return super().Invoke(request)

    def RegisterResource(self, request):  # noqa: N802 (gRPC naming)
        self.ensure_thread_loop()
        if request.type == "pulumi:pulumi:Stack":
            return super().RegisterResource(request)
        urn = self.make_urn(request.parent, request.type, request.name)
        raw_inputs = rpc.deserialize_properties(request.object)
        resource = Resource(
            urn=urn,
            type=request.type,
            name=request.name,
            parent=request.parent,
            custom=bool(request.custom),
            protect=bool(request.protect),
            retain_on_delete=bool(request.retainOnDelete),
            dependencies=sorted(request.dependencies),
            provider=request.provider,
            inputs=_plain(raw_inputs),
            secret_inputs=_find_secret_keys(request.object),
            ignore_changes=list(request.ignoreChanges),
            delete_before_replace=bool(request.deleteBeforeReplace),
        )
        # The SDK registers resources from worker threads; the handler sees one at a time,
        # always after everything the resource depends on (the SDK awaits its inputs).
        with self._lock:
            self.recorded[urn] = resource
            self.order.append(urn)
            resource.id, resource.state = self.handler.new_resource(resource)
        # Assets are recorded as data but go back to the SDK as the objects it typed them as.
        assets = {k: v for k, v in raw_inputs.items() if isinstance(v, (pulumi.Asset, pulumi.Archive)) and k in resource.state}
        obj = mocks._sync_await(rpc.serialize_properties({**resource.state, **assets}, {}))
        self.resources[urn] = mocks.MockMonitor.ResourceRegistration(urn, resource.id, resource.state)
        return resource_pb2.RegisterResourceResponse(urn=urn, id=resource.id, object=obj)

    def RegisterResourceOutputs(self, request):  # noqa: N802
        self.ensure_thread_loop()
        if "::pulumi:pulumi:Stack::" in request.urn:
            self.secret_outputs = _find_secret_keys(request.outputs)
            self.stack_outputs = _plain(rpc.deserialize_properties(request.outputs))
        return super().RegisterResourceOutputs(request)


class _HandlerMocks(pulumi.runtime.Mocks):
    def __init__(self, handler: Handler):
        self.handler = handler

    def new_resource(self, args):  # only used for ReadResource
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args):
        return self.handler.call(args.token, args.args)


@dataclass
class ProgramRun:
    resources: list[Resource]
    outputs: dict[str, Any]
    secret_outputs: set[str]

    def by_type(self, type_token: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_token]

    def one(self, type_token: str) -> Resource:
        found = self.by_type(type_token)
        if len(found) != 1:
            raise AssertionError(f"expected one {type_token}, found {len(found)}")
        return found[0]

    def outputs_json(self) -> dict[str, Any]:
        """The outputs as `pulumi stack output --json` prints them (secrets masked)."""
        return {k: (MASK if k in self.secret_outputs else v) for k, v in sorted(self.outputs.items())}


STACK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def stack_file(stack: str, project_dir: Path = PROJECT_ROOT) -> Path:
    """Pulumi.<stack>.yaml of a valid stack name (Pulumi's: letters, digits, `-`, `_`, `.`), which
    must exist; checked before anything starts (no path outside the project, no cluster for a typo)."""
    if not STACK_NAME.match(stack) or ".." in stack:
        raise OpsError(f"--stack {_shown(stack)} is not a stack name (letters, digits, '-', '_' and '.', "
                       "as `pulumi stack init` accepts)")
    path = project_dir / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in project_dir.glob("Pulumi.*.yaml"))
        raise OpsError(f"no stack file {path.name} in {project_dir} (stacks here: {', '.join(known) or 'none'})")
    return path


def _shown(value: str, limit: int = 60) -> str:
    """A user-supplied value safe for a one-line message: control characters escaped, truncated."""
    text = value.encode("unicode_escape").decode("ascii")
    return repr(text[:limit] + ("..." if len(text) > limit else ""))


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise OpsError(f"{path.name} is not valid YAML{where}: {problem}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise OpsError(f"cannot read {path.name}: {exc}") from None


def read_stack_config(stack: str, project_dir: Path = PROJECT_ROOT) -> dict[str, Any]:
    """The `config:` block of Pulumi.<stack>.yaml, keys fully qualified; a malformed file is one line."""
    path = stack_file(stack, project_dir)
    project_doc = _load_yaml(project_dir / "Pulumi.yaml")
    if not isinstance(project_doc, dict) or not project_doc.get("name"):
        raise OpsError("Pulumi.yaml has no project name")
    project = project_doc["name"]
    document = _load_yaml(path)
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise OpsError(f"{path.name} must be a mapping with a `config:` block, not a {type(document).__name__}")
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise OpsError(f"{path.name}: `config:` must be a mapping of KEY: VALUE, not a {type(config).__name__}")
    return {(str(key) if ":" in str(key) else f"{project}:{key}"): value for key, value in config.items()}


def encode_config(config: dict[str, Any]) -> dict[str, str]:
    """Pulumi hands config to programs as strings, JSON for lists and maps."""
    encoded = {}
    for key, value in config.items():
        if isinstance(value, str):
            encoded[key] = value
        elif isinstance(value, bool):
            encoded[key] = "true" if value else "false"
        else:
            encoded[key] = json.dumps(value)
    return encoded


def parse_overrides(items: list[str], project: str) -> dict[str, str]:
    """`KEY=VALUE` strings to config entries; keys without a namespace get the project's.
    A bad item is one line, with control characters escaped and long values cut."""
    overrides: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise OpsError(f"--set {_shown(item)} is not KEY=VALUE (e.g. --set umami:schemaName=analytics)")
        if any(ord(c) < 32 or ord(c) == 127 for c in key) or " " in key:
            raise OpsError(f"--set key {_shown(key)} is not a config key (e.g. umami:schemaName)")
        overrides[key if ":" in key else f"{project}:{key}"] = value
    return overrides


_RUN_LOCK = threading.Lock()


def run_program(handler: Handler, *, stack: str, config: dict[str, Any],
                secret_keys: tuple[str, ...] = (), project_dir: Path = PROJECT_ROOT,
                preview: bool = False) -> ProgramRun:
    """Run `__main__.py` of `project_dir` with `config`; return what it declared and exported.

    Exceptions raised by the program (e.g. ConfigError) propagate unchanged.
    """
    project = yaml.safe_load((project_dir / "Pulumi.yaml").read_text())["name"]
    with _RUN_LOCK:
        monitor = RecordingMonitor(handler)
        pulumi.runtime.set_all_config(encode_config(config), list(secret_keys))
        features = set(monitor.GetDeploymentInfo(empty_pb2.Empty()).supportedFeatures)
        settings.configure(mocks.MockSettings(
            monitor=monitor, monitor_features=features, engine=mocks.MockEngine(None),
            project=project, stack=stack, dry_run=preview, organization="organization", callbacks=None,
            outputs=set(),  # a failed earlier run may have left tasks of its closed loop here
        ))
        settings.set_root_resource(None)  # run_in_stack creates the root Stack
        if str(project_dir) not in sys.path:
            sys.path.insert(0, str(project_dir))
        main = str(project_dir / "__main__.py")
        loop = asyncio.new_event_loop()
        try:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(run_in_stack(lambda: runpy.run_path(main, run_name="__main__")))
        finally:
            # After a failure, registrations may still be waiting: cancel them rather than leak them.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()
            monitor.close_thread_loops()
            asyncio.set_event_loop(None)
            settings.set_root_resource(None)
        resources = [monitor.recorded[urn] for urn in monitor.order]
        return ProgramRun(resources=resources, outputs=dict(monitor.stack_outputs),
                          secret_outputs=set(monitor.secret_outputs))
