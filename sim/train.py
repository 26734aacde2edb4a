"""One training step, compiled and timed: `mappers.train` lowers it (forward, recompute,
backward, update), the unit models cost its ops as any step's (`sim.step.step_cost`), and the
schedule runs them in program order. Memory by class comes from `mappers.train_memory`.

Under reuse with ``pcie_bytes_per_s`` the recorded activations wait on the host and each
layer's are read back before its backward (`mappers.readback`): the step's time is the
schedule's with the layers' backward laid out as the prefetch pipeline (the head's forward
and backward before it, the update after it unchanged). Without it the records are taken to
be on the chip (kept in DRAM), as the schedule alone has them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from mappers.ir import MATMUL_KINDS, Precision
from mappers.models import ModelConfig
from mappers.pipeline import compile_train_graph
from mappers.readback import Prefetch
from mappers.schedule import StepSchedule, schedule
from mappers.train import TAGS, TrainSpec, lower_train
from mappers.train_memory import TrainMemory, saved_bytes, train_memory

from sim.hardware import System
from sim.step import step_cost


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainResult:
    """One training step on one chip of the tensor-parallel group: ``time_s`` (seconds, the
    schedule's end), FLOPs and op time (seconds, summed over ops) by part of the step
    (`mappers.train.TAGS`), matrix-product FLOPs by part, and memory by class (bytes).
    Under reuse read back over PCIe: the ``prefetch`` and ``readback_s`` (seconds the
    read-back adds to the schedule's end, included in ``time_s``)."""

    time_s: float
    flops: dict[str, int]
    matmul_flops: dict[str, int]
    op_time_s: dict[str, float]
    memory: TrainMemory
    capacity_bytes: int
    tokens: int
    prefetch: Prefetch | None = None
    readback_s: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.time_s

    def as_dict(self) -> dict:
        return {"time_s": self.time_s, "tokens": self.tokens, "tokens_per_s": self.tokens_per_s,
                "flops": {**self.flops, "total": sum(self.flops.values())},
                "matmul_flops": self.matmul_flops, "op_time_s": self.op_time_s,
                "memory_bytes": self.memory.as_dict(), "capacity_bytes": self.capacity_bytes,
                "fits": self.memory.total <= self.capacity_bytes,
                **({} if self.prefetch is None else {"readback": {
                    "pcie_bytes_per_s": self.prefetch.pcie_bytes_per_s,
                    "bytes": self.prefetch.bytes(self.tokens),
                    "layer_transfer_s": self.prefetch.transfer_s(self.tokens),
                    "layer_backward_s": self.prefetch.layer_s,
                    "exposed_s": self.readback_s,
                    "buffer_bytes": self.prefetch.buffer_bytes(self.tokens)}})}


def train_step(system: System, model: ModelConfig, spec: TrainSpec, *, precision: Precision,
               detail: str = "tile", pcie_bytes_per_s: float | None = None) -> TrainResult:
    """Compile, cost and schedule one training step of ``model`` on ``system``; under reuse
    with ``pcie_bytes_per_s`` (bytes/s, host to device) its records are read back from the
    host (module docstring)."""
    if pcie_bytes_per_s is not None and (spec.reuse == "none" or not pcie_bytes_per_s > 0):
        raise ValueError(f"train_step: pcie_bytes_per_s {pcie_bytes_per_s!r} needs reuse and "
                         f"a positive bandwidth")
    graph = compile_train_graph(model, system, spec, precision=precision)
    sched = schedule(graph, step_cost(system, detail, graph))
    flops = dict.fromkeys(TAGS, 0)
    matmul = dict.fromkeys(TAGS, 0)
    op_time = dict.fromkeys(TAGS, 0.0)
    for seg in graph.segments:
        if seg.tag in flops:  # transfer segments, if any, carry no FLOPs
            flops[seg.tag] += seg.repeat * sum(op.flops for op in seg.ops)
            matmul[seg.tag] += seg.repeat * sum(op.flops for op in seg.ops
                                                if op.kind in MATMUL_KINDS)
    for row in sched.ops:
        op_time[row.segment.tag or "forward"] += row.segment.repeat * row.cost.time_s
    tp = system.tensor_parallel
    memory = train_memory(model, spec, graph, precision=precision, tp=tp,
                          offloaded=pcie_bytes_per_s is not None)
    prefetch, exposed = None, 0.0
    if pcie_bytes_per_s is not None:
        prefetch = _prefetch(sched, model, spec, precision, tp, pcie_bytes_per_s)
        exposed = prefetch.exposed_s(spec.tokens)
    return TrainResult(time_s=sched.time_s + exposed, flops=flops, matmul_flops=matmul,
                       op_time_s=op_time, memory=memory,
                       capacity_bytes=system.chip.memory.capacity_bytes, tokens=spec.tokens,
                       prefetch=prefetch, readback_s=exposed)


def _prefetch(sched: StepSchedule, model: ModelConfig, spec: TrainSpec, precision: Precision,
              tp: int, pcie_bytes_per_s: float) -> Prefetch:
    """The read-back of a reuse step scheduled as ``sched``: the layers' backward segment's
    start (the lead) and period (one layer), and one layer's recorded bytes per token (what
    serving records, `saved_bytes` of the forward layer, linear in the tokens)."""
    rows = [row for row in sched.ops if row.segment.name == "layers_bwd"]
    lead = min(row.start_s for row in rows)
    forward = lower_train(model, replace(spec, reuse="none"), precision=precision, tp=tp)
    layer = next(seg for seg in forward.segments if seg.name == "layers")
    per_token = saved_bytes(layer.ops, spec, precision, model, tp) // spec.tokens
    return Prefetch(lead_s=lead, layer_s=rows[0].period_s, layers=rows[0].segment.repeat,
                    layer_bytes_per_token=per_token, pcie_bytes_per_s=pcie_bytes_per_s)
