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
from typing import TYPE_CHECKING, Any

import numpy as np

from sim import __version__
from sim.files import atomic_write
from sim.engine import STEP_FIELDS, RunResult, main_unit, paused_gc
from sim.errors import PdsimError
from sim.text import to_json  # noqa: F401 (the CLI's JSON, importable from here as before)

if TYPE_CHECKING:  # annotation only: h5py is imported on use
    import h5py

FORMAT = "pdsim-trace"
FORMAT_VERSION = 2
MAX_DIMS = 6

#: Format 1's step table; format 2 appends `STEP_EXTRA` (a format-1 trace is read with them
#: filled in: one token a step, the intensity from its columns, no unit).
STEP_DTYPE_V1 = np.dtype([
    ("step", "i8"), ("phase", "S8"), ("batch", "i8"), ("new_tokens", "i8"), ("context", "i8"),
    ("start_s", "f8"), ("end_s", "f8"), ("time_s", "f8"),
    *[(f, "i8") for f in STEP_FIELDS],
    ("energy_j", "f8"), ("dram_bytes", "f8"), ("simulated", "?"),
])
STEP_EXTRA = [("tokens_produced", "i8"), ("intensity_flop_per_dram_byte", "f8"),
              ("unit", "S12")]
STEP_DTYPE = np.dtype([*STEP_DTYPE_V1.descr, *STEP_EXTRA])

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

#: Summary keys written together (by later versions of the writer): a trace has all of a group
#: or none of it, since `pdsim show` reads them together.
SUMMARY_GROUPS = (
    ("total_energy_j_per_system", "dynamic_energy_j_per_system", "static_energy_j_per_system",
     "total_energy_per_output_token_j_per_system", "static_power_w_per_chip",
     "tensor_parallel"),
    ("cim_weights_resident", "cim_crossbars_needed", "cim_crossbars", "cim_load_program_s",
     "cim_load_program_j"),
)


@dataclass(frozen=True, slots=True)
class Trace:
    """A trace read back: metadata and summary as dicts, tables as numpy structured arrays."""

    meta: dict[str, Any]
    summary: dict[str, Any]
    steps: np.ndarray
    ops: np.ndarray


def step_table(result: RunResult) -> np.ndarray:
    rows = []
    unit = ""
    for s in result.steps:
        if s.schedule is not None:
            unit = main_unit(s.schedule)
        # an interpolated step keeps the unit of the simulated step before it: the
        # placement of a phase does not depend on the context
        intensity = s.totals["flops"] / s.dram_bytes if s.dram_bytes else math.nan
        rows.append((s.index, s.phase.value, result.workload.batch, s.new_tokens, s.context,
                     s.start_s, s.start_s + s.time_s, s.time_s,
                     *[s.totals[f] for f in STEP_FIELDS], s.energy_j, s.dram_bytes,
                     s.schedule is not None, s.tokens_produced, intensity, unit))
    return _table(rows, STEP_DTYPE)


def _upgrade_steps(steps: np.ndarray) -> np.ndarray:
    """A format-1 step table with format 2's columns (`STEP_EXTRA`)."""
    out = np.zeros(steps.shape, dtype=STEP_DTYPE)
    for name in STEP_DTYPE_V1.names:
        out[name] = steps[name]
    out["tokens_produced"] = 1
    with np.errstate(divide="ignore", invalid="ignore"):
        out["intensity_flop_per_dram_byte"] = np.where(
            steps["dram_bytes"] > 0, steps["flops"] / steps["dram_bytes"], np.nan)
    return out


def op_table(result: RunResult) -> np.ndarray:
    """One row per op of every simulated step, built into a preallocated array: the columns
    fixed by an op, its cost and its segment come from one template row per distinct triple
    (consecutive decode steps share most of them), the per-step columns (step, phase, times)
    are filled column by column."""
    with paused_gc():  # many small allocations while the whole run is alive
        return _op_table(result)


