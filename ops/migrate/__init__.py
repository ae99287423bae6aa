"""python -m ops.migrate: Umami's Prisma migration history, read and resolved as the umami role.

Modules: `__main__` (the command line), `history` (the `_prisma_migrations` table: its shape,
its rows and what each means to Prisma), `resolve` (`prisma migrate resolve` in one
transaction) and `report` (text/json).
"""
