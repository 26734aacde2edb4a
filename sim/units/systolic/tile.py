"""Tile-level chip model: GEMMs mapped onto all systolic arrays, with a mapping search.

A GEMM (or ``batch`` independent GEMMs of one shape, as attention heads are) is cut into L1
tiles of ``m1 x n1 x k1``. Each core takes whole output tiles (``m1 x n1``) and loops over ``K``
in ``k1`` steps; inside a core the tile is split across the sublanes' arrays along ``m`` or
``n``. The search (after LLMCompass's per-op mapping) tries tile sizes, the sublane split and
the L2 loop order, keeps those that fit the SRAMs, and chooses the fastest. Per candidate:

* **array time** of one k-step: the one-array fold model
  (`sim.units.systolic.array.fold_cycles`) on the sublane's sub-tile; each k-step refills the
  pipeline, which is why large ``k1`` wins;
* **L2 -> L1**: the A and B tiles of each k-step, double-buffered in L1 (the C tile stays as
  accumulators, fp32 by default, in L1 too unless the core has ``accumulator_bytes`` of
  register file for them, as Hopper's wgmma accumulates in registers), at the core's share of
  the L2 bandwidth; a k-step takes the
  longer of its compute and its load;
* **DRAM -> L2**: with loop order ``m`` (``n``), a block of A rows (B columns) that fits in half
  the L2 stays while all of B (A) streams past it; the streamed operand is read once per block
  unless it fits in L2 itself. C is written once.

Each operand moves at its own storage width: A (activations) and C in the activation format,
B in the weight format (the K or V cache format for attention), so int4 weights stream half
the bytes of int8 ones. The arrays' MAC rate is that of the activation (compute) format:
weights are dequantised on the way in, as weight-only quantisation kernels do. Only the array
cycles scale with that rate: a format that retires two MACs per PE per cycle halves a k-step's
compute, not its L2 load, the DRAM stream or the first fetch, so DRAM-bound ops are unchanged.

Where the chip gives ``core.memory_parallelism``, each core draws at most its own Little's-law
bandwidth (requests in flight x line / latency) from L2 and from DRAM, so a mapping with few
active cores (``min(cores, tiles)``) cannot fill either (docs/chip-model.md); vector ops use
every core.

Cores work in waves of ``ceil(tiles / cores)`` output tiles (edge tiles counted as full, a
slight overestimate). When the output tiles are fewer than the cores, the search also tries
the two decompositions cuBLAS and CUTLASS use on such shapes (Osama et al., "Stream-K",
PPoPP 2023): **split-K** cuts each tile's K loop into ``cores // tiles`` parts, one per core,
and a second kernel reduces the fp32 partial sums (written and read once, through L2 while
they fit in half of it, else through DRAM); **stream-K** deals the k-steps of all tiles out
evenly, ``ceil(tiles x ksteps / cores)`` per core, and each core writes at most one partial
tile that the core finishing that tile reads back. The search keeps whichever is fastest.
The op takes ``max(core time, DRAM time)`` plus the first tile's DRAM fetch, which nothing
hides, plus split-K's reduction kernel. Stalls are that total minus the pure array cycles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numba import njit

from mappers.ir import Op, OpKind

from sim.cost import Cost
from sim.dtypes import DTYPE_BITS
from sim.hardware import DATAFLOWS, Chip, System
from sim.roofline import energy_j, roofline_cost
from sim.runtime import DECOMPOSITIONS as _RUNTIME_DECOMPOSITIONS
from sim.runtime import load_runtime
from sim.units.systolic.array import fold_cycles

_POWERS_OF_TWO = tuple(2**i for i in range(15))


@lru_cache(maxsize=4096)
def _candidates(dim: int) -> np.ndarray:
    """Tile sizes tried for a dimension: powers of two below it, and the dimension itself.
    Memoised (decode attention maps new shapes every step, mostly of known dimensions), so the
    array is read-only."""
    # the powers of two below it (up to 2^14), then the dimension: already sorted and distinct
    sizes = np.array([p for p in _POWERS_OF_TWO if p < dim] + [dim], dtype=np.int64)
    sizes.flags.writeable = False
    return sizes


#: Work decompositions of a GEMM over the cores (`_search`): whole output tiles per core,
#: split-K (each tile's K range cut into ``s`` parts, partial sums reduced by a second kernel)
#: and stream-K (the k-steps of all tiles dealt out evenly, partial tiles fixed up in place).
#: A runtime may allow fewer (`sim.runtime.Runtime.decompositions`).
DECOMPOSITIONS = _RUNTIME_DECOMPOSITIONS


@njit(cache=True)
def _search(batch, m, n, k, cores, sublanes, rows, cols, df, ab, bb, cb, accb, l1_bytes,
            acc_bytes, l2_bytes, l2_bw, dram_bw, core_l2, core_dram, cm, cn, ck, rate,
            kernel_cycles, allowed):
    """Best mapping; ``ab``, ``bb``, ``cb``, ``accb``: bytes per element of A, B, C and the
    accumulators (fractional for sub-byte formats); all bandwidths in bytes per tensor cycle,
    ``core_l2`` and ``core_dram`` those one core can sustain (inf: unbounded); ``acc_bytes``:
    the register file the C tile accumulates in (0: the accumulators share L1); ``rate``: MACs
    per PE per cycle of the compute format, which divides the array cycles only (loads and
    DRAM traffic take the time their bytes take, whatever the MAC rate); ``kernel_cycles``:
    the fixed cost of launching one kernel, which split-K's reduction kernel adds;
    ``allowed``: bit ``i`` set where decomposition ``DECOMPOSITIONS[i]`` may be used.
    Returns a float array: total, compute, dram_bytes, l2_bytes_moved, m1, n1, k1, split,
    order, core, first, achieved DRAM bandwidth, decomposition (index into
    `DECOMPOSITIONS`), K parts per tile (split-K), reduction cycles, partial-sum bytes."""
    best = np.full(16, np.inf)
    best_launch = 0.0
    for m1 in cm:
        for n1 in cn:
            for k1 in ck:
                tile_in = m1 * k1 * ab + k1 * n1 * bb  # bytes of one k-step's A and B tiles
                if acc_bytes > 0:
                    if 2 * tile_in > l1_bytes or m1 * n1 * accb > acc_bytes:
                        continue
                elif 2 * tile_in + m1 * n1 * accb > l1_bytes:
                    continue
                tiles = batch * ((m + m1 - 1) // m1) * ((n + n1 - 1) // n1)
                ksteps = (k + k1 - 1) // k1
                # Fewer output tiles than cores leave cores idle; cuBLAS/CUTLASS then split
                # K (Osama et al., Stream-K, PPoPP 2023): split-K by the factor that fills
                # the cores, or stream-K, which deals every k-step out evenly
                for dec in range(3):
                    if not (allowed >> dec) & 1:
                        continue
                    parts = 1
                    prologues = 1  # k-step loads no compute hides: one per tile a core starts
                    if dec == 0:
                        prologues = (tiles + cores - 1) // cores
                        per_core = ksteps * prologues
                        active = min(cores, tiles)
                        partial = 0.0
                    elif dec == 1:
                        parts = min(ksteps, cores // tiles) if tiles < cores else 1
                        if parts < 2:
                            continue
                        per_core = (ksteps + parts - 1) // parts
                        active = tiles * parts
                        # every part's fp32 tile, written, then read by the reduction kernel
                        partial = 2.0 * parts * batch * m * n * accb
                    else:
                        if tiles >= cores or tiles * ksteps <= cores:
                            continue
                        per_core = (tiles * ksteps + cores - 1) // cores
                        if per_core >= ksteps:  # as slow as whole tiles: nothing to deal
                            continue
                        active = cores
                        prologues = 2  # a range shorter than a tile spans at most two
                        # each core's range ends inside a tile at most once: that partial
                        # tile is written and read back by the core finishing the tile
                        partial = 2.0 * (cores - 1) * m1 * n1 * accb
                    # a core's share of L2, but no more than its own requests in flight
                    core_bw = min(l2_bw / active, core_l2)
                    load = tile_in / core_bw
                    # DRAM: the memory's bandwidth, or all active cores' together if less
                    dram_eff = min(dram_bw, active * core_dram)
                    # partial sums (half of ``partial``: each is written, then read) stay in
                    # L2 while they fit half of it, else they go to DRAM and back
                    spill = partial / 2 > l2_bytes // 2
                    for split in range(2):
                        if split == 0:
                            ms, ns = (m1 + sublanes - 1) // sublanes, n1
                        else:
                            ms, ns = m1, (n1 + sublanes - 1) // sublanes
                        if df == 0:
                            sr, sc, t = ms, ns, k1
                        elif df == 1:
                            sr, sc, t = k1, ns, ms
                        else:
                            sr, sc, t = k1, ms, ns
                        folds, per_fold = fold_cycles(rows, cols, df, sr, sc, t)
                        step = folds * per_fold / rate
                        core = per_core * max(step, load) + prologues * load
                        reduce = 0.0
                        if dec == 2:  # the fix-up runs inside each core
                            core += m1 * n1 * accb * 2 / (dram_eff / active if spill
                                                          else core_bw)
                        elif dec == 1:  # the reduction kernel runs after the GEMM
                            reduce = partial / (dram_eff if spill else l2_bw)
                        # split-K's second kernel is charged by the caller (`kernels`), but
                        # weighs in the choice here
                        launch = kernel_cycles if dec == 1 else 0.0
                        compute = per_core * step
                        a, b, c = m * k * ab, k * n * bb, m * n * cb
                        for order in range(2):
                            held, streamed, held_dim, other = (a, b, m, m1) if order == 0 \
                                else (b, a, n, n1)
                            if streamed <= l2_bytes // 2:
                                passes = 1
                            else:
                                blk = (l2_bytes // 2) // max(1, held // held_dim)
                                blk = max(other, (blk // other) * other)
                                passes = (held_dim + blk - 1) // blk
                            dram = batch * (held + streamed * passes + c)
                            if spill:
                                dram += partial
                            first = tile_in / min(dram_bw, core_dram)
                            total = max(core, dram / dram_eff) + first + reduce
                            if total + launch < best[0] + best_launch:
                                best[0] = total
                                best[1] = compute
                                best[2] = dram
                                best[3] = tiles * (ksteps * tile_in + m1 * n1 * cb) + partial
                                best[4] = m1
                                best[5] = n1
                                best[6] = k1
                                best[7] = split
                                best[8] = order
                                best[9] = core
                                best[10] = first
                                best[11] = dram_eff
                                best[12] = dec
                                best[13] = parts
                                best[14] = reduce
                                best[15] = partial
                                best_launch = launch
    return best


@dataclass(frozen=True, slots=True)
class GemmMapping:
    """The chosen mapping of a GEMM on a chip, in tensor-clock cycles."""

    cycles: float
    compute_cycles: float
    core_cycles: float
    first_fetch_cycles: float
    dram_bytes: float
    l2_bytes: float
    dram_bytes_per_cycle: float
    tile: tuple[int, int, int]
    split: str
    loop_order: str
    utilization: float
    #: how the work is dealt to the cores (one of `DECOMPOSITIONS`) and, for split-K, the K
    #: parts per output tile; ``reduce_cycles``: split-K's reduction kernel (in ``cycles``)
    decomposition: str = "tiles"
    k_parts: int = 1
    reduce_cycles: float = 0.0

    @property
    def kernels(self) -> int:
        """Kernels the mapping launches: split-K reduces its partial sums in a second one."""
        return 2 if self.decomposition == "split-k" else 1


@lru_cache(maxsize=65536)
def map_gemm(chip: Chip, dtype: str, batch: int, m: int, n: int, k: int, *,
             b_dtype: str | None = None, acc_dtype: str = "fp32",
             c_dtype: str | None = None, decompositions: tuple[str, ...] = DECOMPOSITIONS,
             kernel_s: float | None = None, min_tile_n: int = 1) -> GemmMapping:
    """Map ``batch`` GEMMs ``C[m,n] = A[m,k] @ B[k,n]`` onto ``chip``; memoised by shape.

    ``dtype`` is the compute format, that of A (and of C unless ``c_dtype`` says otherwise:
    a quantized GEMM's epilogue writes fp16); ``b_dtype`` that of B (the weights, or the K/V
    cache; default ``dtype``); ``acc_dtype`` that of the C tile's accumulators in L1;
    ``decompositions`` those the GEMM library may use; ``kernel_s`` the seconds one more
    kernel costs (split-K's reduction; default the chip's ``op_overhead_s``); ``min_tile_n``
    the library's narrowest tile along ``n`` (a narrower ``n`` is one tile).
    """
    sa = chip.core.systolic_array
    ab = DTYPE_BITS[dtype] / 8
    bb = DTYPE_BITS[b_dtype or dtype] / 8
    cb = DTYPE_BITS[c_dtype or dtype] / 8
    accb = DTYPE_BITS[acc_dtype] / 8
    f = chip.tensor_freq_hz
    dram_bw = chip.memory.bandwidth_bytes_per_s * chip.efficiency.memory / f
    core_l2, core_dram = core_bandwidths(chip)
    cn = _candidates(n)
    cn = cn[cn >= min(n, min_tile_n)]
    best = _search(batch, m, n, k, chip.cores, chip.core.sublanes, sa.rows, sa.cols,
                   DATAFLOWS.index(sa.dataflow), ab, bb, cb, accb,
                   chip.core.l1.capacity_bytes, chip.core.accumulator_bytes or 0,
                   chip.l2.capacity_bytes, chip.l2.bandwidth_bytes_per_cycle, dram_bw,
                   core_l2 / f, core_dram / f, _candidates(m), cn, _candidates(k),
                   sa.macs_per_pe_per_cycle(dtype),
                   (chip.efficiency.op_overhead_s if kernel_s is None else kernel_s) * f,
                   sum(1 << DECOMPOSITIONS.index(d) for d in decompositions))
    if not math.isfinite(best[0]):
        raise ValueError(f"tile: no L1 tile of a {m}x{n}x{k} GEMM fits {chip.name}'s L1")
    return GemmMapping(cycles=best[0], compute_cycles=best[1],
                       core_cycles=best[9], first_fetch_cycles=best[10],
                       dram_bytes=best[2], l2_bytes=best[3], dram_bytes_per_cycle=best[11],
                       tile=(int(best[4]), int(best[5]), int(best[6])),
                       split=("m", "n")[int(best[7])], loop_order=("m", "n")[int(best[8])],
                       decomposition=DECOMPOSITIONS[int(best[12])], k_parts=int(best[13]),
                       reduce_cycles=best[14],
                       utilization=batch * m * n * k / (chip.arrays * sa.rows * sa.cols
                                                        * sa.macs_per_pe_per_cycle(dtype)
                                                        * best[0]))


def core_bandwidths(chip: Chip) -> tuple[float, float]:
    """Bytes per second one core can sustain from L2 and from DRAM (Little's law on its
    requests in flight; `sim.hardware.MemoryParallelism`), ``inf`` where the chip sets none."""
    mlp = chip.core.memory_parallelism
    if mlp is None:
        return math.inf, math.inf
    return mlp.l2_bytes_per_s, mlp.dram_bytes_per_s


def dram_bandwidth(chip: Chip, active_cores: int) -> float:
    """Achievable DRAM bytes per second with ``active_cores`` cores streaming: the memory's
    (times its efficiency), or the cores' own sum if that is less."""
    return min(chip.memory.bandwidth_bytes_per_s * chip.efficiency.memory,
               active_cores * core_bandwidths(chip)[1])


