"""`mappers.readback_mix`: the per-layer choice between reading a layer's records back and
recomputing it, against brute force over every subset and hand-computed schedules."""

import itertools

import pytest

from mappers.readback import prefetch_end_s
from mappers.readback_mix import best_mix, mix_end_s


def _brute(layers, times):
    """Every placement's end, by evaluating the list schedule on each of the 2^L subsets."""
    return {read: mix_end_s(read, **times)
            for read in itertools.product((False, True), repeat=layers)}


TOYS = [  # (layers, lead, backward, forward, record, input), seconds
    (2, 1.0, 1.0, 0.5, 1.0, 0.1),
    (4, 0.0, 0.7, 0.65, 2.08, 0.2),
    (5, 2.0, 0.7, 0.35, 2.08, 0.05),
    (6, 0.3, 1.0, 0.5, 0.8, 0.3),
    (7, 1.5, 0.4, 0.3, 1.1, 0.0),
    (8, 0.9, 1.0, 0.6, 1.7, 0.4),
]


@pytest.mark.parametrize("layers,lead,c,f,x,y", TOYS)
def test_best_mix_is_the_best_subset_for_every_count_and_overall(layers, lead, c, f, x, y):
    times = dict(lead_s=lead, backward_s=c, forward_s=f, record_s=x, input_s=y)
    brute = _brute(layers, times)
    best, by_count = best_mix(layers, **times)
    assert best.end_s == pytest.approx(min(brute.values()), rel=1e-12)
    assert set(by_count) == set(range(layers + 1))
    for n, mix in by_count.items():
        assert mix.count == n
        assert mix.end_s == pytest.approx(min(v for r, v in brute.items() if sum(r) == n),
                                          rel=1e-12)
        assert mix.end_s == pytest.approx(brute[mix.read], rel=1e-12)  # the placement's own
    # never slower than reading every layer back or recomputing every layer
    assert best.end_s <= by_count[layers].end_s and best.end_s <= by_count[0].end_s


def test_two_layers_by_hand():
    """lead 1, backward 1, forward 0.5, records 1, input 0.1. Both read back: transfers end
    at 1 and 2, backwards end at 2 and 3. Both recomputed: inputs in by 0.2, backwards (1.5
    each) end at 2.5 and 4. Read, then recompute: 2, then 3.5; recompute, then read: 2.5,
    then 3.5 (the second record arrives at 1.1). Best: both read back, 3."""
    times = dict(lead_s=1.0, backward_s=1.0, forward_s=0.5, record_s=1.0, input_s=0.1)
    best, by_count = best_mix(2, **times)
    assert best.read == (True, True) and best.end_s == pytest.approx(3.0)
    assert by_count[0].end_s == pytest.approx(4.0)
    assert by_count[1].end_s == pytest.approx(3.5) and by_count[1].read == (True, False)


def test_ends_of_all_read_and_all_recomputed_placements():
    """All read back is `prefetch_end_s` of every layer's record; all recomputed with inputs
    that arrive during the lead is ``lead + L (f + c)`` (hand count)."""
    times = dict(lead_s=0.5, backward_s=0.7, forward_s=0.65, record_s=2.08, input_s=0.1)
    _, by_count = best_mix(6, **times)
    assert by_count[6].end_s == pytest.approx(prefetch_end_s(0.5, [0.7] * 6, [2.08] * 6))
    assert by_count[0].end_s == pytest.approx(0.5 + 6 * 1.35)


def test_free_link_reads_everything_and_slow_link_recomputes_everything():
    """Records that cost nothing to read back: all read (recomputing only adds the forward).
    Records far slower than the step: only the first layers, whose transfers hide under the
    lead, can be read back; with no lead, none."""
    best, _ = best_mix(5, lead_s=0.0, backward_s=1.0, forward_s=0.5, record_s=0.0,
                       input_s=0.0)
    assert best.count == 5 and best.end_s == pytest.approx(5.0)
    best, _ = best_mix(5, lead_s=0.0, backward_s=1.0, forward_s=0.5, record_s=100.0,
                       input_s=0.0)
    assert best.count == 0 and best.end_s == pytest.approx(7.5)


def test_layers_must_be_positive():
    with pytest.raises(ValueError, match="layers"):
        best_mix(0, lead_s=0, backward_s=1, forward_s=1, record_s=1, input_s=1)
