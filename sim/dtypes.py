"""Numeric formats that pdsim knows, by storage width.

Byte counts are computed as integers from bit widths (``ceil(elements * bits / 8)``) so that
sub-byte formats such as INT4 are accounted exactly.
"""

from __future__ import annotations

from sim.errors import ConfigError

#: Storage bits per element. ``fp8`` is OCP FP8 E4M3 (FireQ's activation format); ``tf32`` is
#: stored as 32-bit words.
DTYPE_BITS: dict[str, int] = {
    "fp32": 32,
    "tf32": 32,
    "bf16": 16,
    "fp16": 16,
    "fp8": 8,
    "int8": 8,
    "int4": 4,
}


def check_dtype(dtype: str, field: str) -> str:
    """Return ``dtype`` if pdsim knows it, else raise `ConfigError` naming ``field``."""
    if dtype not in DTYPE_BITS:
        allowed = ", ".join(DTYPE_BITS)
        raise ConfigError(f"{field}: unknown dtype {dtype!r} (allowed: {allowed})")
    return dtype


def nbytes(elements: int, dtype: str) -> int:
    """Bytes that ``elements`` values of ``dtype`` occupy, rounded up to whole bytes."""
    return -(-elements * DTYPE_BITS[dtype] // 8)
