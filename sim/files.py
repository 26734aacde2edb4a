"""Writing output files so that a file that exists is complete: the one place pdsim does it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path`` (hidden, same suffix, so tools
    that infer the format from it still work), then rename it to ``path``. A failure leaves
    nothing behind and keeps any earlier ``path``. Creates the parent folder. Returns
    ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix or ".tmp",
                                dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        tmp.chmod(0o644)  # mkstemp makes 0600; outputs are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_text(path: str | os.PathLike, text: str) -> Path:
    """`atomic_write` of a text file."""
    return atomic_write(path, lambda tmp: tmp.write_text(text))
