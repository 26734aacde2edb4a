"""The one timing loop every benchmark script uses."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_time(fn: Callable[[], object], repeat: int, *, warmup: bool = True,
                before: Callable[[], object] | None = None) -> float:
    """Median wall time (s) of ``repeat`` calls of ``fn``. ``warmup`` runs it once untimed
    first (Numba compilation or cache load); ``before`` runs untimed before each timed call
    (e.g. clearing a memo so the search itself is timed)."""
    if warmup:
        fn()
    times = []
    for _ in range(repeat):
        if before is not None:
            before()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
