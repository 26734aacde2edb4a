"""HAT's U-shaped split (mappers/hat.py) against hand counts."""

from __future__ import annotations

import itertools

import pytest

from mappers.edge import hidden_bytes
from mappers.hat import (LayerBytes, UShape, cloud_bytes, device_bytes, plan_ushape,
                         verify_positions)
from sim.errors import ConfigError

SIZES = LayerBytes(layer=10, embedding=100, head=50, kv_token_layer=1)


def test_split_ranges_and_draft():
    s = UShape(num_layers=32, first=2, last=3, adapter=1)
    assert s.middle == 27 and s.draft_layers == 6
    assert s.ranges() == {"device": ((0, 1), (29, 31)), "cloud": ((2, 28),)}


@pytest.mark.parametrize("k, m, adapter, field", [(0, 2, 1, "--k/--m"), (2, 0, 1, "--k/--m"),
                                                  (16, 16, 1, "--k/--m"),
                                                  (2, 2, -1, "--adapter-layers")])
def test_bad_splits_are_refused(k, m, adapter, field):
    with pytest.raises(ConfigError, match=field):
        UShape(num_layers=32, first=k, last=m, adapter=adapter)


def test_device_and_cloud_bytes_by_hand():
    s = UShape(num_layers=10, first=2, last=3, adapter=1)
    # weights: embedding 100 + head 50 + (2 + 3 + 1) layers x 10 = 210; KV: 7 tokens x
    # (2 shared + 1 adapter + 3 draft + 3 target) layers x 1 byte = 63
    assert device_bytes(s, SIZES, 7) == 273
    # cloud: 5 middle layers x (10 + 7 x 1)
    assert cloud_bytes(s, SIZES, 7) == 85
    assert hidden_bytes(5, 4096, "fp16") == 5 * 4096 * 2
    assert verify_positions(4) == 5


def test_planner_respects_memory_and_breaks_ties():
    cost = {(1, 1): 1.0, (1, 2): 1.0, (2, 1): 1.0, (2, 2): 0.5, (3, 1): 2.0}

    def c(k, m):
        return cost.get((k, m), 9.0)
    # unlimited memory: (2, 2) is cheapest
    split, best = plan_ushape(6, SIZES, 10**9, 1, c, adapter=0)
    assert (split.first, split.last, best) == (2, 2, 0.5)
    # 150 + 3 x 10 weights + 1 token x (k + 2m) KV: (2, 2) needs 150 + 40 + 6 = 196,
    # (1, 2) and (2, 1) need 150 + 30 + 5 / + 4; capacity 185 leaves the 1.0 ties:
    # the most layers on the device (3) first, then the larger k -> (2, 1)
    split, best = plan_ushape(6, SIZES, 185, 1, c, adapter=0)
    assert (split.first, split.last, best) == (2, 1, 1.0)
    with pytest.raises(ConfigError, match="no U-shaped split"):
        plan_ushape(6, SIZES, 100, 1, c, adapter=0)


def test_planner_is_the_brute_force_minimum():
    # every cost table on a 5-layer model, memory cutting some splits: the planner's choice
    # is the least cost among the fitting splits (checked here by enumeration)
    pairs = [(k, m) for k in range(1, 5) for m in range(1, 5 - k)]
    for values in itertools.product((1.0, 2.0), repeat=len(pairs)):
        table = dict(zip(pairs, values))
        split, best = plan_ushape(5, SIZES, 185, 2, lambda k, m, t=table: t[(k, m)],
                                  adapter=0)
        fits = [p for p in pairs
                if device_bytes(UShape(num_layers=5, first=p[0], last=p[1], adapter=0),
                                SIZES, 2) <= 185]
        assert best == min(table[p] for p in fits)
        assert (split.first, split.last) in fits
