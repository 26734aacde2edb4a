"""Yosys synthesis of exported Verilog for an FPGA family, and its resource counts."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from sim.errors import PdsimError

#: Yosys script per target, and which cell types count as what. ``luts`` counts LUT cells (on
#: ecp5 a CCU2C carry cell holds two LUT4s and counts 2); ``lutram`` counts distributed-RAM
#: cells (Xilinx RAM32M/RAM64M..., ECP5 TRELLIS_DPR16X4), which also occupy LUT sites.
TARGETS = {
    "ice40": "synth_ice40 -dsp -top {top}",
    "ecp5": "synth_ecp5 -top {top}",
    "xilinx": "synth_xilinx -flatten -top {top}",
}


def _classify(target: str, cell: str) -> tuple[str, int] | None:
    if target == "xilinx":
        if cell.startswith("LUT"):
            return "luts", 1
        if cell.startswith(("FDRE", "FDSE", "FDCE", "FDPE")):
            return "ffs", 1
        if cell.startswith("DSP48"):
            return "dsps", 1
        if cell.startswith("RAMB"):
            return "brams", 1
        if cell.startswith(("RAM32", "RAM64", "RAM128", "RAM256")):
            return "lutram", 1
    elif target == "ecp5":
        if cell == "LUT4":
            return "luts", 1
        if cell == "CCU2C":
            return "luts", 2
        if cell == "TRELLIS_FF":
            return "ffs", 1
        if cell in ("MULT18X18D", "ALU54B"):
            return "dsps", 1
        if cell in ("DP16KD", "PDPW16KD"):
            return "brams", 1
        if cell == "TRELLIS_DPR16X4":
            return "lutram", 1
    elif target == "ice40":
        if cell == "SB_LUT4":
            return "luts", 1
        if cell.startswith("SB_DFF"):
            return "ffs", 1
        if cell == "SB_MAC16":
            return "dsps", 1
        if cell.startswith("SB_RAM40"):
            return "brams", 1
    return None


def synthesize(verilog: Path, *, target: str, top: str | None = None) -> dict:
    """Synthesise ``verilog`` for ``target`` with Yosys; return ``{"target", "top", "luts",
    "ffs", "dsps", "brams", "lutram", "cells": {type: count}, "yosys"}``."""
    if target not in TARGETS:
        raise PdsimError(f"--target: unknown target {target!r} (allowed: {', '.join(TARGETS)})")
    verilog = Path(verilog)
    if not verilog.is_file():
        raise PdsimError(f"FILE: no such Verilog file: {verilog}")
    if shutil.which("yosys") is None:
        raise PdsimError("yosys: not found on PATH (apt-get install yosys)")
    top = top or _top_of(verilog)
    with tempfile.TemporaryDirectory(prefix="pdsim-synth-") as tmp:
        stat = Path(tmp) / "stat.json"
        script = (f"read_verilog -sv {verilog.resolve()}; {TARGETS[target].format(top=top)}; "
                  f"tee -q -o {stat} stat -json")
        proc = subprocess.run(["yosys", "-q", "-p", script], capture_output=True, text=True)
        if proc.returncode != 0 or not stat.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise PdsimError(f"yosys: synthesis for {target} failed: {tail[0]}")
        report = json.loads(stat.read_text())
    cells = report["design"]["num_cells_by_type"]
    out = {"target": target, "top": top, "luts": 0, "ffs": 0, "dsps": 0, "brams": 0,
           "lutram": 0}
    for cell, count in sorted(cells.items()):
        kind = _classify(target, cell)
        if kind:
            out[kind[0]] += kind[1] * count
    out["cells"] = dict(sorted(cells.items()))
    out["yosys"] = report.get("creator", "")
    return out


def _top_of(verilog: Path) -> str:
    """The module after Amaranth's ``(* top = 1 *)`` attribute, else the first module."""
    marked, first = False, None
    for line in verilog.read_text(errors="replace").splitlines():
        if line.startswith("(* top"):
            marked = True
        elif line.startswith("module "):
            name = line.split()[1].split("(")[0].lstrip("\\")
            if marked:
                return name
            first = first or name
    if first is None:
        raise PdsimError(f"FILE: no Verilog module in {verilog}")
    return first
