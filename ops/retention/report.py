"""`ops.retention`'s report: a dry run (what would go, and the storage it holds) or a deletion, as
aligned text or one JSON document (`{"format": "umami-retention", "version": 1, ...}`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ops.core.reporting import aligned, dumps, envelope, text
from ops.metrics.units import format_bytes
from ops.retention.job import Run

FORMATS = ("text", "json")
FORMAT_NAME = "umami-retention"
FORMAT_VERSION = 1
STORAGE_NOTE = ("frees: the rows' share of each table's size (heap, TOAST and indexes); VACUUM makes it "
                "reusable, the files do not shrink")


def _when(value: datetime | None) -> str:
    return value.isoformat(sep=" ", timespec="seconds") if value else "-"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def render(run: Run, output_format: str, target: str) -> str:
    return render_json(run, target) if output_format == "json" else render_text(run, target)


def render_text(run: Run, target: str) -> str:
    what = "dry run" if run.dry_run else "deletion"
    lines = [f"retention {what}: {text(target)}"]
    if run.off:
        lines.append("retention is off (0 days): nothing " + ("would be" if run.dry_run else "was") + " deleted")
        return "\n".join(lines) + "\n"
    verb = "would go" if run.dry_run else "went"
    lines.append(f"cut-off {_when(run.cutoff)} ({run.days} days): older rows {verb}")
    if run.dry_run:
        rows = [["table", "would delete", "oldest", "newest", "table rows", "frees"]]
        rows += [[t.table, f"{t.rows:,}", _when(t.oldest), _when(t.newest), f"{t.table_rows:,}",
                  format_bytes(t.frees_bytes)] for t in run.forecasts]
        rows.append(["total", f"{run.rows:,}", "", "", "", format_bytes(sum(t.frees_bytes for t in run.forecasts))])
        lines += aligned(rows, "lrllrr")
        lines.append(f"nothing was deleted; {STORAGE_NOTE}")
    else:
        rows = [["table", "deleted", "batches"]]
        rows += [[t.table, f"{t.deleted:,}", str(t.batches)] for t in run.purges]
        rows.append(["total", f"{run.rows:,}", str(sum(t.batches for t in run.purges))])
        lines += aligned(rows, "lrr")
        lines.append(f"{run.batch:,} rows per batch, each its own transaction; {run.seconds:.1f} s")
    return "\n".join(lines) + "\n"


def render_json(run: Run, target: str) -> str:
    body: dict[str, Any] = {
        "mode": "dry-run" if run.dry_run else "apply",
        "target": target,
        "schema": run.schema,
        "days": run.days,
        "off": run.off,
        "cutoff": _iso(run.cutoff),
        "batch": run.batch,
        "rows": run.rows,
        "seconds": round(run.seconds, 3),
    }
    if run.dry_run:
        body["tables"] = [{"table": t.table, "rows": t.rows, "oldest": _iso(t.oldest), "newest": _iso(t.newest),
                           "tableRows": t.table_rows, "heapBytes": t.heap_bytes, "totalBytes": t.total_bytes,
                           "freesBytes": t.frees_bytes} for t in run.forecasts]
    else:
        body["tables"] = [{"table": t.table, "deleted": t.deleted, "batches": t.batches} for t in run.purges]
    return dumps(envelope(FORMAT_NAME, FORMAT_VERSION, body))
