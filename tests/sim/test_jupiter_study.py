"""`pdsim reproduce jupiter` (sim/studies/jupiter.py, jupiter_report.py) on a reduced grid:
registered, its folder a function of its JSON alone, its ratios the methods' own numbers."""

from __future__ import annotations

import json

import pytest

from sim.cli.main import _studies
from sim.edge_jupiter import Outline
from sim.studies import jupiter, write_study
from sim.studies.jupiter_report import plot, readme


@pytest.fixture(scope="module")
def data():
    plan = Outline(points=2, outline_tokens=8, point_tokens=8)
    out = jupiter.jupiter_study(models=("llama2-13b",), devices=(2,), links=("wifi",),
                                plan=plan, prompt=64, spread=False)
    out["seed_spread"] = [jupiter.seed_spread("llama2-13b", 2, "wifi", plan, 64, seeds=(0, 3))]
    return out


def test_registered():
    assert _studies()["jupiter"] == ("results/jupiter", "sim.studies.jupiter:write_jupiter")


def test_ratios_are_the_methods_own(data):
    (run,) = data["runs"]
    m = run["methods"]
    assert not m["one-device"]["fits"]  # 13B in fp16 on one 16 GB board
    assert m["one-device"]["need_gb"] > m["one-device"]["have_gb"]
    assert set(run["reduction"]) == {"naive-pipeline", "tensor-parallel"}
    for k, v in run["reduction"].items():
        assert v == pytest.approx(m[k]["e2e_s"] / m["jupiter"]["e2e_s"])
    assert run["reduction_best"] == pytest.approx(min(run["reduction"].values()))
    assert data["max_reduction"]["value"] == pytest.approx(max(run["reduction"].values()))
    assert set(m) == {*jupiter.METHODS, *jupiter.ABLATIONS, jupiter.OWN_LINKS}  # wifi: shared
    (spread,) = data["seed_spread"]  # seed 0 is the study's own run
    assert spread["jupiter"][0] == pytest.approx(m["jupiter"]["e2e_s"])
    assert spread["jupiter-one-batch"][0] == pytest.approx(m["jupiter-one-batch"]["e2e_s"])


def test_folder_is_a_function_of_its_json(data, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_study(a, "jupiter", data, plot, readme)
    write_study(b, "jupiter", json.loads((a / "jupiter.json").read_text()), plot, readme)
    for name in ("jupiter.json", "jupiter.png", "README.md"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    text = (a / "README.md").read_text()
    assert f"{data['max_reduction']['value']:.1f}x" in text
    assert "does not fit" in text and "26.1x" in text
