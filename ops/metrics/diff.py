"""Comparing two snapshots: every metric with before, after, change, threshold and verdict.

Connections are the peak (and mean) of each snapshot's samples, in three groups:
Umami's role, ops tools (application_name umami-ops, never counted) and the
application (every other client session). The story's "same or +1-2" applies to
the application's; Umami's are judged against Umami's own budget, since a deploy
is expected to add up to that many.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ops.core.db import APPLICATION_NAME
from ops.metrics import budget as budgets
from ops.metrics import snapshot
from ops.metrics.budget import Budget
from ops.metrics.connections import APPLICATION, OPS, TOTAL, UMAMI, Sampling
from ops.metrics.thresholds import FAIL, INFO, NO_DATA, Rule, Thresholds
from ops.metrics.units import format_value

STORAGE = "Storage"
CONNECTIONS = "Connections"
BY_ROLE = "Connections by role (last sample)"
BY_STATE = "Connections by state (last sample)"
BY_APPLICATION = "Connections by application_name (last sample)"
ACTIVITY = "Database activity between the snapshots"
AURORA = "Aurora (CloudWatch)"
SERVICE = "Service (CloudWatch)"
SECTIONS = (STORAGE, CONNECTIONS, BY_ROLE, BY_STATE, BY_APPLICATION, ACTIVITY, AURORA, SERVICE)

# Thresholds of the stories that apply to Aurora's CloudWatch metrics.
CLOUDWATCH_RULES = {
    ("AWS/RDS", "CPUUtilization"): "cpuIncreasePoints",
    ("AWS/RDS", "DatabaseConnections"): "connectionsIncrease",
    ("AWS/RDS", "ReadIOPS"): "iopsIncreasePercent",
    ("AWS/RDS", "WriteIOPS"): "iopsIncreasePercent",
    ("AWS/RDS", "VolumeBytesUsed"): "volumeGrowthBytes",
}
ACTIVITY_COUNTERS = (
    ("xactCommit", "commits", "count"),
    ("xactRollback", "rollbacks", "count"),
    ("blksRead", "blocks read from disk", "count"),
    ("blksHit", "blocks found in cache", "count"),
    ("tempFiles", "temporary files", "count"),
    ("tempBytes", "temporary file bytes", "bytes"),
    ("deadlocks", "deadlocks", "count"),
)
NOT_VISIBLE = "(not visible)"


@dataclass(frozen=True)
class Row:
    """One compared metric. `threshold` is empty for information-only rows."""

    section: str
    key: str
    label: str
    unit: str
    before: float | None
    after: float | None
    threshold: str
    verdict: str
    note: str = ""
    show_percent: bool = True      # False where a relative change means nothing (cumulative counters)
    summary: str = ""              # how the result line names a broken row, when "label change" says too little

    @property
    def delta(self) -> float | None:
        if self.before is None or self.after is None:
            return None
        return self.after - self.before

    @property
    def delta_percent(self) -> float | None:
        if self.delta is None or not self.before or not self.show_percent:
            return None
        return self.delta / self.before * 100


@dataclass(frozen=True)
class Diff:
    """The comparison of BEFORE and AFTER, ready to render."""

    before: dict[str, Any]
    after: dict[str, Any]
    rows: tuple[Row, ...]
    notes: tuple[str, ...]
    thresholds: Thresholds
    before_name: str = "BEFORE"
    after_name: str = "AFTER"
    budget: Budget | None = None

    @property
    def interval_seconds(self) -> float:
        return (datetime.fromisoformat(self.after["takenAt"])
                - datetime.fromisoformat(self.before["takenAt"])).total_seconds()

    @property
    def broken(self) -> tuple[Row, ...]:
        return tuple(row for row in self.rows if row.verdict == FAIL)

    def count(self, verdict: str) -> int:
        return sum(1 for row in self.rows if row.verdict == verdict)

    @property
    def checked_without_data(self) -> tuple[Row, ...]:
        return tuple(row for row in self.rows if row.verdict == NO_DATA and row.threshold)

    @property
    def exit_code(self) -> int:
        return 1 if self.broken else 0


def _join(*notes: str) -> str:
    return "; ".join(note for note in notes if note)


def _ruled(section: str, key: str, label: str, unit: str, before: float | None, after: float | None,
           rule: Rule | None, note: str = "", show_percent: bool = True) -> Row:
    """A row judged by `rule` (information only when None or the limit is disabled)."""
    if rule is None:
        verdict = NO_DATA if before is None or after is None else INFO
        return Row(section, key, label, unit, before, after, "", verdict, note, show_percent)
    verdict, why = rule.judge(before, after)
    return Row(section, key, label, unit, before, after, rule.describe(), verdict, _join(note, why), show_percent)


def _judged(section: str, key: str, label: str, unit: str, before: float | None, after: float | None,
            thresholds: Thresholds, rule_key: str | None, note: str = "", show_percent: bool = True) -> Row:
    """A row judged by the threshold `rule_key` (information only when None or the limit is disabled)."""
    rule = thresholds.rule(rule_key) if rule_key else None
    return _ruled(section, key, label, unit, before, after, rule, note, show_percent)


# -- storage ---------------------------------------------------------------------

def _schemas(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {schema["name"]: schema for schema in doc["database"]["schemas"]}


def storage_rows(before: dict, after: dict, thresholds: Thresholds) -> list[Row]:
    umami = after["stack"]["schema"]
    rows = [_judged(STORAGE, "storage.database", "database size", "bytes", before["database"]["sizeBytes"],
                    after["database"]["sizeBytes"], thresholds, "databaseGrowthBytes")]
    old, new = _schemas(before), _schemas(after)
    names = [umami] + sorted((set(old) | set(new)) - {umami})
    system_before = sum(s["totalBytes"] for s in old.values() if s["system"])
    system_after = sum(s["totalBytes"] for s in new.values() if s["system"])
    for name in names:
        a, b = old.get(name), new.get(name)
        if (a or b or {}).get("system"):
            continue
        if name == umami:
            note = "created between the snapshots" if a is None and b else ("dropped" if a and b is None else "")
            tables = f"{a['tables'] if a else 0} -> {b['tables'] if b else 0} tables"
            rows.append(_judged(STORAGE, f"storage.schema.{name}", f"schema {name} (Umami)", "bytes",
                                a["totalBytes"] if a else 0, b["totalBytes"] if b else 0, thresholds,
                                "umamiSchemaGrowthBytes", "; ".join(n for n in (note, tables) if n)))
            continue
        note = "new" if a is None else ("dropped" if b is None else "")
        rows.append(_judged(STORAGE, f"storage.schema.{name}", f"schema {name}", "bytes",
                            a["totalBytes"] if a else 0, b["totalBytes"] if b else 0, thresholds, None, note))
    rows.append(_judged(STORAGE, "storage.system", "system catalogs", "bytes", system_before, system_after,
                        thresholds, None))
    return rows


# -- connections -----------------------------------------------------------------

def connection_summary(doc: dict[str, Any]) -> dict[str, Any]:
    """The sampled groups, and the last sample's sessions by role, state and application_name."""
    conns = doc["database"]["connections"]
    by_role: dict[str, int] = {}
    by_state: dict[str, int] = {}
    by_app: dict[str, int] = {}
    for session in conns["sessions"]:
        count = session["count"]
        for table, name in ((by_role, session["role"] or NOT_VISIBLE), (by_state, session["state"] or NOT_VISIBLE),
                            (by_app, session["applicationName"] or "(empty)")):
            table[name] = table.get(name, 0) + count
    return {"groups": conns["groups"], "byRole": by_role, "byState": by_state, "byApplication": by_app}


