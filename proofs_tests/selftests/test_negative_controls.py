"""Every negative control is rejected by the law it names, and every such law exists.

Detection only needs the generate phase, so shrinking is skipped to keep this fast.
"""

from __future__ import annotations

import pytest
from hypothesis import Phase, settings

from vaespec.proofs_tests.check.runner import run_law
from vaespec.proofs_tests.laws.registry import CONTROLS
from vaespec.spec.laws import LAWS

# Some bugs show only on some inputs (L1 and L2 agree on the nearest code in 1-D, with one code, or on a
# codebook row; a kink or a formula switch shows only for one activation in one regime of the strategies),
# so detection gets 300 examples whatever the profile: a control stops at its first failure, and a miss
# rate of (1 − p)^300 keeps a 4%-visible bug below 1e-5 per run.
DETECT = settings(settings(), phases=[Phase.explicit, Phase.generate], max_examples=max(settings().max_examples, 300))


def test_at_least_ten_controls():
    assert len(CONTROLS) >= 10, sorted(CONTROLS)


@pytest.mark.parametrize("name", sorted(CONTROLS))
def test_control_rejected_by_its_law(name):
    control = CONTROLS[name]()
    assert control.caught_by in LAWS, f"{name} names an unregistered law {control.caught_by!r}"
    result = run_law(control.caught_by, control, DETECT)
    assert result.verdict == "FAIL", (
        f"negative control {name} ({control.bug}) was not rejected by {control.caught_by}: "
        f"{result.verdict} after {result.examples} examples, worst ratio {result.worst_ratio:.3g}")
