"""Pull-request review of infrastructure changes, without cloud credentials.

    python -m ops.preview plan --stack dev --out plan.json      # offline, deterministic manifest
    python -m ops.preview diff base.json head.json               # risk-first review of two plans
    python -m ops.preview summarize preview.json                 # the same from `pulumi preview --json`

Modules: `plan` (record-only run of the program), `diff` (plan against plan),
`summarize` (preview digest), `risk` (the rules), `render` (markdown/text/json),
`model` (the shapes they share).
"""
