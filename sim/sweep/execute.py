"""Run a sweep's points on Dask, each point cached by the hash of its inputs.

Local by default: Dask's multiprocessing scheduler, one process per worker, no server to
start. Given a scheduler address, the same points go to an existing Dask distributed cluster
(``dask scheduler`` and ``dask worker ADDRESS``; docs/sweep.md). A point's row is written to
the cache as soon as it is done (by the worker locally, by this process on a cluster, whose
workers may not share its disk), so a sweep that is killed resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.errors import PdsimError
from sim.files import atomic_text

from .spec import Point, Spec


#: How long to wait for a Dask scheduler to answer.
CONNECT_TIMEOUT = "10s"


@dataclass(frozen=True, slots=True)
class SweepResult:
    """Rows in the spec's point order; how many points ran now and how many came from the
    cache."""

    rows: tuple[dict[str, Any], ...]
    computed: int
    cached: int

    @property
    def failed(self) -> int:
        return sum(row.get("error") is not None for row in self.rows)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/pdsim/sweep`` (``~/.cache/pdsim/sweep``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pdsim" / "sweep"


def run_sweep(spec: Spec, *, workers: int | None = None, scheduler: str | None = None,
              cache_dir: Path | None = None, progress: bool = False,
              in_process: bool | None = None) -> SweepResult:
    """Every point of ``spec``: from ``cache_dir`` where cached, else run on ``workers``
    local processes (default: every core) or on the Dask cluster at ``scheduler``.
    ``in_process`` runs the points in this process (Dask's synchronous scheduler); by default
    it does so only for one worker, where a pool would only add start-up time."""
    rows: dict[str, dict[str, Any]] = {}
    if cache_dir is not None:
        for point in spec.points:
            cached = _read_cache(cache_dir, point.key)
            if cached is not None:
                rows[point.key] = cached
    todo = list({p.key: p for p in spec.points if p.key not in rows}.values())
    if todo:
        if scheduler is None:
            workers = workers or os.cpu_count() or 1
            sync = workers == 1 if in_process is None else in_process
            done = _run_local(todo, workers, cache_dir, progress, sync)
        else:
            done = _run_cluster(todo, scheduler, cache_dir, progress)
        rows.update(done)
    out = tuple(_with_axes(rows[p.key], p) for p in spec.points)
    return SweepResult(rows=out, computed=len(todo), cached=len(spec.points) - len(todo))


def execute_point(run: dict[str, Any], overrides: dict[str, Any], key: str,
                  cache_dir: str | None) -> dict[str, Any]:
    """Run one point (in a worker process) and return its row; write it to ``cache_dir``.

    Bad input found only now (a workload that does not fit, say) makes a row with the error;
    an internal error does too, marked ``internal_error`` and never cached, so the sweep goes
    on and the CLI reports it as a pdsim bug at the end.
    """
    from sim import api  # imported in the worker, on first use

    inputs = {k: v for k, v in run.items()}
    try:
        system = api.load_system(run["hw"], tp=run["tp"], pp=run["pp"], overrides=overrides)
        result = api.run(system, run["model"], batch=run["batch"], prompt=run["prompt"],
                         gen=run["gen"], dtype=run["dtype"], weight_dtype=run["weight_dtype"],
                         kv_dtype=run["kv_dtype"], detail=run["detail"],
                         decode_sample=run["decode_sample"])
        row = {**api.finite_row(result.row()), "error": None}
    except PdsimError as exc:
        row = {**inputs, "error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - recorded and reported as a bug, not swallowed
        return {**inputs, "error": f"internal error: {type(exc).__name__}: {exc}",
                "internal_error": True}
    if cache_dir is not None:
        _write_cache(Path(cache_dir), key, row)
    return row


def _run_local(todo: list[Point], workers: int, cache_dir: Path | None,
               progress: bool, in_process: bool) -> dict[str, dict[str, Any]]:
    import dask
    from dask.diagnostics import ProgressBar

    cache = None if cache_dir is None else str(cache_dir)
    tasks = [dask.delayed(execute_point, pure=False)(p.run, p.overrides, p.key, cache)
             for p in todo]
    bar = ProgressBar(out=sys.stderr) if progress else nullcontext()
    with bar:
        if in_process:
            results = dask.compute(*tasks, scheduler="synchronous")
        else:
            results = dask.compute(*tasks, scheduler="processes", num_workers=workers)
    return {p.key: row for p, row in zip(todo, results)}


def _run_cluster(todo: list[Point], address: str, cache_dir: Path | None,
                 progress: bool) -> dict[str, dict[str, Any]]:
    from distributed import Client, as_completed

    try:
        client = Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as exc:
        raise PdsimError(f"--scheduler: cannot reach a Dask scheduler at {address!r} "
                         f"({exc})") from None
    out: dict[str, dict[str, Any]] = {}
    with client:
        futures = {client.submit(execute_point, p.run, p.overrides, p.key, None,
                                 pure=False): p for p in todo}
        bar = _tqdm(len(futures)) if progress else None
        for future in as_completed(futures):
            point, row = futures[future], future.result()
            out[point.key] = row
            if cache_dir is not None and not row.get("internal_error"):
                _write_cache(cache_dir, point.key, row)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
    return out


def _tqdm(total: int):
    from tqdm import tqdm
    return tqdm(total=total, unit="point", file=sys.stderr)


def _with_axes(row: dict[str, Any], point: Point) -> dict[str, Any]:
    """The axis values first (hardware paths as written), then the row."""
    return {**{k: v for k, v in point.axes.items()}, **row}


def _read_cache(cache_dir: Path, key: str) -> dict[str, Any] | None:
    try:
        return json.loads((cache_dir / f"{key}.json").read_text())
    except (OSError, ValueError):
        return None  # absent or damaged: run the point again


def _write_cache(cache_dir: Path, key: str, row: dict[str, Any]) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    atomic_text(cache_dir / f"{key}.json", json.dumps(row, allow_nan=False) + "\n")
