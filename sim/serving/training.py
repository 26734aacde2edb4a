"""Training beside serving (docs/serving.md, "Training on the serving cluster"): a cluster
file's ``training:`` block, the training step it stands for and the per-instance trainer the
event loop runs in the gaps serving leaves.

    training: {batch: 1, seq: 512, lora_rank: 16, lora_targets: [q, v], recompute: none,
               share: 0.0, chunks: 32}

Every instance of the cluster trains a copy of the served model (data parallel, no gradient
exchange modelled). A step is split into ``chunks`` equal chunks (default: one per layer;
the step's time from `sim.train.train_step`, simulated once per system and memoised in the
caller's table dict). A chunk starts only when the instance is idle, its serving policy
having nothing to run, or, with ``share`` s > 0, also between serving iterations while the
instance's training time is under s of the time elapsed; once started a chunk runs to its
end, so serving waits at most one chunk. The step's memory beyond the served weights
(gradients, optimizer state, activations, adapters) stays resident and comes off the
instance's KV-cache budget.

With ``reuse: activations`` (Alchemist) every prefill the instance runs records what the
training backward needs (`mappers.train_memory.saved_bytes` of a layer, x layers, per
token): the write adds ``bytes / DRAM bandwidth`` to the prefill iteration. A finished
prefill becomes a training sample; a step takes ``batch`` samples (oldest first) and runs
the reuse step (`mappers.train`: no layers' forward) when it has them all. With
``pcie_bytes_per_s`` the samples are offloaded to host over one PCIe channel per instance
(FIFO, after the DRAM write); a sample whose offload has not ended when its step starts is
recomputed (hedging: its tokens run the forward, each late sample counted), and the
reused tokens' records are read back from the host before each layer's backward
(`mappers.readback`: the exposed time of the prefetch pipeline for those tokens is added to
the step). Samples wait in a bounded store (``sample_bytes``, dropped by ``drop``) and a step
of ``batch x seq`` tokens is packed from them (`sim.serving.samples`); the rest of the step
is fresh data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from mappers.ir import Precision
from mappers.models import ModelConfig
from mappers.readback import Prefetch
from mappers.train import (RECOMPUTE, REUSE, TrainSpec, chip_parameters, check_trainable,
                           lower_train)
from mappers.train_memory import saved_bytes
from sim.dtypes import nbytes
from sim.errors import ConfigError, PdsimError
from sim.serving.samples import DATA, DROP, HOST_BYTES_PER_CHIP, Sample, SampleStore

_KEYS = {"batch": int, "seq": int, "lora_rank": int, "lora_targets": list,
         "recompute": str, "optimizer_dtype": str, "share": float, "chunks": int,
         "reuse": str, "pcie_bytes_per_s": float, "sample_bytes": float, "drop": str,
         "data": str}
#: Fields that only mean something with ``reuse: activations``.
_REUSE_ONLY = ("pcie_bytes_per_s", "sample_bytes", "drop")


@dataclass(frozen=True, slots=True, kw_only=True)
class Training:
    """The cluster's training job: the step ``spec``, the least share of each instance's time
    it gets under load (``share``, in [0, 1); 0: idle time only) and the chunks a step is
    split into (``chunks``; None: one per layer of the model)."""

    spec: TrainSpec
    share: float = 0.0
    chunks: int | None = None
    reuse: str = "none"
    pcie_bytes_per_s: float | None = None
    sample_bytes: float | None = None
    drop: str = "oldest"
    data: str = "mixed"


def parse_training(data, where: str) -> Training:
    """The ``training:`` block ``data``; `ConfigError` (one line) naming the field."""
    at = f"{where}: training"
    if not isinstance(data, dict):
        raise ConfigError(f"{at}: must be a mapping with batch and seq")
    for key, value in data.items():
        typ = _KEYS.get(key)
        if typ is None:
            raise ConfigError(f"{at}: unknown field {key!r} (allowed: {', '.join(_KEYS)})")
        if typ is int and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"{at}.{key}: must be an integer >= 1, got {value!r}")
        if typ is str and not isinstance(value, str):
            raise ConfigError(f"{at}.{key}: must be a string, got {value!r}")
        if typ is list and not (isinstance(value, list) and value
                                and all(isinstance(t, str) for t in value)):
            raise ConfigError(f"{at}.{key}: must be a list of projection names, got {value!r}")
    share = data.get("share", 0.0)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share < 1:
        raise ConfigError(f"{at}.share: must be a number in [0, 1), got {share!r}")
    if data.get("reuse", "none") not in REUSE:
        raise ConfigError(f"{at}.reuse: must be one of {', '.join(REUSE)}, got "
                          f"{data['reuse']!r}")
    for key, unit in (("pcie_bytes_per_s", "bytes/s"), ("sample_bytes", "bytes")):
        value = data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value <= 0):
            raise ConfigError(f"{at}.{key}: must be a positive number of {unit}, got {value!r}")
    if data.get("data", "mixed") not in DATA:
        raise ConfigError(f"{at}.data: must be one of {', '.join(DATA)}, got {data['data']!r}")
    if data.get("drop", "oldest") not in DROP:
        raise ConfigError(f"{at}.drop: must be one of {', '.join(DROP)}, got {data['drop']!r}")
    for key in _REUSE_ONLY:
        if key in data and data.get("reuse", "none") != "activations":
            raise ConfigError(f"{at}.{key}: needs reuse: activations")
    pcie, store = data.get("pcie_bytes_per_s"), data.get("sample_bytes")
    for key in ("batch", "seq"):
        if key not in data:
            raise ConfigError(f"{at}: {key} is required")
    if "lora_targets" in data and "lora_rank" not in data:
        raise ConfigError(f"{at}.lora_targets: needs lora_rank")
    if data.get("recompute", "none") not in RECOMPUTE:
        raise ConfigError(f"{at}.recompute: must be one of {', '.join(RECOMPUTE)}, got "
                          f"{data['recompute']!r}")
    kwargs = {k: data[k] for k in ("batch", "seq", "lora_rank", "recompute", "optimizer_dtype")
              if k in data}
    if "lora_targets" in data:
        kwargs["lora_targets"] = tuple(data["lora_targets"])
    try:
        spec = TrainSpec(**kwargs)
    except PdsimError as exc:  # TrainSpec names CLI flags: rename to the YAML field
        flag, _, rest = str(exc).partition(": ")
        raise ConfigError(f"{at}.{flag.lstrip('-').replace('-', '_')}: {rest}") from None
    return Training(spec=spec, share=float(share), chunks=data.get("chunks"),
                    reuse=data.get("reuse", "none"),
                    pcie_bytes_per_s=None if pcie is None else float(pcie),
                    sample_bytes=None if store is None else float(store),
                    drop=data.get("drop", "oldest"), data=data.get("data", "mixed"))


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainPlan:
    """One system's training job: chunk time (seconds), chunks per step, tokens per step and
    the bytes it keeps resident beyond the served weights (``extra_bytes``); under reuse the
    reuse step's time (``reuse_step_s``), the bytes recorded per prefilled token
    (``record_bytes_per_token``, all layers, one chip), the DRAM bandwidth they are written
    at and the PCIe bandwidth they are offloaded at (bytes/s; None: kept in DRAM), the
    read-back of offloaded records (``prefetch``; None: kept in DRAM), and the sample store's
    capacity (bytes) and drop rule (`sim.serving.samples`). ``reuse_step_s`` is the reuse
    step with its records on the chip; the read-back's exposed time comes on top."""

    chunk_s: float
    chunks: int
    tokens: int
    step_s: float
    extra_bytes: int
    memory: dict
    batch: int = 1
    reuse_step_s: float | None = None
    record_bytes_per_token: int = 0
    dram_bytes_per_s: float = math.inf
    pcie_bytes_per_s: float | None = None
    sample_capacity_bytes: float = math.inf
    drop: str = "oldest"
    data: str = "mixed"
    prefetch: Prefetch | None = None


