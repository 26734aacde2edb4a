"""The speed-ups change no result: the run-wide cost memo, the lowering, placement and wiring memos,
the transfer pass's shortcut, the trace's template rows; the CiD kernels compile once each;
light commands import no heavy module.
(How fast things are is measured in benchmarks/bench_speed.py, not here.)"""

import math
import subprocess
import sys

import numpy as np
import pytest

import sim.engine as engine
from mappers.models import load_model
from mappers.lower import _fixed_ops
from mappers.wiring import _wire_plan, _wired
from mappers.place import _placed
from sim.engine import STEP_FIELDS, Workload, simulate
from sim.presets import load_hardware
from sim.step import compile_step
from sim.trace import MAX_DIMS, OP_DTYPE, _table, op_table

LLAMA = load_model("llama2-7b").config


def _uncached(*args, memo=None, **kwargs):
    """`compile_step` as it was before the memos: nothing shared between steps."""
    for memo_fn in (_placed, _wired, _wire_plan, _fixed_ops):
        memo_fn.cache_clear()
    return compile_step(*args, **kwargs)


def _reference_op_table(result) -> np.ndarray:
    """The op table built row by row, as the trace writer did before its template rows."""
    rows = []
    for s in result.steps:
        if s.schedule is None:
            continue
        for so in s.schedule.ops:
            op, c, seg = so.op, so.cost, so.segment
            start = s.start_s + so.start_s
            rows.append((s.index, s.phase.value, seg.name, op.name, op.kind.value, op.unit,
                         seg.layer, seg.repeat, (op.dims + (0,) * MAX_DIMS)[:MAX_DIMS],
                         op.dtype, *[getattr(op, f) for f in STEP_FIELDS], start,
                         start + c.time_s, so.period_s, c.time_s, c.compute_s, c.memory_s,
                         c.comm_s, c.bound, c.energy_j, c.dram_bytes, c.cycles,
                         c.stall_cycles, c.utilization))
    return _table(rows, OP_DTYPE)


def _same(a, b) -> bool:
    return a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))


# h100: the chip models (tile and roofline); cent: CiD ops memoised across steps; halo-package:
# CiM ops, costed per step from the step's weight plan; with pipeline stages on h100.
@pytest.mark.parametrize("hw, detail, pp", [("h100", "tile", None), ("h100", "roofline", 2),
                                            ("cent", "tile", None),
                                            ("halo-package", "tile", None)])
def test_runs_with_and_without_caches_are_identical(monkeypatch, hw, detail, pp):
    system = load_hardware(hw).system
    if pp is not None:
        from sim.schema import build, to_dict
        system = build(type(system), to_dict(system) | {"pipeline_parallel": pp,
                                                        "num_chips": pp}, "--pp")
    work = Workload(prompt_tokens=96, gen_tokens=6)
    cached = simulate(system, LLAMA, work, detail=detail)
    monkeypatch.setattr(engine, "compile_step", _uncached)
    plain = simulate(system, LLAMA, work, detail=detail)
    assert cached.summary.keys() == plain.summary.keys()
    assert all(_same(cached.summary[k], plain.summary[k]) for k in cached.summary)
    for a, b in zip(cached.steps, plain.steps, strict=True):
        assert (a.time_s, a.energy_j, a.totals, a.dram_bytes) == \
               (b.time_s, b.energy_j, b.totals, b.dram_bytes)
        assert [(s.op, s.cost, s.start_s) for s in a.schedule.ops] == \
               [(s.op, s.cost, s.start_s) for s in b.schedule.ops]
    table = op_table(cached)
    assert len(table) == sum(len(s.schedule.ops) for s in cached.steps) > 0
    assert table.tobytes() == _reference_op_table(plain).tobytes()


def test_cid_kernels_compile_once_each():
    """Every mode, recorded or not, runs on one compiled specialization per kernel (left to
    infer types, Numba compiled one per call site with literal arguments)."""
    from sim.units.cid import kernel
    from sim.units.cid.dram import load_dram
    from sim.units.cid.engine import MODES, run_channel

    for dram in ("hbm3", "gddr6-aim"):
        device = load_dram(dram)
        for mode in MODES:
            if mode == "aim" and device.global_buffer_bytes == 0:
                continue
            for record in (False, True):
                run_channel(device, mode, steps=3, cols=4, gb_writes=1, reads=1,
                            record=record)
    kernels = [kernel._bank_ok, kernel._issue, kernel._target, kernel.simulate_channel]
    assert [len(k.signatures) for k in kernels] == [1, 1, 1, 1]


@pytest.mark.parametrize("argv", [["list"], ["describe", "cent"],
                                  ["run", "--detail", "roofline", "--no-trace", "--prompt", "16",
                                   "--gen", "2"]])
def test_light_commands_import_no_heavy_module(argv):
    code = ("import sys; from sim.cli.main import main; main(sys.argv[1:]); "
            "print([m for m in ('numba', 'h5py', 'matplotlib') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                         check=True).stdout
    assert out.splitlines()[-1] == "[]"


@pytest.mark.parametrize("hw", ["cent", "h100"])
def test_step_totals_in_one_pass_equal_the_graph_totals(hw):
    sched = simulate(load_hardware(hw).system, LLAMA,
                     Workload(prompt_tokens=32, gen_tokens=2)).steps[1].schedule
    assert engine._graph_totals(sched.graph) == {f: sched.graph.total(f) for f in STEP_FIELDS}


# halo-package prefill: its CiM takes the GEMMs (transfers to and from the chip's memory)
@pytest.mark.parametrize("hw, pp, phase", [("h100", 2, "decode"),
                                           ("halo-package", 1, "prefill")])
def test_memoised_compile_equals_a_fresh_one(hw, pp, phase):
    """A ragged step (two shape groups: attention ops inside one kernel), pipeline stages
    sharing their layer ops, and CiM transfers: compiled after other steps filled the wiring
    and placement memos, the graph equals one compiled with the memos empty."""
    from mappers.ir import Batch, Phase, Precision
    from mappers.pipeline import compile_graph
    from sim.schema import build, to_dict

    system = load_hardware(hw).system
    if pp > 1:
        system = build(type(system), to_dict(system) | {"pipeline_parallel": pp,
                                                        "num_chips": pp}, "--pp")
    p = Precision()
    new = 1 if phase == "decode" else 16
    seqs = Batch.of([(new, 300), (new, 301), (2 * new, 40)])

    def graph(batch):
        return compile_graph(LLAMA, system, phase=Phase(phase), seqs=batch, precision=p)

    for memo_fn in (_placed, _wired, _wire_plan, _fixed_ops):
        memo_fn.cache_clear()
    fresh = graph(seqs)
    graph(Batch.of([(new, 299), (new, 300), (2 * new, 39)]))  # the step before: same shape
    graph(Batch.uniform(2, new, 300))                          # another shape
    assert graph(seqs) == fresh
    kinds = {op.kind.value for seg in fresh.segments for op in seg.ops}
    assert ("transfer" in kinds) == (hw == "halo-package")  # the case covers the transfer pass
