"""A PNG of a diff, readable on its own: one panel per metric that matters, before next to after.

Panels show every thresholded metric plus Umami's and the application's
connections and the CloudWatch metrics with data; each names its verdict and
threshold and is tinted by verdict. Drawn with matplotlib's Agg canvas (no
display, no pyplot state).
"""

from __future__ import annotations

import importlib.util
import math
import textwrap
from pathlib import Path

from ops.core.errors import OpsError
from ops.metrics.diff import AURORA, SERVICE, Diff, Row
from ops.metrics.render import VERDICT_WORDS, summary_line
from ops.metrics.snapshot import describe_source
from ops.metrics.thresholds import FAIL, NO_DATA, PASS
from ops.metrics.units import format_change, format_value

COLUMNS = 4
MAX_PANELS = 32
DPI = 100
WIDTH_IN = 16.0
HEADER_IN = 1.6
PANEL_ROW_IN = 2.8
TINTS = {PASS: "#e8f5e9", FAIL: "#ffebee", NO_DATA: "#fff8e1"}
NEUTRAL_TINT = "#f5f5f5"
BAR_COLOURS = ("#9e9e9e", "#1e88e5")


def panel_rows(diff: Diff) -> list[Row]:
    """The rows worth a panel, thresholded ones first, at most MAX_PANELS."""
    checked = [row for row in diff.rows if row.threshold]
    context = [row for row in diff.rows if not row.threshold and (
        row.key in ("connections.umami", "connections.application")
        or (row.section in (AURORA, SERVICE) and (row.before is not None or row.after is not None)))]
    return (checked + context)[:MAX_PANELS]


def figure_size_px(panels: int) -> tuple[int, int]:
    """(width, height) in pixels of the PNG for `panels` panels."""
    rows = max(1, math.ceil(panels / COLUMNS))
    return round(WIDTH_IN * DPI), round((HEADER_IN + rows * PANEL_ROW_IN) * DPI)


def _draw_panel(axes, row: Row) -> None:
    axes.set_facecolor(TINTS.get(row.verdict, NEUTRAL_TINT))
    values = [row.before, row.after]
    heights = [v if v is not None else 0 for v in values]
    bars = axes.bar(["before", "after"], heights, color=BAR_COLOURS, width=0.6)
    top = max([abs(h) for h in heights] + [1e-12])
    low, high = min(0, min(heights) * 1.25), top * 1.3
    if not (math.isfinite(low) and math.isfinite(high)):  # values near a double's limit: no headroom
        low, high = min(0, min(heights)), top
    axes.set_ylim(low, high)
    for bar, value in zip(bars, values):
        label = format_value(value, row.unit) if value is not None else "no data"
        axes.annotate(label, (bar.get_x() + bar.get_width() / 2, max(bar.get_height(), 0)),
                      ha="center", va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
    axes.set_yticks([])
    axes.set_title("\n".join(textwrap.wrap(row.label, 38)[:2]), fontsize=9)
    verdict = VERDICT_WORDS[row.verdict]
    detail = f"{verdict}: {row.threshold}" if row.threshold else verdict
    change = format_change(row.delta, row.delta_percent, row.unit)
    axes.set_xlabel(f"{change}   {detail}", fontsize=8,
                    color="#b71c1c" if row.verdict == FAIL else "#212121",
                    fontweight="bold" if row.verdict == FAIL else "normal")
    axes.tick_params(axis="x", labelsize=8)
    for spine in ("top", "right", "left"):
        axes.spines[spine].set_visible(False)


PLOT_NEEDS = "--plot needs matplotlib, the optional extra: pip install '.[plot]' (or -r requirements-dev.txt)"


def plot_available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def write_plot(diff: Diff, path: str | Path) -> tuple[int, int]:
    """Draw `diff` into a PNG at `path`; returns its size in pixels."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise OpsError(PLOT_NEEDS) from None
    rows = panel_rows(diff)
    width, height = figure_size_px(len(rows))
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    FigureCanvasAgg(figure)
    lines = [f"Metrics diff: {describe_source(diff.after)}",
             f"before {diff.before['takenAt'][:19]}  ->  after {diff.after['takenAt'][:19]}"]
    lines += textwrap.wrap(summary_line(diff), 150)[:2]
    skipped = [name for name, doc in (("before", diff.before), ("after", diff.after))
               if doc["cloudwatch"]["status"] == "skipped"]
    if skipped:
        lines.append(f"CloudWatch part skipped ({' and '.join(skipped)}): see the report's notes")
    figure.suptitle("\n".join(lines), fontsize=11, y=1 - 0.08 / (height / DPI))
    grid_rows = max(1, math.ceil(len(rows) / COLUMNS))
    top = 1 - HEADER_IN / (height / DPI)
    grid = figure.add_gridspec(grid_rows, COLUMNS, left=0.03, right=0.97, top=top, bottom=0.6 / (height / DPI),
                               hspace=0.9, wspace=0.25)
    for index, row in enumerate(rows):
        _draw_panel(figure.add_subplot(grid[index // COLUMNS, index % COLUMNS]), row)
    if not rows:
        figure.text(0.5, 0.4, "no metrics to compare", ha="center", fontsize=12)
    try:
        figure.savefig(path, format="png", dpi=DPI)
    except OSError as exc:
        raise OpsError(f"cannot write plot {path}: {exc.strerror}") from None
    return width, height
