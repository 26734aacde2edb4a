"""Driver, Monitor, Model and Checker of the datapath testbench (cocotb 2).

Every component acts at the falling clock edge: it reads the DUT's handshake outputs (which
change only at rising edges: ``cmd.ready`` and ``data_in.ready`` follow the FSM state,
``c_out.valid`` is a register) and sets its own inputs for the next rising edge. A handshake
therefore happens at the rising edge after a falling edge where both sides were high.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from cocotb.triggers import FallingEdge

from sim.units.systolic.datapath import OPS, Command, DatapathModel
from testbenches.operands import numpy_reference


class StreamDriver:
    """Drives a stream's ``valid``/``payload`` from a queue of beats; with ``gap`` > 0 it
    leaves ``valid`` low on that fraction of cycles (seeded). Counts ``stalls``: cycles where
    the DUT was ready and the driver had nothing on the bus."""

    def __init__(self, clk, valid, payload, ready, *, gap: float = 0.0,
                 rng: np.random.Generator | None = None) -> None:
        self.clk, self.valid, self.payload, self.ready = clk, valid, payload, ready
        self.gap, self.rng = gap, rng or np.random.default_rng(0)
        self.queue: list[int] = []
        self.stalls = 0
        valid.value = 0

    async def run(self) -> None:
        while True:
            await FallingEdge(self.clk)
            ready = int(self.ready.value)
            send = bool(self.queue) and not (self.gap and self.rng.random() < self.gap)
            self.valid.value = int(send)
            if send:
                self.payload.value = self.queue[0]
                if ready:
                    self.queue.pop(0)
            elif ready:
                self.stalls += 1


class StreamMonitor:
    """Takes beats from an output stream, with ``ready`` low on a ``backpressure`` fraction of
    cycles (seeded), and hands each beat to ``callback``. Counts ``stalls``: cycles where the
    DUT offered a beat and the monitor refused it."""

    def __init__(self, clk, valid, payload, ready, callback: Callable[[int], None], *,
                 backpressure: float = 0.0, rng: np.random.Generator | None = None) -> None:
        self.clk, self.valid, self.payload, self.ready = clk, valid, payload, ready
        self.callback, self.backpressure = callback, backpressure
        self.rng = rng or np.random.default_rng(1)
        self.stalls = 0
        ready.value = 0

    async def run(self) -> None:
        while True:
            await FallingEdge(self.clk)
            take = int(not (self.backpressure and self.rng.random() < self.backpressure))
            self.ready.value = take
            if int(self.valid.value):
                if take:
                    self.callback(self.payload.value.to_signed())
                else:
                    self.stalls += 1


class CommandDriver:
    """Issues commands back to back on the ``cmd`` stream and measures each one: the busy
    cycles (falling edges with ``cmd.ready`` low after the accepting edge) and the stalls the
    stream partners caused meanwhile; reports ``(command, busy, stalls)`` to ``callback``."""

    def __init__(self, dut, layout_bits: dict[str, tuple[int, int]],
                 stall_sources: list, callback: Callable[[Command, int, int], None]) -> None:
        self.dut, self.bits = dut, layout_bits
        self.sources, self.callback = stall_sources, callback
        dut.cmd__valid.value = 0

    def encode(self, cmd: Command) -> int:
        fields = {"op": OPS[cmd.op], "m": cmd.m, "n": cmd.n, "k": cmd.k}
        return sum(fields[name] << offset for name, (offset, _) in self.bits.items())

    async def issue(self, commands: list[Command]) -> None:
        dut = self.dut
        await FallingEdge(dut.clk)
        for cmd in commands:
            dut.cmd__valid.value = 1
            dut.cmd__payload.value = self.encode(cmd)
            while not int(dut.cmd__ready.value):
                await FallingEdge(dut.clk)
            before = sum(s.stalls for s in self.sources)
            await FallingEdge(dut.clk)                  # accepted at the rising edge before
            dut.cmd__valid.value = 0
            busy = 0
            while not int(dut.cmd__ready.value):
                busy += 1
                await FallingEdge(dut.clk)
            self.callback(cmd, busy, sum(s.stalls for s in self.sources) - before)


@dataclass
class Checker:
    """Compares every command's busy cycles with the model and every drained result with
    numpy; keeps one record per GEMM for the report and a list of mismatches."""

    model: DatapathModel
    mismatches: list[str] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    expected: list[tuple[dict, np.ndarray]] = field(default_factory=list)
    beats: list[int] = field(default_factory=list)

    def expect(self, case: dict, a: np.ndarray, b: np.ndarray) -> None:
        """Queue one GEMM's expected result: numpy's, checked against the model's too."""
        ref = numpy_reference(self.model.config.mode, a, b)
        if not np.array_equal(ref, self.model.gemm(a, b)):
            self.mismatches.append(f"{case}: model result differs from numpy")
        self.expected.append((case, ref))
        self.records.append({**case, "cycles": {}, "model_cycles": {}, "match": None})

    def on_beat(self, value: int) -> None:
        self.beats.append(value)

    def on_command(self, cmd: Command, busy: int, stalls: int) -> None:
        record = next(r for r in self.records if cmd.op not in r["cycles"])
        predicted = self.model.command_cycles(cmd, stalls)
        record["cycles"][cmd.op] = busy
        record["model_cycles"][cmd.op] = predicted
        record.setdefault("stalls", {})[cmd.op] = stalls
        if busy != predicted:
            self.mismatches.append(f"{record['name']}: {cmd.op} took {busy} cycles, model "
                                   f"predicts {predicted} ({stalls} stall cycles)")
        if cmd.op == "DRAIN_C":
            case, ref = self.expected[self.records.index(record)]
            got = np.array(self.beats[:ref.size], dtype=np.int64)
            del self.beats[:ref.size]
            ok = got.size == ref.size and np.array_equal(got.reshape(ref.shape), ref)
            record["match"] = bool(ok)
            if not ok:
                self.mismatches.append(f"{case['name']}: result differs from numpy")
