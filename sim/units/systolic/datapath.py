"""Reference model of the RTL prefill datapath (`rtl/`): results and cycles of every command.

The datapath is a ``rows x cols`` systolic array, output-stationary (``os``) or
weight-stationary (``ws``), behind a tile controller with on-chip A, B and C buffers. It
takes four commands over a stream interface
(`rtl.controller`): ``LOAD_A`` (an ``m x k`` activation tile, row-major, one element a beat),
``LOAD_B`` (a ``k x n`` weight tile, row-major), ``COMPUTE`` (``C = A @ B`` over all folds) and
``DRAIN_C`` (the ``m x n`` result, row-major, one element a beat).

This module is the one source of truth for what the RTL must do: `DatapathModel.gemm` gives the
bit-exact result and `DatapathModel.command_cycles` the cycle count of each command, from the
configuration alone. The compute count reuses the simulator's fold model
(`sim.units.systolic.array.fold_cycles`, SCALE-Sim's convention): ``os`` has
``ceil(m/rows) ceil(n/cols)``
folds of ``k + rows + cols - 2`` cycles, ``ws`` has ``ceil(k/rows) ceil(n/cols)`` folds of
``m + 2 rows + cols - 2`` cycles (``rows`` of them load the weights), plus a fixed pipeline
overhead of the controller (below). The cocotb testbenches and the
Amaranth unit tests check the RTL against this object, bit for bit and cycle for cycle.

Cycle counts. A command is accepted on the clock edge where ``cmd.valid & cmd.ready``; its count
is the number of following edges at which the controller is busy (``cmd.ready`` low):

=========  =====================================================================
LOAD_A     ``m k`` beats, one per cycle, plus every cycle the input stream is empty
LOAD_B     ``k n`` beats, likewise
COMPUTE    ``folds x per_fold + 2``: the fold model's ``folds x per_fold`` (SCALE-Sim's
           count plus one), one cycle of buffer read latency and one cycle for the
           last result to be written into the C buffer
DRAIN_C    ``m n + 1`` (one cycle of buffer read latency) plus every cycle the
           output stream holds a beat that the consumer does not take
=========  =====================================================================

Operand modes:

* ``int8``: signed 8-bit A and B, 32-bit signed accumulators. ``|a b| <= 2^14`` so a sum of
  ``k <= 131071`` products fits (``131071 x 2^14 < 2^31``).
* ``w4fp8``: A is FP8 E4M3 (OCP "E4M3FN": bias 7, no infinities, ``S.1111.111`` is NaN), B is
  signed INT4 (-8..7), as in FireQ. Each FP8 value is exactly ``mant x 2^(e' - 10)`` with
  ``mant < 16`` and ``e' = max(e, 1) <= 15``, so ``2^9 x`` it is an integer, at most
  ``448 x 2^9 = 229376`` in magnitude (448 is the largest finite value). The PE adds
  ``2^9 a b`` exactly into a 40-bit signed fixed-point accumulator (9 fraction bits):
  ``|2^9 a b| <= 8 x 229376 = 1835008 < 2^21``, so ``k <= 299593`` products fit
  (``299593 x 1835008 < 2^39``). The result is the
  accumulator, i.e. ``C x 2^9`` as an integer: bit-exact, with no rounding anywhere.
  **NaN policy**: the datapath has no NaN; an FP8 NaN code (0x7F, 0xFF) is decoded as zero by
  the PE and by this model. Negative zero (0x80) is zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.errors import ConfigError
from sim.units.systolic.array import fold_cycles, spatial_temporal

#: Dataflows the RTL implements (a subset of `sim.hardware.DATAFLOWS`), with the code that
#: `sim.units.systolic.array.fold_cycles` takes.
DATAFLOWS = {"os": 0, "ws": 1}

#: Operand modes: A bits, B bits, accumulator bits, fraction bits of the accumulator.
MODES = {"int8": (8, 8, 32, 0), "w4fp8": (8, 4, 40, 9)}

#: Largest |product| (in accumulator units) of each mode; the K bound follows from it.
_MAX_PRODUCT = {"int8": 128 * 128, "w4fp8": 8 * 448 * 2**9}

#: Command opcodes of the tile controller (the RTL uses the same numbers).
OPS = {"LOAD_A": 0, "LOAD_B": 1, "COMPUTE": 2, "DRAIN_C": 3}


def k_bound(mode: str) -> int:
    """Largest K for which no sum of K products can overflow the accumulator of ``mode``."""
    acc_bits = MODES[mode][2]
    return (2 ** (acc_bits - 1) - 1) // _MAX_PRODUCT[mode]


@dataclass(frozen=True, slots=True)
class DatapathConfig:
    """One datapath instance: the array shape, the operand mode and the buffer capacities.

    ``max_m``, ``max_n``, ``max_k`` size the A (``max_m x max_k``), B (``max_k x max_n``) and C
    (``max_m x max_n``) buffers; a command may use any ``m <= max_m`` etc.
    """

    rows: int
    cols: int
    mode: str = "int8"
    max_m: int = 16
    max_n: int = 16
    max_k: int = 16
    dataflow: str = "os"

    def __post_init__(self) -> None:
        for name in ("rows", "cols", "max_m", "max_n", "max_k"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name}: must be an integer >= 1, got {value!r}")
        if self.rows > 64 or self.cols > 64:
            raise ConfigError(f"rows, cols: at most 64 each, got {self.rows} x {self.cols}")
        if self.mode not in MODES:
            raise ConfigError(f"mode: unknown operand mode {self.mode!r} "
                              f"(allowed: {', '.join(MODES)})")
        if self.dataflow not in DATAFLOWS:
            raise ConfigError(f"dataflow: unknown dataflow {self.dataflow!r} for the RTL "
                              f"(allowed: {', '.join(DATAFLOWS)})")
        bound = k_bound(self.mode)
        if self.max_k > bound:
            raise ConfigError(f"max_k: {self.max_k} exceeds the {self.mode} accumulator bound "
                              f"(K <= {bound} for {MODES[self.mode][2]}-bit accumulators)")
        for name in ("max_m", "max_n"):
            if getattr(self, name) > 65535:
                raise ConfigError(f"{name}: at most 65535, got {getattr(self, name)}")

    @property
    def a_bits(self) -> int:
        return MODES[self.mode][0]

    @property
    def b_bits(self) -> int:
        return MODES[self.mode][1]

    @property
    def acc_bits(self) -> int:
        return MODES[self.mode][2]

    @property
    def frac_bits(self) -> int:
        return MODES[self.mode][3]


@dataclass(frozen=True, slots=True)
class Command:
    """One controller command; ``m``, ``n``, ``k`` are the tile sizes it uses."""

    op: str
    m: int = 1
    n: int = 1
    k: int = 1


def decode_fp8_e4m3(codes: np.ndarray) -> np.ndarray:
    """FP8 E4M3 codes (uint8) -> ``2^9 x`` their value as int64, NaN codes as 0 (see module)."""
    codes = np.asarray(codes, dtype=np.int64) & 0xFF
    sign = codes >> 7
    exp = (codes >> 3) & 0xF
    man = codes & 0x7
    mant = np.where(exp > 0, man + 8, man)
    fixed = mant << (np.maximum(exp, 1) - 1)
    fixed = np.where((exp == 15) & (man == 7), 0, fixed)
    return np.where(sign == 1, -fixed, fixed)


def sign_extend(values: np.ndarray, bits: int) -> np.ndarray:
    """Low ``bits`` bits of each value as a two's-complement signed integer (int64)."""
    values = np.asarray(values, dtype=np.int64) & ((1 << bits) - 1)
    return np.where(values >= 1 << (bits - 1), values - (1 << bits), values)


