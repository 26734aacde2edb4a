"""Fuzz ``pdsim show`` with damaged traces: a small real trace written by ``pdsim run -o``,
then cut short, bit-flipped, or edited with h5py (an object or attribute dropped, an attribute
or a table replaced by something of another type).

Property: `tests.fuzz.harness.check`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz.harness import FUZZ, budget, check, invoke

#: What an attribute or a table is replaced by.
ODD_ATTRS = ("", "x", b"\xff\xfe", -1, 0, 2**62, -2**62, 1e308, float("nan"), float("inf"),
             -1.5, True, np.array([1, 2, 3]), np.zeros((2, 2)), "1e30")
ODD_TABLES = (np.zeros(0), np.zeros(3, dtype="i8"), np.array([b"abc"]), np.zeros((2, 2)),
              np.array(-1.0), np.zeros(2, dtype=[("step", "i8")]))


@pytest.fixture(scope="module")
def trace(tmp_path_factory) -> bytes:
    """A real trace of a small run: its bytes."""
    folder = tmp_path_factory.mktemp("trace")
    o = invoke(["run", "--prompt", "16", "--gen", "4", "--json", "-o", "t.h5"], folder)
    check(o, outputs=frozenset({"t.h5"}))
    return _Bytes((folder / "t.h5").read_bytes())


class _Bytes(bytes):
    """Bytes that a failing example reports by size, not in full."""

    def __repr__(self) -> str:
        return f"<trace of {len(self)} bytes>"


#: A damage: ("cut", offset), ("flip", bit offsets) or ("edit", what, which, value index).
damages = st.one_of(
    st.tuples(st.just("cut"), st.integers(0, 10**6)),
    st.tuples(st.just("flip"), st.lists(st.integers(0, 10**8), min_size=1, max_size=8)),
    st.tuples(st.just("edit"), st.sampled_from(("drop", "drop-attr", "attr", "table")),
              st.integers(0, 10**6), st.integers(0, 10**6)),
)


def damage(path: Path, data: bytes, how: tuple) -> None:
    """Write ``data`` to ``path``, damaged as ``how`` says."""
    if how[0] == "cut":
        path.write_bytes(data[: how[1] % len(data)])
        return
    if how[0] == "flip":
        buf = bytearray(data)
        for bit in how[1]:
            bit %= 8 * len(buf)
            buf[bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(bytes(buf))
        return
    path.write_bytes(data)
    _, what, which, value = how
    with h5py.File(path, "r+") as f:
        groups = [f, f["meta"], f["summary"]]
        if what == "drop":
            names = ["meta", "summary", "steps", "ops"]
            del f[names[which % len(names)]]
            return
        attrs = [(g, k) for g in groups for k in g.attrs]
        group, key = attrs[which % len(attrs)]
        if what == "drop-attr":
            del group.attrs[key]
        elif what == "attr":
            group.attrs[key] = ODD_ATTRS[value % len(ODD_ATTRS)]
        else:
            name = ("steps", "ops")[which % 2]
            del f[name]
            f[name] = ODD_TABLES[value % len(ODD_TABLES)]


@settings(FUZZ, max_examples=budget(150))
@given(how=damages, ops=st.one_of(st.none(), st.integers(-1, 6).map(str)),
       as_json=st.booleans())
def test_damaged_traces(trace, how, ops, as_json):
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        damage(folder / "t.h5", trace, how)
        argv = ["show", "t.h5", *(["--json"] if as_json else []),
                *([f"--ops={ops}"] if ops is not None else [])]
        check(invoke(argv, folder), json_out=as_json)


@settings(FUZZ, max_examples=budget(10))
@given(how=damages, plot=st.sampled_from(("p.png", "p.svg", "p", "p.txt", "sub/p.png")))
def test_damaged_traces_plotted(trace, how, plot):
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        damage(folder / "t.h5", trace, how)
        outputs = frozenset({plot, *(["sub"] if "/" in plot else [])})
        check(invoke(["show", "t.h5", "--plot", plot], folder), outputs=outputs,
              json_out=False)