def _breakdown(section: str, prefix: str, before: dict[str, int], after: dict[str, int],
               thresholds: Thresholds) -> list[Row]:
    return [_judged(section, f"{prefix}.{name}", name, "count", before.get(name, 0), after.get(name, 0),
                    thresholds, None)
            for name in sorted(set(before) | set(after))]


def _means(old: dict[str, Any], new: dict[str, Any]) -> str:
    return f"mean {old['mean']:.1f} -> {new['mean']:.1f}"


def _role_limit(conns: dict[str, Any], budget: Budget | None, peak: int) -> str:
    """What the role's live CONNECTION LIMIT means for Umami."""
    if not conns["umamiRoleExists"]:
        return "role does not exist"
    limit = conns["umamiRoleLimit"]
    if limit is None or limit < 0:
        return "the role has no CONNECTION LIMIT"
    text = f"CONNECTION LIMIT {limit}"
    if budget is not None and budget.source != "rolconnlimit" and limit < budget.total:
        text += f", below the budget: Umami's tasks are refused beyond {limit} (SQLSTATE 53300)"
    elif peak >= limit:
        text += ": reached, further connections are refused (SQLSTATE 53300)"
    return text


def umami_row(old: dict[str, Any], new: dict[str, Any], role: str, conns: dict[str, Any],
              budget: Budget | None, thresholds: Thresholds) -> Row:
    """Umami's peak after the deploy against its own budget (not against the before value)."""
    label = f"Umami (role {role})"
    peak = new["max"]
    context = _join(_means(old, new), _role_limit(conns, budget, peak))
    if budget is None:
        return _ruled(CONNECTIONS, "connections.umami", label, "count", old["max"], peak, None,
                      _join("no budget known (no dbConnectionBudget or dbConnectionLimit in the outputs, "
                            "and the role has no CONNECTION LIMIT)", context))
    share = f"{peak}/{budget.total} max ({budget.describe()})"
    rule = thresholds.rule("umamiConnectionsOverBudget")
    if rule.limit is None:
        return _ruled(CONNECTIONS, "connections.umami", label, "count", old["max"], peak, None,
                      _join(share, context))
    verdict, _ = rule.judge(budget.total, peak)
    allowed = budget.total + rule.limit
    threshold = f"max <= {allowed:g} " + (f"(budget {budget.total} + {rule.limit:g})" if rule.limit else "(budget)")
    return Row(CONNECTIONS, "connections.umami", label, "count", old["max"], peak, threshold, verdict,
               _join(share, context), summary=f"umami {share}")


