"""Iteration traces (`pdsim run --draft/--dllm -o`, `sim.trace_iter`): written, read back,
shown; every row has its phase, tokens produced, intensity and unit."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sim.cli.main import main
from sim.errors import PdsimError
from sim.trace_iter import is_iteration_trace, read_iteration_trace

DLLM = ["run", "--hw", "a100", "--model", "llada-8b", "--prompt", "16", "--gen", "64",
        "--detail", "roofline", "--dllm", "fast-dllm", "--tokens-per-iter", "4"]
DRAFT = ["run", "--hw", "a100", "--model", "llama2-13b", "--draft", "llama2-7b", "--gamma",
         "3", "--accept-file", "ACCEPT", "--prompt", "32", "--gen", "12", "--detail",
         "roofline"]


def _check_rows(t):
    s = t.steps
    np.testing.assert_allclose(s["end_s"], np.cumsum(s["time_s"]))
    np.testing.assert_allclose(s["start_s"][1:], s["end_s"][:-1])
    np.testing.assert_allclose(s["intensity_flop_per_dram_byte"], s["flops"] / s["dram_bytes"])
    assert all(u for u in s["unit"])
    assert t.summary["e2e_s"] == pytest.approx(float(s["time_s"].sum()), rel=1e-12)


def test_dllm_trace_reads_back(tmp_path, capsys):
    """fast-dllm, L = 64, b = 32, 4 tokens an iteration: per block one refresh and 7
    diffusion passes of the 32-token block over 48 cached, 4 tokens each (64 in all)."""
    path = tmp_path / "d.h5"
    assert main([*DLLM, "-o", str(path)]) == 0
    assert f"trace: {path}" in capsys.readouterr().out
    assert is_iteration_trace(path)
    t = read_iteration_trace(path)
    s = t.steps
    assert t.mode == "dllm" and t.summary["mode"] == "fast-dllm"
    assert t.meta["command_line"].startswith("pdsim run --hw a100")
    phases = [p.decode() for p in s["phase"]]
    assert phases == (["refresh"] + ["diffusion"] * 7) * 2
    assert s["tokens_produced"].tolist() == [4] * 16
    assert s["new_tokens"].tolist() == ([80] + [32] * 7) * 2
    assert s["context"].tolist() == ([0] + [48] * 7) * 2
    assert set(s["model"].tolist()) == {b"target"} and set(s["batch"].tolist()) == {1}
    _check_rows(t)
    assert main(["show", str(path), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["mode"] == "dllm" and shown["steps"]["phase"] == phases


def test_draft_trace_reads_back(tmp_path, capsys):
    """Draft-and-verify with accepted counts 3, 0, 1, 2 (cycled), 12 tokens: two prefills
    (the target's yields token 1), then rounds of 3 draft steps and a verify of 4 tokens
    producing accepted + 1: 4, 1, 2, 3 (11 tokens), and 1 (the fifth round's 4 capped at
    the one token left)."""
    accept = tmp_path / "acc.txt"
    accept.write_text("3 0 1 2\n")
    path = tmp_path / "s.h5"
    argv = [a if a != "ACCEPT" else str(accept) for a in DRAFT]
    assert main([*argv, "-o", str(path)]) == 0
    t = read_iteration_trace(path)
    s = t.steps
    phases = [p.decode() for p in s["phase"]]
    assert t.mode == "draft" and phases[:2] == ["prefill", "prefill"]
    rounds = len(phases[2:]) // 4
    assert phases[2:] == (["draft"] * 3 + ["verify"]) * rounds
    verify = s[2:][3::4]
    assert verify["new_tokens"].tolist() == [4] * rounds
    assert s["tokens_produced"][0] == 1 and s["tokens_produced"].sum() == 12
    assert verify["tokens_produced"].tolist() == [4, 1, 2, 3, 1]
    assert set(s["tokens_produced"][2:][np.array(phases[2:]) == "draft"].tolist()) == {0}
    assert [m.decode() for m in s["model"][:2]] == ["target", "draft"]
    assert t.meta["draft_model"] == "llama2-7b" and t.meta["draft_system"] == "a100"
    _check_rows(t)
    capsys.readouterr()
    assert main(["show", str(path)]) == 0
    out = capsys.readouterr().out
    assert "verify" in out and "draft trace" in out


def test_show_refuses_op_views_and_read_refuses_other_files(tmp_path, capsys):
    path = tmp_path / "d.h5"
    assert main([*DLLM, "-o", str(path)]) == 0
    for extra in (["--ops", "0"], ["--perfetto", str(tmp_path / "p.json")]):
        with pytest.raises(SystemExit) as exc:
            raise SystemExit(main(["show", str(path), *extra]))
        assert exc.value.code == 2
    other = tmp_path / "x.h5"
    other.write_bytes(b"not hdf5")
    assert not is_iteration_trace(other)
    with pytest.raises(PdsimError, match="not a pdsim iteration trace"):
        read_iteration_trace(other)
