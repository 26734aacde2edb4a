"""pdsim's public Python API: load a system and a model, run a workload, read the result.

The CLI (``pdsim run``, ``pdsim sweep``) is built on these functions; their names and
signatures are stable. Every error in the inputs raises `sim.errors.ConfigError` (a
`PdsimError`) with one line naming the field, as the CLI prints it.

>>> from sim import api
>>> system = api.load_system("h100")
>>> model = api.load_model("llama2-7b")
>>> result = api.run(system, model, batch=1, prompt=512, gen=4, detail="roofline")
>>> result.summary["decode_steps"]      # the prefill makes the first token
3
>>> 0 < result.summary["ttft_s"] < result.summary["e2e_s"]   # seconds
True
>>> row = result.row()
>>> row["hw"], row["model"], row["prompt"], row["decode_steps"]
('h100', 'llama2-7b', 512, 3)

Hardware fields are changed by their dotted path in the hardware YAML
(docs/hardware-yaml.md), through the same validation as a YAML file:

>>> api.load_system("h100", overrides={"chip.cores": 66}).chip.cores
66
>>> api.load_system("h100", overrides={"chip.corez": 66})
Traceback (most recent call last):
...
sim.errors.ConfigError: chip.corez: unknown field path (chip has: name, cores, ...)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from mappers.ir import Precision
from mappers.train import TrainSpec
from mappers.models import ModelConfig
from mappers.models import load_model as _load_model_source

from sim.engine import RunResult, Workload, simulate
from sim.errors import ConfigError
from sim.hardware import System
from sim.presets import load_hardware
from sim.train import TrainResult, train_step
from sim.schema import build, to_dict

__all__ = ["Result", "load_model", "load_system", "run", "set_path", "train"]


def load_system(hw: str | System, *, tp: int | None = None, pp: int | None = None,
                overrides: Mapping[str, Any] | None = None) -> System:
    """A validated `System` from a preset name or YAML path (or a `System`), with
    ``tensor_parallel`` / ``pipeline_parallel`` and any field changed by dotted path
    (``{"chip.cores": 66, "chip.memory.pin_rate_bps": 4e9}``).

    ``num_chips`` is the hardware's chip count: ``tp x pp`` above it is refused, as by
    ``pdsim run`` (override ``num_chips`` for a bigger system). Raises `ConfigError` naming
    the path for an unknown field or a bad value.
    """
    system = load_hardware(hw).system if isinstance(hw, str) else hw
    if not overrides and tp is None and pp is None:
        return system
    fields = to_dict(system)
    for path, value in (overrides or {}).items():
        set_path(fields, path, value)
    if tp is not None:
        fields["tensor_parallel"] = tp
    if pp is not None:
        fields["pipeline_parallel"] = pp
    group = fields["tensor_parallel"] * fields["pipeline_parallel"]
    if (tp is not None or pp is not None) and group > fields["num_chips"]:
        raise ConfigError(f"tp x pp: at most num_chips {fields['num_chips']} on "
                          f"{fields['name']}, got {fields['tensor_parallel']} x "
                          f"{fields['pipeline_parallel']} (override num_chips for more chips)")
    from sim.runtime import check_runtime

    system = build(System, fields)
    check_runtime(system)
    return system


def set_path(fields: dict[str, Any], path: str, value: Any) -> None:
    """Set ``fields[a][b][c] = value`` for ``path`` ``"a.b.c"``; `ConfigError` naming the path
    when a part of it is not a field (the fields there are listed)."""
    parts = path.split(".")
    node: Any = fields
    for i, part in enumerate(parts):
        where = ".".join(parts[:i]) or "the system"
        if not isinstance(node, dict) or part not in node:
            allowed = ", ".join(node) if isinstance(node, dict) else "no fields"
            if isinstance(node, dict) and len(node) > 2:
                allowed = ", ".join(list(node)[:2]) + ", ..."
            raise ConfigError(f"{path}: unknown field path ({where} has: {allowed})")
        if i == len(parts) - 1:
            node[part] = value
        else:
            node = node[part]


def load_model(model: str | ModelConfig) -> ModelConfig:
    """A shipped model by name (``llama2-7b``, see ``pdsim list``) or a Hugging Face
    ``config.json`` path, validated."""
    return model if isinstance(model, ModelConfig) else _load_model_source(model).config


@dataclass(frozen=True, slots=True)
class Result:
    """What `run` returns: the full `RunResult` (every step, for traces) and the inputs that
    produced it. ``summary`` is the run summary (docs/trace-format.md lists its keys)."""

    run: RunResult
    inputs: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> dict[str, float | int | bool]:
        return self.run.summary

    def row(self) -> dict[str, Any]:
        """One flat table row: the inputs, then every summary metric, then the system's cost
        and TDP (SPAD's cost model figures of one chip, times the chips a run uses)."""
        chip = self.run.system.chip
        chips = self.run.summary["chips"]
        return {**self.inputs, **self.run.summary,
                "chip_cost_usd": chip.cost_usd, "chip_tdp_w": chip.tdp_w,
                "system_cost_usd": chips * chip.cost_usd, "system_tdp_w": chips * chip.tdp_w}


def run(system: System | str, model: ModelConfig | str, *, batch: int = 1, prompt: int = 2048,
        gen: int = 128, dtype: str = "fp16", weight_dtype: str | None = None,
        kv_dtype: str | None = None, detail: str = "tile", decode_sample: int | None = None,
        check_capacity: bool = True) -> Result:
    """Simulate ``batch`` requests of ``prompt`` tokens generating ``gen`` tokens each: one
    prefill, then every decode step (or ``decode_sample`` of them, interpolated).

    ``dtype`` is the activation format and the default of ``weight_dtype`` and ``kv_dtype``;
    ``detail`` is ``"tile"`` (default) or ``"roofline"``. Times are in seconds, energy in
    joules, bytes per chip unless a key says otherwise.
    """
    system = load_system(system) if isinstance(system, str) else system
    model = load_model(model)
    precision = Precision(weight=weight_dtype or dtype, activation=dtype,
                          kv=kv_dtype or dtype)
    workload = Workload(batch=batch, prompt_tokens=prompt, gen_tokens=gen, precision=precision)
    result = simulate(system, model, workload, detail=detail, decode_sample=decode_sample,
                      check_capacity=check_capacity)
    inputs = {"hw": system.name, "model": model.name, "batch": batch, "prompt": prompt,
              "gen": gen, "dtype": dtype, "weight_dtype": precision.weight,
              "kv_dtype": precision.kv, "detail": detail,
              "decode_sample": decode_sample if decode_sample is not None else 0,
              "tp": system.tensor_parallel, "pp": system.pipeline_parallel}
    return Result(run=result, inputs=inputs)


def train(system: System | str, model: ModelConfig | str, *, batch: int = 1, seq: int = 2048,
          lora_rank: int | None = None, lora_targets: tuple[str, ...] = ("q", "v"),
          recompute: str = "none", optimizer_dtype: str = "fp32", dtype: str = "bf16",
          detail: str = "tile", reuse: str = "none",
          pcie_bytes_per_s: float | None = None) -> TrainResult:
    """Cost one training step (docs/training.md): ``batch`` sequences of ``seq`` tokens, full
    fine-tuning or LoRA of rank ``lora_rank`` on ``lora_targets``, ``recompute`` ``none`` or
    ``full``, AdamW state in ``optimizer_dtype``, ``dtype`` weights, gradients and
    activations; ``reuse="activations"``: serving recorded the forward (Alchemist), its
    records read back from the host at ``pcie_bytes_per_s`` (bytes/s; None: on the chip).
    Times in seconds, memory in bytes, per chip."""
    system = load_system(system) if isinstance(system, str) else system
    spec = TrainSpec(batch=batch, seq=seq, lora_rank=lora_rank, lora_targets=lora_targets,
                     recompute=recompute, optimizer_dtype=optimizer_dtype, reuse=reuse)
    pcie = pcie_bytes_per_s
    if pcie is not None and (reuse != "activations" or isinstance(pcie, bool)
                             or not isinstance(pcie, (int, float)) or not math.isfinite(pcie)
                             or pcie <= 0):
        raise ConfigError(f"pcie_bytes_per_s: needs reuse='activations' and a positive "
                          f"number of bytes/s, got {pcie_bytes_per_s!r}")
    precision = Precision(weight=dtype, activation=dtype, kv=dtype)
    return train_step(system, load_model(model), spec, precision=precision, detail=detail,
                      pcie_bytes_per_s=pcie_bytes_per_s)


def finite_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """``row`` with NaN and infinite floats as None (Parquet and CSV nulls)."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in row.items()}
