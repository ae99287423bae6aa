"""The published document schemas (schemas/): each one valid, each true of what ops writes, and
every command that reads a document failing in one line on one that breaks its schema.

Writers are checked with jsonschema's own validator and format checker, not with
`ops.core.documents`, so the schemas are held to what the code really writes. The
fuzz takes real documents (snapshots of a real PostgreSQL 15 with a CloudWatch part
from moto, offline plans of the dev stack, the `pulumi preview --json` fixtures),
damages them systematically with a fixed seed and runs each through the command's
`main`: a document the schema accepts must give exit 0 or 1 (or, for the few fields
with a rule beyond the schema, such as which database a snapshot is of, one line
naming the file and exit 2), every other exactly one line on stderr naming the file
and exit 2, and never a traceback.
"""

from __future__ import annotations

import copy
import json
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any, Callable

import pytest
from jsonschema import Draft202012Validator

from ops.core import documents
from ops.core.errors import OpsError
from ops.core.jsonfile import MAX_DEPTH, read_json
from ops.metrics import budget, connections
from ops.metrics import render as metrics_render
from ops.metrics import snapshot
from ops.metrics.__main__ import main as metrics_main
from ops.metrics.collect import collect_cloudwatch
from ops.metrics.thresholds import DEFINITIONS
from ops.preview import events as preview_events
from ops.preview import plan
from ops.preview import render as preview_render
from ops.preview import reviews as preview_reviews
from ops.preview import summarize as preview_summarize
from ops.preview.__main__ import main as preview_main
from ops.preview.diff import diff_plans
from ops.verify import report as verify_report
from ops.verify.checks.base import Check, CheckResult, Finding, FixAs, Severity, Status
from tests.conftest import ROOT
from tests.integration.test_metrics_cloudwatch import CLUSTER, LOAD_BALANCER, TARGET_GROUP, TARGETS, WRITER, put
from tests.integration.test_metrics_cloudwatch import cloudwatch  # noqa: F401  (fixture: moto's CloudWatch)
from tests.integration.test_metrics_database import (as_admin, grow_application, no_aws,  # noqa: F401
                                                     snap, write_outputs)
from tests.integration.test_metrics_connections import as_version_1
from tests.unit.test_metrics_budget import AFTER_AT, BEFORE_AT, doc

SCHEMAS = ROOT / "schemas"
PREVIEW_FIXTURES = sorted((ROOT / "tests" / "fixtures" / "preview").glob("*.json"))
SEED = 20260611
HUGE = 1e308
DELETE = object()
# The damage done to one field: removed, or replaced by each of these.
REPLACEMENTS: tuple[tuple[str, Any], ...] = (
    ("deleted", DELETE), ("null", None), ("0", 0), ("-1", -1), ('""', ""), ("[]", []), ("{}", {}),
    ('"a string"', "a string"), ("a huge number", HUGE),
)


def schema_of(format_name: str, version: int) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{format_name}.v{version}.schema.json").read_text())


@cache
def validator(format_name: str, version: int) -> Draft202012Validator:
    """jsonschema's own validator and format checker: independent of ops.core.documents."""
    checker = Draft202012Validator.FORMAT_CHECKER
    assert "date-time" in checker.checkers  # otherwise timestamps would go unchecked here
    return Draft202012Validator(schema_of(format_name, version), format_checker=checker)


def assert_valid(document: Any, format_name: str, version: int) -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in validator(format_name, version).iter_errors(document)]
    assert errors == [], errors[:5]


# -- the schemas themselves ------------------------------------------------------------

@pytest.mark.parametrize("path", sorted(SCHEMAS.glob("*.schema.json")), ids=lambda p: p.name)
def test_every_schema_is_valid_draft_2020_12_and_named_by_its_format_and_version(path):
    schema = json.loads(path.read_text())
    Draft202012Validator.check_schema(schema)
    format_name, _, version = path.name.removesuffix(".schema.json").rpartition(".v")
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"urn:umami-ops:schema:{format_name}:v{version}"
    assert schema["title"] and schema["description"]
    if "format" in schema.get("properties", {}):  # an ops document: its envelope is pinned
        assert schema["properties"]["format"] == {"const": format_name}
        assert schema["properties"]["version"] == {"const": int(version)}
        assert schema["additionalProperties"] is False


