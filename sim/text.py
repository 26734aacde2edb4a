"""Plain-text formatting shared by the CLI, the studies and the wings' CLI plug-ins: SI
prefixes, durations, two-column and headline tables, JSON. Imports nothing of the simulator,
so a unit wing can use it without depending on `sim.cli`, the studies or the engine."""

from __future__ import annotations

import json
import math
from typing import Any


def si(value: float | None, unit: str, *, digits: int = 3) -> str:
    """Engineering notation with an SI prefix: ``si(3.352e12, 'B/s') == '3.35 TB/s'``,
    ``si(4.59e-5, 'J') == '45.9 uJ'``; zero prints bare, NaN and None as 'n/a'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    # Round to the digits shown before choosing the prefix, so 0.99996 J prints '1 J', not
    # '1e+03 mJ'.
    value = float(f"{value:.{digits}g}")
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"),
                           (1.0, ""), (1e-3, "m"), (1e-6, "u"), (1e-9, "n"), (1e-12, "p")):
        if abs(value) >= factor:
            return f"{value / factor:.{digits}g} {prefix}{unit}"
    if value == 0:
        return f"0 {unit}"
    return f"{value / 1e-15:.{digits}g} f{unit}"


def seconds(value: float | None) -> str:
    """A time in s, ms, us, ns or ps to 4 significant digits; NaN and None as 'n/a'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if value == 0:
        return "0 s"
    for factor, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns")):
        if abs(value) >= factor:
            return f"{value / factor:.4g} {unit}"
    return f"{value / 1e-12:.4g} ps"


def table(rows: list[tuple[str, str]], title: str | None = None) -> str:
    width = max(len(k) for k, _ in rows)
    lines = [title] if title else []
    lines += [f"  {k:<{width}}  {v}" for k, v in rows]
    return "\n".join(lines)


def text_table(header: list[str], rows: list[list[str]]) -> str:
    """Columns padded to their widest cell, a rule under the header: the short table of
    headline numbers ``pdsim reproduce`` prints (each study's ``headline(data)``)."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
             for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def to_json(value: Any) -> str:
    """Indented JSON with NaN written as null (JSON has no NaN); numpy scalars as numbers."""
    return json.dumps(_nan_to_none(value), indent=2, default=_scalar)


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _scalar(value: Any) -> Any:
    """What `json` cannot write: bytes as text, numpy scalars as Python numbers (NaN as null)."""
    if isinstance(value, bytes):
        return value.decode()
    if hasattr(value, "item"):
        value = value.item()
        return None if isinstance(value, float) and math.isnan(value) else value
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
