"""Workloads: the Azure LLM inference traces 2023 (shipped, `sim/serving/data/`), any CSV of
requests, and Poisson or gamma arrivals at a chosen rate over a trace's lengths or over
ShareGPT-like lengths (``sharegpt``: `sim.serving.sharegpt`, a generator, not a trace).

A CSV has a header and one request a row, sorted by arrival, in either layout:

* ``arrival_s,prompt_tokens,output_tokens`` (arrival in seconds from any origin), or
* the Azure layout ``TIMESTAMP,ContextTokens,GeneratedTokens`` (a date-time, e.g.
  ``2023-11-16 18:17:03.9799600``).

Arrivals are shifted so that the first request arrives at 0 s. Token counts are integers
>= 1. Anything else is a `ConfigError` naming the file, the row and the column.
"""

from __future__ import annotations

import csv
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import numpy as np

from sim.errors import ConfigError
from sim.files import MAX_TRACE_BYTES, read_text
from sim.serving.request import Request

#: Shipped traces by name.
TRACES = {"azure-code": "AzureLLMInferenceTrace_code.csv",
          "azure-conv": "AzureLLMInferenceTrace_conv.csv"}
#: The ShareGPT-like lengths generator's name as a ``--trace`` (needs a rate).
SHAREGPT = "sharegpt"
_LAYOUTS = (("arrival_s", "prompt_tokens", "output_tokens"),
            ("TIMESTAMP", "ContextTokens", "GeneratedTokens"))


def load_trace(spec: str, *, duration_s: float | None = None) -> list[Request]:
    """Requests of a shipped trace (a name of `TRACES`) or of a CSV file, those arriving in
    the first ``duration_s`` seconds when given."""
    if spec in TRACES:
        text = resources.files("sim.serving").joinpath("data", TRACES[spec]).read_text()
        where = spec
    else:
        path = Path(spec)
        if path.suffix.lower() != ".csv" and not path.is_file():
            raise ConfigError(f"--trace: {spec!r} is neither a shipped trace "
                              f"({', '.join(TRACES)}) nor a CSV file")
        text = read_text(path, "--trace", limit=MAX_TRACE_BYTES)
        where = spec
    reqs = parse_csv(text, where)
    if duration_s is not None:
        reqs = [r for r in reqs if r.arrival_s < duration_s]
        if not reqs:
            raise ConfigError(f"--duration: no request of {where} arrives in the first "
                              f"{duration_s} s")
    return reqs


def parse_csv(text: str, where: str) -> list[Request]:
    """Parse a request CSV (module docstring); `ConfigError` on any bad row."""
    rows = csv.reader(text.splitlines())
    header = [h.strip() for h in next(rows, [])]
    layout = next((lay for lay in _LAYOUTS if all(c in header for c in lay)), None)
    if layout is None:
        raise ConfigError(f"{where}: missing columns: need {','.join(_LAYOUTS[0])} "
                          f"(or Azure's {','.join(_LAYOUTS[1])}), got {','.join(header) or 'none'}")
    cols = [header.index(c) for c in layout]
    times, prompts, outputs = [], [], []
    for line, row in enumerate(rows, start=2):
        if not row:
            continue
        try:
            cells = [row[c].strip() for c in cols]
        except IndexError:
            raise ConfigError(f"{where}: row {line}: expected {len(header)} columns, got "
                              f"{len(row)}") from None
        times.append(_time(cells[0], layout[0], where, line))
        for value, name, out in ((cells[1], layout[1], prompts), (cells[2], layout[2], outputs)):
            try:
                n = int(value)
            except ValueError:
                raise ConfigError(f"{where}: row {line}: {name} must be an integer, got "
                                  f"{value!r}") from None
            if n < 1:
                raise ConfigError(f"{where}: row {line}: {name} must be >= 1, got {n}")
            out.append(n)
        if len(times) > 1 and times[-1] < times[-2]:
            raise ConfigError(f"{where}: row {line}: {layout[0]} not sorted (arrivals must "
                              f"not decrease)")
    if not times:
        raise ConfigError(f"{where}: no requests (the file is empty)")
    t0 = times[0]
    return [Request(id=i, arrival_s=t - t0, prompt_tokens=p, output_tokens=o)
            for i, (t, p, o) in enumerate(zip(times, prompts, outputs))]


def _time(cell: str, column: str, where: str, line: int) -> float:
    try:
        if column == "TIMESTAMP":  # 7 fractional digits: Python parses at most 6
            head, _, frac = cell.partition(".")
            base = datetime.strptime(head, "%Y-%m-%d %H:%M:%S").replace(
                tzinfo=timezone.utc).timestamp()
            return base + (float("0." + frac) if frac else 0.0)
        value = float(cell)
    except ValueError:
        raise ConfigError(f"{where}: row {line}: {column} is not a time: {cell!r}") from None
    if not np.isfinite(value) or value < 0:
        raise ConfigError(f"{where}: row {line}: {column} must be a finite time >= 0, "
                          f"got {cell}")
    return value


def synthetic(lengths: list[Request], *, rate: float, duration_s: float,
              rng: np.random.Generator, cv: float = 1.0) -> list[Request]:
    """Requests arriving at ``rate`` per second for ``duration_s`` seconds, with prompt and
    output lengths drawn (jointly, with replacement) from ``lengths``. Inter-arrival gaps are
    gamma with coefficient of variation ``cv`` (1: Poisson arrivals)."""
    t = _arrivals(rate, duration_s, rng, cv)
    pick = rng.integers(0, len(lengths), len(t))
    return [Request(id=i, arrival_s=float(a), prompt_tokens=lengths[k].prompt_tokens,
                    output_tokens=lengths[k].output_tokens)
            for i, (a, k) in enumerate(zip(t, pick))]


def sharegpt(*, rate: float, duration_s: float, rng: np.random.Generator,
             cv: float = 1.0) -> list[Request]:
    """Requests arriving as `synthetic`'s, with ShareGPT-like lengths
    (`sim.serving.sharegpt`) drawn after the arrivals from the same ``rng``."""
    from sim.serving.sharegpt import sharegpt_lengths

    t = _arrivals(rate, duration_s, rng, cv)
    prompts, outputs = sharegpt_lengths(len(t), rng)
    return [Request(id=i, arrival_s=float(a), prompt_tokens=int(p), output_tokens=int(o))
            for i, (a, p, o) in enumerate(zip(t, prompts, outputs))]


def _arrivals(rate: float, duration_s: float, rng: np.random.Generator, cv: float) -> np.ndarray:
    """Arrival times (s) in [0, ``duration_s``): gamma gaps of mean ``1 / rate`` and
    coefficient of variation ``cv``; `ConfigError` naming ``--rate`` / ``--cv`` unless both
    are > 0."""
    if not rate > 0:
        raise ConfigError(f"--rate: must be > 0 requests/s, got {rate}")
    if not cv > 0:
        raise ConfigError(f"--cv: must be > 0, got {cv}")
    shape = 1 / cv**2
    n = int(rate * duration_s * 1.2 + 50)
    gaps = rng.gamma(shape, 1 / (rate * shape), n)
    while gaps.sum() < duration_s:
        gaps = np.concatenate([gaps, rng.gamma(shape, 1 / (rate * shape), n)])
    t = np.cumsum(gaps)
    return t[t < duration_s]
