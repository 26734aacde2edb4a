"""A trace's timeline as Chrome trace-event JSON, for ui.perfetto.dev and chrome://tracing.

One process per chip (pipeline stage; tensor-parallel peers run the same timeline, so one
chip of each group stands for it) and one thread per unit of that chip (``tensor``,
``vector``, ``dma``, ``link``, ``cid``, ``cim``, ``cim_io``, ...), so ops that run at once on
different units sit on different tracks side by side. Each op instance is one complete
(``"ph": "X"``) event: ``ts`` and ``dur`` in microseconds from the start of the run, the op's
name (``name L<layer>`` inside the layer stack), its kind as the category, and its step,
phase, bound and bytes in ``args``.

The trace stores each op of a repeated segment once with its period; the export expands the
repeats (instance ``r`` at ``start + r x period``), at most `MAX_REPEATS` per op and step, and
stops after `MAX_EVENTS` events in step order; either cut is noted in the output's
``otherData``. Interpolated decode steps have no ops and show as gaps.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sim.errors import PdsimError
from sim.files import atomic_text, check_output
from sim.trace import Trace

#: Instances of one op drawn per step (a 128-layer model draws every layer).
MAX_REPEATS = 1024
#: Events in one export (about 200 MB of JSON; Perfetto's browser UI handles it).
MAX_EVENTS = 1_000_000


def check_perfetto_output(path: str | os.PathLike) -> Path:
    """``path`` if a JSON file can be written there (`sim.files.check_output`); `PdsimError`
    naming ``--perfetto`` if not."""
    if Path(path).suffix != ".json":
        raise PdsimError(f"--perfetto: the output must be a .json file, got {str(path)!r}")
    return check_output(path, "--perfetto")


def trace_events(trace: Trace) -> dict[str, Any]:
    """The trace's op timeline as a Chrome trace-event document (module docstring)."""
    events: list[dict[str, Any]] = []
    tids: dict[tuple[int, str], int] = {}
    capped_repeats = truncated = False
    chip, step = 0, None
    for row in trace.ops:
        if row["step"] != step:
            chip, step = 0, row["step"]
        unit = row["unit"].decode()
        key = (chip, unit)
        if key not in tids:
            tids[key] = len(tids) + 1
        repeat = int(row["repeat"])
        shown = min(repeat, MAX_REPEATS)
        capped_repeats |= shown < repeat
        if len(events) + shown > MAX_EVENTS:
            truncated = True
            break
        name, layer, kind = row["op"].decode(), int(row["layer"]), row["kind"].decode()
        args = {"step": int(row["step"]), "phase": row["phase"].decode(),
                "bound": row["bound"].decode(), "dram_bytes": float(row["dram_bytes"]),
                "comm_bytes": int(row["comm_bytes"]), "flops": int(row["flops"])}
        for r in range(shown):
            events.append({"name": f"{name} L{layer + r}" if layer >= 0 else name,
                           "cat": kind, "ph": "X", "pid": chip, "tid": tids[key],
                           "ts": (row["start_s"] + r * row["period_s"]) * 1e6,
                           "dur": row["time_s"] * 1e6, "args": args})
        if kind == "p2p":  # the next stage's ops run on the next chip
            chip += 1
    meta: list[dict[str, Any]] = []
    for c in sorted({c for c, _ in tids}):
        meta.append({"name": "process_name", "ph": "M", "pid": c, "tid": 0,
                     "args": {"name": f"chip {c} (pipeline stage {c})"}})
    for (c, unit), tid in tids.items():
        meta.append({"name": "thread_name", "ph": "M", "pid": c, "tid": tid,
                     "args": {"name": unit}})
        meta.append({"name": "thread_sort_index", "ph": "M", "pid": c, "tid": tid,
                     "args": {"sort_index": tid}})
    other = {"command_line": trace.meta.get("command_line", ""),
             "pdsim_version": trace.meta.get("pdsim_version", ""),
             "repeats_capped_at": MAX_REPEATS if capped_repeats else None,
             "truncated_at_events": MAX_EVENTS if truncated else None}
    return {"traceEvents": meta + events, "displayTimeUnit": "ms", "otherData": other}


def write_perfetto(trace: Trace, path: str | os.PathLike) -> int:
    """Write `trace_events` of ``trace`` to ``path`` atomically; returns the events written
    (metadata events excluded)."""
    doc = trace_events(trace)
    atomic_text(path, json.dumps(doc, separators=(",", ":")))
    return sum(e["ph"] == "X" for e in doc["traceEvents"])
