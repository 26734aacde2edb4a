"""The command line: defaults, JSON output, and bad input (one line, exit 2, no file)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from sim.cli.main import main
from sim.presets import load_hardware
from sim.trace import read_trace


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_default_run_writes_a_trace(in_tmp, capsys):
    assert main(["run"]) == 0
    out = capsys.readouterr().out
    assert "llama2-7b on h100 (tp 1, tile), batch 1, prompt 2048, generate 128" in out
    (path,) = (in_tmp / "results/runs").glob("h100_llama2-7b_b1_p2048_g128_tile_fp16-fp16-fp16_"
                                             "??????.h5")
    assert f"trace: {path.relative_to(in_tmp)}" in out
    t = read_trace(path)
    assert t.meta["command_line"] == "pdsim run"
    assert "name: h100" in t.meta["hardware_yaml"]
    assert json.loads(t.meta["model_config"])["hidden_size"] == 4096
    assert len(t.steps) == 128


def test_json_output_and_same_numbers_twice(in_tmp, capsys):
    args = ["run", "--prompt", "256", "--gen", "4", "--batch", "2", "--json", "-o", "a.h5"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(args[:-1] + ["b.h5"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert first["summary"] == second["summary"]
    a, b = read_trace("a.h5"), read_trace("b.h5")
    assert a.summary == b.summary
    for table in ("ops", "steps"):
        for field in getattr(a, table).dtype.names:  # NaN (not modelled) equals NaN here
            np.testing.assert_array_equal(getattr(a, table)[field], getattr(b, table)[field])


def test_tp_flag_and_model_path(in_tmp, capsys):
    cfg = in_tmp / "Llama-2-13b-hf" / "config.json"
    cfg.parent.mkdir()
    from importlib import resources
    cfg.write_text((resources.files("mappers") / "configs/llama2-13b.json").read_text())
    assert main(["run", "--model", str(cfg), "--tp", "2", "--gen", "2", "--json",
                 "--no-trace"]) == 0
    s = json.loads(capsys.readouterr().out)["summary"]
    assert s["chips"] == 2 and s["decode_comm_bytes"] > 0
    assert not (in_tmp / "results").exists()


def test_list_and_describe(capsys):
    assert main(["list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert {"h100", "a100", "spad-prefill", "spad-decode"} <= set(listing["hardware"])
    assert listing["models"]["llama2-7b"]["parameters"] == 6_738_415_616
    assert main(["describe", "spad-decode", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["peak_tensor_flops"]["fp16"] == pytest.approx(0.54e15, rel=0.01)
    assert d["cost_usd"] == 187 + 720
    assert main(["describe", "h100"]) == 0
    assert "peak tensor fp16    989 TFLOP/s" in capsys.readouterr().out


def test_show(in_tmp, capsys):
    assert main(["run", "--gen", "3", "-o", "t.h5"]) == 0
    capsys.readouterr()
    assert main(["show", "t.h5", "--ops", "1"]) == 0
    out = capsys.readouterr().out
    assert "qkv_proj" in out and "memory" in out
    assert main(["show", "t.h5", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert len(shown["steps"]) == 3 and shown["meta"]["seed"] == 0


def test_show_refuses_a_step_past_the_last_before_printing(in_tmp, capsys):
    """Found by tests/fuzz: `--ops` past the last step printed the whole summary, then
    refused."""
    assert main(["run", "--gen", "3", "-o", "t.h5"]) == 0
    capsys.readouterr()
    assert main(["show", "t.h5", "--ops", "3"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == "pdsim show: error: --ops: step must be < 3, got 3\n"


def _bad_inputs(tmp):
    yaml_text = load_hardware("h100").text.replace("rows: 16 ", "rows: 0 ")
    (tmp / "bad.yaml").write_text(yaml_text)
    (tmp / "gpt.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"],
                                              "n_embd": 768}))
    (tmp / "notes.txt").write_text("hello")
    return {
        "unknown preset": (["run", "--hw", "nosuch"], "unknown preset 'nosuch'"),
        "negative prompt": (["run", "--prompt", "-5"], "argument --prompt: must be >= 1"),
        "rows 0": (["run", "--hw", "bad.yaml"],
                   "bad.yaml: chip.core.systolic_array.rows: must be >= 1, got 0"),
        "unknown architecture": (["run", "--model", "gpt.json"],
                                 "architecture 'GPT2LMHeadModel' is not supported"),
        "show non-HDF5": (["show", "notes.txt"], "notes.txt: not a pdsim trace: not an HDF5 file"),
        "unknown dtype": (["run", "--dtype", "fp7"], "unknown dtype 'fp7'"),
        "dtype the chip lacks": (["run", "--hw", "a100", "--dtype", "fp8"],
                                 "'fp8' is not supported"),
        "bad tp": (["run", "--tp", "3"], "--tp: must divide llama2-7b's 32 attention heads"),
        "does not fit": (["run", "--model", "llama2-70b"], "does not fit"),
    }


@pytest.mark.parametrize("case", [
    "unknown preset", "negative prompt", "rows 0", "unknown architecture", "show non-HDF5",
    "unknown dtype", "dtype the chip lacks", "bad tp", "does not fit"])
def test_bad_input_is_one_line_exit_2_and_no_file(in_tmp, capsys, case):
    argv, expected = _bad_inputs(in_tmp)[case]
    before = set(os.listdir(in_tmp))
    with pytest.raises(SystemExit) as exc_info:
        sys.exit(main(argv))
    assert exc_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err and "Traceback" not in err
    assert set(os.listdir(in_tmp)) == before  # nothing written, not even results/


def test_console_script_prints_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sim.cli.main", "run", "--hw", "nosuch"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("pdsim run: error: --hw: unknown preset 'nosuch'")
    assert proc.stderr.count("\n") == 1 and proc.stdout == ""


def test_show_plot(in_tmp, capsys):
    assert main(["run", "--gen", "40", "--decode-sample", "4", "-o", "t.h5"]) == 0
    assert main(["show", "t.h5", "--plot", "figs/t.png"]) == 0
    png = in_tmp / "figs" / "t.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in png.parent.iterdir()) == ["t.png"]  # no temp file left


def test_trace_stores_the_files_the_hardware_names(in_tmp, capsys):
    """A CiD unit names a DRAM file and a CiM unit a crossbar file: both texts are stored."""
    from sim.units.cim.crossbar import CIM_PRESETS
    from sim.units.cid.dram import DRAM_PRESETS

    assert main(["run", "--hw", "halo-package", "--dtype", "int8", "--prompt", "64", "--gen", "2",
                 "--out", "h.h5"]) == 0
    stored = json.loads(read_trace("h.h5").meta["referenced_yaml"])
    chip = load_hardware("halo-package").system.chip
    assert stored == {"chip.cid.dram": DRAM_PRESETS.read(chip.cid.dram)[0],
                      "chip.cim.unit": CIM_PRESETS.read(chip.cim.unit)[0]}
    assert main(["run", "--prompt", "64", "--gen", "2", "--out", "g.h5"]) == 0
    assert json.loads(read_trace("g.h5").meta["referenced_yaml"]) == {}


def test_output_into_a_closed_pipe_is_quiet(tmp_path):
    """`pdsim list | head -1`: the reader leaves early; no traceback, exit 0."""
    code = ("import os, sys\n"
            "r, w = os.pipe(); os.close(r); os.dup2(w, 1)\n"
            "from sim.cli.main import main\n"
            "sys.exit(main(['list']))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stderr == "" and proc.returncode == 0


def test_default_trace_names_tell_runs_apart(in_tmp, capsys):
    """Runs that differ in detail, precision, parallelism or sampling never share a default
    trace name; the same run gets the same name."""
    variants = [[], ["--detail", "roofline"], ["--weight-dtype", "int8"], ["--kv-dtype", "int8"],
                ["--decode-sample", "2"], ["--tp", "2"], []]
    names = []
    for extra in variants:
        assert main(["run", "--gen", "3", *extra]) == 0
        names.append(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(set(names[:-1])) == len(variants) - 1
    assert names[0] == names[-1]