WRITTEN = {(snapshot.FORMAT, snapshot.VERSION), (metrics_render.DIFF_FORMAT, metrics_render.DIFF_VERSION),
           (plan.PLAN_FORMAT, plan.PLAN_VERSION), (preview_render.JSON_FORMAT, preview_render.JSON_VERSION),
           (verify_report.JSON_FORMAT, verify_report.JSON_VERSION)}
READ = {(kind.format, version) for kind in (snapshot.KIND, plan.KIND, preview_summarize.KIND, preview_events.KIND,
                                            preview_reviews.KIND)
        for version in kind.versions}


def test_every_document_ops_writes_or_reads_has_its_schema_and_the_readme_lists_them():
    published = {(name.rpartition(".v")[0], int(name.rpartition(".v")[2]))
                 for name in (p.name.removesuffix(".schema.json") for p in SCHEMAS.glob("*.schema.json"))}
    assert published == WRITTEN | READ
    section = (ROOT / "README.md").read_text().split("## Document schemas", 1)[1].split("\n## ", 1)[0]
    for format_name, version in sorted(published):
        assert f"`{format_name}.v{version}.schema.json`" in section


def test_the_metrics_schemas_name_every_threshold_budget_part_and_connection_group():
    diff = schema_of(metrics_render.DIFF_FORMAT, metrics_render.DIFF_VERSION)["properties"]
    assert diff["thresholds"]["properties"]["limits"]["required"] == [d.key for d in DEFINITIONS]
    assert diff["connections"]["properties"]["budget"]["properties"]["parts"]["required"] == list(budget.FIELDS)
    snapshot_v2 = schema_of(snapshot.FORMAT, 2)["properties"]
    assert snapshot_v2["stack"]["properties"]["connectionBudget"]["required"] == list(budget.FIELDS)
    groups = snapshot_v2["database"]["properties"]["connections"]["properties"]["groups"]
    assert groups["required"] == list(connections.GROUPS)


# -- what the writers write ------------------------------------------------------------

def real_snapshots(aurora, tmp_path: Path) -> tuple[dict, dict]:
    """Two snapshots of the test database by `ops.metrics snapshot`, the application grown between."""
    outputs = write_outputs(tmp_path / "outputs.json", aurora)
    assert snap(outputs, tmp_path / "before.json") == 0
    grow_application(aurora)
    assert snap(outputs, tmp_path / "after.json") == 0
    return tuple(json.loads((tmp_path / name).read_text()) for name in ("before.json", "after.json"))


def collected_cloudwatch(client, now: datetime) -> dict[str, Any]:
    """The CloudWatch part of a snapshot by `collect_cloudwatch`, against moto with some data."""
    end = now.replace(second=0, microsecond=0) - timedelta(minutes=1)
    put(client, "AWS/RDS", "CPUUtilization", {"DBInstanceIdentifier": WRITER}, [20, 25, 30], end)
    put(client, "AWS/RDS", "DatabaseConnections", {"DBInstanceIdentifier": WRITER}, [5, 6], end)
    put(client, "AWS/RDS", "VolumeBytesUsed", {"DBClusterIdentifier": CLUSTER}, [2e9], end)
    put(client, "AWS/ApplicationELB", "RequestCount", {"TargetGroup": TARGET_GROUP, "LoadBalancer": LOAD_BALANCER},
        [100, 50], end)
    return collect_cloudwatch(TARGETS, timedelta(hours=1), ("BufferCacheHitRatio",), now,
                              lambda service, region: client, progress=lambda message: None)


def with_cloudwatch(doc: dict, section: dict) -> dict:
    return {**copy.deepcopy(doc), "cloudwatch": section}


