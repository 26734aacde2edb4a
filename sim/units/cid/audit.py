"""Checking every command stream an op model generates (``pdsim cid --check``, ``pdsim run
--check-dram``).

The op layer (`sim.units.cid.ops`) asks the engine for one pseudo-channel program per op and
reports the op's time from that program's end cycle. Given a `StreamAudit`, it also hands the
audit each program it runs: the audit re-runs it with the stream recorded and checks it with
`sim.units.cid.check.check_stream`, including the data latency against the end cycle the op
reported. A program already checked by this audit is not checked again.
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.units.cid.check import Violation, check_stream
from sim.units.cid.dram import DramDevice
from sim.units.cid.engine import run_channel


@dataclass(frozen=True, slots=True)
class Program:
    """One PC's program, the arguments of `sim.units.cid.engine.run_channel`."""

    mode: str
    steps: int
    cols: int
    cols_last: int
    chunks: int
    gb_writes: int
    reads: int
    passes: int = 1  # column passes per open row: input vectors held at once (multi-token)
    sub_cols: int = 0  # columns per buffer refill inside a step (0: none)

    def __str__(self) -> str:
        passes = f"{self.passes} passes of " if self.passes > 1 else ""
        if self.sub_cols:
            passes += f"(refilled every {self.sub_cols}) "
        return (f"{self.mode} mode, {self.chunks} x ({self.gb_writes} WRGB, {self.steps} "
                f"steps of {passes}{self.cols} columns ({self.cols_last} in the last chunk), "
                f"{self.reads} RDRES per step)")


class StreamAudit:
    """Tally of the command streams checked during one simulation. The caller creates one and
    passes it down explicitly (nothing global); ``max_postponed`` is `check_stream`'s refresh
    allowance.

    After the simulation: ``streams`` distinct programs checked, ``commands`` commands in
    them, ``violations`` a list of (device name, program, `Violation`), empty when every stream
    is legal.
    """

    __slots__ = ("max_postponed", "streams", "commands", "violations", "_seen")

    def __init__(self, *, max_postponed: int = 1) -> None:
        self.max_postponed = max_postponed
        self.streams = 0
        self.commands = 0
        self.violations: list[tuple[str, Program, Violation]] = []
        self._seen: set[tuple[DramDevice, Program, int]] = set()

    def check(self, device: DramDevice, program: Program, end_cycle: int) -> None:
        """Record ``program`` on ``device`` and check its stream against the op's reported end
        (``end_cycle``, cycles of ``device.timing.tck_s``)."""
        key = (device, program, end_cycle)
        if key in self._seen:
            return
        self._seen.add(key)
        p = program
        run = run_channel(device, p.mode, steps=p.steps, cols=p.cols, cols_last=p.cols_last,
                          chunks=p.chunks, gb_writes=p.gb_writes, reads=p.reads,
                          passes=p.passes, sub_cols=p.sub_cols, record=True)
        found = check_stream(run.stream, device, end_cycle=end_cycle,
                             max_postponed=self.max_postponed)
        self.streams += 1
        self.commands += len(run.stream)
        self.violations.extend((device.name, p, v) for v in found)

    def lines(self, limit: int = 20) -> list[str]:
        """The violations as readable lines, at most ``limit`` plus a count of the rest."""
        out = [f"{name} ({program}): {v}" for name, program, v in self.violations[:limit]]
        if len(self.violations) > limit:
            out.append(f"... and {len(self.violations) - limit} more")
        return out

    def summary(self) -> dict:
        """The tally as plain data (for JSON output)."""
        return {"streams": self.streams, "commands": self.commands,
                "violations": [{"dram": name, "program": str(p), "rule": v.rule,
                                "index": v.index, "cycle": v.cycle, "found": v.found,
                                "required": v.required, "what": v.what}
                               for name, p, v in self.violations]}

    def headline(self) -> str:
        """``DRAM command stream: N commands checked, V violations (S distinct streams)``."""
        return (f"DRAM command stream: {self.commands:,} commands checked, "
                f"{len(self.violations)} violations ({self.streams} distinct stream"
                f"{'' if self.streams == 1 else 's'})")
