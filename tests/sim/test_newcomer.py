"""What a newcomer trips on first (issue 10, "smaller things"): ``--tp`` above the hardware's
chip count, ``show --ops`` on an interpolated step, ``--seed``, ``reproduce``'s headline
tables, ``gemm``/``cim`` text, static energy and the scope of every summary line, and
intensity over the DRAM bytes the units charged.

References: hand-computed figures (80.3 W is 11.5% of the H100's 700 W TDP by construction;
SPAD's modeled H100 TDP is (480 W die + 5 x 30 W HBM) x 1.1 = 693 W, its paper's arithmetic),
the committed study JSON under ``results/`` for the headline tables (no study is re-run here;
``tests/sim/test_cid_integration.py`` checks the printed headline of a real ``reproduce``).
"""

import json
import re
from pathlib import Path

import pytest

from sim import costmodel
from sim.cli.main import _studies, main
from sim.cli.report import seconds, si, summary_text
from sim.presets import load_hardware
from sim.trace import read_trace

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--prompt", "32", "--gen", "3", "--detail", "roofline"]


def _run_json(capsys, *argv: str) -> dict:
    assert main(["run", "--json", "--no-trace", *SMALL, *argv]) == 0
    return json.loads(capsys.readouterr().out)["summary"]


def _refused(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


# --tp / --pp never add chips ------------------------------------------------------------

@pytest.mark.parametrize("flags, message", [
    (["--tp", "16"], "--tp: at most 8 on h100 (num_chips 8 / pipeline_parallel 1), got 16"),
    (["--pp", "9"], "--pp: at most 8 on h100 (num_chips 8 / tensor_parallel 1), got 9"),
    (["--tp", "4", "--pp", "4"], "--tp x --pp: at most num_chips 8 on h100, got 4 x 4"),
    (["--hw", "cent", "--tp", "2"], "--tp: at most 1 on cent (num_chips 8 / pipeline_parallel 8)"),
])
def test_parallel_flags_above_num_chips_are_refused(flags, message, capsys, tmp_path):
    out = tmp_path / "t.h5"
    err = _refused(capsys, ["run", *flags, "-o", str(out)])
    assert message in err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_parallel_flags_within_num_chips_use_exactly_those_chips(capsys):
    s = _run_json(capsys, "--tp", "8")
    assert (s["chips"], s["tensor_parallel"], s["pipeline_parallel"]) == (8, 8, 1)
    s = _run_json(capsys, "--tp", "2", "--pp", "4")
    assert (s["chips"], s["tensor_parallel"], s["pipeline_parallel"]) == (8, 2, 4)


def test_the_api_refuses_the_same_and_takes_a_bigger_system_by_override():
    from sim import api
    from sim.errors import ConfigError
    with pytest.raises(ConfigError, match=r"^tp x pp: at most num_chips 8 on h100, got 16 x 1"):
        api.load_system("h100", tp=16)
    assert api.load_system("h100", tp=16, overrides={"num_chips": 16}).num_chips == 16


def test_more_stages_than_layers_still_named_on_a_big_system(capsys, tmp_path):
    """With chips to spare, --pp is limited by the model's layers instead."""
    yaml = tmp_path / "big.yaml"
    yaml.write_text(load_hardware("h100").text.replace("num_chips: 8", "num_chips: 64"))
    err = _refused(capsys, ["run", "--hw", str(yaml), "--pp", "33", "--no-trace"])
    assert "pipeline_parallel: must be between 1 and the model's 32 layers, got 33" in err


# show --ops on an interpolated step -------------------------------------------------------

def test_show_ops_of_an_interpolated_step_says_which_steps_have_tables(capsys, tmp_path):
    trace = tmp_path / "t.h5"
    assert main(["run", "--prompt", "32", "--gen", "6", "--detail", "roofline",
                 "--decode-sample", "2", "-o", str(trace)]) == 0
    simulated = [int(r["step"]) for r in read_trace(trace).steps if r["simulated"]]
    assert simulated == [0, 1, 5]  # the prefill, the first and the last decode step
    capsys.readouterr()
    assert main(["show", str(trace), "--ops", "3"]) == 0
    tail = capsys.readouterr().out.splitlines()[-1]
    assert tail == ("step 3 was interpolated (--decode-sample), so it has no op table; "
                    "the simulated steps have one: 0, 1, 5")
    assert main(["show", str(trace), "--ops", "5"]) == 0
    assert "qkv_proj" in capsys.readouterr().out


# --seed ---------------------------------------------------------------------------------

def test_seed_is_provenance_only(capsys, tmp_path):
    """The help says so, the trace records it, and no number changes with it."""
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "provenance only" in re.sub(r"\s+", " ", capsys.readouterr().out)
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    assert main(["run", *SMALL, "--seed", "0", "-o", str(a)]) == 0
    assert main(["run", *SMALL, "--seed", "12345", "-o", str(b)]) == 0
    ta, tb = read_trace(a), read_trace(b)
    assert (ta.meta["seed"], tb.meta["seed"]) == (0, 12345)
    assert json.dumps(ta.summary, sort_keys=True) == json.dumps(tb.summary, sort_keys=True)


# reproduce: headline tables ---------------------------------------------------------------

def _committed(name: str) -> dict:
    folder, _ = _studies()[name]
    return json.loads(next((ROOT / folder).glob("*.json")).read_text())


def _headline(name: str):
    import importlib
    return importlib.import_module(_studies()[name][1].split(":")[0]).headline


def test_every_registered_study_has_a_headline_over_its_committed_json():
    for name in _studies():
        text = _headline(name)(_committed(name))
        lines = text.splitlines()
        assert len(lines) >= 3 and set(lines[1]) <= {"-", " "}, name  # header, rule, rows
        assert "{" not in text, name


def test_headline_numbers_are_the_studies():
    spad = _headline("spad-chips")(_committed("spad-chips"))
    row = next(line for line in spad.splitlines() if line.startswith("spad-prefill"))
    r = _committed("spad-chips")["results"]["tile"]["spad-prefill"]
    assert (f"{r['normalised']['prefill']:.2f} vs 1.08" in row  # SPAD Table 3: 1.08 / 0.80
            and f"{r['normalised']['decode']:.2f} vs 0.80" in row)
    halo = _committed("halo")
    rows = {re.split(r"\s{2,}", line)[0]: line
            for line in _headline("halo")(halo).splitlines()[2:]}
    for m in ("all-pim", "attention-on-pim", "all-cim", "auto"):
        assert f"{halo['speedup']['all'][m]:.2f}x" in rows[m], m
    assert "2.5x" in rows["all-pim"] and "18.0x" in rows["attention-on-pim"]  # HALO's
    rtl = _committed("rtl-resources")
    row = _headline("rtl-resources")(rtl).splitlines()[2].split()
    first = rtl["results"][0]
    assert row == [f"{first['rows']}x{first['cols']}", first["mode"], first["target"],
                   str(first["luts"]), str(first["ffs"]), str(first["dsps"]),
                   str(first["brams"])]


def test_reproduce_prints_the_headline_after_the_files(monkeypatch, capsys, tmp_path):
    """The wiring, with a stand-in study registered like the real ones."""
    import sim.cli.main as cli
    monkeypatch.setitem(cli.STUDIES, "stand-in", (str(tmp_path), f"{__name__}:_write"))
    assert main(["reproduce", "stand-in", "-o", str(tmp_path)]) == 0
    assert capsys.readouterr().out == (f"wrote {tmp_path / 'x.json'}\n"
                                       "answer\n------\n42\n")


def _write(out: Path) -> list[Path]:
    path = Path(out) / "x.json"
    path.write_text(json.dumps({"answer": 42}))
    return [path]


def headline(data: dict) -> str:
    from sim.studies import text_table
    return text_table(["answer"], [[str(data["answer"])]])


# gemm and cim text --------------------------------------------------------------------------

def test_gemm_text_is_a_table_not_dict_reprs(capsys):
    argv = ["gemm", "--rows", "32", "--cols", "32", "--m", "100", "--n", "100", "--k", "100",
            "--sram-kb", "16", "--bw", "8"]
    assert main(argv + ["--json"]) == 0
    g = json.loads(capsys.readouterr().out)
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "{" not in text and "':" not in text
    w = g["sram_words"]
    assert f"{w['A']:,} / {w['B']:,} / {w['C']:,}" in text
    assert f"{int(g['cycles']):,} = {int(g['compute_cycles']):,} computing" in text
    assert main(["gemm", "--hw", "h100", "--m", "512", "--n", "512", "--k", "512"]) == 0
    text = capsys.readouterr().out
    assert "{" not in text and "[" not in text.split("\n", 1)[1]


def test_engineering_units():
    assert si(4.59e-5, "J") == "45.9 uJ"
    assert si(3.819e-11, "J") == "38.2 pJ"
    assert si(3.352e12, "B/s") == "3.35 TB/s"
    assert si(0, "J") == "0 J" and si(float("nan"), "J") == "n/a"
    assert seconds(5.00514e-6) == "5.005 us"
    assert seconds(3.819e-11) == "38.19 ps"
    assert seconds(0.0) == "0 s"


def test_cim_text_uses_engineering_units(capsys):
    argv = ["cim", "--m", "16", "--n", "4096", "--k", "4096"]
    assert main(argv + ["--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert f"time                 {seconds(r['time_s'])} (" in text
    # No time or energy printed as a bare fraction of a larger unit ("0.00500514 ms").
    assert not re.search(r"\b0\.\d+ m?[sJ]\b", text), text


# static energy and scopes -------------------------------------------------------------------

def test_static_power_is_the_idle_share_of_tdp():
    assert costmodel.IDLE_FRACTION_OF_TDP * 700 == pytest.approx(80.3, rel=1e-12)
    assert costmodel.static_power_w(load_hardware("h100").system.chip) == pytest.approx(80.3)
    chip = load_hardware("a100").system.chip  # 7 nm, outside SPAD's model; own 400 W TDP
    assert costmodel.static_power_w(chip) == pytest.approx(400 * 80.3 / 700)
    from dataclasses import replace
    modeled = replace(load_hardware("h100").system.chip, tdp_w=None)  # SPAD's TDP: 693 W
    assert costmodel.static_power_w(modeled) == pytest.approx(693.0 * 80.3 / 700, rel=1e-3)
    assert costmodel.static_power_w(load_hardware("cent").system.chip) is None


def test_static_and_system_energy_by_hand(capsys):
    s = _run_json(capsys, "--tp", "2", "--pp", "2")
    assert s["static_power_w_per_chip"] == pytest.approx(80.3)
    # Each of the tp x pp = 4 chips draws 80.3 W for the whole run.
    assert s["static_energy_j_per_system"] == pytest.approx(4 * 80.3 * s["e2e_s"])
    assert s["static_energy_j_per_chip"] == pytest.approx(2 * 80.3 * s["e2e_s"])
    assert s["prefill_static_energy_j_per_chip"] == pytest.approx(2 * 80.3 * s["ttft_s"])
    assert s["dynamic_energy_j_per_chip"] == s["energy_j"]
    assert s["dynamic_energy_j_per_system"] == pytest.approx(2 * s["energy_j"])
    assert s["total_energy_j_per_system"] == pytest.approx(
        2 * s["energy_j"] + 4 * 80.3 * s["e2e_s"])
    assert s["total_energy_per_output_token_j_per_system"] == pytest.approx(
        s["total_energy_j_per_system"] / 3)  # batch 1 x 3 output tokens


def test_every_summary_line_names_its_scope(capsys):
    for argv in (["--tp", "2"], ["--hw", "cent"], ["--hw", "halo-package", "--dtype", "int8"]):
        s = _run_json(capsys, *argv)
        text = summary_text(s, "title")
        for line in text.splitlines()[1:]:
            label = line[:line.index(")") + 1] if ")" in line else line
            assert re.search(r"\((per request|system, \d+ chips?|per chip|"
                             r"\d+ chips, 1 per stage)\)", label), line
    assert "n/a static (no TDP for this chip)" in summary_text(
        _run_json(capsys, "--hw", "cent"), "t")


def test_docs_list_every_summary_key_with_a_scope(capsys):
    docs = (ROOT / "docs/trace-format.md").read_text()
    rows = [r for r in docs.split("## `/summary`")[1].split("## `/steps`")[0].splitlines()
            if r.startswith("| `")]
    scoped = {}
    for r in rows:
        cells = [c.strip() for c in r.strip("|").split("|")]
        for key in re.findall(r"`([^`]+)`", cells[0]):
            scoped[key] = cells[1]
    s = _run_json(capsys, "--hw", "halo-package", "--dtype", "int8")
    for key in s:
        generic = re.sub(r"^(prefill|decode)_", "{phase}_", key)
        assert scoped.get(key, scoped.get(generic)) in ("request", "system", "chip"), key


# intensity over DRAM bytes --------------------------------------------------------------------

def test_cent_intensity_is_over_the_dram_bytes_and_agrees_with_memory_bound(capsys):
    """The issue's case: CENT's CiD reads every weight inside the banks for each token, so
    it is memory-bound; the intensity the units saw says so, the logical one did not."""
    s = _run_json(capsys, "--hw", "cent")
    for phase in ("prefill", "decode"):
        assert s[f"{phase}_intensity_flop_per_dram_byte"] == pytest.approx(
            s[f"{phase}_flops"] / s[f"{phase}_dram_bytes"])
        assert s[f"{phase}_intensity_flop_per_logical_byte"] == pytest.approx(
            s[f"{phase}_flops"] / s[f"{phase}_bytes"])
    # A GDDR6-AiM bank MAC does 2 FLOP per fp16 weight (2 bytes) read: 1 FLOP per DRAM byte.
    assert s["prefill_intensity_flop_per_dram_byte"] < 2
    assert s["prefill_intensity_flop_per_logical_byte"] > 10
    assert s["prefill_memory_bound_fraction"] > 0.99
    text = summary_text(s, "t")
    assert re.search(r"prefill intensity \(8 chips, 1 per stage\) +[\d.]+ FLOP per DRAM "
                     r"byte \([\d.]+ per logical byte\), 100% of op time memory-bound", text)