def test_snapshots_and_their_diff_match_their_schemas(as_admin, cloudwatch, tmp_path, capsys):
    before, after = real_snapshots(as_admin, tmp_path)
    for written in (before, after):
        assert_valid(written, snapshot.FORMAT, 2)
    assert before["cloudwatch"]["status"] == "skipped"
    now = datetime.now(timezone.utc)
    section = collected_cloudwatch(cloudwatch, now)
    assert section["status"] == "collected" and any(m["points"] for m in section["metrics"])
    assert_valid(with_cloudwatch(after, section), snapshot.FORMAT, 2)
    old = as_version_1(tmp_path / "before.json")
    assert_valid(json.loads(old.read_text()), snapshot.FORMAT, 1)

    (tmp_path / "cw-before.json").write_text(json.dumps(with_cloudwatch(before, collected_cloudwatch(
        cloudwatch, now - timedelta(hours=2)))))
    (tmp_path / "cw-after.json").write_text(json.dumps(with_cloudwatch(after, section)))
    for pair in ((tmp_path / "before.json", tmp_path / "after.json"), (old, tmp_path / "after.json"),
                 (tmp_path / "cw-before.json", tmp_path / "cw-after.json")):
        capsys.readouterr()
        assert metrics_main(["diff", *map(str, pair), "--format", "json"]) in (0, 1)
        assert_valid(json.loads(capsys.readouterr().out), metrics_render.DIFF_FORMAT, metrics_render.DIFF_VERSION)


@pytest.fixture(scope="module")
def plans() -> tuple[dict, dict]:
    """The dev stack's offline plan, and one with the schema renamed (a change with risks)."""
    return plan.build_plan("dev"), plan.build_plan("dev", {"umami:schemaName": "analytics"})


def test_plans_previews_and_their_reviews_match_their_schemas(plans):
    for manifest in plans:
        assert_valid(json.loads(plan.dumps(manifest)), plan.PLAN_FORMAT, plan.PLAN_VERSION)
    reviews = [diff_plans(*plans)]
    for path in PREVIEW_FIXTURES:
        digest = json.loads(path.read_text())
        assert_valid(digest, preview_summarize.KIND.format, 1)
        reviews.append(preview_summarize.summarize(digest))
    assert any(review.findings for review in reviews) and any(review.config_changes for review in reviews)
    for review in reviews:
        document = json.loads(preview_render.render(review, "json"))
        assert_valid(document, preview_render.JSON_FORMAT, preview_render.JSON_VERSION)


def verify_report_document() -> dict[str, Any]:
    """A rendered report with every status, a finding with its fix, a skipped and a not-applicable check."""
    def check(check_id: str, severity: Severity) -> Check:
        return Check(check_id, f"{check_id} title", severity, "what to do", lambda data: [])

    leak = Finding(Severity.HIGH, "table app.customers", "umami_user holds SELECT",
                   ('REVOKE SELECT ON TABLE "app"."customers" FROM "umami_user";',), FixAs.ADMIN)
    results = [
        CheckResult(check("ISO-020", Severity.HIGH), "privileges", Status.FAIL, [leak], ran_as="postgres"),
        CheckResult(check("ISO-021", Severity.LOW), "privileges", Status.INFO,
                    [Finding(Severity.INFO, "schema public", "PUBLIC has USAGE")], ran_as="postgres"),
        CheckResult(check("ISO-022", Severity.MEDIUM), "privileges", Status.PASS, ran_as="postgres"),
        CheckResult(check("PRB-001", Severity.HIGH), "probes", Status.SKIPPED, reason="--skip probes"),
        CheckResult(check("DEP-001", Severity.MEDIUM), "deployment", Status.NOT_APPLICABLE, reason="rehearsal"),
    ]
    report = verify_report.Report(results, target="appdb on 127.0.0.1:5432", source="outputs.json",
                                  sessions={"catalog": "postgres"}, application_roles=["app_user"],
                                  application_roles_origin="configured", notes=["a note"], audit_queries=12,
                                  duration_s=1.2345)
    return json.loads(verify_report.render_json(report, Severity.HIGH))


