"""Speculative decoding (`sim.speculative`): the acceptance model against Leviathan et al.'s
closed form, the context growing by the accepted count, step costs against the engine, and
bad flags exiting 2 with one line."""

from __future__ import annotations

import pytest

from mappers.ir import Phase, Precision
from mappers.models import load_model
from sim.cli.main import main
from sim.engine import Workload, simulate
from sim.presets import load_hardware
from sim.speculative import (expected_tokens, read_accept_file, sample_accepted,
                             simulate_speculative)
from sim.step import compile_step

H100 = load_hardware("h100").system
L7 = load_model("llama2-7b").config
L13 = load_model("llama2-13b").config


def test_closed_form_hand_values():
    # (1 - 0.8^5) / 0.2 = (1 - 0.32768) / 0.2; (1 - 0.5^4) / 0.5
    assert expected_tokens(0.8, 4) == pytest.approx(3.3616)
    assert expected_tokens(0.5, 3) == pytest.approx(1.875)
    assert expected_tokens(0.0, 7) == 1.0
    assert expected_tokens(1.0, 5) == 6.0


@pytest.mark.parametrize(("accept", "gamma", "mean"), [(0.8, 4, 3.3616), (0.5, 3, 1.875),
                                                       (0.95, 8, 7.39501)])
def test_simulated_mean_tokens_per_verify_step_within_2_percent(accept, gamma, mean):
    """10^4 sampled verify steps of a whole simulated run; ``mean`` by hand:
    (1 - A^(G+1)) / (1 - A), e.g. 0.95^9 = 0.6302494 -> 0.3697506 / 0.05 = 7.39501."""
    rounds = 10_000
    # enough tokens for 10^4 rounds: gen - 1 = rounds * mean (the last is capped)
    gen = int(rounds * mean) + 1
    wl = Workload(batch=1, prompt_tokens=64, gen_tokens=gen, precision=Precision())
    r = simulate_speculative(L7, H100, L7, H100, wl, gamma=gamma, accept=accept, seed=1,
                             detail="roofline", samples=3, check_capacity=False)
    assert r.summary["rounds"] >= 0.97 * rounds
    assert r.summary["tokens_per_verify_step"] == pytest.approx(mean, rel=0.02)
    # produced tokens add up to the request, the context grows by them
    assert r.produced.sum() == gen - 1
    assert (r.contexts[1:] - r.contexts[:-1] == r.produced[:-1]).all()


def test_sampler_is_seeded_and_in_range():
    a = sample_accepted(0.7, 5, 1000, seed=3)
    assert (a == sample_accepted(0.7, 5, 1000, seed=3)).all()
    assert a.min() >= 0 and a.max() <= 5
    assert (sample_accepted(1.0, 5, 10, seed=0) == 5).all()
    assert (sample_accepted(0.0, 5, 10, seed=0) == 0).all()


def test_context_grows_by_accepted_count(tmp_path):
    """Counts 2, 0, 4 cycled, gen 20 from prompt 100: the prefill gives token 1; rounds give
    3, 1, 5, 3, 1, 5 (19 so far) then 1 (capped from 3)."""
    f = tmp_path / "acc.txt"
    f.write_text("# accepted per round\n2, 0\n4\n")
    counts = read_accept_file(f, 4)
    wl = Workload(batch=1, prompt_tokens=100, gen_tokens=20, precision=Precision())
    r = simulate_speculative(L7, H100, L7, H100, wl, gamma=4, counts=counts,
                             detail="roofline")
    assert r.produced.tolist() == [3, 1, 5, 3, 1, 5, 1]
    assert r.contexts.tolist() == [100, 103, 104, 109, 112, 113, 118]


def test_step_costs_match_the_engine_and_direct_steps():
    """With every context simulated, plain decode is the engine's run and a verify step is a
    (gamma + 1)-token decode step over the round's context."""
    wl = Workload(batch=2, prompt_tokens=256, gen_tokens=9, precision=Precision())
    r = simulate_speculative(L13, H100, L7, H100, wl, gamma=3, accept=1.0,
                             detail="roofline", samples=64)
    engine = simulate(H100, L13, wl, detail="roofline").summary
    assert r.summary["plain_e2e_s"] == pytest.approx(engine["e2e_s"], rel=1e-9)
    assert r.contexts.tolist() == [256, 260]  # all 3 accepted + 1: 4 tokens a round
    verify = compile_step(L13, H100, phase=Phase.DECODE, batch=2, new_tokens=4, context=260,
                          precision=Precision(), detail="roofline")
    assert r.verify_s[1] == pytest.approx(verify.time_s, rel=1e-9)
    draft = sum(compile_step(L7, H100, phase=Phase.DECODE, batch=2, new_tokens=1,
                             context=256 + j, precision=Precision(),
                             detail="roofline").time_s for j in range(3))
    assert r.draft_s[0] == pytest.approx(draft, rel=1e-9)
    # a verify step reads the weights once: cheaper than 4 plain decode steps
    assert r.verify_s[0] < 4 * engine["tbt_mean_s"]


