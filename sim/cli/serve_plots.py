"""Pictures of a serving run: latency CDFs, and SLO attainment and goodput against rate."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from sim.files import atomic_write


def _save(fig, path: str | os.PathLike, fmt: str) -> Path:
    import matplotlib.pyplot as plt

    from sim.cli.plots import _NO_STAMPS

    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=120, metadata=_NO_STAMPS.get(fmt))
    plt.close(fig)
    return atomic_write(path, lambda tmp: tmp.write_bytes(buf.getvalue()))


def plot_cdfs(result, path: str | os.PathLike, fmt: str, title: str = "") -> Path:
    """TTFT, TBT and end-to-end latency CDFs (seconds, log scale) of a `ServeResult`."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [s for s in result.sequences if s.done]
    data = {"TTFT": [s.first_token_s - s.request.arrival_s for s in done],
            "TBT": np.concatenate([np.asarray(s.tbts) for s in done]) if done else [],
            "end to end": [s.finish_s - s.request.arrival_s for s in done]}
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), constrained_layout=True)
    for ax, (name, values) in zip(axes, data.items()):
        v = np.sort(np.asarray(values, float))
        if v.size:
            ax.plot(np.maximum(v, 1e-6), np.arange(1, v.size + 1) / v.size)
        ax.set_xscale("log")
        ax.set_xlabel(f"{name} (s)")
        ax.set_ylabel("fraction")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return _save(fig, path, fmt)


def plot_slo_vs_rate(rates, summaries, path: str | os.PathLike, fmt: str,
                     title: str = "") -> Path:
    """SLO attainment and goodput against the offered rate (requests/s)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    ax.plot(rates, [s["slo_attainment"] for s in summaries], "o-", label="SLO attainment")
    ax.set_xlabel("offered rate (requests/s)")
    ax.set_ylabel("SLO attainment")
    ax.set_ylim(0, 1.05)
    ax2 = ax.twinx()
    ax2.plot(rates, [s["goodput_rps"] for s in summaries], "s--", color="tab:orange",
             label="goodput")
    ax2.set_ylabel("goodput (requests/s)")
    ax.grid(alpha=0.3)
    fig.legend(loc="lower left")
    if title:
        ax.set_title(title)
    return _save(fig, path, fmt)
