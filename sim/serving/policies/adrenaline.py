"""Adrenaline (Liang et al., "Injecting Adrenaline into LLM Serving: Boosting Resource
Utilization and Throughput via Attention Disaggregation", arXiv 2503.20552): in a
disaggregated cluster part of every decode batch's attention runs on the prefill instances,
whose memory bandwidth and capacity prefill (compute-bound) leaves idle, so decode instances
hold and batch more sequences. docs/serving.md ("Adrenaline") has the data flow.

* **Hand-over.** A prefilled sequence's KV cache either moves to a decode instance or stays
  on its prefill instance (its *home*, which reserves the request's whole length) when the
  decode side's offloaded share of KV tokens stays within the offload ratio and the home
  keeps ``max_tokens`` tokens of room for its own prefills.
* **Decode step** (`offload_graph`, scheduled by `mappers.schedule`): q, k, v of the
  offloaded sequences go to each home (``offload_link<j>``), their attention runs on the
  home's units (``remote<j>.<unit>``, the home's chip model) beside the local attention, the
  output comes back, and ``o_proj`` waits for both.
* **Overlap on the home chip.** Offloaded attention has priority (Adrenaline reserves SMs for
  it); each prefill op runs at the roofline of what it leaves: compute and bandwidth less the
  attention's average share of each over the decode steps in flight.
* **Load-aware ratio** (``auto``): the balance ``x`` of ``x K / B_home + tau = (1 - x) K /
  B_decode`` (the remote branch no longer than the local attention it replaces), capped by
  the bandwidth the home's last prefill step left.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mappers.ir import Batch, Graph, Op, OperandFormats, OpKind, Phase, Precision
from mappers.lower import shard_heads
from mappers.models import ModelConfig
from mappers.pipeline import compile_graph
from mappers.schedule import StepSchedule, schedule
from sim.cost import Cost
from sim.dtypes import nbytes
from sim.errors import ConfigError
from sim.hardware import System

#: The ops that move to the home: one set per shape group (`mappers.ir`).
ATTENTION = frozenset({OpKind.KV_WRITE, OpKind.ATTN_SCORE, OpKind.SOFTMAX, OpKind.ATTN_VALUE})
#: Contexts of a decode step's key round to this many tokens (memo hits; under 1% of attention
#: time at the contexts of the Azure traces).
CONTEXT_STEP = 16
#: Highest share of a home chip's compute or bandwidth offloaded attention may take from prefill.
MAX_SHARE = 0.95


@dataclass(frozen=True, slots=True)
class RemoteWork:
    """One home's part of a decode step: FLOPs, DRAM bytes, and the compute and memory
    seconds its chip model charged (repeats included)."""

    flops: float
    dram_bytes: float
    compute_s: float
    memory_s: float


@dataclass(frozen=True, slots=True)
class OffloadStep:
    """A decode step with offloaded attention: its time (seconds), the decode chip's FLOPs and
    DRAM bytes, the link bytes (q, k, v out and attention output back) and each home's work."""

    time_s: float
    flops: float
    dram_bytes: float
    link_bytes: float
    remote: tuple[RemoteWork, ...]
    schedule: StepSchedule


def _layers(graph: Graph) -> int:
    if graph.pp != 1:
        raise ConfigError("adrenaline: needs pp 1 on prefill and decode instances")
    return next(k for k, s in enumerate(graph.segments) if s.name == "layers")


def _attention(model, system, seqs: Batch, precision) -> tuple[list[Op], dict[int, str]]:
    """The attention ops of one layer of a decode step over ``seqs`` on ``system``, and the
    names of the other ops they read (by id)."""
    g = compile_graph(model, system, phase=Phase.DECODE, seqs=seqs, precision=precision)
    ops = g.segments[_layers(g)].ops
    names = {op.id: op.name for op in ops}
    return [op for op in ops if op.kind in ATTENTION], names


