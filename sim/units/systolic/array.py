"""Systolic-array GEMM model: one array (fold by fold, with SRAM and a fetch bandwidth).

A GEMM ``C[M,N] = A[M,K] @ B[K,N]`` on an ``R x C`` array is mapped by its dataflow onto two
spatial dimensions ``Sr`` (array rows) and ``Sc`` (array columns) and one temporal dimension
``T`` (SCALE-Sim's convention, REFERENCE.md):

===========  ===========  ===========  ======  =====================================
dataflow     Sr (rows)    Sc (cols)    T       stays in the PEs
===========  ===========  ===========  ======  =====================================
os           M            N            K       the output tile (P = C)
ws           K            N            M       the weight tile (P = B)
is           K            M            N       the input tile (P = A)
===========  ===========  ===========  ======  =====================================

Each fold covers an ``R x C`` block of ``Sr x Sc``; there are ``ceil(Sr/R) ceil(Sc/C)`` folds of
``T + fill`` cycles, where ``fill = R + C - 2`` for os and ``2R + C - 2`` for ws/is (the
stationary tile is shifted in first). The run takes ``folds * (T + fill) - 1`` cycles, SCALE-Sim's
count. Three operands move per fold: the stationary tile ``P`` (``rows_used x cols_used``,
once), the row-side stream ``Q`` (``rows_used x T``) and the column-side stream ``U``
(``cols_used x T``). ``Q`` and ``U`` are inputs or outputs depending on the dataflow; the table
in `ROLES` names them. The model is one set of formulas with the dataflow as a parameter.

Memory: each operand has a double-buffered SRAM (half of it holds the next fold's data). An
operand whose whole matrix fits in half its SRAM is fetched from the next level once; otherwise
every fold fetches its tile. The next fold's fetch overlaps the current fold's compute; the
array stalls when the fetch takes longer, and for the whole first fetch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from sim.errors import ConfigError
from sim.hardware import DATAFLOWS

_DF = {name: i for i, name in enumerate(DATAFLOWS)}

#: For each dataflow: which GEMM operand plays the stationary (P), row-stream (Q) and
#: column-stream (U) roles.
ROLES = {"os": ("C", "A", "B"), "ws": ("B", "A", "C"), "is": ("A", "B", "C")}


def spatial_temporal(dataflow: str, m: int, n: int, k: int) -> tuple[int, int, int]:
    """``(Sr, Sc, T)`` of a GEMM under ``dataflow``."""
    return {"os": (m, n, k), "ws": (k, n, m), "is": (k, m, n)}[dataflow]


def array_folds(rows: int, cols: int, dataflow: str, m: int, n: int, k: int) -> int:
    """Folds of a GEMM on one ``rows x cols`` array: ``ceil(Sr/rows) * ceil(Sc/cols)``."""
    sr, sc, _ = spatial_temporal(dataflow, m, n, k)
    return -(-sr // rows) * -(-sc // cols)


@njit(cache=True)
def fold_cycles(rows: int, cols: int, df: int, sr: int, sc: int, t: int):
    """Folds and cycles per fold of an ``sr x sc`` spatial, ``t`` temporal GEMM."""
    folds = ((sr + rows - 1) // rows) * ((sc + cols - 1) // cols)
    fill = rows + cols - 2 if df == 0 else 2 * rows + cols - 2
    return folds, t + fill


@njit(cache=True)
def _run_array(rows, cols, df, sr, sc, t, word_bytes, sram_words, bw_bytes_per_cycle, out):
    """Fold-by-fold simulation of one array; fills ``out`` (see `ArrayResult`)."""
    folds_r = (sr + rows - 1) // rows
    folds_c = (sc + cols - 1) // cols
    fill = rows + cols - 2 if df == 0 else 2 * rows + cols - 2
    per_fold = t + fill
    # whole-matrix words of P (sr x sc), Q (sr x t), U (sc x t) and whether each stays in
    # (half) its SRAM; os writes P, ws and is write U, everything else is read
    size_p, size_q, size_u = sr * sc, sr * t, sc * t
    half = sram_words // 2
    res_p, res_q, res_u = size_p <= half, size_q <= half, size_u <= half
    p_out, u_out = df == 0, df != 0
    sram_reads = 0
    sram_writes = 0
    acc_p = 0
    acc_q = 0
    acc_u = 0
    moved_p = 0
    moved_q = 0
    moved_u = 0
    stall = 0.0
    first = True
    for fr in range(folds_r):
        ru = min(rows, sr - fr * rows)
        for fc in range(folds_c):
            cu = min(cols, sc - fc * cols)
            tile_p, tile_q, tile_u = ru * cu, ru * t, cu * t
            words = 0
            acc_p += tile_p
            acc_q += tile_q
            acc_u += tile_u
            # P: the stationary tile (or the output tile of os)
            if p_out:
                sram_writes += tile_p
                moved_p += tile_p
                words += tile_p
            else:
                sram_reads += tile_p
                if first or not res_p:
                    add = size_p if res_p else tile_p
                    moved_p += add
                    words += add
            # Q: the row-side stream, always an input
            sram_reads += tile_q
            if first or not res_q:
                add = size_q if res_q else tile_q
                moved_q += add
                words += add
            # U: the column-side stream, an input for os, the output for ws and is
            if u_out:
                sram_writes += tile_u
                moved_u += tile_u
                words += tile_u
            else:
                sram_reads += tile_u
                if first or not res_u:
                    add = size_u if res_u else tile_u
                    moved_u += add
                    words += add
            fetch = words * word_bytes / bw_bytes_per_cycle
            if first:
                stall += fetch  # nothing to hide the first fetch behind
                first = False
            elif fetch > per_fold:
                stall += fetch - per_fold
    out[0] = folds_r * folds_c
    out[1] = per_fold
    out[2] = folds_r * folds_c * per_fold - 1
    out[3] = stall
    out[4] = sram_reads
    out[5] = sram_writes
    out[6] = moved_p
    out[7] = moved_q
    out[8] = moved_u
    out[9] = acc_p
    out[10] = acc_q
    out[11] = acc_u


@dataclass(frozen=True, slots=True)
class ArrayResult:
    """One GEMM on one array. Words are operand elements; bytes = words x word size."""

    folds: int
    cycles_per_fold: int
    compute_cycles: int
    stall_cycles: float
    utilization: float
    sram_reads: int
    sram_writes: int
    next_level_words: dict[str, int]
    #: SRAM words moved to or from the array, by operand ("A", "B" read; "C" written).
    sram_words: dict[str, int]

    @property
    def cycles(self) -> float:
        return self.compute_cycles + self.stall_cycles


def array_gemm(*, rows: int, cols: int, dataflow: str, m: int, n: int, k: int,
               word_bytes: int = 2, sram_bytes: int | None = None,
               bandwidth_bytes_per_cycle: float | None = None) -> ArrayResult:
    """Simulate ``C[m,n] = A[m,k] @ B[k,n]`` on one ``rows x cols`` array.

    ``sram_bytes`` is each operand's SRAM (double-buffered); ``bandwidth_bytes_per_cycle`` is
    the next level's bandwidth. Leave both None for an unlimited memory (compute cycles only,
    SCALE-Sim's CALC mode).
    """
    for name, value in (("rows", rows), ("cols", cols), ("m", m), ("n", n), ("k", k),
                        ("word_bytes", word_bytes)):
        if value < 1:
            raise ConfigError(f"{name}: must be >= 1, got {value}")
    if dataflow not in _DF:
        raise ConfigError(f"dataflow: unknown dataflow {dataflow!r} "
                          f"(allowed: {', '.join(DATAFLOWS)})")
    if sram_bytes is not None and sram_bytes < 2 * word_bytes:
        raise ConfigError(f"sram: must hold at least two words, got {sram_bytes} bytes")
    if bandwidth_bytes_per_cycle is not None and not bandwidth_bytes_per_cycle > 0:
        raise ConfigError(f"bandwidth: must be > 0, got {bandwidth_bytes_per_cycle}")
    sr, sc, t = spatial_temporal(dataflow, m, n, k)
    out = np.zeros(12)
    sram_words = (2**62 if sram_bytes is None else sram_bytes // word_bytes)
    bw = np.inf if bandwidth_bytes_per_cycle is None else float(bandwidth_bytes_per_cycle)
    _run_array(rows, cols, _DF[dataflow], sr, sc, t, word_bytes, sram_words, bw, out)
    compute = int(out[2])
    roles = ROLES[dataflow]
    return ArrayResult(folds=int(out[0]), cycles_per_fold=int(out[1]), compute_cycles=compute,
                       stall_cycles=float(out[3]),
                       utilization=m * n * k / (rows * cols * (compute + 1 + out[3])),
                       sram_reads=int(out[4]), sram_writes=int(out[5]),
                       next_level_words={roles[i]: int(out[6 + i]) for i in range(3)},
                       sram_words={roles[i]: int(out[9 + i]) for i in range(3)})