def _aurora_connections_rule(thresholds: Thresholds, budget: Budget | None) -> tuple[Rule | None, str]:
    """Aurora's DatabaseConnections counts Umami's sessions too: the application's allowance plus the budget."""
    rule = thresholds.rule("connectionsIncrease")
    if rule.limit is None:
        return None, ""
    if budget is None:
        return None, "counts Umami's sessions too and no Umami budget is known: information only"
    return (Rule(rule.definition, rule.limit + budget.total),
            f"{rule.limit:g} for the application + Umami's {budget.describe()}")


def connection_rows(before: dict, after: dict, thresholds: Thresholds,
                    budget: Budget | None) -> tuple[list[Row], list[str]]:
    role = after["stack"]["role"]
    old, new = connection_summary(before), connection_summary(after)
    a, b = old["groups"], new["groups"]
    conns = after["database"]["connections"]
    max_before = before["database"]["connections"]["maxConnections"]
    max_after = conns["maxConnections"]
    configured = after["stack"].get("maxConnectionsConfigured")
    usage_note = f"peak of all but ops tools; max_connections {max_after}"
    if configured and configured != max_after:
        usage_note += f" (the stack's dbMaxConnections says {configured})"
    rows = [
        _judged(CONNECTIONS, "connections.application", f"application (every role but {role} and ops tools)",
                "count", a[APPLICATION]["max"], b[APPLICATION]["max"], thresholds, "connectionsIncrease",
                _means(a[APPLICATION], b[APPLICATION])),
        umami_row(a[UMAMI], b[UMAMI], role, conns, budget, thresholds),
        _judged(CONNECTIONS, "connections.total", "client connections (all roles but ops tools)", "count",
                a[TOTAL]["max"], b[TOTAL]["max"], thresholds, None, _means(a[TOTAL], b[TOTAL])),
        _judged(CONNECTIONS, "connections.usage", "share of max_connections", "percent",
                a[TOTAL]["max"] / max_before * 100, b[TOTAL]["max"] / max_after * 100, thresholds, None,
                usage_note),
    ]
    if a[OPS]["max"] or b[OPS]["max"]:
        rows.append(_judged(CONNECTIONS, "connections.ops", f"ops tools ({APPLICATION_NAME}, not counted)",
                            "count", a[OPS]["max"], b[OPS]["max"], thresholds, None))
    rows += _breakdown(BY_ROLE, "connections.role", old["byRole"], new["byRole"], thresholds)
    rows += _breakdown(BY_STATE, "connections.state", old["byState"], new["byState"], thresholds)
    rows += _breakdown(BY_APPLICATION, "connections.application_name", old["byApplication"],
                       new["byApplication"], thresholds)
    return rows, connection_notes(before, after)


