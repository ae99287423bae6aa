"""What every ops command line shares: --version, --quiet, the --help epilog (exit codes,
environment, an example), progress on stderr, and one way to fail."""

from __future__ import annotations

import argparse
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Sequence

from ops.core.errors import OpsError

# The project version, in this one place: pyproject.toml reads it (dynamic version), and an
# installed copy reports its distribution's metadata, which is built from it.
VERSION = "0.1.0"
DISTRIBUTION = "umami-ops"

_quiet = False


def version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return VERSION


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def progress(message: str, prefix: str = "") -> None:
    """Progress goes to stderr, so stdout stays the report; --quiet drops it (errors are never dropped)."""
    if _quiet:
        return
    print(f"{prefix}{message}", file=sys.stderr, flush=True)


EXIT_CODES = {
    0: "done: nothing at or above the failure threshold",
    1: "findings at or above the threshold (or a failed step)",
    2: "could not run: bad input, unreachable database, refused (one line on stderr)",
}
# Every environment variable an ops command reads; each command names the ones it reads.
ENVIRONMENT = {
    "UMAMI_DB_PASSWORD": "the umami role's password (then Secrets Manager is not asked)",
    "UMAMI_ADMIN_DSN": "an admin/auditor DSN (instead of the admin secret the outputs name)",
    "PGPASSFILE": "libpq passfile for the rehearsal's logins (default: the rehearsal's pgpass)",
    "PGPASSWORD, PGPASSFILE": "the admin password for a --dsn without one (libpq's sources, in that order)",
    "PG_BIN": "directory of the PostgreSQL 15 server binaries for the throwaway cluster",
    "AWS_PROFILE, AWS_REGION, AWS_*": "boto3's credentials and region (Secrets Manager, RDS, ECS, CloudWatch)",
    "PULUMI_*": "the pulumi CLI's settings, for --stack (pulumi stack output --json)",
}


def epilog(example: str, *, environment: Sequence[str] = (), exit_codes: dict[int, str] | None = None) -> str:
    """The --help epilog every command shows: exit codes, the environment it reads, one example."""
    codes = {**EXIT_CODES, **(exit_codes or {})}
    lines = ["exit codes:"] + [f"  {code:<4} {text}" for code, text in sorted(codes.items())]
    lines += ["", "environment:"] + ([f"  {name}: {ENVIRONMENT[name]}" for name in environment] or ["  none"])
    lines += ["", "example:", f"  {example}"]
    return "\n".join(lines)


class _Quiet(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, True)


def add_common_arguments(parser: argparse.ArgumentParser, *, example: str, environment: Sequence[str] = (),
                         exit_codes: dict[int, str] | None = None, top: bool = True) -> argparse.ArgumentParser:
    """--version, --quiet and the epilog, the same in every command (and each subcommand: --quiet
    is accepted before or after the subcommand; a subcommand's default never overwrites it)."""
    script = Path(sys.argv[0]).name
    if top and script.startswith("umami-"):  # run as a console script: usage and --version say so
        parser.prog = script
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = epilog(example, environment=environment, exit_codes=exit_codes)
    if top:
        parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    parser.add_argument("-q", "--quiet", action=_Quiet, default=False if top else argparse.SUPPRESS,
                        help="no progress on stderr (the report and errors still appear)")
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """parse_args, then apply --quiet to progress for this run."""
    args = parser.parse_args(argv)
    set_quiet(bool(getattr(args, "quiet", False)))
    return args


def deprecated_alias(old: str, new: str) -> type[argparse.Action]:
    """A hidden old spelling of an option: same dest, one line on stderr when used."""

    class Alias(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None) -> None:
            print(f"note: {old} is deprecated; use {new}", file=sys.stderr)
            setattr(namespace, self.dest, values)

    return Alias


def run_command_line(command: Callable[[Any], int], args: Any) -> int:
    """Run a CLI command; an OpsError becomes `error: <reason>` on stderr and exit code 2."""
    try:
        return command(args)
    except OpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
