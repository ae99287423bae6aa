"""Offline rehearsal: the unchanged Pulumi program against a real PostgreSQL, no cloud.

    python -m ops.rehearse --stack dev [--dsn URL] [--refresh] [--preview] [--destroy]
                           [--write-outputs FILE] [--set KEY=VALUE] [--umami-env FILE]
                           [--lock-timeout MS] [--statement-timeout MS]
    python -m ops.rehearse --stack dev --stop       # stop the throwaway cluster

It behaves as `pulumi up` with the postgresql provider does (ops.engine.provider_sql has the
provider's statements, cited):

- The program runs under Pulumi's mocks; its `postgresql:*` resources are diffed against
  the rehearsal's state (`state.json`: each applied resource's inputs and outputs, i.e. what
  the provider's Read returned), never against the live catalog: drift is invisible unless
  `--refresh`, which first reads every resource in state (the provider's Read) and shows
  what drifted, as `pulumi up --refresh` does. Plan actions: create, update (in place; a role
  or schema `name` change is `ALTER ... RENAME`), replace (a ForceNew input changed: a Grant
  delete-first, everything else create-first with the old one deleted at the end), delete
  (in state, no longer declared), same. `--preview` prints the plan and changes nothing.
- Never adopt: a role or schema that exists but is not in state stops the run before any
  change, naming the `pulumi import` command that would adopt it deliberately; the role can
  never be the admin the provider logs in as (compared with the login actually used at run
  time) or one of `umami:applicationRoles`.
- Before the first change a preflight checks the admin (CREATEROLE for role changes; a way
  to create the schema: superuser, owner of the database, member of its owner, able to
  grant itself the owner's role as the provider does, or CREATE on the database), that the
  database is writable, and the output paths. Every connection has lock_timeout and
  statement_timeout; each resource is one transaction; state is written after each step.
  A lock file keeps two runs off the same state. Could not run (bad input, refusal, lock or
  statement timeout) is exit 2 and one line; a failed step is exit 1 with what committed
  before it; SIGINT/SIGTERM roll the current step back and exit 130 with one line.
- Tenants (umami:tenants) are the same resource types and get the same SQL; a `tenant_<name>`
  role or schema that exists but is not in state is refused like Umami's, naming
  `umami:tenants=<name>`. With umami:tenantRegistry the registry is checked before any change
  and kept after the resources (ops.tenants.registry, as `python -m ops.tenants registry
  --apply`); --preview shows its statements from a rolled-back transaction.
- Destroy deletes what state holds in reverse order, as `pulumi destroy --run-program`
  (the program supplies the current admin login, so a rotated admin password works). A
  retained resource is only forgotten: pgcrypto always, and the schema unless
  umami:dropSchemaCascade is set (the program marks it retainOnDelete, so `pulumi destroy`
  keeps it too); the destroy then ends with exit 0 and a `kept:` line naming each object
  left in place. With dropCascade a cascade is refused
  while objects outside the schema depend on it (ops.verify.checks.destroy.dependents_outside);
  a role delete is refused while the role owns or holds anything outside the schema
  (owned_outside), since REASSIGN/DROP OWNED would take it. A destroy that stops midway
  says what it already did; rerunning it completes it.

Files under .rehearsal/<stack>/ (0600 where they hold secrets): state.json, outputs.json
(like `pulumi stack output --json`), manifest.json (resources, secrets masked), pgpass
(libpq passfile for the umami role, each tenant role and the admin), lock. The admin password is never
stored for --dsn (the program gets the current one each run). With --umami-env FILE,
Umami's environment as a dotenv file (ops.engine.umami_env).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from facts import CONFIG_NAMESPACE as NAMESPACE
from ops.core import cli
from ops.core.errors import OpsError
from ops.engine import pgcluster
from ops.engine.program import parse_overrides, stack_file
from ops.engine.provider_sql import Timeouts
from ops.rehearse.apply import Interrupted
from ops.rehearse.commands import destroy, print_changes, print_manifest, print_registry, rehearse
from ops.rehearse.state import State, state_dir_for


class OneLineParser(argparse.ArgumentParser):
    """Bad arguments: one line on stderr, exit 2 (argparse would add the usage)."""

    def error(self, message: str):  # noqa: D102
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


class _OutputsReads(argparse.Action):
    """--outputs reads in every command; the rehearsal writes its outputs with --write-outputs."""

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"--outputs reads stack outputs in every command; to write them here use --write-outputs {values}")


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m ops.rehearse", description=__doc__.split("\n\n")[0])
    cli.add_common_arguments(
        parser, example="python -m ops.rehearse --stack dev --write-outputs /tmp/outputs.json",
        environment=("PGPASSWORD, PGPASSFILE", "PG_BIN"),
        exit_codes={0: "rehearsed (or previewed, destroyed, stopped) and isolation confirmed",
                    1: "a step failed (what committed before it is listed) or a rehearsal check failed",
                    130: "interrupted (SIGINT/SIGTERM): the current step rolled back"})
    parser.add_argument("--stack", required=True, metavar="NAME", help="stack whose Pulumi.<stack>.yaml to rehearse")
    parser.add_argument("--dsn", help="admin DSN of an existing database (default: a throwaway local one); "
                                      "without a password, PGPASSWORD or the libpq passfile supplies it")
    parser.add_argument("--destroy", action="store_true", help="delete what the state holds (pulumi destroy)")
    parser.add_argument("--refresh", action="store_true", help="read the catalog first and show drift (pulumi up --refresh)")
    parser.add_argument("--preview", action="store_true", help="print the plan; change nothing")
    parser.add_argument("--write-outputs", type=Path, metavar="FILE",
                        help="where to write the stack outputs JSON (default .rehearsal/<stack>/outputs.json)")
    parser.add_argument("--outputs", action=_OutputsReads, help=argparse.SUPPRESS)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. umami:schemaName=analytics (repeatable)")
    parser.add_argument("--stop", action="store_true", help="stop the throwaway cluster of this stack")
    parser.add_argument("--state-root", type=Path, metavar="DIR",
                        help="keep the state under DIR/<stack> instead of .rehearsal/ (one state per database)")
    parser.add_argument("--lock-timeout", type=int, default=Timeouts.lock_ms, metavar="MS",
                        help=f"lock_timeout of every connection (default {Timeouts.lock_ms} ms)")
    parser.add_argument("--statement-timeout", type=int, default=Timeouts.statement_ms, metavar="MS",
                        help=f"statement_timeout of every connection (default {Timeouts.statement_ms} ms)")
    parser.add_argument("--umami-env", type=Path, metavar="FILE",
                        help="also write the Umami container's environment as a dotenv file (mode 0600), "
                             "with the CA bundle beside it, to run Umami locally against the rehearsal")
    args = cli.parse_args(parser, argv)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    # The program's warnings (pulumi.log.warn) belong to the report on stdout: stderr keeps one error line.
    warnings = logging.StreamHandler(sys.stdout)
    warnings.setFormatter(logging.Formatter("warning: %(message)s"))
    logging.getLogger().addHandler(warnings)
    try:
        return run_command(args)
    except OpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Interrupted as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("error: interrupted before any change was applied", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        logging.getLogger().removeHandler(warnings)


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run_command(args: argparse.Namespace) -> int:
    overrides = parse_overrides(args.set, NAMESPACE)
    if args.lock_timeout <= 0 or args.statement_timeout <= 0:
        raise OpsError("--lock-timeout and --statement-timeout must be positive (milliseconds)")
    timeouts = Timeouts(args.lock_timeout, args.statement_timeout)
    if args.stop:
        stack_file(args.stack)
        state = State.load(state_dir_for(args.stack, None) / "state.json")
        if "cluster" in state.data:
            pgcluster.LocalCluster(state_dir_for(args.stack, None) / "cluster", state.data["cluster"]["port"]).stop()
        print("throwaway cluster stopped")
        return 0
    if args.destroy:
        result = destroy(args.stack, dsn=args.dsn, overrides=overrides, timeouts=timeouts, preview=args.preview,
                         state_root=args.state_root)
        print("destroy plan (preview: nothing changed):" if args.preview else "destroy:")
        print_changes(result.changes)
        if args.preview:
            return 0
        if result.ok:
            print("destroy complete" + (": nothing was in state" if not result.changes else ""))
            for line in result.kept:
                print(f"kept: {line}")
            return 0
        print("destroy FAILED: see the failed resources above; already done: " + (", ".join(result.done) or "nothing"))
        return 1
    result = rehearse(args.stack, dsn=args.dsn, outputs_path=args.write_outputs, overrides=overrides,
                      refresh=args.refresh, preview=args.preview, timeouts=timeouts, umami_env=args.umami_env,
                      state_root=args.state_root)
    if result.drift:
        print("refresh (drift found in the catalog):")
        print_changes(result.drift)
    elif args.refresh:
        print("refresh: no drift")
    if result.preview:
        print(f"plan for stack {args.stack} in {result.db.admin.describe()} (preview: nothing changed):")
        for item in result.plan:
            print(item.describe())
        print_registry(result)
        return 0
    print(f"rehearsal of stack {args.stack} into {result.db.admin.describe()}:")
    print_changes(result.changes)
    print_registry(result)
    print_manifest(result.run)
    print(f"outputs written to {result.outputs_path}")
    if not result.ok:
        print("rehearsal FAILED: see the failed resource above; committed before it: "
              + (", ".join(result.committed) or "nothing"))
        return 1
    if args.umami_env:
        print(f"Umami's environment written to {args.umami_env} (run it: README, \"Umami locally\")")
    from ops.rehearse.checks import check_rehearsal
    return check_rehearsal(result)


if __name__ == "__main__":
    sys.exit(main())
