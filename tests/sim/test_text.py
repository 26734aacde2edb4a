"""Engineering notation in `sim.text.si` (values written out by hand)."""

import pytest

from sim.text import si


@pytest.mark.parametrize("value, text", [
    (3.352e12, "3.35 TB/s"),
    (4.59e-5, "45.9 uB/s"),
    # Rounding to three digits carries into the next prefix: 0.99996 is '1', not '1e+03 m'.
    (0.99996, "1 B/s"),
    (999.96, "1 kB/s"),
    (9.9996e-4, "1 mB/s"),
    (-0.99996, "-1 B/s"),
    (999.4, "999 B/s"),
    (0, "0 B/s"),
])
def test_si_prefix_after_rounding(value, text):
    assert si(value, "B/s") == text


def test_si_missing_values():
    assert si(None, "J") == "n/a"
    assert si(float("nan"), "J") == "n/a"
