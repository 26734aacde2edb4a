"""A new unit type needs nothing but its registration (`sim.units.registry`): this file alone
defines a toy unit (a description, the op kinds it takes, a cost model), puts it on an h100
chip in YAML, and runs llama2-7b on it through ``pdsim run``.

Reference: the toy charges ``TIME_PER_OP_S`` per op instance, so a decode step of llama2-7b
(32 layers, each with two RMSNorms and one softmax, plus the final norm) spends exactly
``(3 * 32 + 1) * TIME_PER_OP_S`` on it, and no prefill op goes there (the toy takes nothing in
prefill).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from sim.cli.main import main
from sim.cost import Cost
from sim.errors import ConfigError
from sim.hardware import check_unit_ops
from sim.presets import PRESETS, parse_hardware
from sim.trace import read_trace
from sim.units.registry import UnitType, registered, unit_types

TOY_KINDS = ("softmax", "norm")
TIME_PER_OP_S = 1e-5
LAYERS = 32  # llama2-7b


@dataclass(frozen=True, slots=True, kw_only=True)
class ToyUnit:
    """A unit that runs any op it takes in ``time_per_op_s`` seconds."""

    time_per_op_s: float
    decode_ops: tuple[str, ...] = TOY_KINDS
    prefill_ops: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.time_per_op_s > 0:
            raise ConfigError(f"time_per_op_s: must be > 0, got {self.time_per_op_s!r}")
        check_unit_ops(self, TOY_KINDS, "toy unit")


def toy_step_cost(system, graph):
    """The toy's cost factory: a fixed time per op instance, no energy figure."""
    del graph
    t = system.chip.units["toy"].time_per_op_s

    def cost(op) -> Cost:
        return Cost(time_s=t, compute_s=t, memory_s=0.0, comm_s=0.0, energy_j=math.nan,
                    bound="compute")
    return cost


TOY = UnitType(key="toy", schema=ToyUnit, op_kinds=TOY_KINDS, noun="toy unit",
               cost=f"{__name__}:toy_step_cost")


@pytest.fixture
def toy():
    """The toy unit type, registered for one test and removed after it."""
    with registered(TOY) as unit:
        yield unit


def _h100_with(section: dict, tmp_path: Path) -> Path:
    data = yaml.safe_load(PRESETS.read("h100")[0])
    data["name"] = "h100-toy"
    data["chip"]["toy"] = section
    path = tmp_path / "h100-toy.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_toy_unit_takes_and_costs_its_ops_end_to_end(toy, tmp_path, capsys):
    hw = _h100_with({"time_per_op_s": TIME_PER_OP_S}, tmp_path)
    trace = tmp_path / "run.h5"
    assert main(["run", "--hw", str(hw), "--model", "llama2-7b", "--prompt", "16", "--gen", "3",
                 "--detail", "roofline", "-o", str(trace)]) == 0
    capsys.readouterr()
    ops = read_trace(trace).ops
    on_toy = ops[ops["unit"] == b"toy"]
    decode = ops["phase"] == b"decode"
    # Placement: every decode softmax and norm, nothing else, no prefill op.
    assert set(on_toy["kind"]) == {b"softmax", b"norm"}
    assert set(on_toy["phase"]) == {b"decode"}
    kinds = np.isin(ops["kind"], [b"softmax", b"norm"])
    assert np.all((ops["unit"] == b"toy") == (kinds & decode))
    # Costing: the toy's fixed time per instance, (3 L + 1) instances per decode step.
    assert np.all(on_toy["time_s"] == TIME_PER_OP_S)
    for step in (1, 2):
        mine = on_toy[on_toy["step"] == step]
        assert int(mine["repeat"].sum()) == 3 * LAYERS + 1
        assert float((mine["repeat"] * mine["time_s"]).sum()) == pytest.approx(
            (3 * LAYERS + 1) * TIME_PER_OP_S, rel=1e-12)


def test_toy_unit_in_describe(toy, tmp_path, capsys):
    hw = _h100_with({"time_per_op_s": TIME_PER_OP_S}, tmp_path)
    assert main(["describe", str(hw), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["toy"] == {"time_per_op_s": TIME_PER_OP_S, "decode_ops": list(TOY_KINDS),
                        "prefill_ops": []}
    assert d["config"]["chip"]["toy"] == d["toy"] and d["cid"] is None and d["cim"] is None


def test_toy_section_is_validated(toy, tmp_path, capsys):
    bad = _h100_with({"time_per_op_s": TIME_PER_OP_S, "decode_ops": ["gemm"]}, tmp_path)
    assert main(["run", "--hw", str(bad), "--gen", "2", "--no-trace"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("chip.toy.decode_ops: 'gemm' cannot run on a toy unit "
                        "(allowed: softmax, norm)") and "\n" not in err


def test_registration_is_undone(tmp_path):
    with registered(TOY):
        assert list(unit_types()) == ["cid", "cim", "toy"]
        parse_hardware(_h100_with({"time_per_op_s": 1.0}, tmp_path).read_text(), "x.yaml")
    assert list(unit_types()) == ["cid", "cim"]
    with pytest.raises(ConfigError, match=r"^x.yaml: chip.toy: unknown field \(allowed: .*, "
                                          r"cid, cim\)$"):
        parse_hardware(_h100_with({"time_per_op_s": 1.0}, tmp_path).read_text(), "x.yaml")


def test_registry_refuses_clashing_types():
    with pytest.raises(ValueError, match="already registered"):
        with registered(UnitType(key="cid", schema=ToyUnit, op_kinds=TOY_KINDS, cost="x:y")):
            pass
    for key in ("tensor", "toy-unit", "toolongkey"):  # a chip unit; not a name; > 8 chars
        with pytest.raises(ValueError, match="at most 8 characters, not one of tensor"):
            UnitType(key=key, schema=ToyUnit, op_kinds=TOY_KINDS, cost="x:y")
    assert list(unit_types()) == ["cid", "cim"]


def test_units_are_immutable_hashable_and_pickle():
    """`chip.units` travels to sweep workers (pickle) and keys caches (hash) like the rest of a
    frozen `System`."""
    import copy
    import pickle

    from sim.presets import load_hardware

    system = load_hardware("halo-package").system
    assert list(system.chip.units) == ["cid", "cim"]
    assert system.chip.units["cid"] is system.chip.cid
    assert system.chip.cim.unit == "halo-package-cim"
    for twin in (pickle.loads(pickle.dumps(system)), copy.deepcopy(system)):
        assert twin == system and hash(twin) == hash(system)
    with pytest.raises(AttributeError):
        system.chip.units._items = ()
