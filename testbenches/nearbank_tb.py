"""cocotb test module of `rtl.nearbank.NearBankUnit` (the simulator imports it; not pytest).

The runner (`testbenches.nearbank_runner`) writes every replay of a run into one JSON file
(``PDSIM_TB_JOBS``): for each GEMV case and each unit that holds rows, the unit's commands at
the engine's cycles, its bank's bursts and the DRAM timing. One simulator launch replays them
all, with a reset between replays. Components:

* Driver (`CommandReplayer`): puts each command on ``cmd`` for exactly the cycle the engine
  scheduled it and records every cycle where ``cmd.ready`` was low (a refusal);
* Model of the bank (`BankModel`): a memory of bursts that answers each read ``tCL`` cycles
  after the read command and records every timing violation (tRCD, tRAS, tRP, tRC, tRTP,
  read of a closed row);
* Monitor (`ResultMonitor`): takes ``result`` beats, with the cycle they arrived;
* the Checker is the runner, which compares the beats with `sim.units.cid.nearbank_model`.
"""

from __future__ import annotations

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

OPS = {"ACT": 0, "PRE": 1, "REF": 2, "MAC": 3, "WRGB": 4, "RDRES": 5}


def _field(value: int, offset: int, width: int) -> int:
    return (value >> offset) & ((1 << width) - 1)


class CommandReplayer:
    """Drives one command bus (``valid``/``payload``/``ready``) with ``(cycle, payload)``
    pairs; ``refused`` lists the cycles at which a command was due and ``ready`` was low (it
    is then held until accepted), ``late`` the commands put on the bus after their cycle."""

    def __init__(self, valid, payload, ready, commands: list) -> None:
        self.valid, self.payload, self.ready = valid, payload, ready
        self.commands, self.i = commands, 0
        self.refused: list[int] = []
        self.late = 0

    def step(self, cycle: int) -> None:
        """Called at the falling edge before the rising edge of ``cycle``."""
        if self.i < len(self.commands) and self.commands[self.i][0] <= cycle:
            self.valid.value = 1
            self.payload.value = self.commands[self.i][1]
            if int(self.ready.value):
                self.late += self.commands[self.i][0] < cycle
                self.i += 1
            else:
                self.refused.append(cycle)
        else:
            self.valid.value = 0

    @property
    def done(self) -> bool:
        return self.i >= len(self.commands)


class BankModel:
    """One bank: ``bursts[(row, col)] = payload`` (codes and side-band), zero elsewhere."""

    def __init__(self, dut, bursts: dict, timing: dict, req_fields: dict) -> None:
        self.dut, self.bursts, self.t, self.f = dut, bursts, timing, req_fields
        self.open_row = None
        self.act = self.pre = self.rd = -(1 << 30)
        self.pending: list[tuple[int, int]] = []    # (cycle due, payload)
        self.violations: list[str] = []

    def _check(self, ok: bool, what: str, cycle: int) -> None:
        if not ok:
            self.violations.append(f"bank: {what} at cycle {cycle}")

    def step(self, cycle: int) -> None:
        """At the falling edge before ``cycle``'s rising edge: look at the request the unit
        forwarded (registered: the command was accepted at edge ``cycle - 1``) and answer the
        reads that are due."""
        dut, t = self.dut, self.t
        req = int(dut.bank_req.value)
        at = cycle - 1              # the command's edge: forwarded one cycle later
        if _field(req, *self.f["row_valid"]):
            op = _field(req, *self.f["op"])
            if op == OPS["ACT"]:
                self._check(self.open_row is None, "ACT to an open bank", at)
                self._check(at - self.pre >= t["tRP"], "tRP", at)
                self._check(at - self.act >= t["tRC"], "tRC", at)
                self.open_row, self.act = _field(req, *self.f["row"]), at
            elif op == OPS["PRE"]:
                if self.open_row is not None:
                    self._check(at - self.act >= t["tRAS"], "tRAS", at)
                    self._check(at - self.rd >= t["tRTP"], "tRTP", at)
                    self.pre = at
                self.open_row = None
            elif op == OPS["REF"]:
                self._check(self.open_row is None, "REF with an open row", at)
                self._check(at - self.pre >= t["tRP"], "tRP before REF", at)
        if _field(req, *self.f["rd_valid"]):
            self._check(self.open_row is not None, "read of a closed bank", at)
            self._check(at - self.act >= t["tRCD"], "tRCD", at)
            self.rd = at
            key = f"{self.open_row},{_field(req, *self.f['col'])}"
            self.pending.append((at + t["tCL"], self.bursts.get(key, 0)))
        if self.pending and self.pending[0][0] <= cycle:
            dut.bank_data__valid.value = 1
            dut.bank_data__payload.value = self.pending.pop(0)[1]
        else:
            dut.bank_data__valid.value = 0


