"""LLM ops on compute-in-DRAM: GEMVs and multi-token GEMMs on the layout of
`sim.units.cid.layout`, decode attention, KV-cache append, energy per op, and the `Cost` of an
IR op on a CiD unit.

Multi-token GEMMs (``M`` > 1 tokens: a verify step, a diffusion iteration, a chunked prefill):
the global buffer holds up to ``t`` input vectors at once (`sim.units.cid.layout.max_tokens`:
a K-slice of at least one burst each), and every open row is streamed once per resident
vector, so ``M`` tokens cost ``ceil(M / t)`` passes over the weights, each with one activate
per row and ``t`` x the MAC commands, instead of ``M`` GEMVs that each re-open every row
(`unit_gemm` picks the ``t``, and whether the buffer holds K-slices of ``buffer / t`` or is
re-filled inside each open row, that is fastest on the engine). Buffer sizes: AiM's global buffer
is 2 KB per channel (SK hynix, ISSCC'22; `sim/presets/dram/gddr6-aim.yaml`); the HBM3 stack's
1 KB per PC is a choice (docs/cid.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from collections.abc import Callable
from functools import lru_cache, partial

import numpy as np

from mappers.ir import Graph, Op, OpKind
from mappers.quantize import DEQUANT_SUFFIX, KV_DEQUANT_SUFFIX

from sim.units.cid.audit import Program, StreamAudit
from sim.units.cid.layout import (  # noqa: F401 (importable from here, as before the split)
    ACC_BYTES, GemvLayout, gemv_functional, gemv_layout, max_tokens)
from sim.units.cid.engine import COMMANDS, ChannelRun, run_channel
from sim.units.cid.quant import PLAIN, GemvFormat, dequant_device, scale_bytes
from sim.cost import Cost
from sim.units.cid.dram import DramDevice, load_dram
from sim.dtypes import DTYPE_BITS
from sim.errors import ConfigError
from sim.hardware import System
from sim.units.cid.unit import CidUnit

_PJ = 1e-12


@dataclass(frozen=True, slots=True)
class CidRun:
    """Time, traffic and energy of one op on one stack or device (all PCs used together)."""

    cycles: int
    time_s: float
    internal_bytes: float       # bytes read out of the banks into MAC units (all PCs)
    useful_bytes: float         # the op's own operand bytes
    energy_j: float
    counts: dict[str, int]
    pcs: int

    @property
    def internal_bandwidth_bytes_per_s(self) -> float:
        return self.internal_bytes / self.time_s


@lru_cache(maxsize=4096)
def _channel(device: DramDevice, program: Program) -> ChannelRun:
    p = program
    return run_channel(device, p.mode, steps=p.steps, cols=p.cols, cols_last=p.cols_last,
                       chunks=p.chunks, gb_writes=p.gb_writes, reads=p.reads, passes=p.passes,
                       sub_cols=p.sub_cols)


def _run(device: DramDevice, audit: StreamAudit | None, mode: str, steps: int, cols: int,
         cols_last: int, chunks: int = 1, gb_writes: int = 0, reads: int = 0,
         passes: int = 1, sub_cols: int = 0) -> ChannelRun:
    """One PC's program on the engine (memoised); with an ``audit``, its stream is also
    recorded and checked against the end cycle the op will report."""
    program = Program(mode=mode, steps=steps, cols=cols, cols_last=cols_last, chunks=chunks,
                      gb_writes=gb_writes, reads=reads, passes=passes, sub_cols=sub_cols)
    run = _channel(device, program)
    if audit is not None:
        audit.check(device, program, run.cycles)
    return run


def energy_j(device: DramDevice, counts: dict[str, int], mode: str, pcs: int) -> float:
    """Energy of one PC's command counts times ``pcs``, from the device's pJ/bit figures."""
    org, e = device.org, device.energy
    burst_bits = org.burst_bytes * 8
    row_bits = org.row_bytes * 8
    c = counts.get
    act_banks = (c("ACT_AB", 0) * org.banks_per_pc + c("ACT_SB", 0) * org.groups_per_pc
                 + c("ACT", 0))
    mac_bits = (c("MAC_AB", 0) * org.banks_per_pc + c("MAC_SB", 0) * org.groups_per_pc) \
        * burst_bits
    rd_bits = c("RD", 0) * burst_bits
    pj = act_banks * row_bits * e.act_pj_per_bit
    pj += (mac_bits + rd_bits) * e.read_pj_per_bit
    if mode == "bankgroup":
        pj += mac_bits * e.bank_group_pj_per_bit
    pj += rd_bits * (e.bank_group_pj_per_bit + e.io_pj_per_bit)
    pj += (mac_bits + (rd_bits if mode == "buffer" else 0)) * e.mac_pj_per_bit
    pj += (c("WRGB", 0) + c("RDRES", 0)) * burst_bits * (e.io_pj_per_bit + e.offchip_pj_per_bit)
    pj += c("WR", 0) * burst_bits * (e.write_pj_per_bit + e.bank_group_pj_per_bit
                                     + e.io_pj_per_bit + e.offchip_pj_per_bit)
    pj += c("REF", 0) * e.refresh_pj
    return pj * pcs * _PJ


def gemv(device: DramDevice, mode: str, n: int, k: int, dtype: str,
         pcs: int | None = None, audit: StreamAudit | None = None,
         fmt: GemvFormat = PLAIN, tokens: int = 1, reload: bool = False) -> CidRun:
    """Simulate ``y[n] = W[n, k] @ x`` on ``pcs`` PCs (default: all) of ``device``, for
    ``tokens`` input vectors held in the global buffer at once (one pass over the weights,
    `sim.units.cid.layout`); with an ``audit``, check the command stream too
    (`sim.units.cid.audit`); ``fmt``: the inputs' format and the weights' scales
    (`sim.units.cid.quant`). Energy and internal bytes are those of the PCs that hold rows: a
    PC without any gets no command."""
    lay = gemv_layout(device, mode, n, k, dtype, pcs, fmt, tokens=tokens, reload=reload)
    device = dequant_device(device, mode, lay.lanes, fmt)
    run = _run(device, audit, mode, *_program(lay))
    org = device.org
    # Row n goes to PC group n mod (pcs / split) first (`GemvLayout.address`).
    used = min(n, lay.pcs // lay.split) * lay.split
    per_cmd = {"MAC_AB": org.banks_per_pc, "MAC_SB": org.groups_per_pc, "RD": 1}
    internal = sum(run.counts.get(cmd, 0) * m for cmd, m in per_cmd.items()) \
        * org.burst_bytes * used
    return CidRun(cycles=run.cycles, time_s=run.cycles * device.timing.tck_s,
                  internal_bytes=float(internal),
                  useful_bytes=n * k * lay.bits / 8 + scale_bytes(n, k, fmt),
                  energy_j=energy_j(device, run.counts, mode, used), counts=run.counts,
                  pcs=used)


def _program(lay: GemvLayout) -> tuple[int, ...]:
    """What one PC's command stream depends on (so its time): equal programs, equal time."""
    return (lay.steps, lay.cols, lay.cols_last, lay.chunks_local, lay.gb_writes, lay.reads,
            lay.tokens, lay.sub_cols)


