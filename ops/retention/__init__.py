"""`python -m ops.retention`: what the nightly retention job deletes, shown (--dry-run) or done now (--apply).

    plan     driver/retention.json, the job's statements, read as they are
    job      forecast (counts, ages, storage) and purge (batched deletes) over psycopg
    report   text or JSON
"""
