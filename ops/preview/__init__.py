"""Pull-request review of infrastructure changes, without cloud credentials.

    python -m ops.preview plan --stack dev --out plan.json      # offline, deterministic manifest
    python -m ops.preview diff base.json head.json               # risk-first review of two plans
    python -m ops.preview summarize preview.json                 # the same from `pulumi preview --json`
    python -m ops.preview comment --plan-diff d.json --preview p.json --policy events.jsonl   # the PR comment

Modules: `plan` (record-only run of the program), `diff` (plan against plan),
`summarize` (preview digest), `events` (the preview streamed as engine events, with
its policy violations), `risk` (the rules), `render` (markdown/text/json),
`reviews` (a JSON review read back), `comment` (the one pull-request comment),
`model` (the shapes they share).
"""