def train_plan(training: Training, model: ModelConfig, system, *, precision: Precision,
               detail: str, where: str) -> TrainPlan:
    """Simulate ``training``'s step on ``system`` once (`sim.train.train_step`)."""
    from sim.train import train_step

    try:
        check_trainable(model, training.spec, pp=system.pipeline_parallel)
    except PdsimError as exc:
        raise ConfigError(f"{where}: training: {exc}") from None
    result = train_step(system, model, training.spec, precision=precision, detail=detail)
    served = nbytes(chip_parameters(model, system.tensor_parallel), precision.weight)
    chunks = training.chunks or model.num_layers
    plan = TrainPlan(chunk_s=result.time_s / chunks, chunks=chunks, tokens=result.tokens,
                     step_s=result.time_s, extra_bytes=result.memory.total - served,
                     memory=result.memory.as_dict(), batch=training.spec.batch,
                     data=training.data)
    if training.reuse == "none":
        return plan
    spec, tp = training.spec, system.tensor_parallel
    reused = train_step(system, model, replace(spec, reuse="activations"), precision=precision,
                        detail=detail, pcie_bytes_per_s=training.pcie_bytes_per_s)
    graph = lower_train(model, spec, precision=precision, tp=tp)
    layer = next(seg for seg in graph.segments if seg.name == "layers")
    # saved_bytes is linear in the tokens: per token exactly, times every layer
    per_token = model.num_layers * saved_bytes(layer.ops, spec, precision, model, tp) \
        // spec.tokens
    # Samples kept in DRAM: one step's tokens are the activations the job already holds; a
    # larger store takes the rest off the KV budget. Offloaded: host memory, off the chip.
    step_bytes = per_token * spec.tokens
    if training.pcie_bytes_per_s is None:
        capacity = training.sample_bytes or step_bytes
        extra = plan.extra_bytes + max(0, math.ceil(capacity - step_bytes))
    else:  # the read-back's two layer buffers, within the full step's activations or not
        capacity = training.sample_bytes or HOST_BYTES_PER_CHIP
        extra = max(plan.extra_bytes, reused.memory.total - served)
    return replace(plan, reuse_step_s=reused.time_s - reused.readback_s,
                   prefetch=reused.prefetch, record_bytes_per_token=per_token,
                   dram_bytes_per_s=system.chip.memory.bandwidth_bytes_per_s,
                   pcie_bytes_per_s=training.pcie_bytes_per_s, extra_bytes=extra,
                   sample_capacity_bytes=capacity, drop=training.drop)


