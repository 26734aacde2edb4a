"""A sweep's table (Parquet or CSV, by suffix) and its Pareto plot."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any, Sequence

from sim.errors import ConfigError
from sim.files import atomic_write, check_output

#: Table formats by file suffix.
TABLE_SUFFIXES = (".parquet", ".csv")


def check_table_path(path: str | os.PathLike) -> Path:
    """``path`` if it can be written (`sim.files.check_output`) and its suffix names a table
    format, else a one-line error naming ``-o``."""
    path = check_output(path, "-o")
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise ConfigError(f"-o: the table's suffix must be one of {', '.join(TABLE_SUFFIXES)}, "
                          f"got {str(path)!r}")
    return path


def columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Every key of every row, in first-seen order, ``error`` last."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    names = [k for k in seen if k not in ("error", "internal_error")]
    return names + ["error"]


def write_table(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Write ``rows`` (one per point; missing values are nulls) to ``path``: Parquet through
    pyarrow for ``.parquet``, else CSV. Written to a temporary file, then renamed."""
    path = check_table_path(path)
    names = columns(rows)
    if path.suffix.lower() == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        data = {name: [_plain(row.get(name)) for row in rows] for name in names}
        table = pa.table({name: pa.array(values) for name, values in data.items()})
        return atomic_write(path, lambda tmp: pq.write_table(table, tmp))

    def write_csv(tmp: Path) -> None:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=names, extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: _plain(row.get(k)) for k in names})
    return atomic_write(path, write_csv)


def read_table(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a table written by `write_table` (CSV values come back as strings)."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq
        return pq.read_table(path).to_pylist()
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, dict, tuple)):
        return str(value)
    return value


def pareto_front(rows: Sequence[dict[str, Any]], x: str, y: str) -> list[int]:
    """Indices of the rows on the Pareto front of metrics ``x`` and ``y``, both minimised:
    no other row is at least as good in both and better in one. Rows without both metrics
    (failed points) are left out. Sorted by ``x``."""
    pts = [(i, float(r[x]), float(r[y])) for i, r in enumerate(rows)
           if _number(r.get(x)) and _number(r.get(y))]
    pts.sort(key=lambda p: (p[1], p[2]))
    front, best_y = [], math.inf
    for i, _, yv in pts:
        if yv < best_y:
            front.append(i)
            best_y = yv
    return front


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def check_metrics(rows: Sequence[dict[str, Any]], metrics: Sequence[str]) -> None:
    """`ConfigError` when a Pareto metric is not a column of a successful row."""
    ok = [r for r in rows if r.get("error") is None]
    for name in metrics:
        if ok and not any(_number(r.get(name)) for r in ok):
            numeric = sorted(k for k in ok[0] if _number(ok[0][k]))
            raise ConfigError(f"pareto: {name!r} is not a numeric metric (have: "
                              f"{', '.join(numeric)})")


def plot_pareto(rows: Sequence[dict[str, Any]], x: str, y: str, labels: Sequence[str],
                path: str | os.PathLike, title: str = "") -> Path:
    """Scatter every point in ``x``/``y`` and draw the Pareto front, each front point labelled
    with its axis values (``labels``). Written to a temporary file, then renamed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    front = pareto_front(rows, x, y)
    ok = [i for i, r in enumerate(rows) if _number(r.get(x)) and _number(r.get(y))]

    def draw(tmp: Path) -> None:
        fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
        ax.scatter([rows[i][x] for i in ok], [rows[i][y] for i in ok], s=18, color="0.6",
                   label=f"{len(ok)} points")
        ax.plot([rows[i][x] for i in front], [rows[i][y] for i in front], "o-",
                color="tab:red", label="Pareto front (both minimised)")
        for i in front:
            ax.annotate(labels[i], (rows[i][x], rows[i][y]), fontsize=7,
                        xytext=(4, 4), textcoords="offset points")
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        if title:
            ax.set_title(title, fontsize=9)
        fig.tight_layout()
        fig.savefig(tmp, format="png")
        plt.close(fig)
    return atomic_write(path, draw)