def offload_graph(model: ModelConfig, system: System, local: Batch | None,
                  remote: list[tuple[System, Batch]], precision: Precision) -> Graph:
    """One decode step on ``system`` whose ``local`` sequences attend there and whose other
    sequences attend on their homes (``remote``: each home's system and sequences). Every
    sequence decodes one token. See the module docstring for the graph's shape."""
    groups = [g for b in ([local] if local else []) + [b for _, b in remote] for g in b.groups]
    full = compile_graph(model, system, phase=Phase.DECODE, precision=precision,
                         seqs=Batch.of(s for g in groups for s in [(1, g.context)] * g.count))
    k = _layers(full)
    ops = full.segments[k].ops
    attn_ids = {op.id for op in ops if op.kind in ATTENTION}
    first = next(i for i, op in enumerate(ops) if op.kind in ATTENTION)
    last = max(i for i, op in enumerate(ops) if op.kind in ATTENTION)
    if any(op.kind not in ATTENTION for op in ops[first:last + 1]):
        raise ConfigError("adrenaline: the attention ops of a layer must be contiguous (a "
                          "quantization scheme that adds ops between them is not supported)")
    by_name = {op.name: op.id for op in ops[:first]}
    heads, kv_heads = shard_heads(model, system.tensor_parallel)
    act = precision.activation
    top = max(op.id for seg in full.segments for op in seg.ops) + 1
    body, sinks = list(ops[:first]), []
    for j, (home, seqs) in enumerate(remote):
        attn, names = _attention(model, home, seqs, precision)
        base = top + 1000 * (j + 1)
        n = seqs.sequences
        own = {op.id for op in attn}
        reads = {by_name[names[i]] for op in attn for i in op.inputs if i not in own}
        sent = nbytes(n * (heads + 2 * kv_heads) * model.head_dim, act)  # q, k, v
        send = Op(name=f"offload_send{j}", kind=OpKind.TRANSFER, dims=(sent,), flops=0,
                  formats=OperandFormats(act=act), unit=f"offload_link{j}", comm_bytes=sent,
                  id=base, inputs=tuple(sorted(reads)))
        body.append(send)
        moved = _renumber(attn, base + 1, lambda i, to=base: to, f"remote{j}.")
        body += moved
        back = nbytes(n * heads * model.head_dim, act)
        recv = Op(name=f"offload_recv{j}", kind=OpKind.TRANSFER, flops=0, dims=(back,),
                  formats=OperandFormats(act=act), unit=f"offload_link{j}", comm_bytes=back,
                  id=base + 999, inputs=tuple(o.id for o in moved
                                              if o.kind is OpKind.ATTN_VALUE))
        body.append(recv)
        sinks.append(recv.id)
    if local:
        attn, names = _attention(model, system, local, precision)
        moved = _renumber(attn, top, lambda i, names=names: by_name[names[i]], "")
        body += moved
        sinks += [o.id for o in moved if o.kind is OpKind.ATTN_VALUE]
    for op in ops[last + 1:]:
        if any(i in attn_ids for i in op.inputs):
            op = dataclasses.replace(op, inputs=tuple(
                [i for i in op.inputs if i not in attn_ids] + sinks))
        body.append(op)
    layers = dataclasses.replace(full.segments[k], ops=tuple(body))
    segs = full.segments[:k] + (layers,) + full.segments[k + 1:]
    return dataclasses.replace(full, segments=segs)


def _renumber(attn: list[Op], base: int, outside, prefix: str) -> list[Op]:
    """``attn`` with ids moved to ``base + position``, inputs among them mapped alike and the
    others through ``outside(id)``, units prefixed with ``prefix``."""
    new = {op.id: base + k for k, op in enumerate(attn)}
    return [dataclasses.replace(op, id=new[op.id], unit=prefix + op.unit, inputs=tuple(
        new[i] if i in new else outside(i) for i in op.inputs)) for op in attn]