class Trainer:
    """One instance's training progress under ``plan`` with time ``share``: chunks run,
    training seconds, and the chunk log ``(start_s, end_s, serving work pending at start)``;
    under reuse the recorded samples (`SampleStore`), reused steps and tokens, hedged
    recomputes, samples split between steps and the seconds recording added to prefill
    iterations."""

    def __init__(self, *, plan: TrainPlan, share: float) -> None:
        self.plan, self.share = plan, share
        self.chunks_done = 0
        self.busy_s = 0.0
        self.log: list[tuple[float, float, int]] = []
        self.ahead = False  # the last chunk ran ahead of serving work: serving goes next
        self.chunk_s = plan.chunk_s  # the running step's chunk time
        self.samples = SampleStore(capacity_bytes=plan.sample_capacity_bytes, drop=plan.drop)
        self.pcie_free = 0.0
        self.recorded = self.recorded_bytes = self.reused_steps = self.hedged = 0
        self.reused_tokens = self.split = 0
        self.record_s = self.readback_s = 0.0

    @property
    def steps(self) -> int:
        return self.chunks_done // self.plan.chunks

    def record_time(self, tokens: int) -> float:
        """Seconds added to a prefill iteration that computes ``tokens`` prompt tokens."""
        if tokens == 0 or self.plan.reuse_step_s is None:
            return 0.0
        dt = tokens * self.plan.record_bytes_per_token / self.plan.dram_bytes_per_s
        self.record_s += dt
        return dt

    def record(self, now: float, tokens: int) -> None:
        """A prefill of ``tokens`` tokens ended at ``now``: a sample, offloaded if PCIe (a
        sample the store drops is not offloaded). Without reuse only ``served`` data queues
        prompts (no bytes)."""
        if self.plan.reuse_step_s is None and self.plan.data != "served":
            return
        nbytes = tokens * self.plan.record_bytes_per_token
        self.recorded += 1
        self.recorded_bytes += nbytes
        ready = now
        if self.plan.pcie_bytes_per_s is not None:
            ready = max(now, self.pcie_free) + nbytes / self.plan.pcie_bytes_per_s
        if self.samples.add(Sample(ready, tokens, nbytes)):
            self.pcie_free = max(self.pcie_free, ready)

    def can_start(self) -> bool:
        """Whether a chunk may start: always within a step; a step with ``served`` data only
        once the stored samples hold its tokens."""
        p = self.plan
        return (self.chunks_done % p.chunks != 0 or p.data != "served"
                or self.samples.stored_tokens >= p.tokens)

    def owed(self, now: float) -> bool:
        """Whether training is under its ``share`` of the time up to ``now`` (and may run
        a chunk ahead of waiting serving work)."""
        after = self.busy_s + self.chunk_s
        return self.share > 0 and not self.ahead and after <= self.share * (now + self.chunk_s)

    def start(self, now: float, pending: int) -> float:
        """Start a chunk at ``now`` with ``pending`` serving sequences; returns its end."""
        if self.chunks_done % self.plan.chunks == 0:
            self.chunk_s = self._step_chunk(now)
        end = now + self.chunk_s
        self.ahead = pending > 0
        self.log.append((now, end, pending))
        return end

    def _step_chunk(self, now: float) -> float:
        """A step begins: pack its samples (`SampleStore.take`); the chunk time of the step,
        the full step's for fresh and late tokens, the reuse step's for reused ones (linear
        in the reused share of the step's tokens), plus, for offloaded records, the exposed
        time of reading the reused tokens' records back (`Prefetch.exposed_s`: the layers'
        backward is the reuse step's whichever tokens were recorded)."""
        p = self.plan
        if p.reuse_step_s is None and p.data != "served":
            return p.chunk_s
        packed = self.samples.take(now, p.tokens)
        self.split += packed.split
        if p.reuse_step_s is None:  # served prompts, their forward run by the step
            return p.chunk_s
        self.hedged += packed.late  # hedging: a late offload is recomputed, not waited for
        self.reused_tokens += packed.reused
        self.reused_steps += packed.reused > 0
        share = packed.reused / p.tokens
        readback = 0.0 if p.prefetch is None else p.prefetch.exposed_s(packed.reused)
        self.readback_s += readback
        return (p.step_s * (1 - share) + p.reuse_step_s * share + readback) / p.chunks

    def finish(self) -> None:
        self.chunks_done += 1
        self.busy_s += self.chunk_s


