"""python -m ops.rehearse: the unchanged Pulumi program against a real PostgreSQL, no cloud.

Modules, in the order a run uses them: `__main__` (the command line), `commands` (rehearse
and destroy as functions, and the files they write), `state` (state.json, its directory and
lock), `database` (the throwaway cluster or the --dsn database), `stack` (the program run
under mocks against it), `plan` (declared resources diffed against the state), `apply` (the
plan applied step by step, with the guards) and `checks` (what a rehearsal proves afterwards).
"""
