"""Diffusion LMs (`sim.dllm`): iteration plans by hand, FLOPs against the hand count of
docs/dllm.md, and bad flags exiting 2 with one line."""

from __future__ import annotations

import re

import pytest

from mappers.models import load_model
from sim.cli.main import main
from sim.dllm import DllmWorkload, plan, simulate_dllm
from sim.presets import load_hardware

LLADA = load_model("llada-8b").config
A100 = load_hardware("a100").system
D, INTER, VOCAB, LAYERS = 4096, 12288, 126464, 32  # llada-8b.json: d_model, mlp, vocab, n_layers


def hand_flops(new: int, context: int) -> int:
    """docs/dllm.md: one bidirectional pass of ``new`` tokens over ``context`` cached ones
    (matrix products only: q, k, v, o projections, gated MLP, scores and values over all
    ``context + new`` keys, and the LM head over every new token)."""
    per_layer = (2 * new * D * 3 * D + 2 * new * D * D + 2 * new * 3 * D * INTER
                 + 4 * new * (context + new) * D)
    return LAYERS * per_layer + 2 * new * D * VOCAB


def test_plans_by_hand():
    w = DllmWorkload(mode="vanilla", prompt_tokens=16, gen_tokens=64, block=32,
                     steps_per_block=8)
    its = plan(w)
    assert len(its) == 16 and {(i.kind, i.new, i.context, i.tokens) for i in its} == {
        ("refresh", 80, 0, 4)}
    # fast-dllm, 3 tokens an iteration: ceil(32 / 3) = 11 iterations a block, the last 2
    its = plan(DllmWorkload(mode="fast-dllm", prompt_tokens=16, gen_tokens=64, block=32,
                            tokens_per_iter=3))
    assert len(its) == 22 and sum(i.tokens for i in its) == 64
    assert (its[0].kind, its[0].new, its[0].context) == ("refresh", 80, 0)
    assert {(i.new, i.context) for i in its if i.kind == "diffusion"} == {(32, 48)}
    assert its[10].tokens == 2 and its[11].kind == "refresh"
    # prefix cache: block k passes the block and the suffix over the prefix
    its = plan(DllmWorkload(mode="fast-dllm", prompt_tokens=16, gen_tokens=64, block=32,
                            tokens_per_iter=32 / 3, cache="prefix"))
    assert [(i.kind, i.new, i.context) for i in its] == [
        ("refresh", 80, 0), ("diffusion", 64, 16), ("diffusion", 64, 16),
        ("refresh", 80, 0), ("diffusion", 32, 48), ("diffusion", 32, 48)]
    # odb: predicted 40 -> 64 at the first refresh (of 128); 2 x 2 = 4 tokens an iteration;
    # every diffusion pass carries the block and 3 copies (4 x 32) over the P + 64 - 32 cached
    its = plan(DllmWorkload(mode="odb", prompt_tokens=16, gen_tokens=128, block=32,
                            tokens_per_iter=2, jump=2, pred_len=40))
    assert sum(i.tokens for i in its) == 64 and len(its) == 16
    assert [(i.new, i.context) for i in its if i.kind == "refresh"] == [(144, 0), (80, 0)]
    assert {(i.new, i.context) for i in its if i.kind == "diffusion"} == {(128, 48)}
    its = plan(DllmWorkload(mode="odb", prompt_tokens=16, gen_tokens=128, block=32,
                            tokens_per_iter=8, candidates=1))
    assert {(i.new, i.context) for i in its if i.kind == "diffusion"} == {(32, 112)}
    # a file of counts, cycled
    its = plan(DllmWorkload(mode="fast-dllm", prompt_tokens=8, gen_tokens=32, block=32,
                            counts=(5, 20)))
    assert [i.tokens for i in its] == [5, 20, 5, 2]


@pytest.mark.parametrize(("mode", "kw", "expected"), [
    ("vanilla", {"steps_per_block": 8}, 16 * hand_flops(80, 0)),
    ("fast-dllm", {"tokens_per_iter": 4}, 2 * (hand_flops(80, 0) + 7 * hand_flops(32, 48))),
    ("fast-dllm", {"tokens_per_iter": 16, "cache": "prefix"},
     hand_flops(80, 0) + hand_flops(64, 16) + hand_flops(80, 0) + hand_flops(32, 48)),
    # odb, 4 x 2 = 8 tokens an iteration, length predicted 32 at the first refresh: one
    # block, three jump-share passes of 4 x 32 tokens over the 16 + 32 - 32 cached
    ("odb", {"tokens_per_iter": 4, "jump": 2, "pred_len": 32},
     hand_flops(80, 0) + 3 * hand_flops(128, 16)),
])
def test_flops_match_hand_count(mode, kw, expected):
    """Norms, softmax and the activation add under 0.1% to the matrix products."""
    r = simulate_dllm(LLADA, A100, DllmWorkload(mode=mode, prompt_tokens=16, gen_tokens=64,
                                                block=32, **kw), detail="roofline")
    assert r["summary"]["flops"] == pytest.approx(expected, rel=1e-3)
    assert r["summary"]["flops"] > expected  # and the vector work is counted on top
    assert r["summary"]["tokens"] == (32 if mode == "odb" else 64)


def test_cache_and_odb_are_faster_and_refresh_is_denser():
    base = dict(prompt_tokens=128, gen_tokens=256, block=32)
    runs = {m: simulate_dllm(LLADA, A100, DllmWorkload(mode=m, **base, **kw),
                             detail="roofline")["summary"]
            for m, kw in (("vanilla", {}), ("fast-dllm", {"tokens_per_iter": 2}),
                          ("odb", {"tokens_per_iter": 2, "jump": 2, "pred_len": 96}))}
    assert runs["vanilla"]["e2e_s"] > runs["fast-dllm"]["e2e_s"] > runs["odb"]["e2e_s"]
    f = runs["fast-dllm"]
    assert (f["refresh_intensity_flop_per_dram_byte"]
            > f["diffusion_intensity_flop_per_dram_byte"])


BASE = ["run", "--hw", "a100", "--model", "llada-8b", "--prompt", "16", "--gen", "64",
        "--detail", "roofline", "--no-trace"]


@pytest.mark.parametrize("extra", [
    ["--dllm", "nope"],
    ["--dllm", "vanilla", "--block", "48"],  # does not divide 64
    ["--dllm", "vanilla", "--steps-per-block", "33"],
    ["--dllm", "vanilla", "--tokens-per-iter", "2"],
    ["--dllm", "fast-dllm", "--tokens-per-iter", "0.5"],
    ["--dllm", "fast-dllm", "--pred-len", "10"],
    ["--dllm", "odb", "--pred-len", "65"],
    ["--dllm", "odb", "--jump", "nan"],
    ["--dllm", "odb", "--jump-width", "0"],
    ["--dllm", "fast-dllm", "--jump-width", "2"],
    ["--dllm", "fast-dllm", "--tokens-file", "missing.txt"],
    ["--block", "32"],
    ["--dllm", "vanilla", "--model", "llama2-7b"],  # causal
])
def test_bad_flags_exit_2_with_one_line(extra, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main([*BASE, *extra]))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_cli_prints_summary(capsys):
    assert main([*BASE, "--dllm", "fast-dllm", "--tokens-per-iter", "4"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"iterations \(refresh \+ diffusion\)\s+16 \(2 \+ 14\)", out)
