"""Pictures of a trace: per-step times and where each phase spends its time.

matplotlib is imported inside the function, with the file-only Agg backend, so that importing
pdsim stays fast and needs no display.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import numpy as np

from sim.errors import PdsimError
from sim.files import atomic_write
from sim.trace import Trace


def time_by_kind(trace: Trace, step: int) -> dict[str, float]:
    """Seconds of one step spent in each op kind (repeats included)."""
    rows = trace.ops[trace.ops["step"] == step]
    out: dict[str, float] = defaultdict(float)
    for r in rows:
        out[r["kind"].decode()] += float(r["repeat"] * r["time_s"])
    return dict(out)


#: Metadata that would make two plots of one trace differ (writer, date), per format.
_NO_STAMPS = {"png": {"Software": None}, "svg": {"Date": None}, "svgz": {"Date": None},
              "pdf": {"CreationDate": None}, "ps": {"CreationDate": None},
              "eps": {"CreationDate": None}}


def plot_format(path: str | os.PathLike, flag: str = "--plot") -> str:
    """The image format named by ``path``'s suffix, if matplotlib writes it; else a
    `PdsimError` listing the formats (checked before any drawing)."""
    from matplotlib.backend_bases import FigureCanvasBase

    formats = sorted(FigureCanvasBase.get_supported_filetypes())
    fmt = Path(path).suffix.lower().removeprefix(".")
    if fmt not in formats:
        raise PdsimError(f"{flag}: {'no' if not fmt else repr(fmt)} image suffix on "
                         f"{os.fspath(path)!r} (allowed: {', '.join(formats)})")
    return fmt


def plot_trace(trace: Trace, path: str | os.PathLike, title: str = "") -> Path:
    """Write a two-panel PNG: time of every step, and the prefill's and last simulated decode
    step's time by op kind. Written to a temporary file, then renamed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    steps = trace.steps
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    decode = steps[steps["phase"] == b"decode"]
    if len(decode):
        sim = decode["simulated"]
        ax1.plot(decode["step"], decode["time_s"] * 1e3, color="tab:blue", lw=1.2,
                 label="decode step (TBT)")
        ax1.plot(decode["step"][sim], decode["time_s"][sim] * 1e3, ".", color="tab:blue",
                 ms=3, label="simulated" if not sim.all() else None)
    ax1.set_xlabel("step (0 = prefill)")
    ax1.set_ylabel("time per decode step (ms)")
    ttft = float(steps["time_s"][0])
    ax1.set_title(f"TTFT {ttft * 1e3:.3g} ms; decode steps")
    ax1.grid(alpha=0.3)
    if len(decode):
        ax1.legend(loc="lower right")

    shown = [0] + ([int(decode["step"][decode["simulated"]][-1])] if len(decode) else [])
    kinds = sorted({k for s in shown for k in time_by_kind(trace, s)})
    colors = plt.get_cmap("tab20")(np.linspace(0, 1, max(len(kinds), 2)))
    labels = ["prefill" if s == 0 else f"decode step {s}" for s in shown]
    for i, s in enumerate(shown):
        by_kind = time_by_kind(trace, s)
        total = sum(by_kind.values())
        left = 0.0
        for kind, color in zip(kinds, colors):
            share = by_kind.get(kind, 0.0) / total * 100
            ax2.barh(i, share, left=left, color=color, label=kind if i == 0 else None)
            left += share
    ax2.set_yticks(range(len(shown)), labels)
    ax2.set_xlabel("share of the step's time (%)")
    ax2.set_xlim(0, 100)
    ax2.set_title("time by op kind")
    ax2.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=5, fontsize=8,
               frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    try:
        fmt = plot_format(path)
        atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=120,
                                                   metadata=_NO_STAMPS.get(fmt)))
    finally:
        plt.close(fig)
    return path
