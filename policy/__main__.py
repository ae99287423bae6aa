"""The Umami policy pack: `pulumi preview --policy-pack policy` (CrossGuard).

Every invariant is mandatory: a violation stops `pulumi up`. The checks live in
`invariants.py` (pure functions, tested directly) and are wrapped in `policies.py`.
"""

import sys
from pathlib import Path

PACK_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(PACK_DIR.parent))  # the repository root: `facts`, shared with the program and ops
sys.path.insert(0, str(PACK_DIR))  # the pack runs from any working directory

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402

from policies import POLICIES  # noqa: E402

PolicyPack(
    name="umami-invariants",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=POLICIES,
)
