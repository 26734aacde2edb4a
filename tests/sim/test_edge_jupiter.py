"""Jupiter and its baselines (`sim.edge_jupiter`): memory refusals with their numbers, the
parts of each method's latency adding up, and Jupiter's decode against its own pieces."""

from __future__ import annotations

import json

import pytest

from mappers.ir import Precision
from mappers.models import load_model
from sim.cli.main import main
from sim.edge import load_multi
from sim.edge_jupiter import (Outline, even_split, first_device, jupiter, run_methods,
                              sequential)
from sim.errors import ConfigError

P = Precision()
L7, L13 = (load_model(m).config for m in ("llama2-7b", "llama2-13b"))
SMALL = Outline(points=4, outline_tokens=8, point_tokens=8)


def test_one_device_that_cannot_hold_the_model_reports_its_memory():
    ms = first_device(load_multi("orin-nx-2-wifi"), L13.num_layers)
    r = sequential(ms, L13, "one-device", prompt_tokens=64, gen=4, precision=P)
    assert not r.fits
    # 13.0 G parameters x 2 bytes > the Orin NX's 16 GiB (17.18 GB)
    counts = L13.parameter_counts()
    assert r.need_gb > 2 * counts["total"] / 1e9 > r.have_gb == pytest.approx(17.18, abs=0.01)


def test_even_split_by_hand():
    ms = even_split(load_multi("orin-nx-4-wifi"), 30)
    assert [d.layers for d in ms.spec.devices] == [("0-7",), ("8-15",), ("16-22",),
                                                   ("23-29",)]
    assert [d.embedding for d in ms.spec.devices] == [True, False, False, False]
    with pytest.raises(ConfigError, match="each needs one"):
        even_split(ms, 3)


def test_every_method_adds_up():
    res = run_methods(load_multi("orin-nx-4-wifi"), L7, SMALL, prompt_tokens=64, precision=P)
    for r in res.values():
        assert r.fits
        assert sum(r.breakdown.values()) == pytest.approx(r.e2e_s, rel=1e-9)
        assert 0 < r.ttft_s < r.e2e_s
    j = res["jupiter"].detail
    assert res["jupiter"].e2e_s == pytest.approx(
        res["jupiter"].ttft_s + j["outline_s"] + j["expansions_s"])
    assert j["micro_batches"] == 4 and sum(j["layers"]) == 32
    # the naive pipeline runs the same compute as one device, plus the hops
    one, naive = res["one-device"], res["naive-pipeline"]
    assert naive.breakdown["compute"] == pytest.approx(one.breakdown["compute"], rel=1e-6)
    assert naive.e2e_s > one.e2e_s


def test_speculation_and_points_each_shorten_jupiters_decode():
    ms = load_multi("orin-nx-2-wifi")
    kw = {"prompt_tokens": 64, "precision": P}
    spec = jupiter(ms, L7, SMALL, **kw)
    plain = jupiter(ms, L7, Outline(points=4, outline_tokens=8, point_tokens=8, gamma=0),
                    **kw)
    assert spec.ttft_s == plain.ttft_s  # the prefill does not speculate
    assert spec.detail["expansions_s"] < plain.detail["expansions_s"]
    # every acceptance rejected: each round yields one token for a 5-token verify and 4 heads
    none = jupiter(ms, L7, Outline(points=4, outline_tokens=8, point_tokens=8, accept=0.0),
                   **kw)
    assert none.detail["expansions_s"] > plain.detail["expansions_s"]


@pytest.mark.parametrize("kw, words", [({"points": 0}, "--points"),
                                       ({"micro_batches": 5, "points": 4}, "--micro-batches"),
                                       ({"gamma": -1}, "--gamma"), ({"accept": 1.5}, "--accept")])
def test_bad_outline_is_refused(kw, words):
    with pytest.raises(ConfigError, match=words):
        Outline(**kw)


def test_cli_compare_json(capsys):
    assert main(["edge", "--system-file", "orin-nx-2-wifi", "--prompt", "64", "--compare",
                 "--points", "2", "--outline-tokens", "4", "--point-tokens", "4",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["answer_tokens"] == 8
    assert set(out["methods"]) == {"one-device", "naive-pipeline", "tensor-parallel",
                                   "jupiter"}


@pytest.mark.parametrize("argv, words", [
    (["--compare", "--accept", "1.5"], "--accept"),
    (["--compare", "--micro-batches", "9"], "--micro-batches"),
    (["--points", "4"], "--points: only with --compare"),
    (["--compare", "--gen", "5"], "--compare"),
])
def test_cli_bad_compare_flags_exit_2_with_one_line(argv, words, capsys):
    assert main(["edge", "--system-file", "orin-nx-2-wifi", *argv]) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1


def test_cli_compare_checks_the_files_split(tmp_path, capsys):
    path = tmp_path / "gap.yaml"
    path.write_text("name: gap\ndevices:\n"
                    "  - {name: a, hardware: jetson-orin-nx-16gb, layers: ['0-10'], "
                    "embedding: true}\n"
                    "  - {name: b, hardware: jetson-orin-nx-16gb, layers: ['12-31'], "
                    "lm_head: true}\n"
                    "links:\n  - {between: [a, b], net: wifi}\n")
    assert main(["edge", "--system-file", str(path), "--model", "llama2-7b",
                 "--compare"]) == 2
    assert "layers 11 are held by no device" in capsys.readouterr().err
