"""The one error type the ops CLIs turn into exit code 2 and a one-line reason."""


class OpsError(Exception):
    """Something prevented a command from running (bad input, unreachable database, ...).

    The message is a single line, safe to print: it never contains a secret.
    """


def run_command_line(command, args) -> int:
    """Run a CLI command; an OpsError becomes `error: <reason>` on stderr and exit code 2."""
    import sys

    try:
        return command(args)
    except OpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