def test_gamma_auto():
    wl = Workload(batch=1, prompt_tokens=256, gen_tokens=33, precision=Precision())
    never = simulate_speculative(L13, H100, L7, H100, wl, gamma=None, accept=0.0,
                                 detail="roofline")
    assert never.summary["best_gamma"] == 1  # nothing accepted: the shortest draft
    good = simulate_speculative(L13, H100, L7, H100, wl, gamma=None, accept=0.95,
                                detail="roofline")
    g = good.summary["best_gamma"]
    assert g > 1 and good.summary["gamma"] == g
    sweep = {k: v for k, v in good.summary.items() if k.startswith("expected_speedup_gamma_")}
    assert max(sweep.values()) == good.summary[f"expected_speedup_gamma_{g}"]


def test_draft_on_another_system():
    wl = Workload(batch=1, prompt_tokens=128, gen_tokens=17, precision=Precision())
    a100 = load_hardware("a100").system
    same = simulate_speculative(L13, H100, L7, H100, wl, gamma=4, accept=0.8,
                                detail="roofline")
    other = simulate_speculative(L13, H100, L7, a100, wl, gamma=4, accept=0.8,
                                 detail="roofline")
    assert other.summary["draft_time_s"] > same.summary["draft_time_s"]  # A100 is slower
    assert other.summary["verify_time_s"] == same.summary["verify_time_s"]


BASE = ["run", "--model", "llama2-13b", "--prompt", "64", "--gen", "8", "--detail",
        "roofline", "--no-trace"]


@pytest.mark.parametrize("extra", [
    ["--draft", "llama2-7b", "--gamma", "0", "--accept", "0.8"],
    ["--draft", "llama2-7b", "--accept", "1.5"],
    ["--draft", "llama2-7b", "--accept", "-0.1"],
    ["--draft", "llama2-7b", "--accept", "nan"],
    ["--draft", "llama2-7b", "--gamma", "x", "--accept", "0.5"],
    ["--draft", "llama2-7b"],
    ["--draft", "llama2-7b", "--accept", "0.5", "--accept-file", "f.txt"],
    ["--draft", "llama2-7b", "--gamma", "auto", "--accept-file", "f.txt"],
    ["--draft", "llama2-7b", "--gamma", "2", "--accept-file", "f.txt"],  # holds a 3
    ["--draft", "llama2-7b", "--gamma", "2", "--accept-file", "missing.txt"],
    ["--draft", "llama2-7b", "--gamma", "2", "--accept-file", "/dev/zero"],  # not a file
    ["--draft", "llama2-7b", "--gamma", "2", "--accept-file", "big.txt"],  # 30 digits
    ["--dllm", "fast-dllm", "--tokens-file", "big.txt"],
    ["--dllm", "fast-dllm", "--tokens-file", "/dev/zero"],
    ["--draft", "qwen3-8b", "--accept", "0.5"],  # another vocabulary
    ["--draft", "llama2-7b", "--draft-hw", "nope", "--accept", "0.5"],
    ["--gamma", "3"],
    ["--accept", "0.5"],
])
def test_bad_flags_exit_2_with_one_line(extra, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "f.txt").write_text("1 3 0\n")
    (tmp_path / "big.txt").write_text("1 " + "9" * 30 + "\n")
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main([*BASE, *extra]))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.txt", "f.txt"]


def test_cli_prints_speed_up(capsys):
    assert main([*BASE, "--draft", "llama2-7b", "--gamma", "auto", "--accept", "0.9"]) == 0
    out = capsys.readouterr().out
    assert "speed-up over plain decode" in out and "best gamma" in out


def test_per_step_columns():
    """Rows: 2 prefills, then per round G draft steps and a verify step whose tokens are
    the round's; the tokens add up to the request, intensity is FLOPs over DRAM bytes."""
    wl = Workload(batch=1, prompt_tokens=64, gen_tokens=12, precision=Precision())
    r = simulate_speculative(L13, H100, L7, H100, wl, gamma=3, accept=0.7, seed=5,
                             detail="roofline", samples=32)
    s = r.steps
    rounds = r.summary["rounds"]
    assert len(s["phase"]) == 2 + 4 * rounds
    assert s["phase"][:6] == ["prefill", "prefill", "draft", "draft", "draft", "verify"]
    assert s["new_tokens"][:6] == [64, 64, 1, 1, 1, 4]
    assert s["context"][2:6] == [64, 65, 66, 64]
    assert sum(s["tokens_produced"]) == 12
    verify = [i for i, ph in enumerate(s["phase"]) if ph == "verify"]
    assert [s["tokens_produced"][i] for i in verify] == r.produced.tolist()
    assert sum(s["time_s"][i] for i in verify) == pytest.approx(r.summary["verify_time_s"])
    for i in range(len(s["phase"])):
        assert s["intensity_flop_per_dram_byte"][i] == pytest.approx(
            s["flops"][i] / s["dram_bytes"][i])
    assert set(s["unit"]) == {"tensor"}


def test_target_and_draft_must_fit_together(capsys):
    """llama2-13b + llama2-7b fp16 weights: 26.0 + 13.5 GB on one 80 GB h100 fit; with a
    long request their KV caches (0.8 + 0.5 MB a token) do not."""
    args = ["run", "--model", "llama2-13b", "--draft", "llama2-7b", "--accept", "0.8",
            "--detail", "roofline", "--no-trace", "--prompt", "512"]
    assert main([*args, "--gen", "64"]) == 0
    assert main([*args, "--gen", "40000"]) == 2
    assert "does not fit" in capsys.readouterr().err
