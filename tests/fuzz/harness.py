"""The property every fuzzed command must keep, and the strategies the fuzz draws from.

A `pdsim` command, whatever it is given, either succeeds (exit 0; its ``--json`` output parses
and every number in it is finite and non-negative, every utilisation or fraction at most 1;
nothing on stderr) or refuses (exit 2; exactly one line on stderr, nothing on stdout). It never
raises, never warns, never runs unbounded, and leaves nothing in the folder but the output it
was asked for (no hidden temporary file beside ``-o``).

The CLI runs in-process (`sim.cli.main.main`) so each example costs milliseconds, not an
interpreter start.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import signal
import warnings
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from sim.cli.main import main

#: Fixed example budgets: the same examples on every run (derandomize), no example database,
#: no per-example deadline (a loaded CI machine is not a bug); `LIMIT_S` catches unbounded work.
#: ``PDSIM_FUZZ_NO_SHRINK=1`` reports the first failing example as drawn (a quick local hunt).
FUZZ = settings(derandomize=True, deadline=None, database=None, print_blob=False,
                phases=[p for p in Phase if not (p is Phase.shrink
                                                 and os.environ.get("PDSIM_FUZZ_NO_SHRINK"))],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.data_too_large])

#: Seconds one example may run: every example is milliseconds of work, so a command that takes
#: this long is doing work that grows with a number nobody bounded.
LIMIT_S = float(os.environ.get("PDSIM_FUZZ_LIMIT_S", "20"))


class Unbounded(AssertionError):
    """A command ran past `LIMIT_S`."""


@dataclass(frozen=True)
class Outcome:
    argv: tuple[str, ...]
    code: int
    out: str
    err: str
    new_paths: frozenset[str]


def listing(folder: Path) -> frozenset[str]:
    """Every path under ``folder``, hidden ones included, relative to it."""
    return frozenset(str(p.relative_to(folder)) for p in folder.rglob("*"))


@contextlib.contextmanager
def _time_limit(seconds: float):
    """Raise `Unbounded` once ``seconds`` have passed (inside a Numba kernel the alarm surfaces
    as whatever the kernel's caller makes of it, so any exception after the alarm is
    `Unbounded`)."""
    fired = []

    def expire(signum, frame):
        fired.append(True)
        raise Unbounded(f"still running after {seconds:g} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except Exception as exc:
        if fired and not isinstance(exc, Unbounded):
            raise Unbounded(f"still running after {seconds:g} s") from exc
        raise
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def invoke(argv: list[str], folder: Path) -> Outcome:
    """Run ``pdsim ARGV`` in-process with ``folder`` as the working directory. An exception
    (a traceback, for a user) or a warning propagates as a test failure."""
    before = listing(folder)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(folder), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning (overflow, 0/0) is a wrong answer
        try:
            with _time_limit(LIMIT_S):
                code = main(argv)
        except SystemExit as exc:  # argparse: --help, or a bad flag
            code = exc.code
    return Outcome(argv=tuple(argv), code=code, out=out.getvalue(), err=err.getvalue(),
                   new_paths=listing(folder) - before)


def check(o: Outcome, *, outputs: frozenset[str] = frozenset(), json_out: bool = True):
    """Assert the property; ``outputs`` are the paths (relative to the folder) that a success
    may create, parent folders included."""
    where = f"pdsim {' '.join(o.argv)}"
    if o.code == 2:
        lines = o.err.splitlines()
        assert len(lines) == 1 and o.err.endswith("\n"), f"{where}: stderr {o.err!r}"
        assert lines[0].startswith("pdsim"), f"{where}: stderr {o.err!r}"
        assert o.out == "", f"{where}: refused but printed {o.out[:200]!r}"
        assert not o.new_paths, f"{where}: refused but left {sorted(o.new_paths)}"
        return None
    assert o.code == 0, f"{where}: exit {o.code!r}, stderr {o.err!r}"
    assert o.err == "", f"{where}: succeeded with stderr {o.err!r}"
    assert o.new_paths <= outputs, f"{where}: left {sorted(o.new_paths - outputs)}"
    if not json_out:
        return None
    data = json.loads(o.out)
    for key, value in numbers(data):
        assert math.isfinite(value) and value >= 0, f"{where}: {key} = {value!r}"
        name = key.rsplit(".", 1)[-1]
        if name.endswith(("utilization", "fraction")):
            assert value <= 1 + 1e-9, f"{where}: {key} = {value!r}"
    return data




def numbers(value, key: str = ""):
    """(dotted key, number) for every number in parsed JSON (``null`` is pdsim's "not
    modelled" and is skipped)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from numbers(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from numbers(v, f"{key}[{i}]")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield key, value


# --- strategies -------------------------------------------------------------------------

#: Integers at the edges of what numpy, numba and HDF5 hold.
EDGE_INTS = (0, 1, 2, 3, 7, 8, 63, 64, 65, 1023, 2**31 - 1, 2**31, 2**32 + 1, 2**53 + 1,
             2**63 - 1, 2**63, 2**64, 10**12, 10**15, 10**18, 10**23, 10**24 - 1, 10**30)

#: Texts a user might type where a number is expected.
ODD_TEXTS = ("1e23", "1e3", "2.0", "1.5", "0x10", "1_000", "", " ", "nan", "inf", "-inf", "-0",
             "+5", " 8 ", "\u0663", "\uff11\uff12", "9" * 24, "-" + "9" * 24, "1e308", "1e-3",
             "3 4", "five")

small_ints = st.integers(-2, 70)
ints = st.one_of(small_ints, st.sampled_from(EDGE_INTS), st.sampled_from(EDGE_INTS).map(
    lambda v: -v), st.integers(-10**30, 10**30))

#: Text for an integer flag: mostly integers, sometimes anything a user might type.
int_text = st.one_of(ints.map(str), st.sampled_from(ODD_TEXTS))

#: Text for a float flag.
float_text = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr), ints.map(str),
    st.sampled_from(ODD_TEXTS))


def flag_args(fuzzed: dict[str, str]) -> list[str]:
    """``--flag=value`` for each item (``=`` so that "-1" or "-inf" is a value, not a flag)."""
    return [f"--{name}={value}" for name, value in fuzzed.items()]


def fuzz_flags(names: tuple[str, ...], values=int_text, most: int = 2):
    """A strategy of {flag: text} for up to ``most`` of ``names``."""
    return st.dictionaries(st.sampled_from(names), values, max_size=most)


def budget(examples: int) -> int:
    """``examples`` (the CI budget) times ``PDSIM_FUZZ_SCALE`` (default 1), for a longer local
    hunt: ``PDSIM_FUZZ_SCALE=20 pytest tests/fuzz``."""
    return examples * int(os.environ.get("PDSIM_FUZZ_SCALE", "1"))
