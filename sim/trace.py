"""HDF5 traces: write a run atomically, read it back. Schema: docs/trace-format.md.

The file is written to a temporary file in the destination folder and renamed over the
destination only when complete, so a crash or a bad input never leaves a partial trace.
Datasets are written without timestamps, so the same run gives the same bytes.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from sim import __version__
from sim.files import atomic_write
from sim.engine import STEP_FIELDS, RunResult
from sim.errors import PdsimError
from sim.text import to_json  # noqa: F401 (the CLI's JSON, importable from here as before)

FORMAT = "pdsim-trace"
FORMAT_VERSION = 1
MAX_DIMS = 6

STEP_DTYPE = np.dtype([
    ("step", "i8"), ("phase", "S8"), ("batch", "i8"), ("new_tokens", "i8"), ("context", "i8"),
    ("start_s", "f8"), ("end_s", "f8"), ("time_s", "f8"),
    *[(f, "i8") for f in STEP_FIELDS],
    ("energy_j", "f8"), ("dram_bytes", "f8"), ("simulated", "?"),
])

OP_DTYPE = np.dtype([
    ("step", "i8"), ("phase", "S8"), ("segment", "S8"), ("op", "S24"), ("kind", "S12"),
    ("unit", "S8"), ("layer", "i8"), ("repeat", "i8"), ("dims", "i8", (MAX_DIMS,)),
    ("dtype", "S8"), *[(f, "i8") for f in STEP_FIELDS],
    ("start_s", "f8"), ("end_s", "f8"), ("period_s", "f8"), ("time_s", "f8"),
    ("compute_s", "f8"), ("memory_s", "f8"), ("comm_s", "f8"), ("bound", "S8"),
    ("energy_j", "f8"), ("dram_bytes", "f8"), ("cycles", "f8"), ("stall_cycles", "f8"),
    ("utilization", "f8"),
])


#: Summary entries every trace has (those `pdsim show` prints), checked on reading.
SUMMARY_KEYS = ("ttft_s", "tbt_mean_s", "tbt_p50_s", "tbt_p99_s", "e2e_s",
                "output_tokens_per_s", "prefill_tokens_per_s", "energy_per_output_token_j",
                "weight_bytes_per_chip", "kv_cache_bytes_per_chip", "memory_capacity_bytes",
                "decode_steps", "decode_steps_simulated",
                *[f"{phase}_{k}" for phase in ("prefill", "decode") for k in (
                    "flops", "bytes", "weight_bytes", "act_bytes", "kv_bytes", "dram_bytes",
                    "intensity_flop_per_byte", "memory_bound_fraction", "energy_j")])


@dataclass(frozen=True, slots=True)
class Trace:
    """A trace read back: metadata and summary as dicts, tables as numpy structured arrays."""

    meta: dict[str, Any]
    summary: dict[str, Any]
    steps: np.ndarray
    ops: np.ndarray


def step_table(result: RunResult) -> np.ndarray:
    rows = [(s.index, s.phase.value, result.workload.batch, s.new_tokens, s.context,
             s.start_s, s.start_s + s.time_s, s.time_s, *[s.totals[f] for f in STEP_FIELDS],
             s.energy_j, s.dram_bytes, s.schedule is not None) for s in result.steps]
    return _table(rows, STEP_DTYPE)


def op_table(result: RunResult) -> np.ndarray:
    rows = []
    for s in result.steps:
        if s.schedule is None:
            continue
        for so in s.schedule.ops:
            op, c, seg = so.op, so.cost, so.segment
            dims = (op.dims + (0,) * MAX_DIMS)[:MAX_DIMS]
            start = s.start_s + so.start_s
            rows.append((s.index, s.phase.value, seg.name, op.name, op.kind.value, op.unit,
                         seg.layer, seg.repeat, dims, op.dtype,
                         *[getattr(op, f) for f in STEP_FIELDS],
                         start, start + c.time_s, so.period_s, c.time_s, c.compute_s,
                         c.memory_s, c.comm_s, c.bound, c.energy_j, c.dram_bytes, c.cycles,
                         c.stall_cycles, c.utilization))
    return _table(rows, OP_DTYPE)


def _table(rows: list[tuple], dtype: np.dtype) -> np.ndarray:
    """``rows`` as a structured array; a text longer than its fixed-width column is a bug in
    the writer's schema (numpy would cut it silently), so it raises instead."""
    for i, (name, (field, _)) in enumerate(dtype.fields.items()):
        if field.kind != "S":
            continue
        width = field.itemsize
        for row in rows:
            if len(str(row[i]).encode()) > width:
                raise ValueError(f"trace column {name!r} holds {width} bytes; "
                                 f"{row[i]!r} is longer (widen it in sim/trace.py)")
    return np.array(rows, dtype=dtype)


