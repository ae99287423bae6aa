"""The stack's URNs do not move when the code does.

tests/fixtures/urns/ holds the sorted URNs of the dev stack (and its database-only variant) recorded
under mocks before `components/` was reorganised into the four ComponentResources and the helper
packages beneath them. A URN is the resource's identity in Pulumi state: if one changed, `pulumi up`
would replace the resource (or need an alias). Regenerate only on purpose:
`python -m tests.unit.test_urn_stability` (and say why in the commit).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.stack import run_dev

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "urns"

VARIANTS = {
    "dev": {},
    "dev-database-only": {"deployService": "false"},
}


def urns(variant: str) -> list[str]:
    return sorted(r.urn for r in run_dev(VARIANTS[variant]).resources)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_stack_declares_exactly_the_recorded_urns(variant):
    recorded = json.loads((FIXTURES / f"{variant}.json").read_text())
    current = urns(variant)
    assert len(current) == len(set(current)), "a URN is declared twice"
    missing, added = sorted(set(recorded) - set(current)), sorted(set(current) - set(recorded))
    assert not missing and not added, f"URNs changed: missing {missing}, added {added}"


if __name__ == "__main__":
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name in VARIANTS:
        (FIXTURES / f"{name}.json").write_text(json.dumps(urns(name), indent=1) + "\n")
        print(f"wrote {FIXTURES / f'{name}.json'}")