def test_the_verify_report_matches_its_schema_also_with_a_fix_and_durations():
    document = verify_report_document()
    assert_valid(document, verify_report.JSON_FORMAT, verify_report.JSON_VERSION)
    finding = document["checks"][0]["findings"][0]
    finding.update(fix=['REVOKE SELECT ON TABLE "app"."customers" FROM "umami_user";'], fixAs="admin")
    for entry in document["checks"]:
        entry["durationSeconds"] = 0.25
    assert_valid(document, verify_report.JSON_FORMAT, verify_report.JSON_VERSION)
    for field, value in (("fixAs", "root"), ("fix", ["REVOKE SELECT ON TABLE app.customers FROM umami_user"])):
        bad = copy.deepcopy(document)
        bad["checks"][0]["findings"][0][field] = value
        assert not validator(verify_report.JSON_FORMAT, verify_report.JSON_VERSION).is_valid(bad)


# -- one line per problem --------------------------------------------------------------

def test_a_problem_is_one_line_naming_the_file_and_the_field(tmp_path):
    good = doc(BEFORE_AT, [1, 2], [3, 4])
    path = tmp_path / "before.json"

    def error(change: Callable[[dict], None]) -> str:
        damaged = copy.deepcopy(good)
        change(damaged)
        path.write_text(json.dumps(damaged))
        with pytest.raises(OpsError) as raised:
            snapshot.load(path)
        return str(raised.value)

    assert error(lambda d: d["database"]["connections"].update(maxConnections=0)) == (
        f"{path}: /database/connections/maxConnections: 0 is less than the minimum of 1")
    assert error(lambda d: d["observer"].update(kind="root")) == (
        f'{path}: /observer/kind: "root" is not one of "admin", "umami"')
    assert error(lambda d: d["source"].update(extra={"a": 1})) == f"{path}: /source/extra: not a field of this document"
    assert error(lambda d: d.update(format="umami-offline-plan")) == (
        f"{path} is not a umami-ops-metrics-snapshot document (format='umami-offline-plan')")
    # A key with a line break and a value of a kilobyte still make one short line.
    message = error(lambda d: d["database"]["connections"]["groups"].update({"a/b\nc": "x" * 1000}))
    assert message == f"{path}: /database/connections/groups/a~1b\\nc: not a field of this document"
    assert error(lambda d: d["observer"].update(role=["x" * 1000])) == (
        f"{path}: /observer/role: {json.dumps(['x' * 1000])[:57]}... is not of type 'string'")


