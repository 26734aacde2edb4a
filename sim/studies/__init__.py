"""Reproductions of published studies: each a pure function that computes the numbers and a
writer that regenerates its folder under ``results/`` (README, plot, JSON)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it to ``path``: a
    file that exists is complete, and a failure leaves nothing behind."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        tmp.chmod(0o644)  # mkstemp makes 0600; these are shared results
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_study(out_dir: Path, stem: str, data: dict[str, Any],
                plot: Callable[[dict[str, Any], Path], object],
                readme: Callable[[dict[str, Any]], str], *, sort_keys: bool = False
                ) -> list[Path]:
    """Regenerate a study folder: ``<stem>.json`` (every number), ``<stem>.png`` (drawn by
    ``plot(data, path)``) and ``README.md`` (``readme(data)``), each written atomically.
    Returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, sort_keys=sort_keys, allow_nan=False) + "\n"
    return [
        atomic_write(out_dir / f"{stem}.json", lambda tmp: tmp.write_text(text)),
        atomic_write(out_dir / f"{stem}.png", lambda tmp: plot(data, tmp)),
        atomic_write(out_dir / "README.md", lambda tmp: tmp.write_text(readme(data))),
    ]