def offload_step(model: ModelConfig, system: System, local: Batch | None,
                 remote: list[tuple[System, Batch]], *, link, precision: Precision,
                 detail: str = "roofline", memo: dict | None = None) -> OffloadStep:
    """Schedule `offload_graph` with the decode chip's model for its ops, each home's chip
    model for its ops and ``link`` (latency + bytes / bandwidth) for the transfers."""
    from sim.step import chip_cost_model, step_cost

    graph = offload_graph(model, system, local, remote, precision)
    own = step_cost(system, detail, graph, memo=memo)
    chip = chip_cost_model(detail)

    def cost(op: Op) -> Cost:
        if op.unit.startswith("offload_link"):
            t = link.latency_s + op.comm_bytes / link.bandwidth_bytes_per_s
            return Cost(time_s=t, compute_s=0.0, memory_s=0.0, comm_s=t, energy_j=float("nan"),
                        bound="link")
        if op.unit.startswith("remote"):
            j, _, unit = op.unit.partition(".")
            return chip(remote[int(j[6:])][0], dataclasses.replace(op, unit=unit))
        return own(op)

    sched = schedule(graph, cost)
    local_w = [0.0, 0.0]
    link_bytes = 0.0
    work = [[0.0] * 4 for _ in remote]
    for r in sched.ops:
        rep, op, c = r.segment.repeat, r.op, r.cost
        if op.unit.startswith("offload_link"):
            link_bytes += rep * op.comm_bytes
        elif op.unit.startswith("remote"):
            w = work[int(op.unit.partition(".")[0][6:])]
            for k, v in enumerate((op.flops, c.dram_bytes, c.compute_s, c.memory_s)):
                w[k] += rep * v
        else:
            local_w[0] += rep * op.flops
            local_w[1] += rep * c.dram_bytes
    return OffloadStep(sched.time_s, local_w[0], local_w[1], link_bytes,
                       tuple(RemoteWork(*w) for w in work), sched)


def adrenaline_batch(inst, now: float) -> list:
    """vLLM's scheduler (`sim.serving.policies.vllm`) on a decode instance, with two changes:
    only sequences whose cache is local are preempted (an offloaded one frees nothing here),
    and the blocks an admission leaves free are at least one of growth for every local
    sequence, the admitted one included (and vLLM's watermark), so that an admission does not
    force the next step's preemption; both the baseline (ratio 0) and offload runs use it."""
    inst.make_room([(s, 1) for s in inst.running], now, eligible=lambda s: s.kv_home is None)
    local = sum(1 for s in inst.running if s.kv_home is None)
    batch, tokens = [], 0
    while inst.waiting and len(inst.running) < inst.max_batch:
        seq = inst.waiting[0]
        n = seq.needed
        keep = max(inst.watermark_blocks, local + 1)
        if (batch and tokens + n > inst.max_tokens) or not inst.can_admit(seq, reserve=keep):
            break
        inst.admit(seq, now)
        batch.append((seq, n))
        tokens += n
        local += seq.kv_home is None
    prefills = [(s, n) for s, n in batch if n > 1]  # recomputes after a preemption
    return prefills or [(s, s.needed) for s in inst.running]


@dataclass(slots=True)
class Record:
    """Work an instance's chip did over ``[start_s, end_s)``: FLOPs and DRAM bytes."""

    start_s: float
    end_s: float
    flops: float
    dram_bytes: float


