"""Numbers for people: bytes, milliseconds, percentages and counts, with their changes."""

from __future__ import annotations


def format_bytes(value: float) -> str:
    """1536 -> '1.5 KiB'; negative values keep their sign."""
    sign = "-" if value < 0 else ""
    amount = abs(float(value))
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024:
            return f"{sign}{amount:.0f} {unit}" if unit == "B" else f"{sign}{amount:.1f} {unit}"
        amount /= 1024
    return f"{sign}{amount:.1f} TiB"


def _number(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"


def format_value(value: float | None, unit: str) -> str:
    """A value in its unit: bytes as KiB/MiB, seconds as ms, percent with '%'; '-' for none."""
    if value is None:
        return "-"
    if unit == "bytes":
        return format_bytes(value)
    if unit == "seconds":
        return f"{value * 1000:.2f} ms"
    if unit == "percent":
        return f"{value:.2f} %"
    if unit == "per_second":
        return f"{_number(value)}/s"
    if unit == "acu":
        return f"{value:.2f} ACU"
    return _number(value)


def format_change(delta: float | None, percent: float | None, unit: str) -> str:
    """'+1.5 MiB', '+3 (+12.0 %)', '+2.50 points' for percentages; '-' when unknown."""
    if delta is None:
        return "-"
    sign = "+" if delta >= 0 else "-"
    if unit == "percent":
        text = f"{sign}{abs(delta):.2f} points"
    else:
        text = sign + format_value(abs(delta), unit)
    if percent is not None and unit != "percent" and delta:
        text += f" ({percent:+.1f} %)"
    return text
