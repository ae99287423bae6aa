"""Operations for the Umami stack: rehearsal, verification, metrics and preview review.

Every module reads the stack outputs (see `ops.core.outputs`) and never imports the
Pulumi components, except `ops.rehearse` and `ops.preview`, which run the program.
"""
