"""`python -m ops.preview plan|diff|summarize|comment`: offline plan, plan diff, preview summary, and
the one pull-request comment made of them.

Exit codes: 0 done (no finding at or above --fail-on), 1 findings at or above
--fail-on, 2 could not run (bad input, unreadable file, config the program rejects).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ops.core import cli
from ops.core.cli import progress, run_command_line
from ops.core.errors import OpsError
from ops.preview import comment as comment_module
from ops.preview import plan as plan_module
from ops.preview.events import load_violations
from ops.preview.diff import diff_plans
from ops.preview.model import SEVERITIES, Review
from ops.preview.render import COMMENT_LIMIT, render
from ops.preview.reviews import load_review
from ops.preview.summarize import load_preview, summarize
from ops.engine.program import PROJECT_ROOT, parse_overrides
from ops.core.reporting import at_or_above


EXIT_CODES = {0: "done: no finding at or above --fail-on (default none)", 1: "findings at or above --fail-on",
              2: "could not run: bad input, unreadable file, config the program rejects"}
EXAMPLES = {
    "plan": "python -m ops.preview plan --stack dev --out head.json",
    "diff": "python -m ops.preview diff base.json head.json --format markdown --fail-on high",
    "summarize": "python -m ops.preview summarize preview.json --format text",
    "comment": "python -m ops.preview comment --plan-diff plan-diff.json --preview preview-review.json "
               "--policy preview-events.jsonl --fail-on critical",
}
# A link GitHub shows as it is: https, and no character that ends or rewrites Markdown.
ARTIFACT_URL = re.compile(r"^https://[A-Za-z0-9._~:/?#@!$&'*+,;=%-]+$")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m ops.preview", description=__doc__.splitlines()[0])
    cli.add_common_arguments(top, example=EXAMPLES["diff"], exit_codes=EXIT_CODES)
    commands = top.add_subparsers(dest="command", required=True)

    plan = commands.add_parser("plan", help="run the program offline and write a deterministic manifest")
    cli.add_common_arguments(plan, example=EXAMPLES["plan"], exit_codes=EXIT_CODES, top=False)
    plan.add_argument("--stack", required=True, metavar="NAME", help="stack name: reads Pulumi.<stack>.yaml")
    plan.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                      help="override a config value, e.g. umami:schemaName=analytics (repeatable)")
    plan.add_argument("--project-dir", type=Path, default=PROJECT_ROOT,
                      help="directory of Pulumi.yaml and __main__.py (e.g. a checkout of the base branch)")
    plan.add_argument("--out", type=Path, metavar="FILE", help="write here instead of stdout")

    def review_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--format", choices=("markdown", "text", "json"), default="markdown",
                         help="report format (default markdown)")
        sub.add_argument("--fail-on", choices=(*SEVERITIES, "none"), default="none",
                         help="exit 1 when a finding at or above this severity exists (default: none)")
        sub.add_argument("--limit", type=int, default=COMMENT_LIMIT,
                         help=f"maximum Markdown length in characters (default {COMMENT_LIMIT})")

    diff = commands.add_parser("diff", help="review the change from one offline plan to another")
    cli.add_common_arguments(diff, example=EXAMPLES["diff"], exit_codes=EXIT_CODES, top=False)
    diff.add_argument("base", type=Path)
    diff.add_argument("head", type=Path)
    review_options(diff)

    summary = commands.add_parser("summarize", help="review a `pulumi preview --json` document (or its event stream)")
    cli.add_common_arguments(summary, example=EXAMPLES["summarize"], exit_codes=EXIT_CODES, top=False)
    summary.add_argument("preview", type=Path)
    review_options(summary)

    comment = commands.add_parser("comment", help="one Markdown comment from the plan diff, the preview and the "
                                                  "policy violations; nothing when nothing changes")
    cli.add_common_arguments(comment, example=EXAMPLES["comment"], exit_codes=EXIT_CODES, top=False)
    comment.add_argument("--plan-diff", type=Path, metavar="FILE", help="`diff --format json` of the offline plans")
    comment.add_argument("--preview", type=Path, metavar="FILE", help="`summarize --format json` of the real preview")
    comment.add_argument("--policy", type=Path, metavar="FILE",
                         help="`pulumi preview --json` streamed (PULUMI_ENABLE_STREAMING_JSON_PREVIEW=true): its "
                              "policy violations")
    comment.add_argument("--artifact", metavar="URL", help="where the whole review is (https), named when the "
                                                          "comment is cut")
    comment.add_argument("--fail-on", choices=(*SEVERITIES, "none"), default="none",
                         help="exit 1 when a risk or violation at or above this severity exists (default: none)")
    comment.add_argument("--limit", type=int, default=comment_module.LIMIT,
                         help=f"maximum length in characters (default {comment_module.LIMIT})")
    return top


def exit_code(review: Review, fail_on: str) -> int:
    if fail_on == "none":
        return 0
    return 1 if any(at_or_above(f.severity, fail_on) for f in review.findings) else 0


def run(argv: list[str]) -> int:
    args = cli.parse_args(parser(), argv)
    if args.command == "plan":
        project = plan_module.project_name(args.project_dir)
        overrides = parse_overrides(args.overrides, project)
        manifest = plan_module.build_plan(args.stack, overrides, args.project_dir)
        if args.out:
            plan_module.write_plan(args.out, manifest)
            progress(f"wrote {args.out} ({len(manifest['resources'])} resources)")
        else:
            sys.stdout.write(plan_module.dumps(manifest))
        return 0
    if args.command == "comment":
        return run_comment(args)
    if args.limit < 1000:
        raise OpsError(f"--limit={args.limit} is too small; use at least 1000 characters")
    if args.command == "diff":
        base, head = plan_module.load_plan(args.base), plan_module.load_plan(args.head)
        plan_module.ensure_comparable(base, head, str(args.base), str(args.head))
        review = diff_plans(base, head, source=f"offline plans {args.base.name} → {args.head.name}")
    else:
        review = summarize(load_preview(args.preview), source=f"pulumi preview --json ({args.preview.name})")
    sys.stdout.write(render(review, args.format, args.limit))
    return exit_code(review, args.fail_on)


def run_comment(args: argparse.Namespace) -> int:
    if not (args.plan_diff or args.preview or args.policy):
        raise OpsError("comment needs --plan-diff, --preview or --policy (or several)")
    if args.limit < 1000:
        raise OpsError(f"--limit={args.limit} is too small; use at least 1000 characters")
    if args.artifact is not None and not ARTIFACT_URL.match(args.artifact):
        raise OpsError(f"--artifact={args.artifact[:80]!r} is not an https URL")
    inputs = comment_module.Inputs(
        plan_diff=load_review(args.plan_diff) if args.plan_diff else None,
        preview=load_review(args.preview) if args.preview else None,
        violations=load_violations(args.policy) if args.policy else [],
    )
    where = f"<{args.artifact}>" if args.artifact else "the workflow run's artifacts"
    sys.stdout.write(comment_module.render(inputs, artifact=where, limit=args.limit))
    return comment_module.exit_code(inputs, args.fail_on)


def main(argv: list[str] | None = None) -> int:
    return run_command_line(run, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
