"""Reproductions of published studies: each a pure function that computes the numbers and a
writer that regenerates its folder under ``results/`` (README, plot, JSON)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sim.files import atomic_text, atomic_write


def write_study(out_dir: Path, stem: str, data: dict[str, Any],
                plot: Callable[[dict[str, Any], Path], object],
                readme: Callable[[dict[str, Any]], str], *, sort_keys: bool = False
                ) -> list[Path]:
    """Regenerate a study folder: ``<stem>.json`` (every number), ``<stem>.png`` (drawn by
    ``plot(data, path)``) and ``README.md`` (``readme(data)``), each written atomically.
    Returns the paths."""
    out_dir = Path(out_dir)
    text = json.dumps(data, indent=2, sort_keys=sort_keys, allow_nan=False) + "\n"
    return [
        atomic_text(out_dir / f"{stem}.json", text),
        atomic_write(out_dir / f"{stem}.png", lambda tmp: plot(data, tmp)),
        atomic_text(out_dir / "README.md", readme(data)),
    ]


def text_table(header: list[str], rows: list[list[str]]) -> str:
    """Columns padded to their widest cell, a rule under the header: the short table of
    headline numbers ``pdsim reproduce`` prints (each study's ``headline(data)``)."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
             for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