def _fewest(most: int, same: Callable[[int], bool]) -> int:
    """The smallest ``s`` in ``[1, most]`` with ``same(s)`` (true at ``most``, and from some
    point on as ``s`` grows): how few stacks or PCs an op needs to take the time it takes on
    all of them. Spreading it further only wakes units that add energy, not speed."""
    lo, hi = 1, most
    while lo < hi:
        mid = (lo + hi) // 2
        if same(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _same_program(device: DramDevice, mode: str, k: int, dtype: str, pcs: int | None,
                  goal: tuple[int, ...], n: int, fmt: GemvFormat = PLAIN, tokens: int = 1,
                  reload: bool = False) -> bool:
    try:
        return _program(gemv_layout(device, mode, n, k, dtype, pcs, fmt, tokens=tokens,
                                    reload=reload)) == goal
    except ConfigError:  # does not fit on fewer units
        return False


def kv_append(device: DramDevice, nbytes: int, audit: StreamAudit | None = None) -> CidRun:
    """Write ``nbytes`` of new K and V vectors, spread over all PCs (ordinary writes); with an
    ``audit``, check the command streams too."""
    org = device.org
    bursts = -(-nbytes // org.burst_bytes)
    per_pc = -(-bursts // org.pcs)
    per_step = org.groups_per_pc * org.columns
    steps = -(-per_pc // per_step)
    cols = min(per_pc, per_step)
    last = per_pc - (steps - 1) * per_step
    used = -(-bursts // per_pc)  # PCs that get a burst; the others get no command
    if steps == 1 or last == cols:
        run = _run(device, audit, "write", steps, cols, cols)
    else:  # a partial last step: cost it as a second program
        run = _run(device, audit, "write", steps - 1, cols, cols)
        tail = _run(device, audit, "write", 1, last, last)
        run = ChannelRun(cycles=run.cycles + tail.cycles,
                         counts={c: run.counts.get(c, 0) + tail.counts.get(c, 0)
                                 for c in set(run.counts) | set(tail.counts)}, stream=None)
    return CidRun(cycles=run.cycles, time_s=run.cycles * device.timing.tck_s,
                  internal_bytes=0.0, useful_bytes=float(nbytes),
                  energy_j=energy_j(device, run.counts, "write", used), counts=run.counts,
                  pcs=used)


def attention(device: DramDevice, mode: str, *, batch: int, heads: int, kv_heads: int,
              queries: int, keys: int, head_dim: int, dtype: str,
              pcs: int | None = None, audit: StreamAudit | None = None) -> CidRun:
    """q.K^T (or p.V) of decode attention over a KV cache resident in the banks.

    Each (sequence, KV head) has its own ``keys x head_dim`` matrix; matrices are spread over
    the PCs (heads to PCs, as AttAcc maps heads to channels). With more matrices than PCs the
    PCs take them in rounds; with fewer, a matrix's rows are spread over ``pcs / matrices``
    PCs. Every query head of a group, and every query, streams its matrix once (a GEMV of
    ``keys x head_dim``): the MAC units hold one input vector. p.V streams the same bytes
    (V is stored token-major, each unit accumulating a partial output vector), so both use
    this cost; the partial vectors are reduced by the near-memory vector unit. With an
    ``audit``, the command stream is checked too.
    """
    pcs = device.org.pcs if pcs is None else pcs
    mats = batch * kv_heads
    rounds = -(-mats // pcs) if mats >= pcs else 1
    per = 1 if mats >= pcs else 1 << int(math.log2(pcs // mats))
    if per > 1:  # no more PCs per matrix than make it faster (`_fewest`), in powers of two
        goal = _program(gemv_layout(device, mode, keys, head_dim, dtype, per))
        log = _fewest(int(math.log2(per)) + 1, lambda i: _same_program(
            device, mode, head_dim, dtype, 1 << (i - 1), goal, keys))
        per = 1 << (log - 1)
    per_query = (heads // kv_heads) * queries
    one = gemv(device, mode, keys, head_dim, dtype, pcs=per, audit=audit)
    # Every matrix is streamed once per query head and query; a round keeps
    # min(mats, pcs / per) matrices busy at once.
    streams = mats * per_query
    return CidRun(cycles=one.cycles * rounds * per_query,
                  time_s=one.time_s * rounds * per_query,
                  internal_bytes=one.internal_bytes * streams,
                  useful_bytes=one.useful_bytes * streams,
                  energy_j=one.energy_j * streams, counts=one.counts,
                  pcs=min(mats * one.pcs, pcs))


def peak_internal_bytes_per_s(device: DramDevice, mode: str) -> float:
    """Bytes per second the MAC units of all PCs can consume with every row open.

    Lockstep MACs (``MAC_AB``, and ``MAC_SB`` in ``bankgroup`` mode) are ``tCCD_AB`` apart, as
    AttAcc's cycle model spaces its MACABs at nCCDAB and its MACSBs at nCCDSB (equal to nCCDAB
    in its HBM3 5.2 Gb/s rows; docs/cid.md, "AttAcc's internal bandwidths")."""
    org, t = device.org, device.timing
    per_pc = {"bank": org.banks_per_pc * org.burst_bytes / t.tCCD_AB,
              "aim": org.banks_per_pc * org.burst_bytes / t.tCCD_AB,
              "bankgroup": org.groups_per_pc * org.burst_bytes / t.tCCD_AB,
              "buffer": org.burst_bytes / t.tCCD_S}[mode]
    return per_pc * org.pcs / t.tck_s


_COLUMN_COMMAND = {"bank": "MAC_AB", "aim": "MAC_AB", "bankgroup": "MAC_SB", "buffer": "RD"}


def internal_bandwidth_ratios(device: DramDevice, mode: str) -> tuple[float, float]:
    """(peak, sustained) internal bandwidth of ``mode`` over the device's external (pin)
    bandwidth, both measured on the engine.

    Peak: bytes of one column command (every bank, every group, or one burst) over the median
    gap between consecutive column commands of a recorded two-step stream with refresh off
    (rows open; activates and row switches excluded). Sustained: a 2000-step stream of full
    rows (one row per bank, every group's row in ``buffer`` mode) with refresh, bytes over its
    cycles. AttAcc's 16x / 8x / 1x are quoted against the same external bandwidth."""
    if mode not in _COLUMN_COMMAND:
        raise ConfigError(f"mode: no internal-bandwidth ratio for {mode!r} "
                          f"(allowed: {', '.join(_COLUMN_COMMAND)})")
    org, t = device.org, device.timing
    cmd = _COLUMN_COMMAND[mode]
    units = {"MAC_AB": org.banks_per_pc, "MAC_SB": org.groups_per_pc, "RD": 1}[cmd]
    per_cmd = units * org.burst_bytes * org.pcs
    cols = org.columns * (org.groups_per_pc if mode == "buffer" else 1)
    rec = run_channel(device, mode, steps=2, cols=cols, refresh=False, record=True).stream
    at = rec[rec[:, 1] == COMMANDS.index(cmd), 0]
    peak = per_cmd / (float(np.median(np.diff(at))) * t.tck_s)
    run = run_channel(device, mode, steps=2000, cols=cols)
    sustained = run.counts[cmd] * per_cmd / (run.cycles * t.tck_s)
    external = org.bandwidth_bytes_per_s
    return peak / external, sustained / external


@lru_cache(maxsize=64)
def unit_device(unit: CidUnit) -> DramDevice:
    """The DRAM of a CiD unit, with its ``tccd_ab`` override applied."""
    device = load_dram(unit.dram)
    if unit.tccd_ab is not None:
        device = device.with_timing(tCCD_AB=unit.tccd_ab)
    return device


def unit_gemv(unit: CidUnit, n: int, k: int, dtype: str,
              audit: StreamAudit | None = None, fmt: GemvFormat = PLAIN, tokens: int = 1,
              reload: bool = False) -> CidRun:
    """A GEMV on a whole CiD unit (``tokens`` vectors in one pass, as `gemv`): its rows split
    evenly over the stacks (each stack runs its share on all its PCs), time of one stack,
    energy and bytes of all (``audit``, ``fmt``: as `gemv`). Only as many stacks as make it
    faster get rows (`_fewest`): the others stay idle and cost nothing."""
    device = unit_device(unit)
    goal = _program(gemv_layout(device, unit.mode, -(-n // unit.stacks), k, dtype, None, fmt,
                                tokens=tokens, reload=reload))
    stacks = _fewest(min(unit.stacks, n), lambda s: _same_program(
        device, unit.mode, k, dtype, None, goal, -(-n // s), fmt, tokens, reload))
    per_stack = -(-n // stacks)
    full, rest = divmod(n, per_stack)
    one = gemv(device, unit.mode, per_stack, k, dtype, audit=audit, fmt=fmt, tokens=tokens,
               reload=reload)
    last = gemv(device, unit.mode, rest, k, dtype, audit=audit, fmt=fmt, tokens=tokens,
                reload=reload) if rest else None
    return CidRun(cycles=one.cycles, time_s=one.time_s,
                  internal_bytes=one.internal_bytes * full + (last.internal_bytes if last else 0),
                  useful_bytes=n * k * DTYPE_BITS[dtype] / 8 + scale_bytes(n, k, fmt),
                  energy_j=one.energy_j * full + (last.energy_j if last else 0.0),
                  counts=one.counts, pcs=one.pcs * full + (last.pcs if last else 0))


def unit_gemm(unit: CidUnit, m: int, n: int, k: int, dtype: str,
              audit: StreamAudit | None = None, fmt: GemvFormat = PLAIN) -> CidRun:
    """``Y[m, n] = X[m, k] @ W[n, k]^T`` on a whole CiD unit: ``m`` tokens in passes of ``t``
    vectors each (module docstring), ``t`` the fastest of the powers of two up to the buffer's
    capacity (`max_tokens`) and that capacity itself, among those whose accumulators fit
    (`sim.units.cid.layout.gemv_layout`), each with K-slices of ``buffer / t`` or with the
    buffer re-filled inside each open row (``reload``); ``t = 1`` is ``m`` GEMVs. Totals over
    every pass: cycles, time, bytes, energy and command counts (``audit``, ``fmt``: as
    `gemv`)."""
    cap = min(m, max_tokens(unit_device(unit), unit.mode, dtype, fmt))
    best: CidRun | None = None
    for t in sorted({1 << i for i in range(cap.bit_length())} | {cap}):
        for reload in ((False,) if t == 1 else (False, True)):
            if t > 1 and not _fits(unit, n, k, dtype, fmt, t, reload):
                continue
            full, rest = divmod(m, t)
            parts = [(unit_gemv(unit, n, k, dtype, audit, fmt, t, reload), full)]
            if rest:
                parts.append((unit_gemv(unit, n, k, dtype, audit, fmt, rest,
                                        reload and rest > 1), 1))
            run = _total(parts)
            if best is None or run.time_s < best.time_s:  # ties keep the fewer vectors
                best = run
    return best


def _fits(unit: CidUnit, n: int, k: int, dtype: str, fmt: GemvFormat, tokens: int,
          reload: bool) -> bool:
    """Whether ``tokens`` vectors' accumulators fit the units of an ``n x k`` layout (on
    one stack's PCs: the smallest share of rows a stack gets packs no more rows)."""
    try:
        gemv_layout(unit_device(unit), unit.mode, -(-n // unit.stacks), k, dtype, None, fmt,
                    tokens=tokens, reload=reload)
    except ConfigError:
        return False
    return True


def _total(parts: list[tuple[CidRun, int]]) -> CidRun:
    """The runs of ``parts`` (run, times it runs) one after the other."""
    if len(parts) == 1:  # one program repeated: the products a GEMV's M repeats always took
        run, times = parts[0]
        return CidRun(cycles=run.cycles * times, time_s=run.time_s * times,
                      internal_bytes=run.internal_bytes * times,
                      useful_bytes=run.useful_bytes * times, energy_j=run.energy_j * times,
                      counts={c: v * times for c, v in run.counts.items()}, pcs=run.pcs)
    counts: dict[str, int] = {}
    for run, times in parts:
        for c, v in run.counts.items():
            counts[c] = counts.get(c, 0) + v * times
    return CidRun(cycles=sum(r.cycles * n for r, n in parts),
                  time_s=sum(r.time_s * n for r, n in parts),
                  internal_bytes=sum(r.internal_bytes * n for r, n in parts),
                  useful_bytes=sum(r.useful_bytes * n for r, n in parts),
                  energy_j=sum(r.energy_j * n for r, n in parts), counts=counts,
                  pcs=max(r.pcs for r, _ in parts))


def unit_kv_append(unit: CidUnit, nbytes: int,
                   audit: StreamAudit | None = None) -> CidRun:
    """``nbytes`` of K and V written over the stacks of a CiD unit: an equal share per stack
    (time of one), energy of all; as with `unit_gemv`, only as many stacks as make it faster
    are written to (``audit``: as `gemv`)."""
    device = unit_device(unit)

    def program(stacks: int) -> tuple[int, int]:
        per_pc = -(-(-(-nbytes // stacks) // device.org.burst_bytes) // device.org.pcs)
        return per_pc, device.org.groups_per_pc * device.org.columns

    goal = program(unit.stacks)
    stacks = _fewest(unit.stacks, lambda s: program(s) == goal)
    share = -(-nbytes // stacks)
    full, rest = divmod(nbytes, share)
    one = kv_append(device, share, audit)
    last = kv_append(device, rest, audit) if rest else None
    return CidRun(cycles=one.cycles, time_s=one.time_s, internal_bytes=0.0,
                  useful_bytes=float(nbytes),
                  energy_j=one.energy_j * full + (last.energy_j if last else 0.0),
                  counts=one.counts, pcs=one.pcs * full + (last.pcs if last else 0))


def cid_step_cost(system: System, graph: Graph,
                  audit: StreamAudit | None = None) -> Callable[[Op], Cost]:
    """Unit model of the chip's CiD unit for one step (the ``cost`` model of
    `sim.units.cid.unit.UNIT`): each op is costed on its own by `cid_cost`; with an ``audit``
    (``pdsim run --check-dram``) every command stream it generates is checked too."""
    del graph  # a CiD op's cost depends on the op alone
    return partial(cid_cost, system, audit=audit)


def cid_cost(system: System, op: Op, audit: StreamAudit | None = None) -> Cost:
    """`Cost` of one instance of ``op`` on the system's CiD unit (``op.unit == "cid"``).

    GEMMs of ``M`` tokens stream the weights once per pass of as many tokens as the global
    buffer holds (`unit_gemm`; ``M`` GEMVs where it holds one); attention streams the KV
    cache per query head (`attention`), scaled to the (query, key) pairs a causal mask keeps
    (time linear in keys streamed: exact up to the rounding of a GEMV's rows onto banks); KV
    writes are ordinary writes. The op is bound by the banks'
    internal bandwidth, reported as ``memory``."""
    unit = system.chip.cid
    if unit is None:
        raise ValueError(f"cid_cost: op {op.name} placed on 'cid' but the chip has no CiD unit")
    device = unit_device(unit)
    if op.name.endswith((DEQUANT_SUFFIX, KV_DEQUANT_SUFFIX)):
        # the near-bank lanes dequantize inside the GEMM's own stream (sim.units.cid.quant):
        # its scale columns and any extra MAC slots are the GEMM's cost; nothing is left here.
        # KV scales likewise cost no MAC slot (sim.units.cid.quant, "KV cache"): the
        # attention op reads their bytes
        return Cost(time_s=0.0, compute_s=0.0, memory_s=0.0, comm_s=0.0, energy_j=0.0,
                    bound="compute", dram_bytes=0.0, cycles=0.0, stall_cycles=0.0,
                    utilization=math.nan)
    scale_reps = 1
    if op.kind in (OpKind.GEMM, OpKind.LM_HEAD):
        m, n, k = op.dims
        # the banks hold the weights in their own format and the scales beside them; the
        # global buffer holds the inputs in the activation format (sim.units.cid.quant)
        f = op.formats
        run = unit_gemm(unit, m, n, k, f.weight, audit,
                        GemvFormat(act=f.act, scale_group=f.scale_group, scale=f.scale))
        reps, scale_reps = 1, m
    elif op.kind in (OpKind.ATTN_SCORE, OpKind.ATTN_VALUE):
        batch, heads, kv_heads, queries, keys, hd = op.dims
        run = attention(device, unit.mode, batch=batch, heads=heads, kv_heads=kv_heads,
                        queries=queries, keys=keys, head_dim=hd, dtype=op.formats.kv,
                        pcs=device.org.pcs * unit.stacks, audit=audit)
        # A causal prefill's query i reads only the first context + i + 1 keys; the banks
        # then stream that share of the K/V rows (``op.flops`` counts exactly the kept
        # pairs, mappers.lower.causal_pairs). 1 for decode and for bidirectional models.
        reps = scale_reps = op.flops / (2 * batch * heads * queries * keys * hd)
    elif op.kind is OpKind.KV_WRITE:
        run = unit_kv_append(unit, op.kv_bytes, audit)
        reps = scale_reps = 1
    else:
        raise ValueError(f"cid_cost: op kind {op.kind.value} has no CiD model")
    time = run.time_s * reps
    peak = peak_internal_bytes_per_s(device, unit.mode) * unit.stacks
    moved = run.internal_bytes * reps
    if op.formats.scale_group == -1:  # per-channel scales: read where each token's outputs
        moved += op.formats.scale_bytes * scale_reps  # leave, as one GEMV a token did
    moved += op.formats.kv_scale_bytes * scale_reps if op.kind is not OpKind.KV_WRITE else 0
    return Cost(time_s=time, compute_s=time, memory_s=time, comm_s=0.0,
                energy_j=run.energy_j * reps, bound="memory",
                dram_bytes=moved if moved else run.useful_bytes * reps,
                cycles=float(run.cycles * reps), stall_cycles=math.nan,
                utilization=moved / (peak * time) if moved else math.nan)
