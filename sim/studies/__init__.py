"""Reproductions of published studies: each a pure function that computes the numbers and a
writer that regenerates its folder under ``results/`` (README, plot, JSON)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sim.files import atomic_text, atomic_write
from sim.text import text_table  # noqa: F401 (the studies' headline tables, kept importable here)


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