@pytest.mark.parametrize(("content", "message"), [
    ('{"a": NaN}', "is not valid JSON (NaN is not a JSON number)"),
    ('{"a": -Infinity}', "is not valid JSON (-Infinity is not a JSON number)"),
    ('{"a": 1e400}', "is not valid JSON (number 1e400 out of range)"),
    ('{"a": ' + "9" * 400 + "}", "is not valid JSON (integer of 400 digits)"),
    ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), f"nests deeper than {MAX_DEPTH} levels"),
    ("[" * 100_000 + "]" * 100_000, f"nests deeper than {MAX_DEPTH} levels"),
])
def test_json_a_reader_cannot_take_is_refused_in_one_line(tmp_path, content, message):
    path = tmp_path / "doc.json"
    path.write_text(content)
    with pytest.raises(OpsError) as raised:
        read_json(path, "snapshot")
    assert str(raised.value) == f"snapshot {path} {message}"
    path.write_text("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    assert read_json(path, "snapshot") is not None


def test_check_refuses_a_bad_baseline_before_connecting(tmp_path, capsys):
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps({**doc(BEFORE_AT, [1], [3]), "takenAt": "now"}))
    assert metrics_main(["check", "--baseline", str(baseline), "--outputs", str(tmp_path / "missing.json")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f'error: {baseline}: /takenAt: "now" is not an RFC 3339 date-time with a UTC offset\n'


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # matplotlib's, drawing them
def test_values_near_the_largest_double_still_diff_and_plot(tmp_path, capsys):
    before, after = doc(BEFORE_AT, [1], [3], aurora_connections=-HUGE), doc(AFTER_AT, [1], [3], aurora_connections=HUGE)
    for name, document in (("before.json", before), ("after.json", after)):
        (tmp_path / name).write_text(json.dumps(document))
    capsys.readouterr()
    code = metrics_main(["diff", str(tmp_path / "before.json"), str(tmp_path / "after.json"), "--format", "json",
                         "--plot", str(tmp_path / "diff.png")])
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and (tmp_path / "diff.png").stat().st_size > 0
    row = next(r for r in report["rows"] if r["key"].startswith("cloudwatch.AWS/RDS DatabaseConnections"))
    assert (row["before"], row["after"], row["delta"]) == (-HUGE, HUGE, None)  # the change is no double


# -- the fuzz --------------------------------------------------------------------------

def field_paths(document: Any, opaque: frozenset[str] = frozenset()) -> list[tuple]:
    """Every key or index path below the root, in document order; below an `opaque` key only its
    direct children (free-form values such as a resource's inputs)."""
    found: list[tuple] = []

    def walk(value: Any, path: tuple, depth_left: int | None) -> None:
        if depth_left == 0:
            return
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, child in items:
            found.append(path + (key,))
            below = 1 if key in opaque and depth_left is None else None if depth_left is None else depth_left - 1
            walk(child, path + (key,), below)

    walk(document, (), None)
    return found


def damaged(document: Any, path: tuple, replacement: Any) -> Any:
    result = copy.deepcopy(document)
    parent = result
    for key in path[:-1]:
        parent = parent[key]
    if replacement is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = copy.deepcopy(replacement)
    return result



@dataclass(frozen=True)
class Case:
    """One damaged file and what its schema says of it."""

    label: str
    text: str
    valid: bool
    semantic: bool = False  # a field with a rule beyond the schema: a one-line exit 2 is right too


def accepted(document: Any, kind: documents.DocumentType) -> bool:
    """Whether the published schema (with the envelope it pins) accepts `document`."""
    version = kind.latest
    if kind.enveloped:
        if not isinstance(document, dict) or document.get("format") != kind.format:
            return False
        version = document.get("version")
        if isinstance(version, bool) or version not in kind.versions:
            return False
    return validator(kind.format, version).is_valid(document)


def whole_file_cases(document: dict) -> list[Case]:
    text = json.dumps(document)
    return [Case(label, content, False) for label, content in (
        ("a JSON array", "[]"), ("a JSON string", '"document"'), ("a JSON number", "42"), ("JSON null", "null"),
        ("an empty object", "{}"), ("truncated", text[:len(text) // 2]), ("empty", ""), ("YAML", "format: x\n"),
        ("NaN", text[:-1] + ', "nan": NaN}'), ("a number too large", text[:-1] + ', "big": 1e999}'),
    )]


ENVELOPE = (("format",), ("version",))


def field_cases(document: dict, kind: documents.DocumentType, rng: random.Random, *, cover: bool = True,
                extra: int = 0, within: tuple = (), semantic: Callable[[tuple], bool] = lambda path: False,
                opaque: frozenset[str] = frozenset()) -> list[Case]:
    """Damaged copies of `document` (seeded): with `cover`, every field shape below `within` once
    (one of its list items, one replacement, both at random; free-form values under `opaque` keys
    excepted) and every damage of the envelope; then `extra` (field, replacement) pairs at random."""
    paths = [path for path in field_paths(document, opaque) if path[:len(within)] == within]
    shapes: dict[tuple, list[tuple]] = {}
    for path in paths:
        if cover and not opaque & {key for key in path[:-1] if isinstance(key, str)}:
            shapes.setdefault(tuple("*" if isinstance(key, int) else key for key in path), []).append(path)
    chosen = [(rng.choice(group), *rng.choice(REPLACEMENTS)) for group in shapes.values()]
    if cover and kind.enveloped and not within:
        chosen += [(path, label, value) for path in ENVELOPE for label, value in REPLACEMENTS]
    rest = [(path, label, value) for path in paths for label, value in REPLACEMENTS]
    chosen += rng.sample(rest, min(extra, len(rest)))
    cases = []
    for path, label, value in chosen:
        result = damaged(document, path, value)
        cases.append(Case(f"/{'/'.join(map(str, path))} {label}", json.dumps(result), accepted(result, kind),
                          semantic(path)))
    return cases


def run_fuzz(capsys, main: Callable[[list[str]], int], target: Path, cases: list[Case],
             argv: Callable[[int], list[str]], output: tuple[str, int]) -> list[str]:
    """Every case through `main`; the problems found, one line each."""
    problems = []
    for index, case in enumerate(cases):
        target.write_text(case.text)
        capsys.readouterr()
        args = argv(index)
        try:
            code = main(args)
        except BaseException as exc:  # noqa: BLE001  (any escape is the failure this test looks for)
            problems.append(f"{case.label}: raised {exc!r}")
            continue
        out, err = capsys.readouterr()
        lines = err.splitlines()
        one_line = code == 2 and out == "" and len(lines) == 1 and lines[0].startswith("error: ") \
            and str(target) in lines[0]
        if "Traceback" in out + err:
            problems.append(f"{case.label}: traceback")
        elif case.valid and code in (0, 1):
            if err:
                problems.append(f"{case.label}: valid, exit {code}, but stderr {err!r}")
            elif "json" in args:
                errors = list(validator(*output).iter_errors(json.loads(out)))
                if errors:
                    problems.append(f"{case.label}: the report breaks its schema: {errors[0].message}")
        elif not (one_line and (not case.valid or case.semantic)):
            problems.append(f"{case.label}: {'valid' if case.valid else 'invalid'}, exit {code}, stderr {err!r}")
    return problems


def assert_fuzzed(problems: list[str], cases: list[Case]) -> None:
    valid = sum(case.valid for case in cases)
    assert problems == [], f"{len(problems)} of {len(cases)} cases: " + "; ".join(problems[:8])
    assert 0.05 * len(cases) < valid < 0.95 * len(cases), f"{valid} of {len(cases)} valid: too one-sided to tell"


METRICS_FORMATS = ("text", "json", "markdown")


def snapshot_rule(path: tuple) -> bool:
    """Fields whose meaning the schema cannot hold: which database (and when), one value per sample."""
    return path[0] in ("source", "takenAt") or path[:3] in (("database", "connections", "sampling"),
                                                            ("database", "connections", "groups"))


def test_fuzzed_snapshots_fail_in_one_line_or_diff(as_admin, cloudwatch, tmp_path, capsys):
    (tmp_path / "real").mkdir()
    before, after = real_snapshots(as_admin, tmp_path / "real")
    now = datetime.now(timezone.utc)
    cw_before = with_cloudwatch(before, collected_cloudwatch(cloudwatch, now - timedelta(hours=2)))
    cw_after = with_cloudwatch(after, collected_cloudwatch(cloudwatch, now))
    version_1 = json.loads(as_version_1(tmp_path / "real" / "before.json").read_text())
    rng = random.Random(SEED)
    started = time.monotonic()
    problems, every = [], []
    # Every field of a real snapshot, the CloudWatch part of one that collected it, a few of each
    # other side at random (a version-1 baseline among them).
    for first, second, side, options in ((before, after, "after", {"extra": 20}),
                                         (before, after, "before", {"cover": False, "extra": 25}),
                                         (cw_before, cw_after, "after", {"within": ("cloudwatch",), "extra": 20}),
                                         (version_1, after, "before", {"cover": False, "extra": 25})):
        damage, fixed = (second, first) if side == "after" else (first, second)
        cases = field_cases(damage, snapshot.KIND, rng, semantic=snapshot_rule, **options)
        if damage is after:
            cases += whole_file_cases(damage)
        other, target = tmp_path / "other.json", tmp_path / f"damaged-{side}.json"
        other.write_text(json.dumps(fixed))
        pair = (str(other), str(target)) if side == "after" else (str(target), str(other))
        problems += run_fuzz(capsys, metrics_main, target, cases,
                             lambda i: ["diff", *pair, "--format", METRICS_FORMATS[i % 3]],
                             (metrics_render.DIFF_FORMAT, metrics_render.DIFF_VERSION))
        every += cases
    assert len(every) > 200 and time.monotonic() - started < 60
    assert_fuzzed(problems, every)


REVIEW_FORMATS = ("markdown", "text", "json")
FAIL_ON = ("none", "high", "medium")
REVIEW = (preview_render.JSON_FORMAT, preview_render.JSON_VERSION)


def review_argv(command: str, *files: Path) -> Callable[[int], list[str]]:
    return lambda i: [command, *map(str, files), "--format", REVIEW_FORMATS[i % 3], "--fail-on", FAIL_ON[i // 3 % 3]]


def test_fuzzed_previews_fail_in_one_line_or_summarize(tmp_path, capsys):
    rng = random.Random(SEED)
    target = tmp_path / "preview.json"
    problems, every = [], []
    for path in PREVIEW_FIXTURES:
        digest = json.loads(path.read_text())
        cases = field_cases(digest, preview_summarize.KIND, rng, extra=20, opaque=frozenset({"inputs", "outputs"}))
        if path.name == "update.json":
            cases += whole_file_cases(digest)
        problems += run_fuzz(capsys, preview_main, target, cases, review_argv("summarize", target), REVIEW)
        every += cases
    assert_fuzzed(problems, every)


def test_fuzzed_event_streams_fail_in_one_line_or_summarize(tmp_path, capsys):
    """Every field shape of every kind of line of a streamed preview, damaged in place: the stream is
    valid exactly when the damaged line still is."""
    lines = (ROOT / "tests" / "fixtures" / "preview" / "policy-events.jsonl").read_text().splitlines()
    rng = random.Random(SEED)
    target = tmp_path / "events.jsonl"
    cases = []
    seen: set[str] = set()
    for index, line in enumerate(lines):
        event = json.loads(line)
        kind = next(key for key in event if key not in ("sequence", "timestamp"))
        if kind in seen:
            continue
        seen.add(kind)
        for case in field_cases(event, preview_events.KIND, rng, extra=5, opaque=frozenset({"inputs", "outputs"})):
            text = "\n".join(lines[:index] + [case.text] + lines[index + 1:]) + "\n"
            cases.append(Case(f"line {index + 1} {case.label}", text, case.valid))
    assert {"preludeEvent", "resourcePreEvent", "diagnosticEvent", "policyEvent", "summaryEvent"} <= seen
    problems = run_fuzz(capsys, preview_main, target, cases, review_argv("summarize", target), REVIEW)
    assert_fuzzed(problems, cases)


def test_fuzzed_plans_fail_in_one_line_or_diff(plans, tmp_path, capsys):
    base, head = (json.loads(plan.dumps(manifest)) for manifest in plans)
    rng = random.Random(SEED)
    opaque = frozenset({"inputs", "config", "outputs"})
    problems, every = [], []
    for side, cover, extra in (("head", True, 30), ("base", False, 15)):
        damage, fixed = (head, base) if side == "head" else (base, head)
        cases = field_cases(damage, plan.KIND, rng, cover=cover, extra=extra, semantic=lambda path: path == ("stack",),
                            opaque=opaque)
        if side == "head":
            cases += whole_file_cases(damage)
        other, target = tmp_path / "other.json", tmp_path / f"damaged-{side}.json"
        other.write_text(json.dumps(fixed))
        files = (other, target) if side == "head" else (target, other)
        problems += run_fuzz(capsys, preview_main, target, cases, review_argv("diff", *files), REVIEW)
        every += cases
    assert_fuzzed(problems, every)
