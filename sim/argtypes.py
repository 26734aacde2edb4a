"""Argument types shared by ``pdsim`` and the wings' CLI plug-ins (argparse ``type=``
callables). Imports nothing of the CLI, so a unit wing's plug-in can use them without
depending on `sim.cli`."""

from __future__ import annotations

import argparse

from sim.dtypes import DTYPE_BITS


def int_at_least(low: int):
    """A parser of integers ``>= low``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value
    return parse


def dtype(text: str) -> str:
    """A dtype name pdsim knows (`sim.dtypes.DTYPE_BITS`)."""
    if text not in DTYPE_BITS:
        raise argparse.ArgumentTypeError(f"unknown dtype {text!r} "
                                         f"(allowed: {', '.join(DTYPE_BITS)})")
    return text
