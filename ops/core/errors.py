"""The one error type the ops CLIs turn into exit code 2 and a one-line reason."""


class OpsError(Exception):
    """Something prevented a command from running (bad input, unreachable database, ...).

    The message is a single line, safe to print: it never contains a secret.
    """

