"""Files shipped as package data (presets, model configs), and the name-or-path rule.

A spec that names a shipped file loads it; anything else is a path. A spec that is neither an
existing file nor has the expected suffix is reported as an unknown name, listing the shipped
ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from sim.errors import ConfigError, PdsimError
from sim.files import read_text


@dataclass(frozen=True, slots=True)
class Shelf:
    """Shipped files ``<package>/<folder>/*<suffix>``; ``flag`` and ``noun`` word errors."""

    package: str
    folder: str
    suffixes: tuple[str, ...]
    flag: str
    noun: str

    def names(self) -> tuple[str, ...]:
        """Names of the shipped files, without suffix, sorted."""
        folder = resources.files(self.package) / self.folder
        return tuple(sorted(p.name[: -len(self.suffixes[0])] for p in folder.iterdir()
                            if p.name.endswith(self.suffixes[0])))

    def read(self, spec: str) -> tuple[str, Path | None]:
        """Text of a shipped file by name (path None) or of a file by path."""
        if spec in self.names():
            file = resources.files(self.package) / self.folder / f"{spec}{self.suffixes[0]}"
            return file.read_text(), None
        path = Path(spec)
        if path.suffix not in self.suffixes and not path.exists():
            raise ConfigError(f"{self.flag}: unknown {self.noun} {spec!r} ({self.noun}s: "
                              f"{', '.join(self.names())}; or a path to a "
                              f"{self.suffixes[0]} file)")
        try:
            return read_text(path, self.flag), path
        except PdsimError as exc:
            raise ConfigError(str(exc)) from None