class Adrenaline:
    """The offload controller of one simulation: times the iterations of the prefill (home)
    and decode instances it is attached to, decides each hand-over and records every chip's
    work (``records``) and each home's used KV blocks over time (``usage``)."""

    def __init__(self, *, model: ModelConfig, systems: dict, homes: list, decodes: list,
                 ratio: float | str, link, precision: Precision, detail: str,
                 kv_bytes_per_token: int) -> None:
        self.model, self.systems, self.ratio, self.link = model, systems, ratio, link
        self.precision, self.detail, self.kvb = precision, detail, kv_bytes_per_token
        self.homes, self.decodes = homes, decodes
        self.records: dict[str, list[Record]] = {i.name: [] for i in homes + decodes}
        # (time, blocks used, blocks the offloaded caches fill): a home reserves an offloaded
        # request's whole length at hand-over but holds only its tokens so far.
        self.usage: dict[str, list[tuple[float, int, int]]] = {i.name: [] for i in homes}
        self._away: dict[str, dict[int, object]] = {i.name: {} for i in homes}
        self.handed = self.offloaded = 0
        #: Per instance: [seconds its plain steps would take alone, seconds they took shared].
        self.stretch: dict[str, list[float]] = {i.name: [0.0, 0.0] for i in homes + decodes}
        self._share: dict[str, dict[str, tuple[float, float, float]]] = {
            i.name: {} for i in homes}
        self._memory_share: dict[str, float] = {i.name: 0.0 for i in homes}
        self._index = {i.name: j for j, i in enumerate(homes)}
        self._decode_memo: dict = {}
        self._plain_memo: dict = {}
        self._op_memo: dict = {}

    # -- iterations -------------------------------------------------------------------------
    def step_time(self, inst, batch, now: float) -> float:
        """Seconds of ``inst``'s iteration over ``batch`` starting at ``now``; records it."""
        if inst.role == "decode" and all(k == 1 and s.computed for s, k in batch):
            return self._decode(inst, batch, now)
        dt, flops, nbytes, mem = self._plain(inst, batch, now)
        self.records[inst.name].append(Record(now, now + dt, flops, nbytes))
        if inst.name in self.usage:
            self._memory_share[inst.name] = mem / dt
            self._sample(inst, now)
        return dt

    def _decode(self, inst, batch, now: float) -> float:
        local = [s.computed for s, _ in batch if s.kv_home is None]
        away: dict[int, list[int]] = {}
        for s, _ in batch:
            if s.kv_home is not None:
                away.setdefault(self._index[s.kv_home.name], []).append(s.computed)
        key = (_key(local), tuple((j, _key(c)) for j, c in sorted(away.items())))
        step = self._decode_memo.get(key)
        if step is None:
            system = self.systems[inst.name]
            step = offload_step(
                self.model, system, _uniform(*key[0]),
                [(self.systems[self.homes[j].name], _uniform(*k)) for j, k in key[1]],
                link=self.link, precision=self.precision, detail=self.detail,
                memo=self._op_memo.setdefault(id(system), {}))
            self._decode_memo[key] = step
        dt = step.time_s
        self.records[inst.name].append(Record(now, now + dt, step.flops, step.dram_bytes))
        for (j, _), w in zip(key[1], step.remote):
            home = self.homes[j]
            self.records[home.name].append(Record(now, now + dt, w.flops, w.dram_bytes))
            self._share[home.name][inst.name] = (w.compute_s / dt, w.memory_s / dt, now + dt)
            self._sample(home, now)
        return dt

    def _sample(self, home, now: float) -> None:
        away = self._away[home.name]
        for k in [k for k, s in away.items() if s.kv_home is not home]:
            del away[k]  # finished (or preempted): its reservation is gone
        filled = sum(home.blocks(s.computed) for s in away.values())
        reserved = sum(home.alloc[k] for k in away)
        self.usage[home.name].append((now, home.used_blocks, home.used_blocks - reserved
                                      + filled))

    def _plain(self, inst, batch, now: float) -> tuple[float, float, float, float]:
        """A step without offload on ``inst``, stretched by the offloaded attention sharing its
        chip (module docstring): (seconds, FLOPs, DRAM bytes, memory seconds)."""
        from sim.serving.steptime import key_batch
        from sim.step import compile_step

        system = self.systems[inst.name]
        tokens = sum(k for _, k in batch)
        key = (id(system), tokens, len(batch), round(sum(s.computed for s, _ in batch)
                                                    / len(batch)))
        ops = self._plain_memo.get(key)
        if ops is None:
            phase = Phase.DECODE if tokens == len(batch) else Phase.PREFILL
            sched = compile_step(self.model, system, phase=phase, precision=self.precision,
                                 seqs=key_batch(*key[1:]), detail=self.detail,
                                 memo=self._op_memo.setdefault(id(system), {}))
            rows = [(r.segment.repeat, r.cost.compute_s, r.cost.memory_s, r.cost.comm_s,
                     r.cost.time_s) for r in sched.ops]
            ops = self._plain_memo[key] = (
                sched.time_s, rows, sum(r.segment.repeat * r.op.flops for r in sched.ops),
                sched.dram_bytes)
        time_s, rows, flops, nbytes = ops
        fc = fm = 0.0
        for c, m, until in self._share.get(inst.name, {}).values():
            if until > now:
                fc, fm = fc + c, fm + m
        fc, fm = min(fc, MAX_SHARE), min(fm, MAX_SHARE)
        alone = sum(n * t for n, *_, t in rows)
        shared = sum(n * (max(c / (1 - fc), m / (1 - fm), k) + t - max(c, m, k))
                     for n, c, m, k, t in rows)
        memory = sum(n * m for n, _, m, _, _ in rows)
        # Concurrent units: scale the scheduled time by the ops' stretch (exact for a chain).
        dt = time_s * shared / alone
        if inst.name in self.stretch:
            self.stretch[inst.name][0] += time_s
            self.stretch[inst.name][1] += dt
        return dt, flops, nbytes, memory * time_s / alone

    # -- hand-over --------------------------------------------------------------------------
    def hand_over(self, inst, seq, nbytes: int, now: float) -> int:
        """A prefilled ``seq`` leaves prefill instance ``inst``: keep its cache there (returns
        0, the bytes to move) or release it (returns ``nbytes``)."""
        self.handed += 1
        need = inst.blocks(seq.request.prompt_tokens + seq.request.output_tokens)
        room = inst.free_blocks + inst.alloc[id(seq)] - need - inst.blocks(inst.max_tokens)
        if room < 0 or not self._within_ratio(inst, seq):
            inst.release(seq)
            return nbytes
        inst.running.remove(seq)
        inst.used_blocks += need - inst.alloc[id(seq)]
        inst.alloc[id(seq)] = need
        inst.peak_blocks = max(inst.peak_blocks, inst.used_blocks)
        seq.kv_home = inst
        self._away[inst.name][id(seq)] = seq
        self.offloaded += 1
        return 0

    def _within_ratio(self, inst, seq) -> bool:
        total = away = 0
        for d in self.decodes:
            for s in (*d.running, *d.waiting):
                total += s.computed
                away += s.computed if s.kv_home is not None else 0
        mine = seq.computed
        ratio = self.ratio if self.ratio != "auto" else self._auto(inst, total)
        return away + mine <= ratio * (total + mine)

    def _auto(self, home, total_tokens: int) -> float:
        """The load-aware ratio (module docstring)."""
        def bandwidth(system):
            chip = system.chip
            return chip.memory.bandwidth_bytes_per_s * chip.efficiency.memory

        k = total_tokens / len(self.decodes) * self.kvb
        if k <= 0:
            return 0.0
        bd = bandwidth(self.systems[self.decodes[0].name])
        bh = bandwidth(self.systems[home.name])
        tau = 2 * self.model.num_layers * self.link.latency_s
        balance = (k / bd - tau) / (k / bh + k / bd)
        return max(0.0, min(balance, 1.0 - self._memory_share[home.name]))