class ResultMonitor:
    """Takes every ``result`` beat (always ready): ``beats`` holds ``(cycle, n, values)``."""

    def __init__(self, dut, rd_max: int, acc_bits: int, n_bits: int) -> None:
        self.dut, self.rd_max, self.acc_bits, self.n_bits = dut, rd_max, acc_bits, n_bits
        self.beats: list[tuple[int, int, list[int]]] = []
        dut.result__ready.value = 1

    def step(self, cycle: int) -> None:
        if int(self.dut.result__valid.value):
            p = int(self.dut.result__payload.value)
            n = p & ((1 << self.n_bits) - 1)
            vals = []
            for i in range(n):
                v = _field(p, self.n_bits + i * self.acc_bits, self.acc_bits)
                vals.append(v - (1 << self.acc_bits) if v >> (self.acc_bits - 1) else v)
            self.beats.append((cycle - 1, n, vals))


@cocotb.test()
async def replays(dut):
    """Replay every job of ``PDSIM_TB_JOBS``; write what was seen to ``PDSIM_TB_RESULTS``."""
    with open(os.environ["PDSIM_TB_JOBS"]) as f:
        spec = json.load(f)
    Clock(dut.clk, 10, unit="ns").start()
    out = []
    for job in spec["jobs"]:
        dut.rst.value = 1
        dut.cmd__valid.value = 0
        dut.row_cmd__valid.value = 0
        dut.bank_data__valid.value = 0
        await ClockCycles(dut.clk, 2)
        await FallingEdge(dut.clk)
        dut.rst.value = 0
        rows = CommandReplayer(dut.row_cmd__valid, dut.row_cmd__payload, dut.row_cmd__ready,
                               job["row_commands"])
        cols = CommandReplayer(dut.cmd__valid, dut.cmd__payload, dut.cmd__ready,
                               job["commands"])
        bank = BankModel(dut, job["bursts"], spec["timing"], spec["bank_fields"])
        monitor = ResultMonitor(dut, spec["rd_max"], spec["acc_bits"], spec["n_bits"])
        cycle, idle = 0, 0
        # Run until every command is in and nothing has moved for a while (the pipeline
        # drains within tCL + a few cycles of the last command).
        while not (rows.done and cols.done) or bank.pending or idle < spec["drain"]:
            monitor.step(cycle)
            bank.step(cycle)
            rows.step(cycle)
            cols.step(cycle)
            await FallingEdge(dut.clk)
            cycle += 1
            idle = idle + 1 if rows.done and cols.done and not bank.pending else 0
            if cycle > job["limit"]:
                break
        out.append({"case": job["case"], "unit": job["unit"],
                    "refused": rows.refused + cols.refused, "late": rows.late + cols.late,
                    "beats": monitor.beats, "violations": bank.violations,
                    "error": int(dut.error.value), "cycles": cycle,
                    "unfinished": not (rows.done and cols.done)})
    with open(os.environ["PDSIM_TB_RESULTS"], "w") as f:
        json.dump({"replays": out}, f)
