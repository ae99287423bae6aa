"""Baseline snapshots of the database and CloudWatch, and their diff against the stories' limits.

    python -m ops.metrics snapshot --out before.json --outputs outputs.json
    python -m ops.metrics diff before.json after.json [--format text|json|markdown] [--plot diff.png]
    python -m ops.metrics check --baseline before.json --outputs outputs.json

Modules, one job each: `login` (who the snapshot connects as), `database` (the
read-only database snapshot), `connections` (client sessions sampled over a short
window, grouped umami / application / ops), `budget` (Umami's own connection
budget from the outputs or the role), `metric_set` and `cloudwatch` (which metrics, and
fetching them with GetMetricData), `window` (the time window), `snapshot` (the
versioned file format), `collect` (a whole snapshot), `thresholds`, `diff`,
`render` (text/json/markdown) and `plot` (PNG).
"""
