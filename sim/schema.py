"""Build frozen dataclasses from plain mappings (parsed YAML/JSON), with errors for people.

One generic builder serves every description type: it walks the dataclass fields, rejects
unknown and missing keys, coerces numbers (a numeric string such as a quoted ``"80e9"`` is
accepted for a numeric field; `load_yaml` reads an unquoted ``80e9`` as a float), and
prefixes every error with the dotted path of the field, e.g.
``chip.core.systolic_array.rows: must be >= 1, got 0``.
Validation of values lives in each dataclass's ``__post_init__``; the builder only adds the
path.

A field whose metadata names ``sections`` (``"module:function"`` returning a mapping of key ->
dataclass) is not written under its own name: each of those keys is a section of the
enclosing mapping, built into that section's dataclass, and the field receives the sections
present as ``(key, object)`` pairs in the provider's order. That is how a chip's memory-side
units (`sim.units.registry`) are read without the chip's dataclass naming them.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import math
import types
import typing
from typing import Any, Mapping, TypeVar

from sim.errors import ConfigError
from sim.limits import check_exact_int, check_float_range

T = TypeVar("T")


def build(cls: type, data: Any, path: str = "") -> Any:
    """Construct dataclass ``cls`` from mapping ``data``; ``path`` prefixes error messages."""
    where = path or "top level"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of fields, got {_kind(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    sectioned = {name: _sections(f) for name, f in fields.items() if "sections" in f.metadata}
    keys = [n for n in fields if n not in sectioned] + [k for s in sectioned.values() for k in s]
    unknown = sorted(set(map(str, data)) - set(keys))
    if unknown:
        raise ConfigError(
            f"{_join(path, unknown[0])}: unknown field (allowed: {', '.join(keys)})")
    kwargs = {}
    for name, sections in sectioned.items():
        kwargs[name] = tuple((key, build(sec_cls, data[key], _join(path, key)))
                             for key, sec_cls in sections.items()
                             if key in data and data[key] is not None)
    for name, f in fields.items():
        if name in sectioned:
            continue
        sub = _join(path, name)
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{sub}: missing required field")
            continue
        kwargs[name] = _coerce(hints[name], data[name], sub)
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        # __post_init__ names the field relative to the object; add where the object sits.
        raise ConfigError(_join(path, str(exc)) if path else str(exc)) from None


def _sections(f: dataclasses.Field) -> dict[str, type]:
    """The section dataclasses, by key, of a field with ``sections`` metadata."""
    module, _, name = f.metadata["sections"].partition(":")
    return dict(getattr(importlib.import_module(module), name)())


def _coerce(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(inner, value, path)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, path)
    if origin is tuple:
        # tuple[tuple[str, float], ...] is a rate table written in YAML as a mapping.
        if args and typing.get_origin(args[0]) is tuple:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{path}: expected a mapping such as {{fp16: 1}}, "
                                  f"got {_kind(value)}")
            key_t, val_t = typing.get_args(args[0])
            return tuple(sorted((_coerce(key_t, k, f"{path}.{k}"),
                                 _coerce(val_t, v, f"{path}.{k}")) for k, v in value.items()))
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {_kind(value)}")
        return tuple(_coerce(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if tp is int:
        number = _number(value, path)
        if not float(number).is_integer():
            raise ConfigError(f"{path}: expected an integer, got {value!r}")
        check_exact_int(number, path)
        return int(number)
    if tp is float:
        number = float(_number(value, path))
        check_float_range(number, path)
        return number
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: expected a string, got {_kind(value)}")
        return value
    raise TypeError(f"schema: unsupported field type {tp!r} at {path}")  # a pdsim bug


def _number(value: Any, path: str) -> float | int:
    if isinstance(value, bool):
        raise ConfigError(f"{path}: expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        number = value
    elif isinstance(value, str):
        try:
            number = float(value.replace("_", ""))
        except ValueError:
            raise ConfigError(f"{path}: expected a number, got {value!r}") from None
    else:
        raise ConfigError(f"{path}: expected a number, got {_kind(value)}")
    if not math.isfinite(number):
        raise ConfigError(f"{path}: expected a finite number, got {value!r}")
    return number


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def to_dict(obj: Any) -> Any:
    """Inverse of `build` for JSON output: dataclasses to dicts, rate tables to mappings."""
    if dataclasses.is_dataclass(obj):
        out = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if "sections" in f.metadata:  # the enclosing mapping's own keys, None if absent
                out.update((key, None) for key in _sections(f))
                out.update((key, to_dict(sec)) for key, sec in value.items())
            else:
                out[f.name] = to_dict(value)
        return out
    if isinstance(obj, tuple):
        if obj and all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str)
                       for p in obj):
            return {k: to_dict(v) for k, v in obj}
        return [to_dict(v) for v in obj]
    return obj


def parse_yaml(cls: type[T], text: str, where: str) -> T:
    """Parse YAML ``text`` into a validated ``cls``; every error is one line that starts with
    ``where`` (the preset name or file path) and names the line or field."""
    data = load_yaml(text, where)
    try:
        return build(cls, data)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def load_yaml(text: str, where: str) -> Any:
    """Parse YAML ``text`` (safe subset) into plain data; a syntax error, a key given twice
    in one mapping or nesting too deep for the parser is one `ConfigError` line starting
    with ``where``.

    Numbers: YAML 1.2 float syntax is read as a float, as users expect: ``1e9``, ``2.5e10``,
    ``-3E-2``, ``.5``, ``-.5`` (PyYAML's YAML 1.1 reads these as strings). The rest is YAML
    1.1 as PyYAML reads it: ``1_000`` is the integer 1000, ``0x10`` is 16. A quoted
    ``"1e9"`` stays a string, and so does ``1.2.3``."""
    import yaml

    try:
        return yaml.load(text, Loader=_pdsim_loader())
    except RecursionError:
        raise ConfigError(f"{where}: nested too deeply to parse") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(f"{where}: malformed YAML{at}: {problem}") from None


# The YAML 1.2 core schema's float (https://yaml.org/spec/1.2.2/#1032-tag-resolution), plus
# YAML 1.1's digit separators ``_`` and sexagesimal floats that PyYAML's own float accepts.
# Its exponent sign is optional and a float needs no dot (``1e9``); PyYAML (YAML 1.1) wants
# both, so ``1e9``, a usual way to write a bandwidth or a frequency, would be a string
# (yaml/pyyaml#173). A plain integer (no dot, no exponent) is left to the int resolver.
_FLOAT_1_2 = r"""^(?:[-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)?
                |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
                |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$"""
_FLOAT_TAG = "tag:yaml.org,2002:float"


@functools.lru_cache(maxsize=1)
def _pdsim_loader() -> type:
    """`yaml.SafeLoader` that reads YAML 1.2 floats (`load_yaml`) and refuses a key given
    twice in one mapping (PyYAML keeps the last silently), naming the key and its line.
    Built on first use: importing pdsim does not import PyYAML."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if not isinstance(key, typing.Hashable):
                    continue  # SafeLoader refuses it itself, with its own message
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} given twice", key_node.start_mark)
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    # Swap the float resolver in place (not appended after it), so a plain scalar is tried
    # against the same tags in the same order as before: bool, then float, then int, ...
    # The class gets its own copy of the table; SafeLoader's is left as it is.
    float_re = re.compile(_FLOAT_1_2, re.X)
    Loader.yaml_implicit_resolvers = {
        first: [(tag, float_re if tag == _FLOAT_TAG else regexp) for tag, regexp in resolvers]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    return Loader