class DatapathModel:
    """Predicts the results and the cycle count of every command of one `DatapathConfig`."""

    def __init__(self, config: DatapathConfig) -> None:
        self.config = config

    def check_shape(self, m: int, n: int, k: int) -> None:
        """Raise `ConfigError` unless an ``m x k`` by ``k x n`` GEMM fits the buffers."""
        cfg = self.config
        for name, value, top in (("m", m, cfg.max_m), ("n", n, cfg.max_n), ("k", k, cfg.max_k)):
            if not 1 <= value <= top:
                raise ConfigError(f"{name}: must be in 1..{top} for this datapath, got {value}")

    def folds(self, m: int, n: int, k: int) -> tuple[int, int]:
        """``(folds, cycles per fold)`` of the compute command
        (`sim.units.systolic.array.fold_cycles`)."""
        df = self.config.dataflow
        sr, sc, t = spatial_temporal(df, m, n, k)
        folds, per_fold = fold_cycles(self.config.rows, self.config.cols, DATAFLOWS[df],
                                      sr, sc, t)
        return int(folds), int(per_fold)

    def command_cycles(self, cmd: Command, stall_cycles: int = 0) -> int:
        """Busy cycles of ``cmd`` (see the module table); ``stall_cycles`` are the cycles the
        stream partner held the controller up (empty input or a refused output beat)."""
        self.check_shape(cmd.m, cmd.n, cmd.k)
        if cmd.op == "LOAD_A":
            return cmd.m * cmd.k + stall_cycles
        if cmd.op == "LOAD_B":
            return cmd.k * cmd.n + stall_cycles
        if cmd.op == "COMPUTE":
            if stall_cycles:
                raise ValueError("COMPUTE has no stream partner, so it cannot stall")
            folds, per_fold = self.folds(cmd.m, cmd.n, cmd.k)
            return folds * per_fold + 2
        if cmd.op == "DRAIN_C":
            return cmd.m * cmd.n + 1 + stall_cycles
        raise ConfigError(f"op: unknown command {cmd.op!r} (allowed: {', '.join(OPS)})")

    def program(self, m: int, n: int, k: int) -> list[Command]:
        """The four commands of one GEMM: load A, load B, compute, drain C."""
        self.check_shape(m, n, k)
        return [Command("LOAD_A", m, n, k), Command("LOAD_B", m, n, k),
                Command("COMPUTE", m, n, k), Command("DRAIN_C", m, n, k)]

    def gemm_cycles(self, m: int, n: int, k: int) -> int:
        """Busy cycles of the whole program of one GEMM with streams at full rate."""
        return sum(self.command_cycles(c) for c in self.program(m, n, k))

    def operands(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw operand codes (as the streams carry them) -> accumulator-unit integers."""
        if self.config.mode == "int8":
            return sign_extend(a, 8), sign_extend(b, 8)
        return decode_fp8_e4m3(a), sign_extend(b, 4)

    def gemm(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Bit-exact result (int64, accumulator units) of ``A (m x k) @ B (k x n)`` given as raw
        codes: int8 values, or FP8 codes (uint8) and INT4 values for ``w4fp8``."""
        a = np.asarray(a)
        b = np.asarray(b)
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
            raise ConfigError(f"operands: need A (m x k) and B (k x n), got {a.shape} and "
                              f"{b.shape}")
        self.check_shape(a.shape[0], b.shape[1], a.shape[1])
        av, bv = self.operands(a, b)
        # every partial sum stays below 2^(acc_bits - 1) by the K bound, so int64 is exact
        return av @ bv
