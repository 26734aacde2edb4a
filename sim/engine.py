"""Run a request workload: one prefill, then every decode step with the growing KV cache.

Token accounting follows serving engines (vLLM): the prefill produces the first output token,
so ``gen_tokens`` output tokens take one prefill and ``gen_tokens - 1`` decode steps. Decode
step ``j`` (0-based) feeds one token per sequence on top of ``prompt_tokens + j`` cached
tokens.

Exact by default. With ``decode_sample=n`` only ``n`` evenly spaced decode steps (first and
last included) are simulated and the others are linearly interpolated in the context length;
under the roofline every per-step quantity is piecewise linear in the context, so the error
is small (tests/sim/test_engine.py measures it).
"""

from __future__ import annotations

import gc
import math
from contextlib import contextmanager
from dataclasses import dataclass, replace
from operator import attrgetter
from typing import TYPE_CHECKING, Callable

import numpy as np

from mappers.ir import Graph, Phase, Precision
from mappers.lower import lower, shard_heads, stage_layers
from mappers.models import ModelConfig
from sim.step import RunMemo, compile_step
from mappers.place import place
from mappers.schedule import StepSchedule

from sim.costmodel import static_power_w
from sim.dtypes import nbytes
from sim.errors import ConfigError
from sim.hardware import System
from sim.limits import MAX_DECODE_STEPS, check_below_int64
from sim.units.registry import unit_type

if TYPE_CHECKING:  # annotation only: unit models are imported on use
    from sim.units.cid.audit import StreamAudit

#: Per-step quantities that are summed over ops and stored per step.
STEP_FIELDS = ("flops", "weight_bytes", "act_bytes", "kv_bytes", "comm_bytes")


@dataclass(frozen=True, slots=True, kw_only=True)
class Workload:
    """``batch`` requests of ``prompt_tokens`` tokens each, generating ``gen_tokens`` each."""

    batch: int = 1
    prompt_tokens: int = 2048
    gen_tokens: int = 128
    precision: Precision = Precision()

    def __post_init__(self) -> None:
        for name in ("batch", "prompt_tokens", "gen_tokens"):
            value = getattr(self, name)
            if value < 1:
                raise ConfigError(f"{name}: must be >= 1, got {value}")
        if self.gen_tokens - 1 > MAX_DECODE_STEPS:
            raise ConfigError(f"gen_tokens: at most {MAX_DECODE_STEPS + 1} (decode steps are "
                              f"simulated and stored one by one), got {self.gen_tokens}")


@dataclass(frozen=True, slots=True)
class Step:
    """One prefill or decode step. ``schedule`` is None for interpolated steps."""

    index: int
    phase: Phase
    context: int
    new_tokens: int
    start_s: float
    time_s: float
    energy_j: float
    totals: dict[str, int]
    memory_bound_s: float
    dram_bytes: float
    schedule: StepSchedule | None
    write_bound_s: float = 0.0  # in ops bound by reprogramming CiM crossbars (bound "write")
    #: Time of every op of the step, summed over ops (repeats included). Ops on different
    #: units overlap, so this can exceed ``time_s``; bound fractions divide by it.
    op_s: float = 0.0
    tokens_produced: int = 1  # output tokens per sequence the step yields


@dataclass(frozen=True, slots=True)
class RunResult:
    system: System
    model: ModelConfig
    workload: Workload
    steps: tuple[Step, ...]
    summary: dict[str, float | int | bool]


