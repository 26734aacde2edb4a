"""Issue 10's twelve kinds of bad input, one test (group) per numbered case: each exits 2 with
one line naming the field and what is allowed, leaves nothing at ``-o`` or beside it, and
never prints a traceback; or, where the answer was wrong (case 4), gives the right one."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from importlib import resources
from pathlib import Path

import h5py
import pytest

import sim.cli.main as cli
from sim.cli.main import main
from sim.files import MAX_INPUT_BYTES
from sim.limits import INT64_MAX, MAX_FOLDS

PRESETS = resources.files("sim") / "presets"
CONFIGS = resources.files("mappers") / "configs"
SMALL_RUN = ["run", "--prompt", "8", "--gen", "2"]
BIG = "1" + "0" * 23  # 24 digits, above int64
COSIM_BASE = ["cosim", "systolic", "--rows", "2", "--cols", "2", "--mode", "int8"]


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _listing(folder: Path) -> set[str]:
    """Every path under ``folder``, hidden ones included."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def refused(argv: list[str], names: tuple[str, ...], folder: Path, capsys) -> str:
    """Run ``pdsim argv`` in-process; assert exit 2, one stderr line naming each of
    ``names``, no traceback and nothing new in ``folder``. Returns the line."""
    capsys.readouterr()
    before = _listing(folder)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse refusals
        code = exc.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    for name in names:
        assert name in lines[0], lines[0]
    assert _listing(folder) == before
    return lines[0]


def _yaml_with(preset: str, old: str, new: str, path: Path) -> Path:
    text = (PRESETS / f"{preset}.yaml").read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return path


def _console(*args: str, **kwargs) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("pdsim")
    if not exe.exists():
        pytest.skip("the pdsim console script is not installed beside this Python")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120,
                          **kwargs)


# 1. Integers above int64 ---------------------------------------------------------------------

@pytest.mark.parametrize("argv,names", [
    (SMALL_RUN + ["--no-trace", "--seed", BIG], ("--seed", str(INT64_MAX))),
    (SMALL_RUN + ["--no-trace", "--seed", "-1"], ("--seed", ">= 0")),
    (["gemm", "--m", "4", "--n", "4", "--k", BIG, "--rows", "4", "--cols", "4"],
     ("--k", str(INT64_MAX))),
    (["cid", "--rows", BIG, "--cols", "4"], ("--rows", str(INT64_MAX))),
    (["cim", "--m", "1", "--n", "1", "--k", BIG], ("--k", str(INT64_MAX))),
])
def test_case01_integers_above_int64_flags(argv, names, in_tmp, capsys):
    refused(argv, names, in_tmp, capsys)


@pytest.mark.parametrize("old,new,field", [
    ("cores: 132", "cores: 1e30", "chip.cores"),
    ("capacity_bytes: 85899345920", "capacity_bytes: 1e30", "capacity_bytes"),
    ("cores: 132", f"cores: {BIG}", "chip.cores"),
])
@pytest.mark.parametrize("command", ["describe", "run"])
def test_case01_integers_above_int64_yaml(old, new, field, command, in_tmp, capsys):
    hw = _yaml_with("h100", old, new, in_tmp / "hw.yaml")
    argv = ["describe", str(hw)] if command == "describe" else SMALL_RUN + ["--hw", str(hw)]
    refused(argv, (field, "2**53"), in_tmp, capsys)


