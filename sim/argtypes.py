"""Argument types shared by ``pdsim`` and the wings' CLI plug-ins (argparse ``type=``
callables). Imports nothing of the CLI, so a unit wing's plug-in can use them without
depending on `sim.cli`."""

from __future__ import annotations

import argparse

from sim.dtypes import DTYPE_BITS
from sim.limits import INT64_MAX, int_flag


def int_at_least(low: int, high: int = INT64_MAX):
    """An integer flag in ``[low, high]`` (at most int64: `sim.limits`)."""
    return int_flag(low, high)


def dtype(text: str) -> str:
    """A dtype name pdsim knows (`sim.dtypes.DTYPE_BITS`)."""
    if text not in DTYPE_BITS:
        raise argparse.ArgumentTypeError(f"unknown dtype {text!r} "
                                         f"(allowed: {', '.join(DTYPE_BITS)})")
    return text