def sampling_of(doc: dict[str, Any]) -> Sampling:
    sampling = doc["database"]["connections"]["sampling"]
    return Sampling(sampling["samples"], sampling["intervalSeconds"])


def connection_notes(before: dict, after: dict) -> list[str]:
    """How the connections were sampled, and what makes the two snapshots' groups differ."""
    first, second = sampling_of(before), sampling_of(after)
    if first == second:
        notes = [f"connections: max and mean of {first.describe()} in each snapshot"]
    else:
        notes = [f"connections: max and mean of {first.describe()} before and {second.describe()} after "
                 "(peaks of different sampling compare loosely)"]
    for name, doc in (("before", before), ("after", after)):
        if doc.get("upgradedFrom") == 1:
            notes.append(f"the {name} snapshot is format version 1: its connections are one instant, "
                         "and it records no budget from the outputs")
    if before["stack"]["role"] != after["stack"]["role"]:
        notes.append(f"the snapshots name different Umami roles ({before['stack']['role']} before, "
                     f"{after['stack']['role']} after): each grouped the sessions by its own")
    return notes


# -- activity --------------------------------------------------------------------

def _hit_ratio(hit: int, read: int) -> float | None:
    return hit / (hit + read) * 100 if hit + read else None


def activity_rows(before: dict, after: dict, thresholds: Thresholds) -> tuple[list[Row], list[str]]:
    """Counters of pg_stat_database, with rates over the interval unless statistics were reset."""
    a, b = before["database"]["activity"], after["database"]["activity"]
    seconds = (datetime.fromisoformat(b["sampledAt"]) - datetime.fromisoformat(a["sampledAt"])).total_seconds()
    reset = a["statsReset"] != b["statsReset"] or any(b[key] < a[key] for key, _, _ in ACTIVITY_COUNTERS)
    notes = []
    if reset:
        notes.append(f"database statistics were reset between the snapshots (stats_reset {b['statsReset']}): "
                     "no rates over the interval")
    rows = []
    for key, label, unit in ACTIVITY_COUNTERS:
        note = "" if reset or seconds <= 0 else f"{(b[key] - a[key]) / seconds:.2f}/s"
        rows.append(_judged(ACTIVITY, f"activity.{key}", label, unit, a[key], b[key], thresholds, None, note,
                            show_percent=False))
    interval_ratio = None if reset else _hit_ratio(b["blksHit"] - a["blksHit"], b["blksRead"] - a["blksRead"])
    rows.append(_judged(ACTIVITY, "activity.cacheHitRatio", "cache hit ratio (since stats reset)", "percent",
                        _hit_ratio(a["blksHit"], a["blksRead"]), _hit_ratio(b["blksHit"], b["blksRead"]),
                        thresholds, None,
                        f"{interval_ratio:.2f} % over the interval" if interval_ratio is not None else ""))
    return rows, notes


# -- CloudWatch ------------------------------------------------------------------

def _metric_key(metric: dict[str, Any]) -> str:
    dims = ",".join(f"{name}={value}" for name, value in metric["dimensions"].items())
    return f"{metric['namespace']} {metric['name']} {dims}"


def _primary(metric: dict[str, Any] | None) -> float | None:
    """The value compared: the window's average, or for counts their rate per hour."""
    if metric is None or not metric["points"]:
        return None
    return metric["perHour"] if metric["stat"] == "Sum" else metric["average"]


def _spread(a: dict | None, b: dict | None, unit: str) -> str:
    """'max 31 -> 45, p95 28 -> 40' from the statistics both snapshots hold."""
    def pair(stat: str) -> str:
        values = [m[stat] if m and m["points"] else None for m in (a, b)]
        return " -> ".join(format_value(v, unit) for v in values)
    return f"max {pair('maximum')}, p95 {pair('p95')}"


