"""Quantization schemes as data: one YAML file per scheme in ``mappers/schemes/``, or your own.

A scheme names the storage format of each operand and the work it adds (issue 14)::

    weight: int4              # weight format (required)
    activation: fp8           # activation / compute format (required)
    kv: int4                  # KV-cache format (required)
    acc: fp32                 # accumulators (default fp32)
    weight_group: 128         # weights per scale along K (0: one per output channel for
                              # integer weights, none for floating ones)
    scale_dtype: fp16         # format of the scales (default fp16)
    weight_dequant: vector    # none | vector | mainloop: where weights are dequantized
    dequant_ops: 1            # vector ops per weight element per dequantization
    act_quant_ops: 3          # vector ops per activation element quantized after a norm
    kv_scale_group: head      # KV-cache scales: head (one per token and KV head), channel
                              # (one per KV head and channel, static), G > 0 (per token, one
                              # per G elements along head_dim) or 0 (none, the default)
    kv_scale_dtype: fp16      # format of the KV scales (default fp16)
    kv_zero_points: true      # asymmetric KV: a zero point of that format beside each scale
    kv_dequant_ops: 2         # vector ops per KV element dequantized where attention runs

`load_scheme` takes a shipped name or a path and returns a `mappers.ir.Precision`; a bad name,
an unreadable file, unknown keys or bad values raise `ConfigError` naming ``--quant`` and the
field (the CLI prints one line and exits 2).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from sim.errors import ConfigError, PdsimError
from sim.files import read_text
from sim.schema import load_yaml

from .ir import DEQUANT_PLACES, KV_SCALE_CHANNEL, KV_SCALE_HEAD, Precision

_FIELDS = {"weight": "weight", "activation": "activation", "kv": "kv", "acc": "acc",
           "weight_group": "scale_group", "scale_dtype": "scale_dtype",
           "weight_dequant": "weight_dequant", "dequant_ops": "dequant_ops",
           "act_quant_ops": "act_quant_ops", "kv_scale_group": "kv_scale_group",
           "kv_scale_dtype": "kv_scale_dtype", "kv_zero_points": "kv_zero_points",
           "kv_dequant_ops": "kv_dequant_ops"}
_KV_GROUP_WORDS = {"head": KV_SCALE_HEAD, "channel": KV_SCALE_CHANNEL}
_REQUIRED = ("weight", "activation", "kv")


def shipped_schemes() -> tuple[str, ...]:
    """Names of the schemes shipped in ``mappers/schemes/``."""
    folder = resources.files("mappers") / "schemes"
    return tuple(sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml")))


def load_scheme(spec: str) -> Precision:
    """The `Precision` of the shipped scheme ``spec``, or of the YAML file at path ``spec``."""
    if spec in shipped_schemes():
        text = (resources.files("mappers") / "schemes" / f"{spec}.yaml").read_text()
        where = f"--quant {spec}"
    elif spec.endswith((".yaml", ".yml")) or Path(spec).is_file():
        try:  # the one input reader: a regular UTF-8 file of bounded size
            text = read_text(spec, "--quant")
        except PdsimError as exc:
            raise ConfigError(str(exc)) from None
        where = f"--quant {spec}"
    else:
        raise ConfigError(f"--quant: unknown scheme {spec!r} (allowed: "
                          f"{', '.join(shipped_schemes())}, or a YAML file)")
    return parse_scheme(text, where)


def parse_scheme(text: str, where: str = "--quant") -> Precision:
    """Validate a scheme's YAML text (see module) into a `Precision`."""
    data = load_yaml(text, where)  # pdsim's one YAML reader: 1e9 is a number, keys once
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must be a mapping of scheme fields "
                          f"({', '.join(_FIELDS)})")
    unknown = sorted(str(k) for k in data if k not in _FIELDS)
    if unknown:
        raise ConfigError(f"{where}: unknown field {unknown[0]!r} (allowed: "
                          f"{', '.join(_FIELDS)})")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise ConfigError(f"{where}: missing field {missing[0]!r} (required: "
                          f"{', '.join(_REQUIRED)})")
    for key in ("weight", "activation", "kv", "acc", "scale_dtype", "weight_dequant",
                "kv_scale_dtype"):
        if key in data and not isinstance(data[key], str):
            raise ConfigError(f"{where}: {key} must be a name, got {data[key]!r}")
    if "weight_group" in data and (not isinstance(data["weight_group"], int)
                                   or isinstance(data["weight_group"], bool)):
        raise ConfigError(f"{where}: weight_group must be an integer >= 0, got "
                          f"{data['weight_group']!r}")
    group = data.get("kv_scale_group", 0)
    if group in _KV_GROUP_WORDS:
        group = _KV_GROUP_WORDS[group]
    elif isinstance(group, bool) or not isinstance(group, int) or group < 0:
        raise ConfigError(f"{where}: kv_scale_group must be head, channel or an integer >= 0, "
                          f"got {group!r}")
    if not isinstance(data.get("kv_zero_points", False), bool):
        raise ConfigError(f"{where}: kv_zero_points must be true or false, got "
                          f"{data['kv_zero_points']!r}")
    for key in ("dequant_ops", "act_quant_ops", "kv_dequant_ops"):
        value = data.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"{where}: {key} must be a number >= 0, got {value!r}")
    if data.get("weight_dequant", "none") not in DEQUANT_PLACES:
        raise ConfigError(f"{where}: weight_dequant must be one of "
                          f"{', '.join(DEQUANT_PLACES)}, got {data['weight_dequant']!r}")
    fields = {_FIELDS[k]: v for k, v in data.items()}
    fields["kv_scale_group"] = group
    # integer weights without groups carry one scale per output channel (SmoothQuant, FireQ);
    # floating ones (FP8) a per-tensor scale, which is no bytes to speak of
    fields["channel_scales"] = (not data.get("weight_group")
                                and str(data["weight"]).startswith("int"))
    try:
        return Precision(**fields)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
