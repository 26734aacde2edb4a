"""Sweep specifications: a base run and the axes to vary, expanded into points.

A spec is YAML (docs/sweep.md)::

    base: {hw: h100, model: llama2-7b, batch: 1, prompt: 512, gen: 16}
    grid:                          # every combination, in the order written
      chip.cores: [66, 99, 132]    # any field of the hardware YAML by dotted path
      model: [llama2-7b, llama3-8b]
    # or: random: {samples: 20, seed: 1, axes: {chip.cores: {low: 66, high: 132, int: true}}}
    pareto: {x: system_cost_usd, y: tbt_mean_s}   # optional: two metrics, both minimised

Axis names are run inputs (`RUN_KEYS`) or hardware field paths. Every point's system is
built and validated here, before any point runs, so an unknown path, an empty axis or a bad
value is one error naming it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from sim import __version__
from sim.dtypes import check_dtype
from sim.errors import ConfigError
from sim.schema import to_dict

#: Run inputs a spec may set in ``base`` or vary as an axis, with their defaults.
RUN_KEYS: dict[str, Any] = {"hw": "h100", "model": "llama2-7b", "batch": 1, "prompt": 2048,
                            "gen": 128, "dtype": "fp16", "weight_dtype": None,
                            "kv_dtype": None, "detail": "tile", "decode_sample": None,
                            "tp": None, "pp": None}
DETAILS = ("tile", "roofline")
_INT_KEYS = ("batch", "prompt", "gen", "decode_sample", "tp", "pp")
_TOP_KEYS = ("base", "grid", "random", "pareto")


@dataclass(frozen=True, slots=True)
class Point:
    """One run of a sweep: its run inputs, its hardware overrides (dotted path -> value), the
    axis values that define it (for the table), and a hash of everything that determines its
    result (the cache key)."""

    run: dict[str, Any]
    overrides: dict[str, Any]
    axes: dict[str, Any]
    key: str


@dataclass(frozen=True, slots=True)
class Spec:
    points: tuple[Point, ...]
    axis_names: tuple[str, ...]
    pareto: tuple[str, str] | None


def read_spec_file(path: str) -> Any:
    """Parse the YAML spec at ``path``; `ConfigError` (one line) for a missing, oversized,
    non-regular, non-UTF-8 or malformed file, or one giving a key twice (`sim.files.read_text`
    and `sim.schema.load_yaml`, as for every file pdsim reads)."""
    from sim.errors import PdsimError
    from sim.files import read_text
    from sim.schema import load_yaml

    try:
        text = read_text(path, "")
    except PdsimError as exc:
        raise ConfigError(str(exc)) from None
    return load_yaml(text, path)


def parse_spec(data: Any, where: str) -> Spec:
    """Validate a parsed spec and expand it into points; `ConfigError` names the problem."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping with base and grid (or random)")
    unknown = sorted(set(map(str, data)) - set(_TOP_KEYS))
    if unknown:
        raise ConfigError(f"{where}: {unknown[0]}: unknown key (allowed: "
                          f"{', '.join(_TOP_KEYS)})")
    base = data.get("base") or {}
    if not isinstance(base, Mapping):
        raise ConfigError(f"{where}: base: expected a mapping of run inputs")
    for key in base:
        if key not in RUN_KEYS:
            raise ConfigError(f"{where}: base.{key}: unknown run input (allowed: "
                              f"{', '.join(RUN_KEYS)}; vary hardware fields as axes)")
    if ("grid" in data) == ("random" in data):
        raise ConfigError(f"{where}: give exactly one of grid or random")
    combos = (_grid(data["grid"], where) if "grid" in data
              else _random(data["random"], where))
    axis_names = tuple(combos[0]) if combos else ()
    pareto = _pareto(data.get("pareto"), where)
    points = tuple(_point({**RUN_KEYS, **base}, combo, where) for combo in combos)
    return Spec(points=points, axis_names=axis_names, pareto=pareto)