def stage_footprints(model: ModelConfig, system: System,
                     workload: Workload) -> tuple[tuple[int, int], ...]:
    """Weight bytes and peak KV-cache bytes held by one chip of each pipeline stage's
    tensor-parallel group, stage by stage (one stage without pipeline parallelism)."""
    tp, p = system.tensor_parallel, workload.precision
    counts = model.parameter_counts()
    stages = stage_layers(model.num_layers, system.pipeline_parallel)
    vocab_shard = -(-model.vocab_size // tp) * model.hidden_size
    # Layers are sharded except their norms; the embedding table is replicated; an untied LM
    # head is split over the vocabulary (a tied one is a slice of the replicated table, which
    # the last stage holds a copy of when it is not also the first, as Megatron-LM does).
    # norms (and a MoE router) are replicated on every chip of the group
    replicated = counts["per_layer_norms"] + model.hidden_size * model.num_experts
    per_layer = (counts["per_layer"] - replicated) // tp + replicated
    _, kv_heads = shard_heads(model, tp)
    held = workload.prompt_tokens + workload.gen_tokens - 1
    if model.sliding_window is not None:  # a rolling cache of the last W tokens
        held = min(held, model.sliding_window)
    tokens = workload.batch * held
    scales = _stage_scale_bytes(model, system, p)
    out = []
    for s, layers in enumerate(stages):
        weights = layers * per_layer
        if s == 0:
            weights += counts["embedding"]
        if s == len(stages) - 1:
            tied_here = model.tie_word_embeddings and len(stages) == 1
            weights += counts["final_norm"] + (0 if tied_here else vocab_shard)
        # a quantized cache's per-token scales grow with it; static per-channel ones are
        # calibrated constants, held with the weights (`Precision.kv_scale_group`)
        kv = (nbytes(2 * layers * tokens * kv_heads * model.head_dim, p.kv)
              + 2 * layers * p.kv_token_scale_bytes(tokens, kv_heads, model.head_dim))
        static = 2 * layers * p.kv_channel_scale_bytes(kv_heads, model.head_dim)
        out.append((nbytes(weights, p.weight) + scales[s] + static, kv))
    return tuple(out)


def _stage_scale_bytes(model: ModelConfig, system: System,
                       precision: Precision) -> list[int]:
    """Bytes of quantisation scales (`Precision.weight_scale_group`) each pipeline stage's chip
    holds:
    those its GEMM and LM-head ops read, as the lowering counts them."""
    stages = [0] * system.pipeline_parallel
    if not precision.weight_scale_group:
        return stages
    graph = lower(model, phase=Phase.DECODE, batch=1, new_tokens=1, context=0,
                  precision=precision, tp=system.tensor_parallel, pp=system.pipeline_parallel)
    stage = 0
    for seg in graph.segments:  # layer segments in stage order; the LM head on the last
        held = seg.repeat * sum(op.formats.scale_bytes for op in seg.ops)
        stages[min(stage, len(stages) - 1)] += held
        stage += seg.name == "layers"
    return stages


def footprint(model: ModelConfig, system: System, workload: Workload) -> tuple[int, int]:
    """Weight bytes and peak KV-cache bytes held by one chip: of the tensor-parallel group,
    in the pipeline stage that holds the most (`stage_footprints`)."""
    return max(stage_footprints(model, system, workload), key=sum)


def simulate(system: System, model: ModelConfig, workload: Workload, *,
             detail: str = "tile", decode_sample: int | None = None,
             check_capacity: bool = True,
             progress: Callable[[int, int], None] | None = None,
             dram_audit: StreamAudit | None = None) -> RunResult:
    """Simulate ``workload`` on ``system`` with unit models at ``detail`` (``tile`` or
    ``roofline``); see the module docstring for conventions. ``dram_audit``: a
    `sim.units.cid.audit.StreamAudit` that checks every CiD command stream of the simulated
    steps (interpolated decode steps generate none)."""
    if detail not in ("tile", "roofline"):
        raise ConfigError(f"--detail: unknown detail {detail!r} (allowed: tile, roofline)")
    if system.mapping is not None:  # the system's default policy (`sim.mapping`)
        from sim.mapping import resolve
        system, _ = resolve(system, model, workload, detail=detail)
    p = workload.precision
    shard_heads(model, system.tensor_parallel)
    _check_tensor_dtype(model, system, p)  # refuse early, before any step is simulated
    _check_counts(model, system, workload)
    cim = system.chip.cim
    if model.moe and cim is not None and "gemm" in (*cim.prefill_ops, *cim.decode_ops):
        # the crossbar residency plan reads the experts a step touches, not all of them
        raise ConfigError(f"--model: {model.name} is a mixture-of-experts model "
                          f"({model.num_experts} experts); analog CiM units that take GEMMs "
                          f"do not support it yet (use a system without chip.cim gemm ops)")
    stages = stage_footprints(model, system, workload)
    weights_b, kv_b = max(stages, key=sum)
    if check_capacity:
        for s, (stage_w, stage_kv) in enumerate(stages):
            _check_capacity(system, stage_w, stage_kv, s)
    n_decode = workload.gen_tokens - 1
    if decode_sample is not None and decode_sample < 2:
        raise ConfigError(f"--decode-sample: must be >= 2, got {decode_sample}")

    # Shared by the steps of this run: each step shape's compiled graph and schedule plan,
    # and the costs that depend on the op alone, so a decode step lowers and re-costs only
    # the ops that change with the context (attention).
    memo = RunMemo()

    def run(phase: Phase, new_tokens: int, context: int) -> StepSchedule:
        return compile_step(model, system, phase=phase, batch=workload.batch,
                            new_tokens=new_tokens, context=context, precision=p, detail=detail,
                            memo=memo, dram_audit=dram_audit)

    prefill = run(Phase.PREFILL, workload.prompt_tokens, 0)
    steps = [_step(0, Phase.PREFILL, 0, workload.prompt_tokens, 0.0, prefill)]
    contexts = workload.prompt_tokens + np.arange(n_decode)
    if decode_sample is None or decode_sample >= n_decode:
        sampled = range(n_decode)
    else:
        sampled = set(np.linspace(0, n_decode - 1, decode_sample).round().astype(int))
        if model.sliding_window is not None:  # attention stops growing at the window: a kink
            kink = model.sliding_window - 1 - workload.prompt_tokens
            sampled |= {j for j in (kink, kink + 1) if 0 <= j < n_decode}
        sampled = sorted(sampled)
    scheds = {}
    with paused_gc():
        for done, j in enumerate(sampled):
            scheds[j] = run(Phase.DECODE, 1, int(contexts[j]))
            if progress is not None:
                progress(done + 1, len(sampled))
        steps += _decode_steps(scheds, contexts, prefill.time_s)  # a record per step, too
    summary = _summary(system, workload, steps, weights_b, kv_b, model)
    for key in system.chip.units:
        # A unit type's own figures (the CiM unit's weight residency), `sim.units.registry`.
        unit_summary = unit_type(key).model("summary")
        if unit_summary is not None:
            summary.update(unit_summary(system, steps))
    return RunResult(system=system, model=model, workload=workload, steps=tuple(steps),
                     summary=summary)


@contextmanager
def paused_gc():
    """Pause Python's cyclic garbage collector. The decode loop allocates many small acyclic
    records (ops, costs, schedules) that the run keeps; each full collection walks all of
    them, which made a step's cost grow with the number of steps before it. Reference
    counting still frees everything; cycles wait for the collector's next pass."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _check_counts(model: ModelConfig, system: System, workload: Workload) -> None:
    """Refuse a workload whose counts (FLOPs, bytes) leave int64 (`sim.limits`), before any
    step is simulated. The prefill and the last decode step are the largest steps; the decode
    phase's totals are at most the steps times the last one's."""
    last_context = workload.prompt_tokens + workload.gen_tokens - 2
    n_decode = workload.gen_tokens - 1
    for phase, new_tokens, context, steps in (
            (Phase.PREFILL, workload.prompt_tokens, 0, 1),
            (Phase.DECODE, 1, last_context, max(n_decode, 1))):
        graph = lower(model, phase=phase, batch=workload.batch, new_tokens=new_tokens,
                      context=context, precision=workload.precision,
                      tp=system.tensor_parallel, pp=system.pipeline_parallel)
        for field in STEP_FIELDS:
            total = graph.total(field)
            check_below_int64(f"the {phase.value} phase's {field.replace('_', ' ')}",
                              total * steps, "--batch/--prompt/--gen")


def _check_tensor_dtype(model: ModelConfig, system: System, precision: Precision) -> None:
    """The systolic arrays must support the activation dtype if any op of either phase is
    placed on them; a chip whose matrix products all go to memory-side units (CENT's) runs any
    dtype those take. Placement depends on the phase and the op kinds only, so a one-token
    graph of each phase decides it."""
    for phase in Phase:
        graph = place(lower(model, phase=phase, batch=1, new_tokens=1,
                            context=0 if phase is Phase.PREFILL else 1, precision=precision,
                            tp=system.tensor_parallel, pp=system.pipeline_parallel), system)
        if any(op.unit == "tensor" for seg in graph.segments for op in seg.ops):
            system.chip.core.systolic_array.macs_per_pe_per_cycle(precision.activation)
            return


def _check_capacity(system: System, weights_b: int, kv_b: int, stage: int) -> None:
    """One chip of pipeline stage ``stage`` holds ``weights_b`` bytes of weights and ``kv_b``
    of KV cache: what its memory-side units hold (each description's ``holds``) must fit in
    them, the rest in the chip's memory."""
    capacity = system.chip.memory.capacity_bytes
    held = {what for desc in system.chip.units.values() for what in getattr(desc, "holds", ())}
    on_chip = (0 if "weights" in held else weights_b) + (0 if "kv" in held else kv_b)
    pp = system.pipeline_parallel
    where = "" if pp == 1 else f" pipeline stage {stage} (of {pp})"
    if on_chip > capacity:
        raise ConfigError(
            f"workload does not fit: one chip{where and ' of' + where} needs "
            f"{weights_b / 1e9:.1f} GB of weights + "
            f"{kv_b / 1e9:.1f} GB of KV cache, {system.name} has {capacity / 1e9:.1f} GB "
            f"(raise --tp{'/--pp' if pp > 1 else ''}, shrink --batch/--prompt/--gen, or pass "
            f"--no-capacity-check)")
    for key, desc in system.chip.units.items():
        holds = getattr(desc, "holds", ())
        if holds:
            _check_unit_capacity(system, key, holds, weights_b, kv_b, where and " in" + where)


def _check_unit_capacity(system: System, key: str, holds: tuple[str, ...], weights_b: int,
                         kv_b: int, where: str) -> None:
    """What the memory-side unit ``key`` holds (weights, KV cache) must fit in it (the
    ``capacity`` model its type registers)."""
    kind = unit_type(key)
    have, label, remedy = kind.model("capacity")(system.chip.units[key])
    need = ("weights" in holds) * weights_b + ("kv" in holds) * kv_b
    if need > have:
        parts = []
        if "weights" in holds:
            parts.append(f"{weights_b / 1e9:.1f} GB of weights")
        if "kv" in holds:
            parts.append(f"{kv_b / 1e9:.1f} GB of KV cache")
        what = " + ".join(parts)
        raise ConfigError(
            f"workload does not fit: the {kind.noun or key + ' unit'} of {system.name}{where} "
            f"must hold {what} but its {label} hold {have / 1e9:.1f} GB ("
            + ("raise --pp, " if where else "") + "shrink --batch/--prompt/--gen, "
            f"{remedy}, or pass --no-capacity-check)")


def _step(index: int, phase: Phase, context: int, new_tokens: int, start: float,
          sched: StepSchedule) -> Step:
    # the sums of `StepSchedule.total_time_where` and `total_op_time`, one pass over the ops
    times = [s.segment.repeat * s.cost.time_s for s in sched.ops]
    bounds = [s.cost.bound for s in sched.ops]
    return Step(index=index, phase=phase, context=context, new_tokens=new_tokens,
                start_s=start, time_s=sched.time_s, energy_j=sched.energy_j,
                totals=_graph_totals(sched.graph),
                memory_bound_s=sum([t for t, b in zip(times, bounds) if b == "memory"]),
                dram_bytes=sched.dram_bytes, schedule=sched,
                write_bound_s=sum([t for t, b in zip(times, bounds) if b == "write"]),
                op_s=sum(times))


_STEP_FIELDS_OF = attrgetter(*STEP_FIELDS)


def _graph_totals(graph: Graph) -> dict[str, int]:
    """``{field: graph.total(field)}`` for `STEP_FIELDS` in one pass over the ops (exact
    integers, so the order of the sums does not matter; a decode step of a many-stage chip
    has hundreds of ops)."""
    totals = [0] * len(STEP_FIELDS)
    for seg in graph.segments:
        for i, column in enumerate(zip(*map(_STEP_FIELDS_OF, seg.ops))):
            totals[i] += seg.repeat * sum(column)
    return dict(zip(STEP_FIELDS, totals))


def _decode_steps(scheds: dict[int, StepSchedule], contexts: np.ndarray,
                  start: float) -> list[Step]:
    if not scheds:
        return []
    if len(scheds) == len(contexts):  # every step simulated: nothing to interpolate
        steps = []
        for j, ctx in enumerate(contexts):
            steps.append(_step(j + 1, Phase.DECODE, int(ctx), 1, start, scheds[j]))
            start += steps[-1].time_s
        return steps
    # Each simulated step is summed once; interpolated steps read those sums.
    exact = {j: _step(j + 1, Phase.DECODE, int(contexts[j]), 1, 0.0, scheds[j])
             for j in sorted(scheds)}
    known = np.array(list(exact))
    at = contexts[known]

    def interp(field: str, key: str | None = None) -> np.ndarray:
        values = [getattr(s, field) if key is None else getattr(s, field)[key]
                  for s in exact.values()]
        return np.interp(contexts, at, np.asarray(values, dtype=float))

    if len(exact) < len(contexts):
        times, energy = interp("time_s"), interp("energy_j")
        membound, writebound = interp("memory_bound_s"), interp("write_bound_s")
        optime = interp("op_s")
        dram = interp("dram_bytes")
        totals = {f: np.rint(interp("totals", f)).astype(np.int64) for f in STEP_FIELDS}
    steps = []
    for j, ctx in enumerate(contexts):
        if j in exact:
            steps.append(replace(exact[j], start_s=start))
        else:
            steps.append(Step(index=j + 1, phase=Phase.DECODE, context=int(ctx), new_tokens=1,
                              start_s=start, time_s=float(times[j]),
                              energy_j=float(energy[j]),
                              totals={f: int(totals[f][j]) for f in STEP_FIELDS},
                              memory_bound_s=float(membound[j]),
                              dram_bytes=float(dram[j]), schedule=None,
                              write_bound_s=float(writebound[j]),
                              op_s=float(optime[j])))
        start += steps[-1].time_s
    return steps


def _summary(system: System, workload: Workload, steps: list[Step], weights_b: int,
             kv_b: int, model: ModelConfig) -> dict[str, float | int | bool]:
    """The run's summary; docs/trace-format.md gives every key's meaning and scope. Step
    quantities are per chip (with pipeline stages: one chip of each stage, summed); keys
    ending ``_per_system`` cover all ``tensor_parallel x pipeline_parallel`` chips."""
    b = workload.batch
    tp, pp = system.tensor_parallel, system.pipeline_parallel
    prefill, decode = steps[0], steps[1:]
    tbt = np.array([s.time_s for s in decode])
    e2e = prefill.time_s + float(tbt.sum())
    out: dict[str, float | int | bool] = {
        "ttft_s": prefill.time_s,
        "tbt_mean_s": float(tbt.mean()) if len(tbt) else math.nan,
        "tbt_p50_s": float(np.percentile(tbt, 50)) if len(tbt) else math.nan,
        "tbt_p99_s": float(np.percentile(tbt, 99)) if len(tbt) else math.nan,
        "e2e_s": e2e,
        "output_tokens_per_s": b * workload.gen_tokens / e2e,
        "prefill_tokens_per_s": b * workload.prompt_tokens / prefill.time_s,
        "decode_tokens_per_s": b * len(tbt) / float(tbt.sum()) if len(tbt) else math.nan,
    }
    # Static power flows whenever a chip is on: every chip of every stage, for the whole
    # run, busy or waiting for another stage (sim/costmodel.py, IDLE_FRACTION_OF_TDP).
    static_w = static_power_w(system.chip)
    static_w = math.nan if static_w is None else static_w
    for phase, group in (("prefill", [prefill]), ("decode", decode)):
        totals = {f: sum(s.totals[f] for s in group) for f in STEP_FIELDS}
        moved = totals["weight_bytes"] + totals["act_bytes"] + totals["kv_bytes"]
        dram = sum(s.dram_bytes for s in group)
        time = sum(s.time_s for s in group)
        out.update({f"{phase}_{f}": v for f, v in totals.items()})
        out[f"{phase}_bytes"] = moved
        out[f"{phase}_dram_bytes"] = dram
        out[f"{phase}_intensity_flop_per_dram_byte"] = totals["flops"] / dram if dram else math.nan
        out[f"{phase}_intensity_flop_per_logical_byte"] = (totals["flops"] / moved if moved
                                                           else math.nan)
        # The pre-static, pre-scope name of the logical intensity, kept for readers of it.
        out[f"{phase}_intensity_flop_per_byte"] = out[f"{phase}_intensity_flop_per_logical_byte"]
        out[f"{phase}_time_s"] = time
        out[f"{phase}_energy_j"] = sum(s.energy_j for s in group)
        out[f"{phase}_static_energy_j_per_chip"] = pp * static_w * time
        # A share of op time, not of wall time: ops on different units overlap, so the
        # memory-bound ops' summed time can exceed the step's (docs/trace-format.md).
        op_time = sum(s.op_s for s in group)
        out[f"{phase}_memory_bound_fraction"] = (sum(s.memory_bound_s for s in group) / op_time
                                                 if op_time else math.nan)
    out.update(busy_fractions(steps, system.pipeline_parallel))
    out["energy_j"] = out["prefill_energy_j"] + out["decode_energy_j"]
    out["energy_per_output_token_j"] = out["energy_j"] / (b * workload.gen_tokens)
    out["static_power_w_per_chip"] = static_w
    out["dynamic_energy_j_per_chip"] = out["energy_j"]
    out["static_energy_j_per_chip"] = pp * static_w * e2e
    out["total_energy_j_per_chip"] = out["energy_j"] + out["static_energy_j_per_chip"]
    out["dynamic_energy_j_per_system"] = tp * out["energy_j"]
    out["static_energy_j_per_system"] = tp * pp * static_w * e2e
    out["total_energy_j_per_system"] = (out["dynamic_energy_j_per_system"]
                                        + out["static_energy_j_per_system"])
    out["total_energy_per_output_token_j_per_system"] = (
        out["total_energy_j_per_system"] / (b * workload.gen_tokens))
    out["weight_bytes_per_chip"] = weights_b
    out["kv_cache_bytes_per_chip"] = kv_b
    out["memory_capacity_bytes"] = system.chip.memory.capacity_bytes
    out["chips"] = tp * pp
    out["tensor_parallel"] = tp
    out["pipeline_parallel"] = pp
    out["decode_steps"] = len(decode)
    out["decode_steps_simulated"] = sum(s.schedule is not None for s in decode)
    max_ctx = workload.prompt_tokens + workload.gen_tokens - 1
    out["exceeds_max_positions"] = bool(model.max_positions and max_ctx > model.max_positions)
    return out


def main_unit(schedule: StepSchedule) -> str:
    """The unit busiest over a scheduled step (busy seconds summed over chips; ties by
    name)."""
    busy: dict[str, float] = {}
    for (_, unit), seconds in schedule.busy_s().items():
        busy[unit] = busy.get(unit, 0.0) + seconds
    return max(sorted(busy), key=busy.get) if busy else ""


def busy_fractions(steps: list[Step], stages: int) -> dict[str, float]:
    """``{phase}_busy_fraction_{unit}``: the fraction of the phase's simulated time each unit
    was busy, averaged over the ``stages`` pipeline stages' chips (1 = busy throughout; units
    work at once, so the fractions of one phase can add up to more than 1). Every unit used in
    either phase has a key in both (0.0 where unused, NaN for a phase with no step)."""
    busy: dict[str, dict[str, float]] = {}
    time: dict[str, float] = {}
    for s in steps:
        if s.schedule is None:
            continue
        phase = s.phase.value
        time[phase] = time.get(phase, 0.0) + s.time_s
        by_unit = busy.setdefault(phase, {})
        for (_, unit), seconds in s.schedule.busy_s().items():
            by_unit[unit] = by_unit.get(unit, 0.0) + seconds
    units = sorted({u for by_unit in busy.values() for u in by_unit})
    out: dict[str, float] = {}
    for phase in (p.value for p in Phase):
        t = time.get(phase, 0.0) * stages
        for unit in units:
            out[f"{phase}_busy_fraction_{unit}"] = (busy[phase].get(unit, 0.0) / t if t
                                                    else math.nan)
    return out
