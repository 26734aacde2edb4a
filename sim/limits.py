"""What the simulator can represent, in one place: the bounds every size and count is checked
against before anything is simulated (docs/limits.md).

Counts (tokens, FLOPs, bytes, cycles) are int64 in the Numba kernels and in the HDF5 trace, so
every quantity derived from user input must stay below ``INT64_MAX``; a value that would not is
refused with the flag or field that caused it and the largest value allowed, never wrapped
around. Numbers in hardware files are read as float64 (YAML writes ``80e9``), which holds
integers exactly only up to ``EXACT_INT_MAX``. Work that grows with a count, not just its cost,
is bounded too (``MAX_FOLDS``, ``MAX_DECODE_STEPS``), so every accepted command finishes.
"""

from __future__ import annotations

import argparse
import math

from sim.errors import ConfigError

#: The largest int64: bound of every count pdsim computes or stores.
INT64_MAX = 2**63 - 1
#: The largest integer float64 holds exactly: bound of integer fields in hardware files.
EXACT_INT_MAX = 2**53
#: Magnitude bounds of the real-valued fields of hardware files (rates, energies, times):
#: wide enough for any device (zeptojoules to kilojoules, GHz clocks to hours), narrow enough
#: that a product of a few of them and of int64 counts stays finite in float64 (a subnormal
#: bandwidth divided by, or a 1e300 pJ/bit multiplied by, gave inf or a ZeroDivisionError).
FLOAT_MIN, FLOAT_MAX = 1e-24, 1e24
#: Folds of a one-array GEMM (`sim.units.systolic.array`), simulated one by one (~0.1 s).
MAX_FOLDS = 2**24
#: Decode steps of one run (``--gen`` - 1): every step is a row of the trace and of memory.
MAX_DECODE_STEPS = 2**20


def int_flag(low: int, high: int = INT64_MAX):
    """An argparse ``type`` for an integer flag in ``[low, high]``: the error names the range
    (argparse adds the flag)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an integer in [{low}, {high}], got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {_short(value)}")
        if value > high:
            raise argparse.ArgumentTypeError(f"must be <= {high}"
                                             + (" (2**63 - 1)" if high == INT64_MAX else "")
                                             + f", got {_short(value)}")
        return value
    return parse


def check_below_int64(what: str, value: int, flags: str) -> None:
    """Refuse a derived count ``value`` (``what``, e.g. "FLOPs") at or above int64's range,
    naming the ``flags`` that set it."""
    if value > INT64_MAX:
        raise ConfigError(f"{flags}: {what} would be {value:.3g}, above the {INT64_MAX:.3g} "
                          f"(2**63 - 1) pdsim can count; use smaller sizes")


#: Widest operand word ``pdsim gemm --word-bytes`` takes: 64 bytes (a 512-bit word) is far
#: beyond any format pdsim models (fp64 is 8) and keeps byte counts far from int64's end.
MAX_WORD_BYTES = 64


def check_gemm_size(m: int, n: int, k: int, word_bytes: int) -> None:
    """``C[m,n] = A[m,k] @ B[k,n]``: its FLOPs (2mnk), every operand's bytes and all three
    operands' bytes together must be int64 counts."""
    check_below_int64("FLOPs (2 x m x n x k)", 2 * m * n * k, "--m/--n/--k")
    for name, words in (("A (m x k)", m * k), ("B (k x n)", k * n), ("C (m x n)", m * n)):
        check_below_int64(f"the bytes of {name}", words * word_bytes, "--m/--n/--k")
    check_below_int64("the bytes of A, B and C together", (m * k + k * n + m * n) * word_bytes,
                      "--m/--n/--k")


def check_folds(folds: int, flags: str) -> None:
    """Refuse a one-array GEMM of more than `MAX_FOLDS` folds (simulated one by one)."""
    if folds > MAX_FOLDS:
        raise ConfigError(f"{flags}: {folds:.3g} folds, above the {MAX_FOLDS:,} one array "
                          f"simulates (docs/limits.md); use a larger array or --hw")


def check_exact_int(value: int | float, path: str) -> None:
    """An integer field of a hardware file must be at most `EXACT_INT_MAX` in size."""
    if abs(value) > EXACT_INT_MAX:
        raise ConfigError(f"{path}: must be at most 2**53 ({EXACT_INT_MAX}) in size, "
                          f"got {_short(value)}")


def check_float_range(value: float, path: str) -> None:
    """A real-valued field of a hardware file must be 0 or between `FLOAT_MIN` and
    `FLOAT_MAX` in size (its sign is the field's own check)."""
    if value != 0 and not FLOAT_MIN <= abs(value) <= FLOAT_MAX:
        raise ConfigError(f"{path}: must be 0 or between {FLOAT_MIN:g} and {FLOAT_MAX:g} in "
                          f"size, got {value!r}")


def _short(value: int | float) -> str:
    """A number for an error line: huge ones in e-notation, so the line stays short."""
    if isinstance(value, float) or not math.isfinite(value) or abs(value) < 10**15:
        return f"{value!r}"
    return f"{value:.3g}"