def test_case01_console_script_prints_no_traceback(tmp_path):
    r = _console("run", "--seed", BIG, "--no-trace", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "--seed" in r.stderr


# 2. Silent int64 overflow ---------------------------------------------------------------------

def test_case02_gemm_beyond_int64_is_refused(in_tmp, capsys):
    big = "1000000000000"
    refused(["gemm", "--hw", "h100", "--m", big, "--n", big, "--k", big, "--json"],
            ("--m/--n/--k", "FLOPs"), in_tmp, capsys)


@pytest.mark.parametrize("argv,names", [
    (["cim", "--m", str(INT64_MAX), "--n", "4", "--k", "4"], ("--m/--n/--k", "FLOPs")),
    (["cid", "--rows", "4", "--cols", "4", "--batch", str(INT64_MAX)], ("--batch", "cycles")),
    (["cid", "--op", "attention", "--heads", str(INT64_MAX), "--kv-heads", "1"],
     ("--heads", "cycles")),
    (COSIM_BASE + ["--m", str(INT64_MAX), "--n", "2", "--k", "2"], ("--m", "65535")),
])
def test_case02_other_commands_beyond_int64(argv, names, in_tmp, capsys):
    refused(argv, names, in_tmp, capsys)


def test_case02_largest_gemm_accepted_is_right(capsys):
    """2 x 10^6 cubed = 2e18 FLOPs is representable: the answer must be positive and no
    faster than the chip's peak (H100 as SPAD models it: 132 x 4 x 16 x 32 MACs at
    1.83 GHz, docs of the preset)."""
    n = "1000000"
    assert main(["gemm", "--hw", "h100", "--m", n, "--n", n, "--k", n, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    peak_flops = 2 * 132 * 4 * 16 * 32 * 1.83e9
    assert out["cycles"] > 0 and out["dram_bytes"] > 0
    assert 0 < out["utilization"] <= 1
    assert out["time_s"] >= 2e18 / peak_flops * (1 - 1e-9)


def test_case02_run_beyond_int64_is_refused_before_simulating(in_tmp, capsys, monkeypatch):
    import sim.engine
    monkeypatch.setattr(sim.engine, "compile_step", _no_simulation)  # no step simulated
    refused(["run", "--batch", "100000000", "--prompt", "1000000", "--no-capacity-check"],
            ("--batch/--prompt/--gen", "FLOPs".lower()), in_tmp, capsys)


def _no_simulation(*args, **kwargs):
    raise AssertionError("simulated although the input was refusable up front")


# 3. Unbounded work ----------------------------------------------------------------------------

def test_case03_one_array_folds_are_bounded(in_tmp, capsys):
    refused(["gemm", "--rows", "4", "--cols", "4", "--m", "1000000000000", "--n", "8",
             "--k", "8"], ("--m/--n/--k", "folds", f"{MAX_FOLDS:,}"), in_tmp, capsys)
    # one row of folds past the bound (os: ceil(m/4) x ceil(8/4) folds)
    m = str(4 * (MAX_FOLDS // 2 + 1))
    refused(["gemm", "--rows", "4", "--cols", "4", "--m", m, "--n", "8", "--k", "8"],
            ("folds",), in_tmp, capsys)


def test_case03_kv_append_has_a_capacity_check(in_tmp, capsys):
    refused(["cid", "--op", "kv-append", "--batch", "1000000000000"], ("--batch", "GB"),
            in_tmp, capsys)


def test_case03_gen_is_bounded(in_tmp, capsys):
    refused(["run", "--gen", str(2**40)], ("--gen", "<="), in_tmp, capsys)


# 4. Energy of idle stacks and PCs (a wrong answer, fixed) --------------------------------------

def _cid(argv, capsys) -> dict:
    assert main(["cid", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("stacks", [2, 64, 128])
def test_case04_gemv_energy_does_not_grow_with_idle_stacks(stacks, capsys):
    """64 rows of 64 fill one HBM3 stack's PCs in one step; more stacks cannot make it faster,
    so they must add no energy or bytes: the --stacks 1 figure is the reference."""
    one = _cid(["--rows", "64", "--cols", "64", "--stacks", "1"], capsys)
    many = _cid(["--rows", "64", "--cols", "64", "--stacks", str(stacks)], capsys)
    assert many["cycles"] == one["cycles"]
    assert many["energy_pj_per_bit"] == pytest.approx(one["energy_pj_per_bit"], rel=1e-12)
    assert many["internal_bytes"] == one["internal_bytes"]


def test_case04_attention_energy_does_not_grow_with_idle_stacks(capsys):
    argv = ["--op", "attention", "--context", "16", "--heads", "8", "--kv-heads", "8"]
    one = _cid(argv + ["--stacks", "1"], capsys)
    many = _cid(argv + ["--stacks", "64"], capsys)
    assert many["cycles"] == one["cycles"]
    assert many["energy_j"] == pytest.approx(one["energy_j"], rel=1e-12)
    assert many["internal_bytes"] == one["internal_bytes"]


def test_case04_idle_pcs_cost_nothing():
    """Rows go one per PC while there are fewer rows than PCs, each PC running the same
    one-row program: n rows cost n times one row's energy and bytes."""
    from sim.units.cid.dram import load_dram
    from sim.units.cid.ops import gemv

    device = load_dram("hbm3")
    one = gemv(device, "bank", 1, 64, "fp16")
    for n in (2, 8, device.org.pcs):
        run = gemv(device, "bank", n, 64, "fp16")
        assert run.cycles == one.cycles
        assert run.energy_j == pytest.approx(n * one.energy_j, rel=1e-12)
        assert run.internal_bytes == n * one.internal_bytes
        assert run.pcs == n


# 5. Non-UTF-8 files and deep nesting -----------------------------------------------------------

def _bad_text_files(folder: Path) -> dict[str, Path]:
    files = {"latin": folder / "bad.yaml", "utf16": folder / "utf16.yaml",
             "binary": folder / "bin.yaml"}
    files["latin"].write_bytes(b"name: \xff\xfe\n")
    files["utf16"].write_bytes((PRESETS / "h100.yaml").read_text().encode("utf-16"))
    files["binary"].write_bytes(bytes(range(256)) * 4)
    return files


@pytest.mark.parametrize("kind", ["latin", "utf16", "binary"])
def test_case05_non_utf8_hardware_file(kind, in_tmp, capsys):
    path = _bad_text_files(in_tmp)[kind]
    line = refused(["describe", str(path)], (str(path), "not UTF-8 text"), in_tmp, capsys)
    assert line == refused(SMALL_RUN + ["--hw", str(path)], (), in_tmp, capsys).replace(
        "pdsim run", "pdsim describe")
    refused(["cid", "--hw", str(path), "--rows", "4", "--cols", "4"], ("not UTF-8 text",),
            in_tmp, capsys)


def test_case05_non_utf8_referenced_files(in_tmp, capsys):
    bad = _bad_text_files(in_tmp)["latin"]
    hw = _yaml_with("attacc", "dram: hbm3", f"dram: {bad}", in_tmp / "hw.yaml")
    refused(["describe", str(hw)], ("chip.cid.dram", "not UTF-8 text"), in_tmp, capsys)
    hw = _yaml_with("halo-package", "unit: halo-package-cim", f"unit: {bad}",
                    in_tmp / "hw2.yaml")
    refused(["describe", str(hw)], ("chip.cim.unit", "not UTF-8 text"), in_tmp, capsys)


def test_case05_non_utf8_model(in_tmp, capsys):
    bad = in_tmp / "config.json"
    bad.write_bytes((CONFIGS / "llama2-7b.json").read_text().encode("utf-16"))
    refused(SMALL_RUN + ["--model", str(bad)], ("--model", "not UTF-8 text"), in_tmp, capsys)


@pytest.mark.parametrize("suffix,command", [(".json", "--model"), (".yaml", "--hw")])
def test_case05_deep_nesting(suffix, command, in_tmp, capsys):
    path = in_tmp / f"deep{suffix}"
    path.write_text("[" * 100_000)
    refused(SMALL_RUN + [command, str(path)], (str(path), "nested too deeply"), in_tmp,
            capsys)


# 6. Files that never end -----------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["describe", "/dev/zero"],
    SMALL_RUN + ["--hw", "/dev/zero"],
    SMALL_RUN + ["--model", "/dev/zero"],
    ["cid", "--hw", "/dev/zero", "--rows", "4", "--cols", "4"],
    ["cim", "--m", "1", "--n", "1", "--k", "1", "--hw", "/dev/zero"],
    ["sweep", "/dev/zero"],
    SMALL_RUN + ["--routing", "/dev/zero"],
])
def test_case06_dev_zero_is_refused(argv, in_tmp, capsys):
    refused(argv, ("/dev/zero", "not a regular file"), in_tmp, capsys)


def test_case06_trace_that_never_ends_is_refused(in_tmp, capsys):
    trace = in_tmp / "endless.csv"
    trace.symlink_to("/dev/zero")
    refused(["serve", "--trace", str(trace)], ("--trace", "not a regular file"), in_tmp, capsys)


def test_case06_huge_file_is_refused_without_reading_it(in_tmp, capsys):
    big = in_tmp / "big.yaml"
    with open(big, "wb") as f:  # sparse: a few bytes on disk
        f.truncate(MAX_INPUT_BYTES + 1)
    refused(["describe", str(big)], (str(big), "MiB"), in_tmp, capsys)


# 7. Damaged traces -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def good_trace(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("trace") / "good.h5"
    assert main(SMALL_RUN + ["-o", str(path)]) == 0
    return path


def _damaged(good: Path, folder: Path) -> dict[str, Path]:
    data = good.read_bytes()
    out = {"truncated": folder / "t.h5", "flipped": folder / "f.h5",
           "foreign": folder / "foreign.h5", "keyless": folder / "keyless.h5"}
    out["truncated"].write_bytes(data[: len(data) * 3 // 5])
    flipped = bytearray(data)
    for i in range(64, 2048, 7):  # superblock and root-group metadata
        flipped[i] ^= 0xFF
    out["flipped"].write_bytes(bytes(flipped))
    with h5py.File(out["foreign"], "w") as f:
        f["x"] = [1, 2, 3]
    shutil.copy(good, out["keyless"])
    with h5py.File(out["keyless"], "r+") as f:
        del f["summary"].attrs["ttft_s"]
    return out


@pytest.mark.parametrize("kind", ["truncated", "flipped", "foreign", "keyless"])
def test_case07_damaged_trace(kind, good_trace, in_tmp, capsys):
    path = _damaged(good_trace, in_tmp)[kind]
    refused(["show", str(path)], (str(path), "not a pdsim trace"), in_tmp, capsys)
    refused(["show", str(path), "--json"], ("not a pdsim trace",), in_tmp, capsys)


# 8. Bad output paths, refused before any simulation --------------------------------------------

def _bad_paths(folder: Path) -> dict[str, tuple[str, str]]:
    (folder / "adir").mkdir()
    (folder / "afile").write_text("x")
    return {"folder": ("adir", "is a folder"), "under a file": ("afile/out.h5", "not a folder"),
            "proc": ("/proc/out.h5", "/proc"), "long name": ("a" * 300 + ".h5", "too long"),
            "long folder": ("b" * 300 + "/out.h5", "too long")}


@pytest.mark.parametrize("case", ["folder", "under a file", "proc", "long name", "long folder"])
def test_case08_bad_output_paths(case, in_tmp, capsys, monkeypatch):
    path, why = _bad_paths(in_tmp)[case]
    monkeypatch.setattr(cli, "simulate", _no_simulation)
    refused(SMALL_RUN + ["-o", path], ("-o", why), in_tmp, capsys)
    refused(["hdl", "export", "systolic", "--rows", "4", "--cols", "4", "--mode", "int8",
             "-o", path], ("-o", why), in_tmp, capsys)
    if case != "folder":
        refused(["show", "missing.h5", "--plot", path.replace(".h5", ".png")],
                ("--plot",), in_tmp, capsys)


def test_case08_read_only_folder(in_tmp, capsys, monkeypatch):
    ro = in_tmp / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    if os.geteuid() == 0:  # root writes anyway: make the check see what a user would
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: (
            False if Path(p) == ro else real(p, mode, **kw)))
    monkeypatch.setattr(cli, "simulate", _no_simulation)
    refused(SMALL_RUN + ["-o", "ro/out.h5"], ("-o", "permission denied"), in_tmp, capsys)
    refused(["reproduce", "spad-chips", "-o", "ro"], ("-o", "permission denied"), in_tmp,
            capsys)


def test_case08_reproduce_into_a_file(in_tmp, capsys):
    (in_tmp / "afile").write_text("x")
    refused(["reproduce", "spad-chips", "-o", "afile"], ("-o", "not a folder"), in_tmp, capsys)


# 9. --plot formats -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["plotfile", "plot.txt"])
def test_case09_plot_suffix_checked_up_front(name, good_trace, in_tmp, capsys):
    refused(["show", str(good_trace), "--plot", name], ("--plot", "png", "svg"), in_tmp, capsys)


def test_case09_plot_format_from_the_final_name(good_trace, in_tmp, capsys):
    assert main(["show", str(good_trace), "--plot", "p.svg"]) == 0
    assert (in_tmp / "p.svg").read_bytes().lstrip().startswith(b"<?xml")
    assert main(["show", str(good_trace), "--plot", "p.PNG"]) == 0
    assert (in_tmp / "p.PNG").read_bytes().startswith(b"\x89PNG")
    assert _listing(in_tmp) == {"p.svg", "p.PNG"}


# 10. cosim -------------------------------------------------------------------------------------

COSIM = COSIM_BASE + ["--m", "2", "--n", "2", "--k", "2"]


def test_case10_cosim_negative_seed(in_tmp, capsys):
    refused(COSIM + ["--seed", "-1"], ("--seed", ">= 0"), in_tmp, capsys)
    refused(COSIM + ["--seed", BIG], ("--seed", str(INT64_MAX)), in_tmp, capsys)


@pytest.mark.parametrize("missing", ["cocotb", "cocotb_tools", "ml_dtypes"])
def test_case10_cosim_without_cocotb(missing, in_tmp, capsys, monkeypatch):
    for name in list(sys.modules):
        if name == missing or name.startswith(f"{missing}.") or name.startswith("testbenches"):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, missing, None)  # `import missing` raises ImportError
    refused(COSIM, ("pip install 'pdsim[rtl]'", missing), in_tmp, capsys)


# 11. Model configs -----------------------------------------------------------------------------

def _config(base: str, folder: Path, **changes) -> Path:
    cfg = json.loads((CONFIGS / f"{base}.json").read_text())
    cfg.update(changes)
    path = folder / f"{base}-x.json"
    path.write_text(json.dumps(cfg))
    return path


@pytest.mark.parametrize("base,changes,names", [
    ("llama2-7b", {"tie_word_embeddings": "false"}, ("tie_word_embeddings", "true or false")),
    ("llama2-7b", {"attention_bias": "no"}, ("attention_bias", "true or false")),
    ("llada-8b", {"weight_tying": 0}, ("weight_tying", "true or false")),
    ("bloom-176b", {"n_embed": 14337}, ("n_embed", "14337", "divisible", "n_head")),
    ("llama2-7b", {"hidden_size": 4097}, ("hidden_size", "4097", "divisible")),
    ("llada-8b", {"d_model": 4097}, ("d_model", "divisible")),
    ("llama2-7b", {"num_hidden_layers": 10**30}, ("num_hidden_layers", "at most")),
])
def test_case11_model_configs(base, changes, names, in_tmp, capsys):
    path = _config(base, in_tmp, **changes)
    refused(SMALL_RUN + ["--no-trace", "--model", str(path)], names, in_tmp, capsys)


def test_case11_explicit_head_dim_needs_no_divisibility(in_tmp, capsys):
    """Qwen3 gives head_dim explicitly (q_dim need not equal hidden): still accepted."""
    path = _config("qwen3-8b", in_tmp, hidden_size=4000)
    assert main(SMALL_RUN + ["--no-trace", "--model", str(path), "--json"]) == 0


# 12. Empty and folder-like -o, duplicates, signals ---------------------------------------------

@pytest.mark.parametrize("out,why", [("", "empty"), ("new/", "ends in '/'")])
def test_case12_empty_and_slash_outputs(out, why, in_tmp, capsys, monkeypatch):
    monkeypatch.setattr(cli, "simulate", _no_simulation)
    refused(SMALL_RUN + ["-o", out], ("-o", why), in_tmp, capsys)
    spec = in_tmp / "spec.yaml"
    spec.write_text((resources.files("sim.studies") / "specs/spad-sweep.yaml").read_text())
    refused(["sweep", str(spec), "-o", out], ("-o", why), in_tmp, capsys)
    refused(["hdl", "export", "systolic", "--rows", "4", "--cols", "4", "--mode", "int8",
             "-o", out], ("-o", why), in_tmp, capsys)


def test_case12_duplicate_yaml_keys(in_tmp, capsys):
    hw = _yaml_with("h100", "cores: 132", "cores: 132\n  cores: 64", in_tmp / "dup.yaml")
    line = refused(["describe", str(hw)], ("'cores'", "twice", "line"), in_tmp, capsys)
    assert "line 13" in line  # the second `cores:`, right below the first (line 12)


def test_case12_duplicate_cid_ops(in_tmp, capsys):
    hw = _yaml_with("attacc", "decode_ops: [attn_score, attn_value, kv_write]",
                    "decode_ops: [attn_score, attn_score, kv_write]", in_tmp / "dup.yaml")
    refused(["describe", str(hw)], ("chip.cid.decode_ops", "twice"), in_tmp, capsys)


#: A run whose trace write pauses once the bytes are in the temporary file: a deterministic
#: moment to signal it.
_PAUSED_RUN = textwrap.dedent("""
    import sys, time
    import sim.files, sim.trace

    if sys.argv[1] == "named":  # as where the file system has no O_TMPFILE
        sim.files._anonymous = lambda folder: None

    def paused(path, write):
        def slow(tmp):
            write(tmp)
            print("writing", flush=True)
            time.sleep(120)
        return sim.files.atomic_write(path, slow)

    sim.trace.atomic_write = paused
    from sim.cli.main import main
    sys.exit(main(["run", "--prompt", "8", "--gen", "2", "-o", "out.h5"]))
""")


def _default_sigint() -> None:
    """In the child: SIGINT back to its default. A shell without job control starts background
    jobs with SIGINT ignored, and Python then never raises KeyboardInterrupt; a user at a
    terminal has it, so the tests give it to the child whoever runs them."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig,code,tmp", [
    (signal.SIGINT, 130, "anonymous"), (signal.SIGTERM, 143, "anonymous"),
    (signal.SIGKILL, -signal.SIGKILL, "anonymous"),
    (signal.SIGINT, 130, "named"), (signal.SIGTERM, 143, "named")])
def test_case12_signal_during_write(sig, code, tmp, tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", _PAUSED_RUN, tmp], cwd=tmp_path,
                            preexec_fn=_default_sigint,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing", proc.stderr.read()
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    if sig != signal.SIGKILL:
        assert err.strip() == "pdsim: interrupted"
    assert _listing(tmp_path) == set()  # no trace, no hidden temporary file


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_case12_signal_during_simulation_console_script(sig, code, tmp_path):
    exe = Path(sys.executable).with_name("pdsim")
    if not exe.exists():
        pytest.skip("the pdsim console script is not installed beside this Python")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([str(exe), "run", "--gen", "200000", "--prompt", "8",
                             "--no-capacity-check", "-o", "out.h5"], cwd=tmp_path,
                            preexec_fn=_default_sigint,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        try:  # let it get into the simulation (it runs for minutes); a signal any time works
            proc.wait(timeout=4)
        except subprocess.TimeoutExpired:
            pass
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert err.strip() == "pdsim: interrupted"
    assert _listing(tmp_path) == set()