def training_summary(instances, end_s: float) -> dict | None:
    """Training figures of a run: steps completed (whole steps, summed over instances),
    tokens trained (steps x tokens per step) and tokens/s over the run's ``end_s``."""
    trainers = [i.trainer for i in instances if i.trainer is not None]
    if not trainers:
        return None
    steps = sum(t.steps for t in trainers)
    tokens = sum(t.steps * t.plan.tokens for t in trainers)
    return {"steps": steps, "tokens": tokens,
            "tokens_per_s": tokens / end_s if end_s > 0 else 0.0,
            "chunks": sum(t.chunks_done for t in trainers),
            "busy_s": sum(t.busy_s for t in trainers),
            "step_s": {i.name: i.trainer.plan.step_s for i in instances if i.trainer},
            "chunk_s": {i.name: i.trainer.plan.chunk_s for i in instances if i.trainer},
            "memory_bytes": {i.name: i.trainer.plan.memory for i in instances if i.trainer},
            "data": trainers[0].plan.data,
            "split_samples": sum(t.split for t in trainers),
            **_reuse_summary(trainers)}


def _reuse_summary(trainers) -> dict:
    """Alchemist's figures (empty without reuse): samples and bytes recorded, the seconds the
    recording added to prefill iterations, reused steps and tokens, hedged recomputes,
    the store's capacity, peak and drops."""
    plan = trainers[0].plan
    if plan.reuse_step_s is None:
        return {}
    return {"reuse": {"record_bytes_per_token": plan.record_bytes_per_token,
                      "recorded_sequences": sum(t.recorded for t in trainers),
                      "recorded_bytes": sum(t.recorded_bytes for t in trainers),
                      "added_prefill_s": sum(t.record_s for t in trainers),
                      "reuse_step_s": plan.reuse_step_s,
                      **_readback_summary(trainers),
                      "reused_steps": sum(t.reused_steps for t in trainers),
                      "hedged_recomputes": sum(t.hedged for t in trainers),
                      "reused_tokens": sum(t.reused_tokens for t in trainers),
                      "sample_capacity_bytes": plan.sample_capacity_bytes,
                      "drop": plan.drop,
                      "peak_sample_bytes": max(t.samples.peak_bytes for t in trainers),
                      "dropped_samples": sum(t.samples.dropped for t in trainers),
                      "cut_samples": sum(t.samples.cut for t in trainers),
                      "dropped_bytes": sum(t.samples.dropped_bytes for t in trainers)}}


def _readback_summary(trainers) -> dict:
    """Offloaded records read back (empty when kept in DRAM): the reuse step with every token
    read back (seconds, the first instance's), bytes read back and the seconds the read-back
    added, over the run."""
    plan = trainers[0].plan
    if plan.prefetch is None:
        return {}
    return {"readback_step_s": plan.reuse_step_s + plan.prefetch.exposed_s(plan.tokens),
            "readback_bytes": sum(t.plan.prefetch.bytes(t.reused_tokens) for t in trainers
                                  if t.plan.prefetch is not None),
            "readback_added_s": sum(t.readback_s for t in trainers)}
