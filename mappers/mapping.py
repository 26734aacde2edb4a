"""Mapping policies: which unit of the chip runs each op kind in each phase, a pass before
``place`` (`mappers.pipeline`).

A policy rewrites the ``prefill_ops`` / ``decode_ops`` lists of the chip's memory-side units
(``chip.units``), which `mappers.place.place` then reads; the hardware stays the same, so one
package runs under every policy. Policies (``--mapping NAME``, or ``mapping:`` in a system YAML):

- ``fixed``: the lists the hardware YAML gives (no rewrite).
- ``phase-aware`` (HALO, arXiv 2510.02675): prefill GEMMs and the LM head on the analog CiM;
  decode GEMVs, the LM head and decode attention on the CiD; the prompt's KV cache written into
  the CiD stacks; everything else (norms, RoPE, softmax, activations, residuals, prefill
  attention, whose operands change every token) on the host die.
- ``attention-on-pim`` (AttAcc-style): decode attention and every KV-cache write on the CiD;
  every GEMM on the host die (AttAcc runs the summarization stage, prefill, on the GPU).
- ``all-pim`` (CENT-style): every GEMM, the LM head, attention and KV writes of both phases on
  the CiD.
- ``all-cim``: every GEMM and the LM head of both phases on the analog CiM; attention on the
  host die (a crossbar holds static matrices; the KV cache changes every token).
- ``auto``: the cost-driven search of `search` (the simulator passes the costs in).

Pure: a `System` in, a `System` out; unit types are known only by the keys they register
under (``cid``, ``cim``), never imported.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sim.errors import ConfigError
from sim.hardware import System

GEMMS = ("gemm", "lm_head")
ATTENTION = ("attn_score", "attn_value", "kv_write")

#: A policy's lists: unit key -> (prefill op kinds, decode op kinds); units not named run nothing.
Lists = Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]

#: Named policies: (units the policy needs, its lists). ``fixed`` and ``auto`` are handled apart.
POLICIES: dict[str, tuple[tuple[str, ...], Lists]] = {
    "phase-aware": (("cid", "cim"), {"cim": (GEMMS, ()),
                                     "cid": (("kv_write",), GEMMS + ATTENTION)}),
    "attention-on-pim": (("cid",), {"cid": (("kv_write",), ATTENTION)}),
    "all-pim": (("cid",), {"cid": (GEMMS + ATTENTION, GEMMS + ATTENTION)}),
    "all-cim": (("cim",), {"cim": (GEMMS, GEMMS)}),
}

#: Every name ``--mapping`` accepts, in the order help and errors list them.
MAPPINGS = ("fixed", *POLICIES, "auto")


def check_mapping(name: str, flag: str = "--mapping") -> None:
    """Refuse an unknown policy name, listing the known ones."""
    if name not in MAPPINGS:
        raise ConfigError(f"{flag}: unknown mapping {name!r} (allowed: {', '.join(MAPPINGS)})")


def with_lists(system: System, lists: Lists) -> System:
    """``system`` with each memory-side unit's op lists replaced by ``lists`` (units it does
    not name take nothing)."""
    units = []
    for key, desc in system.chip.units.items():
        prefill, decode = lists.get(key, ((), ()))
        units.append((key, dataclasses.replace(desc, prefill_ops=tuple(prefill),
                                               decode_ops=tuple(decode))))
    chip = dataclasses.replace(system.chip, units=type(system.chip.units)(units))
    return dataclasses.replace(system, chip=chip, mapping=None)


def apply_mapping(system: System, name: str) -> System:
    """``system`` under the named policy (not ``auto``, which needs costs: `search`)."""
    check_mapping(name)
    if name == "fixed":
        return dataclasses.replace(system, mapping=None)
    if name == "auto":
        raise ValueError("auto needs costs: call mappers.mapping.search")
    needs, lists = POLICIES[name]
    missing = [u for u in needs if u not in system.chip.units]
    if missing:
        have = ", ".join(system.chip.units) or "none"
        raise ConfigError(f"--mapping: {name} needs a {' and a '.join(missing)} unit on the "
                          f"chip; {system.name} has {have}")
    return with_lists(system, lists)


@dataclass(frozen=True, slots=True)
class Choice:
    """The search's pick for one op kind in one phase: ``unit`` (a memory-side unit key, or
    ``host``), the phase's objective with it (``cost_s``) and with each alternative unit, the
    rest of the pick held (``alternatives``: unit -> seconds)."""

    phase: str
    kind: str
    unit: str
    cost_s: float
    alternatives: tuple[tuple[str, float], ...]


def search(system: System, capable: Mapping[str, Sequence[str]],
           cost: Callable[[str, System], float]) -> tuple[System, tuple[Choice, ...]]:
    """``auto``: pick, for every phase and every op kind some memory-side unit can take, the
    unit (or the host die) that minimises the run's objective: ``cost("prefill", system) +
    cost("decode", system)``.

    ``capable``: unit key -> the op kinds its type can run. ``cost`` is the simulator's (the
    compiler imports no unit model): for ``prefill`` the scheduled time of the prefill step,
    for ``decode`` the summed time of the decode steps, each step compiled with the candidate
    lists, so transfers (`mappers.transfers`) and overlap (`mappers.schedule`) are counted as
    they will be run. The phases are coupled only through units whose state spans the run (a
    CiM's crossbar residency plan covers the GEMMs of both phases), so the search starts from
    the best named policy the chip can run and then, phase by phase until nothing changes,
    tries every per-kind assignment of that phase (at most 3 x 3 x 2 x 2 x 2 = 72 with a CiD
    and a CiM) with the other phase held, keeping one only when it lowers the objective. It
    never ends above the best named policy. Returns the system with the best lists and one
    `Choice` per (phase, kind): the unit and the objective on each alternative."""
    units = [u for u in system.chip.units if u in capable]
    kinds = sorted({k for u in units for k in capable[u]})
    options = {k: ["host", *(u for u in units if k in capable[u])] for k in kinds}
    seen: dict[tuple, float] = {}

    def total(picks: tuple[tuple[str, ...], tuple[str, ...]]) -> float:
        if picks not in seen:
            lists = {u: tuple(tuple(k for k, v in zip(kinds, pick) if v == u) for pick in picks)
                     for u in units}
            trial = with_lists(system, lists)
            seen[picks] = cost("prefill", trial) + cost("decode", trial)
        return seen[picks]

    def picks_of(lists: Lists) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return tuple(tuple(next((u for u in units if k in lists.get(u, ((), ()))[p]), "host")
                           for k in kinds) for p in (0, 1))

    starts = [picks_of(lists) for needs, lists in POLICIES.values()
              if all(u in units for u in needs)]
    best = min(starts, key=total) if starts else (("host",) * len(kinds),) * 2
    for _ in range(4):  # rounds of per-phase exhaustive search; ends when one changes nothing
        before = best
        for p in (0, 1):
            for pick in itertools.product(*(options[k] for k in kinds)):
                trial = (pick, best[1]) if p == 0 else (best[0], pick)
                if total(trial) < total(best):
                    best = trial
        if best == before:
            break
    choices = []
    for p, phase in enumerate(("prefill", "decode")):
        for i, kind in enumerate(kinds):
            alts = []
            for u in options[kind]:
                if u != best[p][i]:
                    pick = best[p][:i] + (u,) + best[p][i + 1:]
                    alts.append((u, total((pick, best[1]) if p == 0 else (best[0], pick))))
            choices.append(Choice(phase, kind, best[p][i], total(best), tuple(alts)))
    lists = {u: tuple(tuple(k for k, v in zip(kinds, pick) if v == u) for pick in best)
             for u in units}
    return with_lists(system, lists), tuple(choices)