def _op_table(result: RunResult) -> np.ndarray:
    scheds = [s for s in result.steps if s.schedule is not None]
    counts = np.array([len(s.schedule.ops) for s in scheds], dtype=np.int64)
    templates: dict[tuple[int, int, str, int, int], int] = {}
    static: list[tuple] = []
    which: list[int] = []
    offset: list[float] = []
    period: list[float] = []
    for s in scheds:
        ops = s.schedule.ops
        offset += [so.start_s for so in ops]
        period += [so.period_s for so in ops]
        for seg, op, c, _, _, _ in ops:
            # By identity: the result keeps every op and cost alive, and the engine's memos
            # hand equal ops and costs back as one object.
            key = (id(op), id(c), seg.name, seg.layer, seg.repeat)
            row = templates.get(key)
            if row is None:
                row = templates[key] = len(static)
                dims = (op.dims + (0,) * MAX_DIMS)[:MAX_DIMS]
                static.append((0, "", seg.name, op.name, op.kind.value, op.unit, seg.layer,
                               seg.repeat, dims, op.dtype, *[getattr(op, f) for f in STEP_FIELDS],
                               0.0, 0.0, 0.0, c.time_s, c.compute_s, c.memory_s, c.comm_s,
                               c.bound, c.energy_j, c.dram_bytes, c.cycles, c.stall_cycles,
                               c.utilization))
            which.append(row)
    table = _table(static, OP_DTYPE)[np.array(which, dtype=np.int64)]
    table["step"] = np.repeat([s.index for s in scheds], counts)
    table["phase"] = np.repeat(np.array([s.phase.value for s in scheds], dtype="S8"), counts)
    table["start_s"] = np.repeat([s.start_s for s in scheds], counts) + np.array(offset)
    table["end_s"] = table["start_s"] + table["time_s"]
    table["period_s"] = period
    return table


def _table(rows: list[tuple], dtype: np.dtype) -> np.ndarray:
    """``rows`` as a structured array; a text longer than its fixed-width column is a bug in
    the writer's schema (numpy would cut it silently), so it raises instead."""
    for i, (name, (field, _)) in enumerate(dtype.fields.items()):
        if field.kind != "S":
            continue
        width = field.itemsize
        for value in dict.fromkeys(row[i] for row in rows):  # each distinct text, in order
            if len(str(value).encode()) > width:
                raise ValueError(f"trace column {name!r} holds {width} bytes; "
                                 f"{value!r} is longer (widen it in sim/trace.py)")
    return np.array(rows, dtype=dtype)


def write_trace(path: str | os.PathLike, result: RunResult, meta: dict[str, Any]) -> None:
    """Write ``result`` with run metadata ``meta`` (strings and numbers) to ``path``."""
    import h5py  # imported on use: a run without a trace, and `pdsim list`, never load it

    # Built in memory, then written in one go: HDF5 needs a real path to write a file, and
    # the anonymous temporary file of `atomic_write` has none.
    image = io.BytesIO()
    with paused_gc(), h5py.File(image, "w", track_order=True) as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["pdsim_version"] = __version__
        g = f.create_group("meta", track_order=True)
        for key, value in meta.items():
            g.attrs[key] = value
        g = f.create_group("summary", track_order=True)
        for key, value in result.summary.items():
            g.attrs[key] = value
        # Fletcher-32 checksums: a damaged table is refused on reading, never shown with
        # other numbers (HDF5 already checksums the metadata, attributes included).
        f.create_dataset("steps", data=step_table(result), track_times=False,
                         fletcher32=True)
        # gzip level 1: a 1024-step table compresses in 0.65x the time of the default level 4
        # for 7% more bytes (the writer's largest cost in a long run)
        f.create_dataset("ops", data=op_table(result), track_times=False,
                         compression="gzip", compression_opts=1, shuffle=True,
                         fletcher32=True)

    atomic_write(path, lambda tmp: tmp.write_bytes(image.getvalue()))


def read_trace(path: str | os.PathLike) -> Trace:
    """Read a pdsim trace; `PdsimError` if ``path`` is missing, damaged or not a pdsim
    trace (whatever h5py raises on a truncated or bit-flipped file becomes one line)."""
    import h5py

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
    if version == 1 and steps.dtype == STEP_DTYPE_V1:
        steps = _upgrade_steps(steps)
    for name, table, dtype in (("steps", steps, STEP_DTYPE), ("ops", ops, OP_DTYPE)):
        if table.dtype != dtype:
            raise PdsimError(f"{path}: not a pdsim trace: table {name!r} has other columns "
                             f"than format {FORMAT_VERSION}'s")
    missing = sorted({"command_line"} - set(meta)) + [
        k for k in SUMMARY_KEYS  # None: a NaN, as `_plain` reads it
        if k not in summary or not isinstance(summary[k], (int, float, type(None)))]
    for group in SUMMARY_GROUPS:
        if any(k in summary for k in group):
            missing += [k for k in group if k not in summary]
    if missing or not len(steps):
        raise PdsimError(f"{path}: not a pdsim trace: {missing[0] if missing else 'steps'} "
                         f"missing or not a number")
    # Every value pdsim writes is a finite number >= 0 (None: NaN, not modelled), or in meta
    # also a string; anything else (an array, a negative) is damage or another tool's edit.
    for group, values in (("meta", meta), ("summary", summary)):
        for key, value in values.items():
            if not (value is None or isinstance(value, str) and group == "meta"
                    or isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise PdsimError(f"{path}: not a pdsim trace: {group} {key!r} is "
                                 f"{' '.join(repr(value).split())[:40]} (expected a finite "
                                 f"number >= 0{' or a string' if group == 'meta' else ''})")
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
