"""The unit registry: the one place a memory-side unit type (compute-in-DRAM, analog CiM, ...)
joins the simulator.

A unit type is a `UnitType`: the key of its section in a chip's YAML (also the unit name the
placer writes on the ops it takes), the frozen dataclass that section loads into (through
`sim.schema`, with the same validation as every other description), the op kinds it can take,
and ``"module:function"`` strings of its models, imported on first use so that loading a
hardware file never pulls in a unit's timing engine:

- ``cost``: ``(system, graph) -> (op -> Cost)``, called once per step (`sim.step`);
- ``capacity``: ``(desc) -> (bytes, label, remedy)``: what the unit can hold, how to name it
  and what to enlarge, for the capacity check of what its description's ``holds`` lists
  (``weights``, ``kv``; `sim.engine`);
- ``describe``: ``(desc) -> dict`` of derived figures (``pdsim describe --json``), and
  ``describe_rows``: ``(dict) -> [(label, text)]`` for the text table;
- ``referenced``: ``(desc) -> {field: text}`` of the files the description names, stored in
  traces;
- ``summary``: ``(system, steps) -> dict`` of run-summary figures (`sim.engine`);
- ``links``: the transfer paths the unit owns, as ``(path, "module:function")`` pairs: the path
  name `mappers.transfers` puts on the ``transfer`` ops to and from the unit's memory, and a
  ``cost`` factory like the unit's own for those ops (`sim.step`).

``dram_audit`` says the ``cost`` factory also takes ``audit=``, a
`sim.units.cid.audit.StreamAudit` that checks every DRAM command stream the model generates
(``pdsim run --check-dram``; `sim.step.step_cost`). ``op_only`` says the function the ``cost``
factory returns ignores the step's graph (an op's cost depends on the op and the system
alone), so `sim.step` may memoise it across the steps of a run as it does the chip models'.

The description dataclass must have ``decode_ops`` and ``prefill_ops`` fields (tuples of op kind
names, `mappers.ir.OpKind` values): the op kinds the placer puts on the unit in each phase.
It validates them with `sim.hardware.check_unit_ops` against the type's ``op_kinds``.

A wing (``sim/units/<unit>/``) declares its `UnitType` in its ``unit.py``; `_BUILTIN` below holds
one line per wing, by name, so the wings never import each other through the registry. Adding a
unit type is one folder plus one line here. Tests add a type for a while with `registered`.

State: `_TYPES` is this module's only mutable state (the registry itself); a shipped type is
resolved from its string on first use and kept. Nothing else in the simulator caches a
registry lookup.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable

#: Unit names the chip's own units take (`mappers.place.UNIT_OF_KIND`); no unit type may
#: register under them.
RESERVED = ("tensor", "vector", "dma", "link")

#: Longest key: the unit column of a trace's op table holds 8 bytes (docs/trace-format.md).
MAX_KEY_CHARS = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitType:
    """One registered unit type (module docstring). ``noun`` names it in messages
    (``CiD unit``)."""

    key: str
    schema: type
    op_kinds: tuple[str, ...]
    cost: str
    noun: str = ""
    capacity: str | None = None
    describe: str | None = None
    describe_rows: str | None = None
    referenced: str | None = None
    summary: str | None = None
    dram_audit: bool = False
    op_only: bool = False
    links: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if (not self.key.isidentifier() or not self.key.isascii() or self.key in RESERVED
                or len(self.key) > MAX_KEY_CHARS):
            raise ValueError(f"unit type key {self.key!r}: must be an ASCII identifier of at most "
                             f"{MAX_KEY_CHARS} characters, not one of {', '.join(RESERVED)}")
        names = {f.name for f in dataclasses.fields(self.schema)}
        missing = {"decode_ops", "prefill_ops"} - names
        if missing:
            raise ValueError(f"unit type {self.key!r}: {self.schema.__name__} lacks "
                             f"{', '.join(sorted(missing))}")
        if "holds" in names and self.capacity is None:
            raise ValueError(f"unit type {self.key!r}: holds data but has no capacity model")

    def model(self, what: str) -> Callable | None:
        """The function ``what`` (``cost``, ``capacity``, ...) names, imported; None if unset."""
        return load(getattr(self, what))


#: The shipped unit types, one line per wing, in placement order.
_BUILTIN = (
    "sim.units.cid.unit:UNIT",
    "sim.units.cim.unit:UNIT",
)

_TYPES: dict[str, UnitType | str] = {spec: spec for spec in _BUILTIN}


def load(spec: str | None) -> Any:
    """The object ``"module:name"`` names, imported on use (None for None)."""
    if spec is None:
        return None
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def unit_types() -> dict[str, UnitType]:
    """Every registered unit type by key, in registration order."""
    out = {}
    for slot, entry in list(_TYPES.items()):
        if isinstance(entry, str):
            entry = _TYPES[slot] = load(entry)
        out[entry.key] = entry
    return out


def unit_type(key: str) -> UnitType:
    """The unit type registered under ``key``; `KeyError` if none."""
    return unit_types()[key]


def sections() -> dict[str, type]:
    """Chip YAML section key -> description dataclass (`sim.schema`'s ``sections`` hook)."""
    return {key: t.schema for key, t in unit_types().items()}


@contextmanager
def registered(unit: UnitType) -> Iterator[UnitType]:
    """Register ``unit`` for the ``with`` block, then remove it (tests; plug-ins that live
    outside this package). A key already registered is refused."""
    if unit.key in unit_types():
        raise ValueError(f"unit type {unit.key!r} is already registered")
    _TYPES[unit.key] = unit
    try:
        yield unit
    finally:
        del _TYPES[unit.key]
