"""Hardware presets and user hardware files (YAML), loaded through one validated path.

A hardware file describes a `sim.hardware.System`; see docs/hardware-yaml.md. Presets are
YAML files shipped in ``sim/presets/``. A name that is not a preset is treated as a path.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.errors import ConfigError
from sim.hardware import System
from sim.schema import parse_yaml
from sim.shipped import Shelf


@dataclass(frozen=True, slots=True)
class HardwareSpec:
    """A loaded system with the exact text it came from (stored in traces)."""

    system: System
    text: str
    source: str


PRESETS = Shelf(package="sim", folder="presets", suffixes=(".yaml", ".yml"), flag="--hw",
               noun="preset")


def preset_names() -> tuple[str, ...]:
    """Names of the shipped hardware presets, sorted."""
    return PRESETS.names()


def load_hardware(spec: str) -> HardwareSpec:
    """Load a preset by name (``h100``) or a YAML file by path."""
    text, path = PRESETS.read(spec)
    return HardwareSpec(system=parse_hardware(text, spec), text=text,
                        source=spec if path is None else str(path))


def parse_hardware(text: str, where: str) -> System:
    """Parse YAML text into a validated `System`; errors name ``where`` and the field."""
    from sim.runtime import check_runtime

    system = parse_yaml(System, text, where)
    try:
        check_runtime(system)
        if system.mapping is not None:
            from mappers.mapping import check_mapping
            check_mapping(system.mapping, "mapping")
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return system


def referenced_texts(system: System) -> dict[str, str]:
    """Texts of the files a system names rather than contains (a CiD unit's DRAM, a CiM unit's
    crossbar description), keyed by field path, so a trace can store everything it ran on."""
    from sim.units.registry import unit_type

    out = {}
    for key, desc in system.chip.units.items():
        texts = unit_type(key).model("referenced")
        if texts is not None:
            out.update((f"chip.{key}.{name}", text) for name, text in texts(desc).items())
    if system.runtime is not None:
        from sim.runtime import RUNTIMES
        out["runtime"] = RUNTIMES.read(system.runtime)[0]
    return out