def _grid(grid: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(grid, Mapping) or not grid:
        raise ConfigError(f"{where}: grid: expected a mapping of axis -> list of values")
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: grid.{name}: expected a non-empty list of values")
    names = list(grid)
    return [dict(zip(names, combo)) for combo in itertools.product(*grid.values())]


def _random(spec: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(spec, Mapping) or set(spec) - {"samples", "seed", "axes"}:
        raise ConfigError(f"{where}: random: expected {{samples: N, seed: S, axes: {{...}}}}")
    samples, seed, axes = spec.get("samples"), spec.get("seed", 0), spec.get("axes")
    if not isinstance(samples, int) or isinstance(samples, bool) or not 1 <= samples <= 10**6:
        raise ConfigError(f"{where}: random.samples: expected an integer in 1..1000000, "
                          f"got {samples!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        raise ConfigError(f"{where}: random.seed: expected an integer >= 0, got {seed!r}")
    if not isinstance(axes, Mapping) or not axes:
        raise ConfigError(f"{where}: random.axes: expected a mapping of axis -> values")
    rng = np.random.default_rng(seed)
    draws: dict[str, list[Any]] = {}
    for name, axis in axes.items():
        draws[name] = _draw(axis, samples, rng, f"{where}: random.axes.{name}")
    return [{name: draws[name][i] for name in axes} for i in range(samples)]


def _draw(axis: Any, n: int, rng: np.random.Generator, where: str) -> list[Any]:
    """``n`` draws of one random axis: a list (uniform choice) or ``{low, high}`` (uniform;
    ``log: true`` for log-uniform; ``int: true`` rounds to integers)."""
    if isinstance(axis, list):
        if not axis:
            raise ConfigError(f"{where}: expected a non-empty list of values")
        return [axis[i] for i in rng.integers(0, len(axis), n)]
    if not isinstance(axis, Mapping) or set(axis) - {"low", "high", "log", "int"}:
        raise ConfigError(f"{where}: expected a list or {{low, high, log?, int?}}")
    low, high = axis.get("low"), axis.get("high")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) \
            or not low <= high or not np.isfinite([low, high]).all():
        raise ConfigError(f"{where}: low and high: expected finite numbers, low <= high")
    if axis.get("log"):
        if low <= 0:
            raise ConfigError(f"{where}: low: must be > 0 with log: true, got {low}")
        values = np.exp(rng.uniform(np.log(low), np.log(high), n))
    else:
        values = rng.uniform(low, high, n)
    if axis.get("int"):
        return [int(round(v)) for v in values]
    return [float(v) for v in values]


def _pareto(spec: Any, where: str) -> tuple[str, str] | None:
    if spec is None:
        return None
    if not isinstance(spec, Mapping) or set(spec) != {"x", "y"} \
            or not all(isinstance(spec[k], str) for k in ("x", "y")):
        raise ConfigError(f"{where}: pareto: expected {{x: METRIC, y: METRIC}}")
    return spec["x"], spec["y"]


def yaml_number(value: Any) -> Any:
    """A string that reads as a finite number is that number, as in hardware files
    (sim/schema.py): a value quoted in the spec (``"5e9"``) or given as text through the
    Python API. `sim.schema.load_yaml` already reads an unquoted ``5e9`` as a float."""
    if isinstance(value, str):
        try:
            number = float(value.replace("_", ""))
        except ValueError:
            return value
        if np.isfinite(number):
            return int(number) if number.is_integer() and "." not in value \
                and "e" not in value.lower() else number
    return value


def _point(base: dict[str, Any], combo: dict[str, Any], where: str) -> Point:
    from sim import api  # the simulator; imported when a spec is expanded

    run = dict(base)
    overrides = {}
    combo = {name: yaml_number(value) for name, value in combo.items()}
    for name, value in combo.items():
        if name in RUN_KEYS:
            run[name] = value
        else:
            overrides[name] = value
    for key in _INT_KEYS:
        value = run[key]
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or value < 1):
            raise ConfigError(f"{where}: {key}: expected an integer >= 1, got {value!r}")
    for key in ("hw", "model", "dtype", "detail"):
        if not isinstance(run[key], str):
            raise ConfigError(f"{where}: {key}: expected a name, got {run[key]!r}")
    for key in ("dtype", "weight_dtype", "kv_dtype"):
        if run[key] is not None:
            check_dtype(str(run[key]), f"{where}: {key}")
    if run["detail"] not in DETAILS:
        raise ConfigError(f"{where}: detail: unknown {run['detail']!r} (allowed: "
                          f"{', '.join(DETAILS)})")
    try:
        system = api.load_system(run["hw"], tp=run["tp"], pp=run["pp"], overrides=overrides)
        model = api.load_model(run["model"])
    except ConfigError as exc:
        label = ", ".join(f"{k}={v}" for k, v in combo.items())
        raise ConfigError(f"{where}: point {label}: {exc}") from None
    resolved = {"run": {k: v for k, v in run.items() if k not in ("hw", "model")},
                "system": to_dict(system), "model": to_dict(model), "version": __version__}
    key = hashlib.sha256(json.dumps(resolved, sort_keys=True, default=str).encode())
    return Point(run=run, overrides=overrides, axes=dict(combo), key=key.hexdigest()[:32])
