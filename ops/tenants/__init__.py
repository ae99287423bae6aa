"""python -m ops.tenants: what the stack's tenants need beyond the program's resources.

Modules: `__main__` (the command line) and `registry` (the tenant registry table: checked, created,
its ACL made exact and its rows kept in step with the outputs' `tenants`, as the admin).
"""