def write_trace(path: str | os.PathLike, result: RunResult, meta: dict[str, Any]) -> None:
    """Write ``result`` with run metadata ``meta`` (strings and numbers) to ``path``."""
    # Built in memory, then written in one go: HDF5 needs a real path to write a file, and
    # the anonymous temporary file of `atomic_write` has none.
    image = io.BytesIO()
    with h5py.File(image, "w", track_order=True) as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["pdsim_version"] = __version__
        g = f.create_group("meta", track_order=True)
        for key, value in meta.items():
            g.attrs[key] = value
        g = f.create_group("summary", track_order=True)
        for key, value in result.summary.items():
            g.attrs[key] = value
        f.create_dataset("steps", data=step_table(result), track_times=False)
        f.create_dataset("ops", data=op_table(result), track_times=False,
                         compression="gzip", shuffle=True)

    atomic_write(path, lambda tmp: tmp.write_bytes(image.getvalue()))


def read_trace(path: str | os.PathLike) -> Trace:
    """Read a pdsim trace; `PdsimError` if ``path`` is missing, damaged or not a pdsim
    trace (whatever h5py raises on a truncated or bit-flipped file becomes one line)."""
    path = Path(path)
    if not path.is_file():
        raise PdsimError(f"{path}: {'not a regular file' if path.exists() else 'no such file'}")
    try:
        if not h5py.is_hdf5(path):
            raise PdsimError(f"{path}: not a pdsim trace: not an HDF5 file (expected a trace "
                             f"written by 'pdsim run')")
        with h5py.File(path, "r") as f:
            return _read(f, path)
    except PdsimError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError, UnicodeDecodeError,
            AttributeError, IndexError) as exc:
        # h5py reports damage with whichever of these its C layer maps the HDF5 error to.
        raise PdsimError(f"{path}: not a pdsim trace: {_first_line(exc)}") from None


def _read(f: h5py.File, path: Path) -> Trace:
    if f.attrs.get("format") not in (FORMAT, FORMAT.encode()) \
            or not {"meta", "summary", "steps", "ops"} <= set(f):
        raise PdsimError(f"{path}: not a pdsim trace: an HDF5 file without pdsim's "
                         f"'format' attribute and meta, summary, steps, ops")
    version = int(f.attrs["format_version"])
    if version > FORMAT_VERSION:
        raise PdsimError(f"{path}: trace format {version} is newer than this pdsim "
                         f"reads ({FORMAT_VERSION}); upgrade pdsim")
    meta = {k: _plain(v) for k, v in f["meta"].attrs.items()}
    meta["pdsim_version"] = _plain(f.attrs["pdsim_version"])
    summary = {k: _plain(v) for k, v in f["summary"].attrs.items()}
    steps, ops = f["steps"][()], f["ops"][()]
    for name, table, dtype in (("steps", steps, STEP_DTYPE), ("ops", ops, OP_DTYPE)):
        if table.dtype != dtype:
            raise PdsimError(f"{path}: not a pdsim trace: table {name!r} has other columns "
                             f"than format {FORMAT_VERSION}'s")
    missing = sorted({"command_line"} - set(meta)) + [
        k for k in SUMMARY_KEYS  # None: a NaN, as `_plain` reads it
        if k not in summary or not isinstance(summary[k], (int, float, type(None)))]
    if missing or not len(steps):
        raise PdsimError(f"{path}: not a pdsim trace: {missing[0] if missing else 'steps'} "
                         f"missing or not a number")
    return Trace(meta=meta, summary=summary, steps=steps, ops=ops)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _plain(value: Any) -> Any:
    """HDF5 attribute values as plain Python (for JSON): numpy scalars to int/float/bool."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
