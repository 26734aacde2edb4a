"""One training step, compiled and timed: `mappers.train` lowers it (forward, recompute,
backward, update), the unit models cost its ops as any step's (`sim.step.step_cost`), and the
schedule runs them in program order. Memory by class comes from `mappers.train_memory`.
"""

from __future__ import annotations

from dataclasses import dataclass

from mappers.ir import MATMUL_KINDS, Precision
from mappers.models import ModelConfig
from mappers.pipeline import compile_train_graph
from mappers.schedule import schedule
from mappers.train import TAGS, TrainSpec
from mappers.train_memory import TrainMemory, train_memory

from sim.hardware import System
from sim.step import step_cost


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainResult:
    """One training step on one chip of the tensor-parallel group: ``time_s`` (seconds, the
    schedule's end), FLOPs and op time (seconds, summed over ops) by part of the step
    (`mappers.train.TAGS`), matrix-product FLOPs by part, and memory by class (bytes)."""

    time_s: float
    flops: dict[str, int]
    matmul_flops: dict[str, int]
    op_time_s: dict[str, float]
    memory: TrainMemory
    capacity_bytes: int
    tokens: int

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.time_s

    def as_dict(self) -> dict:
        return {"time_s": self.time_s, "tokens": self.tokens, "tokens_per_s": self.tokens_per_s,
                "flops": {**self.flops, "total": sum(self.flops.values())},
                "matmul_flops": self.matmul_flops, "op_time_s": self.op_time_s,
                "memory_bytes": self.memory.as_dict(), "capacity_bytes": self.capacity_bytes,
                "fits": self.memory.total <= self.capacity_bytes}


def train_step(system: System, model: ModelConfig, spec: TrainSpec, *, precision: Precision,
               detail: str = "tile") -> TrainResult:
    """Compile, cost and schedule one training step of ``model`` on ``system``."""
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
    memory = train_memory(model, spec, graph, precision=precision, tp=system.tensor_parallel)
    return TrainResult(time_s=sched.time_s, flops=flops, matmul_flops=matmul,
                       op_time_s=op_time, memory=memory,
                       capacity_bytes=system.chip.memory.capacity_bytes, tokens=spec.tokens)
