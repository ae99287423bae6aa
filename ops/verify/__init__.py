"""python -m ops.verify: prove, from the stack outputs, that Umami is isolated and the deployment is healthy.

Modules: `__main__` (the command line), `runner` (select and run the checks, resolve the
logins), `checks/` (the checks, in families that each load their data once) and `report`
(text/json/markdown/junit).
"""
