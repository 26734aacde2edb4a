"""Mapping policies (`mappers.mapping`): the named policies rewrite only the units' op lists,
to the lists the papers give (written out here by hand); the ``auto`` search picks the argmin
of the cost it is given, checked against hand-computed costs."""

from __future__ import annotations

import pytest

from mappers.mapping import MAPPINGS, apply_mapping, search
from sim.errors import ConfigError
from sim.presets import load_hardware


def lists(system):
    return {u: (d.prefill_ops, d.decode_ops) for u, d in system.chip.units.items()}


ATTN = {"attn_score", "attn_value", "kv_write"}
GEMMS = {"gemm", "lm_head"}


# Reference: (CiD prefill, CiD decode, CiM prefill, CiM decode) as each paper places the ops
# (docs/ops.md, "Mapping policies"); everything else stays on the host die. Order-free.
@pytest.mark.parametrize(("policy", "want"), [
    ("phase-aware", ({"kv_write"}, GEMMS | ATTN, GEMMS, set())),   # HALO
    ("attention-on-pim", ({"kv_write"}, ATTN, set(), set())),      # AttAcc
    ("all-pim", (GEMMS | ATTN, GEMMS | ATTN, set(), set())),       # CENT
    ("all-cim", (set(), set(), GEMMS, GEMMS)),                     # HALO's extreme
])
def test_named_policies_give_the_papers_lists(policy, want):
    system = load_hardware("halo-package").system
    start = apply_mapping(system, "all-cim" if policy != "all-cim" else "all-pim")
    got = apply_mapping(start, policy)  # from another mapping: the lists are replaced whole
    assert {u: tuple(map(set, v)) for u, v in lists(got).items()} == \
        {"cid": want[:2], "cim": want[2:]}
    assert got.chip.memory == system.chip.memory and got.mapping is None


def test_fixed_keeps_the_yaml_lists():
    system = load_hardware("halo-package").system
    assert lists(apply_mapping(system, "fixed")) == lists(system)


def test_a_policy_needing_a_missing_unit_is_refused():
    with pytest.raises(ConfigError, match="--mapping: all-pim needs a cid unit"):
        apply_mapping(load_hardware("h100").system, "all-pim")


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ConfigError, match="allowed: fixed, phase-aware, attention-on-pim, "
                                          "all-pim, all-cim, auto"):
        apply_mapping(load_hardware("halo-package").system, "cent")
    assert MAPPINGS[0] == "fixed" and MAPPINGS[-1] == "auto"


def test_search_picks_the_hand_computed_argmin():
    # (starts from the best named policy, then searches each phase exhaustively)
    # Toy costs: each (phase, kind, unit) adds a fixed number of seconds; the host is 10 for
    # every kind. Per phase the argmin is then kind by kind: prefill gemm on cim (1 < 5 < 10),
    # decode gemm on cid (2 < 10 < 50), attention on cid only when it is cheaper than 10.
    add = {("prefill", "gemm", "cim"): 1, ("prefill", "gemm", "cid"): 5,
           ("decode", "gemm", "cid"): 2, ("decode", "gemm", "cim"): 50,
           ("decode", "attn_score", "cid"): 3, ("prefill", "attn_score", "cid"): 30}
    system = load_hardware("halo-package").system
    capable = {"cid": ("gemm", "attn_score"), "cim": ("gemm",)}

    def cost(phase, sys_):
        total = 0.0
        for kind in ("gemm", "attn_score"):
            unit = next((u for u, d in sys_.chip.units.items()
                         if kind in (d.prefill_ops if phase == "prefill" else d.decode_ops)),
                        "host")
            total += add.get((phase, kind, unit), 10 if unit == "host" else 100)
        return total

    got, choices = search(system, capable, cost)
    assert lists(got) == {"cid": ((), ("attn_score", "gemm")), "cim": (("gemm",), ())}
    by = {(c.phase, c.kind): c for c in choices}
    # the objective is the run's: prefill 1 + 10 (attention on the host) = 11, decode 2 + 3
    assert by[("prefill", "gemm")].unit == "cim" and by[("prefill", "gemm")].cost_s == 16
    assert dict(by[("prefill", "gemm")].alternatives) == {"host": 25, "cid": 20}
    assert by[("decode", "attn_score")].unit == "cid" and by[("decode", "attn_score")].cost_s == 16
    assert dict(by[("decode", "attn_score")].alternatives) == {"host": 23}
