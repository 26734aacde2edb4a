"""Mutations of shipped description files (YAML presets, JSON model configs) as hypothesis
strategies: delete a key, set a value to something out of range or of the wrong type,
duplicate a key, inject bytes that are not UTF-8, cut the file short.

Each strategy draws bytes to write to a file: the mutated description.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import yaml
from hypothesis import strategies as st

from tests.fuzz.harness import EDGE_INTS

#: Values a field is set to: out of range, at the edges of int64 and float64, of the wrong
#: type.
ODD_VALUES = (
    *EDGE_INTS, *(-v for v in EDGE_INTS if v), 0.5, 1.5, 1e-300, 5e-324, 1e300, 1e30, 1e23,
    float("nan"), float("inf"), -float("inf"), -0.5, "abc", "", "1e30", "-1", "fp16", "1_0",
    "0x10", "\u00e9", [], [1, 2], ["fp16", "fp16"], {}, {"a": 1}, None, True, False,
)
values = st.one_of(st.sampled_from(ODD_VALUES), st.integers(), st.floats(), st.text(max_size=8))


def nodes(tree: Any, prefix: tuple = ()) -> list[tuple]:
    """Paths (key and index tuples) of every node below the root of a parsed document."""
    out = []
    children = (tree.items() if isinstance(tree, dict)
                else enumerate(tree) if isinstance(tree, list) else ())
    for key, child in children:
        out.append((*prefix, key))
        out.extend(nodes(child, (*prefix, key)))
    return out


def _parent(tree: Any, path: tuple) -> Any:
    for key in path[:-1]:
        tree = tree[key]
    return tree


@st.composite
def tree_mutation(draw, tree: Any) -> Any:
    """``tree`` with one node deleted or replaced by an odd value."""
    tree = copy.deepcopy(tree)
    if not nodes(tree):
        return tree
    path = draw(st.sampled_from(nodes(tree)))
    parent = _parent(tree, path)
    if draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(values)
    return tree


def _duplicate_line(text: str, index: int, value: str | None) -> str:
    """``text`` with a ``key: value`` line repeated right after itself (same indent, so the
    same mapping), with ``value`` instead of the original if given."""
    lines = text.splitlines(keepends=True)
    keyed = [i for i, line in enumerate(lines)
             if re.match(r'\s*("?[A-Za-z_][\w-]*"?)\s*:', line)]
    i = keyed[index % len(keyed)]
    line = lines[i]
    if value is not None:
        key = line.split(":", 1)[0]
        line = f"{key}: {value}" + (",\n" if line.rstrip().endswith(",") else "\n")
    return "".join(lines[: i + 1] + [line] + lines[i + 1:])


def _inject(data: bytes, offset: int, junk: bytes) -> bytes:
    offset %= len(data) + 1
    return data[:offset] + junk + data[offset:]


@st.composite
def mutated(draw, text: str, fmt: str = "yaml") -> bytes:
    """Bytes of ``text`` (a document in ``fmt``, "yaml" or "json") after one or two
    mutations: a changed tree, a duplicated key, injected non-UTF-8 bytes, another encoding,
    or a cut."""
    kind = draw(st.sampled_from(("tree", "tree", "tree", "tree", "tree2", "duplicate",
                                 "bytes", "encoding", "cut")))
    if kind.startswith("tree"):
        tree = yaml.safe_load(text) if fmt == "yaml" else json.loads(text)
        for _ in range(2 if kind == "tree2" else 1):
            tree = draw(tree_mutation(tree))
        if fmt == "json":
            return json.dumps(tree, indent=2).encode()
        return yaml.safe_dump(tree, sort_keys=False, allow_unicode=True).encode()
    if kind == "duplicate":
        value = draw(st.one_of(st.none(), st.sampled_from(("0", "-1", "1e30", "x", "[]"))))
        return _duplicate_line(text, draw(st.integers(0, 10**6)), value).encode()
    data = text.encode()
    if kind == "bytes":
        junk = draw(st.sampled_from((b"\xff\xfe", b"\x80", b"\xc3", b"\xed\xa0\x80", b"\x00")))
        return _inject(data, draw(st.integers(0, len(data))), junk)
    if kind == "encoding":
        return text.encode(draw(st.sampled_from(("utf-16", "utf-32", "latin-1", "cp1252"))),
                           errors="replace")
    return data[: draw(st.integers(0, len(data)))]