def _key(contexts: list[int]) -> tuple[int, int]:
    """(sequences, mean context rounded to `CONTEXT_STEP`) of a shape group."""
    if not contexts:
        return (0, 0)
    mean = sum(contexts) / len(contexts)
    return len(contexts), max(1, round(mean / CONTEXT_STEP)) * CONTEXT_STEP


def _uniform(n: int, context: int) -> Batch | None:
    return Batch.uniform(n, 1, context) if n else None


def attach(cluster, model: ModelConfig, instances: list, systems: dict, *,
           precision: Precision) -> Adrenaline:
    """Install one `Adrenaline` controller on every prefill instance and every decode instance
    of a cluster whose decode groups use ``batching: adrenaline``; `ConfigError` for a
    cluster it cannot serve."""
    from sim.serving.cluster import kv_bytes_per_token

    groups = [g for g in cluster.groups if g.role == "decode"]
    ratios = {g.offload_ratio for g in groups if g.batching == "adrenaline"}
    if any(g.batching != "adrenaline" for g in groups) or len(ratios) != 1:
        raise ConfigError("cluster: batching: adrenaline must be every decode group's, with one "
                          "offload_ratio")
    if any(g.pp != 1 for g in cluster.groups) or len({g.tp for g in cluster.groups}) != 1:
        raise ConfigError("cluster: adrenaline needs pp 1 and one tp on every instance group")
    homes = [i for i in instances if i.role == "prefill"]
    decodes = [i for i in instances if i.role == "decode"]
    ctl = Adrenaline(model=model, systems=systems, homes=homes, decodes=decodes,
                     ratio=ratios.pop(), link=cluster.link, precision=precision,
                     detail=cluster.detail, kv_bytes_per_token=kv_bytes_per_token(model,
                                                                                   precision))
    for inst in homes + decodes:
        inst.offload = ctl
    return ctl
