"""HDF5 traces of draft-and-verify and diffusion runs (``pdsim run --draft ... -o`` and
``pdsim run --dllm ... -o``): one row per step or iteration, with its phase, the tokens it
produced, its arithmetic intensity and the unit that ran it. Schema: docs/trace-format.md,
"Iteration traces". Written atomically like `sim.trace` (built in memory, then renamed into
place), without timestamps (the same run gives the same bytes).
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sim import __version__
from sim.errors import PdsimError
from sim.files import atomic_write
from sim.trace import _plain  # one attribute conversion for both trace formats

FORMAT = "pdsim-iterations"
FORMAT_VERSION = 1
MODES = ("draft", "dllm")
PHASES = ("prefill", "draft", "verify", "refresh", "diffusion")

STEP_DTYPE = np.dtype([
    ("step", "i8"), ("phase", "S12"), ("model", "S8"), ("batch", "i8"), ("new_tokens", "i8"),
    ("context", "i8"), ("start_s", "f8"), ("end_s", "f8"), ("time_s", "f8"),
    ("tokens_produced", "i8"), ("flops", "f8"), ("dram_bytes", "f8"), ("energy_j", "f8"),
    ("intensity_flop_per_dram_byte", "f8"), ("unit", "S12"),
])


@dataclass(frozen=True, slots=True)
class IterationTrace:
    """An iteration trace read back: ``mode`` (``draft`` or ``dllm``), metadata and summary
    as dicts, the step table as a numpy structured array (`STEP_DTYPE`)."""

    mode: str
    meta: dict[str, Any]
    summary: dict[str, Any]
    steps: np.ndarray


def step_table(steps: dict[str, list], batch: int) -> np.ndarray:
    """The ``"steps"`` columns of `sim.speculative` or `sim.dllm` as a `STEP_DTYPE` table;
    the steps run one after the other, so each starts where the one before ended."""
    n = len(steps["phase"])
    table = np.zeros(n, dtype=STEP_DTYPE)
    table["step"] = np.arange(n)
    for name in ("phase", "unit"):
        values = [str(v).encode() for v in steps[name]]
        width = STEP_DTYPE[name].itemsize
        if any(len(v) > width for v in values):
            raise ValueError(f"iteration trace column {name!r} holds {width} bytes")
        table[name] = values
    table["model"] = [str(v).encode() for v in steps.get("model", ["target"] * n)]
    table["batch"] = batch
    for name in ("new_tokens", "context", "tokens_produced", "time_s", "flops", "dram_bytes",
                 "energy_j", "intensity_flop_per_dram_byte"):
        table[name] = np.asarray(steps[name], dtype=float)
    end = np.cumsum(table["time_s"])
    table["end_s"] = end
    table["start_s"] = end - table["time_s"]
    return table


def write_iteration_trace(path: str | os.PathLike, mode: str, summary: dict[str, Any],
                          steps: dict[str, list], meta: dict[str, Any], batch: int) -> Path:
    """Write a ``mode`` run (`MODES`) to ``path``: ``meta`` (strings and numbers, as
    `sim.trace.write_trace`'s), ``summary`` (numbers, or strings such as the dLLM mode) and
    ``steps`` (the run's ``"steps"`` columns)."""
    import h5py  # imported on use, as in sim.trace

    if mode not in MODES:
        raise ValueError(f"write_iteration_trace: mode must be one of {MODES}, got {mode!r}")
    image = io.BytesIO()
    with h5py.File(image, "w", track_order=True) as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["pdsim_version"] = __version__
        f.attrs["mode"] = mode
        for name, values in (("meta", meta), ("summary", summary)):
            g = f.create_group(name, track_order=True)
            for key, value in values.items():
                g.attrs[key] = math.nan if value is None else value
        f.create_dataset("steps", data=step_table(steps, batch), track_times=False,
                         fletcher32=True)
    return atomic_write(path, lambda tmp: tmp.write_bytes(image.getvalue()))


def is_iteration_trace(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an HDF5 file with this format's ``format`` attribute (False for
    anything else, a damaged file included: `sim.trace.read_trace` then says what it is)."""
    import h5py

    try:
        if not Path(path).is_file() or not h5py.is_hdf5(path):
            return False
        with h5py.File(path, "r") as f:
            return _text(f.attrs.get("format")) == FORMAT
    except (OSError, KeyError, ValueError, TypeError, RuntimeError, UnicodeDecodeError,
            AttributeError, IndexError):  # what h5py raises on damage (as in sim.trace)
        return False


def read_iteration_trace(path: str | os.PathLike) -> IterationTrace:
    """Read an iteration trace; `PdsimError` (one line) if it is missing, damaged, newer
    than this reader, or has other columns than `STEP_DTYPE`."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if _text(f.attrs.get("format")) != FORMAT or "steps" not in f:
                raise PdsimError(f"{path}: not a pdsim iteration trace")
            version = int(f.attrs["format_version"])
            if version > FORMAT_VERSION:
                raise PdsimError(f"{path}: iteration trace format {version} is newer than "
                                 f"this pdsim reads ({FORMAT_VERSION}); upgrade pdsim")
            mode = _text(f.attrs["mode"])
            meta = {k: _plain(v) for k, v in f["meta"].attrs.items()}
            summary = {k: _plain(v) for k, v in f["summary"].attrs.items()}
            steps = f["steps"][()]
    except PdsimError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise PdsimError(f"{path}: not a pdsim iteration trace: {first}") from None
    if steps.dtype != STEP_DTYPE or mode not in MODES or not len(steps):
        raise PdsimError(f"{path}: not a pdsim iteration trace: its step table or mode is "
                         f"not format {FORMAT_VERSION}'s")
    return IterationTrace(mode=mode, meta=meta, summary=summary, steps=steps)


def phase_rows(trace: IterationTrace) -> list[tuple[str, int, float, int, float, str]]:
    """Per phase, in `PHASES` order: (phase, steps, seconds, tokens produced per sequence,
    FLOPs over DRAM bytes of the phase's steps together, the unit that ran most of them)."""
    s = trace.steps
    out = []
    for phase in PHASES:
        sel = s["phase"] == phase.encode()
        if not sel.any():
            continue
        dram = float(s["dram_bytes"][sel].sum())
        units = [u.decode() for u in s["unit"][sel]]
        out.append((phase, int(sel.sum()), float(s["time_s"][sel].sum()),
                    int(s["tokens_produced"][sel].sum()),
                    float(s["flops"][sel].sum()) / dram if dram else math.nan,
                    max(sorted(set(units)), key=units.count)))
    return out


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