def cloudwatch_rows(before: dict, after: dict, thresholds: Thresholds,
                    budget: Budget | None = None) -> tuple[list[Row], list[str]]:
    notes = []
    for name, doc in (("before", before), ("after", after)):
        cw = doc["cloudwatch"]
        if cw["status"] == "skipped":
            notes.append(f"CloudWatch part skipped in the {name} snapshot: {cw['reason']}")
    old = {_metric_key(m): m for m in before["cloudwatch"]["metrics"]}
    new = {_metric_key(m): m for m in after["cloudwatch"]["metrics"]}
    windows = [doc["cloudwatch"]["window"]["length"] for doc in (before, after) if doc["cloudwatch"]["window"]]
    if len(windows) == 2 and windows[0] != windows[1]:
        notes.append(f"CloudWatch windows differ ({windows[0]} before, {windows[1]} after)")
    rows = []
    for key in list(old) + [k for k in new if k not in old]:
        a, b = old.get(key), new.get(key)
        metric = b or a
        section = AURORA if metric["scope"] == "aurora" else SERVICE
        subject = ", ".join(metric["dimensions"].values())
        per_hour = metric["stat"] == "Sum"
        label = f"{metric['name']}{' per hour' if per_hour else ''} ({subject})"
        unit = "count" if per_hour else metric["unit"]
        has_data = any(m is not None and m["points"] for m in (a, b))
        note = _spread(a, b, unit) if has_data else ""
        missing = [name for name, m in (("before", a), ("after", b)) if m is not None and not m["points"]]
        if missing:
            note = "; ".join(n for n in (f"no data points {' and '.join(missing)}", note) if n)
        problems = [m["message"] or m["status"] for m in (a, b) if m and m["status"] != "Complete"]
        if problems:
            note = "; ".join(problems + ([note] if note else []))
        rule_key = CLOUDWATCH_RULES.get((metric["namespace"], metric["name"]))
        if rule_key == "connectionsIncrease":
            rule, why = _aurora_connections_rule(thresholds, budget)
            rows.append(_ruled(section, f"cloudwatch.{key}", label, unit, _primary(a), _primary(b), rule,
                               _join(why, note)))
            continue
        rows.append(_judged(section, f"cloudwatch.{key}", label, unit, _primary(a), _primary(b), thresholds,
                            rule_key, note))
    return rows, notes


# -- the whole diff --------------------------------------------------------------

def observer_notes(before: dict, after: dict) -> list[str]:
    """What the roles that took the snapshots could not see, and whether they differ."""
    notes = []
    a, b = before["observer"], after["observer"]
    if (a["role"], a["kind"]) != (b["role"], b["kind"]):
        notes.append(f"the snapshots were taken by different roles ({a['role']} before, {b['role']} after): "
                     "what each sees of other roles' sessions differs")
    for name, observer in (("before", a), ("after", b)):
        if observer["hiddenSessions"]:
            notes.append(f"{observer['role']} could not see the state of {observer['hiddenSessions']} session(s) "
                         f"of other roles in the {name} snapshot: counted as {NOT_VISIBLE} "
                         "(pg_read_all_stats shows them)")
    return notes


def compare(before: dict[str, Any], after: dict[str, Any], thresholds: Thresholds,
            before_name: str = "BEFORE", after_name: str = "AFTER") -> Diff:
    """Diff two validated snapshots of the same database."""
    snapshot.ensure_comparable(before, after, before_name, after_name)
    # The after snapshot knows the deployed stack; a baseline's budget only stands in when it lacks one.
    budget = budgets.resolve(after) or budgets.resolve(before)
    connections, connections_notes = connection_rows(before, after, thresholds, budget)
    activity, activity_notes = activity_rows(before, after, thresholds)
    cw, cw_notes = cloudwatch_rows(before, after, thresholds, budget)
    notes = observer_notes(before, after) + connections_notes + activity_notes + cw_notes
    return Diff(before, after, tuple(storage_rows(before, after, thresholds) + connections + activity + cw),
                tuple(notes), thresholds, before_name, after_name, budget)