def _gemm_shape(op: Op) -> tuple[int, int, int, int, float]:
    """``(batch, m, n, k, work_fraction)`` of a tensor op. Attention is ``batch x kv_heads``
    GEMMs whose ``m`` holds the query heads sharing a KV head; a causal mask skips the
    fraction of the score tiles it removes."""
    if op.kind in (OpKind.GEMM, OpKind.LM_HEAD):
        m, n, k = op.dims
        return 1, m, n, k, 1.0
    b, heads, kv_heads, lq, lk, hd = op.dims
    group = heads // kv_heads
    if op.kind == OpKind.ATTN_SCORE:
        m, n, k = group * lq, lk, hd
    else:
        m, n, k = group * lq, hd, lk
    full = 2 * b * kv_heads * m * n * k
    return b * kv_heads, m, n, k, op.flops / full


def vector_cycles(chip: Chip, flops: int) -> int:
    """Vector-clock cycles for ``flops`` spread over every lane of every vector unit."""
    vu = chip.core.vector_unit
    per_cycle = chip.arrays * vu.width * vu.flops_per_lane_per_cycle
    return math.ceil(flops / per_cycle)


def tile_cost(system: System, op: Op) -> Cost:
    """Cost of one instance of ``op``: tensor ops through the mapping search, vector ops by
    lane throughput, both bounded by DRAM; DMA and links as in the roofline."""
    chip = system.chip
    eff = chip.efficiency
    if op.unit == "tensor":
        batch, m, n, k, work = _gemm_shape(op)
        fmt = op.formats
        b_dtype = fmt.weight if op.kind in (OpKind.GEMM, OpKind.LM_HEAD) else fmt.kv
        if b_dtype is None or fmt.acc is None:
            raise ValueError(f"tile: tensor op {op.name} lacks its B-operand or accumulator "
                             f"format ({fmt})")
        library = {}
        # the stack's GEMM library (attention runs in its own flash kernel)
        if system.runtime is not None and op.kind in (OpKind.GEMM, OpKind.LM_HEAD):
            rt = load_runtime(system.runtime)
            library = {"decompositions": rt.decompositions, "kernel_s": rt.kernel_s,
                       "min_tile_n": rt.gemm_min_tile_n}
        g = map_gemm(chip, fmt.act, batch, m, n, k, b_dtype=b_dtype, acc_dtype=fmt.acc,
                     c_dtype=fmt.out, **library)
        f = chip.tensor_freq_hz
        compute_cycles = g.compute_cycles * work
        if op.kind in (OpKind.GEMM, OpKind.LM_HEAD):
            # the mapping streams A, B and C; the weights' scales come with B, at least once
            dram = max(g.dram_bytes + fmt.scale_bytes, op.bytes)
        else:  # fused attention reads K/V once per KV head: the op's own bytes are exact
            dram = op.bytes
        dram_cycles = dram / g.dram_bytes_per_cycle
        core = g.core_cycles * work
        cycles = max(core, dram_cycles) + g.first_fetch_cycles + g.reduce_cycles
        bound = "compute" if core >= dram_cycles else "memory"
        sa = chip.core.systolic_array
        util = (op.flops / 2 / sa.macs_per_pe_per_cycle(fmt.act)
                / (chip.arrays * sa.rows * sa.cols * cycles))
        return Cost(time_s=cycles / f + eff.op_overhead_s * op.launches * g.kernels,
                    compute_s=compute_cycles / f, memory_s=dram_cycles / f, comm_s=0.0,
                    energy_j=energy_j(system, op, dram), bound=bound, dram_bytes=dram,
                    cycles=cycles,
                    stall_cycles=cycles - compute_cycles, utilization=util, kernels=g.kernels)
    if op.unit == "vector":
        f = chip.vector_freq_hz
        compute = vector_cycles(chip, op.flops)
        # vector work spreads over every core, so all of them stream
        memory = op.bytes / dram_bandwidth(chip, chip.cores) * f
        cycles = max(compute, memory)
        return Cost(time_s=cycles / f + eff.op_overhead_s * op.launches,
                    compute_s=compute / f,
                    memory_s=memory / f, comm_s=0.0, energy_j=energy_j(system, op, op.bytes),
                    bound="compute" if compute >= memory else "memory", dram_bytes=op.bytes,
                    cycles=cycles,
                    stall_cycles=cycles - compute,
                    utilization=compute / cycles if cycles else 0.0)
    return roofline_cost(system, op)
