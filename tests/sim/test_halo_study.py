"""`pdsim reproduce halo` (sim/studies/halo.py): the folder it writes is deterministic, its
numbers are the engine's, its variants change what they say, and ``auto`` is never slower
than the best named policy on points of its grid.

References: `sim.engine.simulate` run here directly on the preset with each mapping (the same
computation: relative tolerance 1e-12); the crossbar count read back from the variant."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

import pytest

from mappers.models import load_model
from sim.cli.main import main
from sim.engine import Workload, simulate
from sim.mapping import resolve
from sim.presets import load_hardware
from sim.studies import halo
from sim.units.cim.crossbar import load_cim


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    out = []
    for name in ("a", "b"):
        path = tmp_path_factory.mktemp(name)
        assert main(["reproduce", "halo", "-o", str(path)]) == 0
        out.append(path)
    return out


def test_writes_its_folder_deterministically(folders):
    a, b = folders
    names = {"halo.json", "halo.png", "README.md"}
    assert {p.name for p in a.iterdir()} == names
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_numbers_are_the_engines(folders):
    data = json.loads((folders[0] / "halo.json").read_text())
    row = next(r for r in data["runs"] if (r["model"], r["batch"], r["prompt"], r["gen"])
               == ("qwen3-8b", 4, 8192, 512))
    system = load_hardware("halo-package").system
    work = Workload(batch=4, prompt_tokens=8192, gen_tokens=512, precision=halo.PRECISION)
    for m in halo.MAPPINGS:
        s = simulate(dataclasses.replace(system, mapping=m), load_model("qwen3-8b").config,
                     work, decode_sample=halo.DECODE_SAMPLE).summary
        assert row[m]["e2e_s"] == pytest.approx(s["e2e_s"], rel=1e-12)
        assert row[m]["ttft_s"] == pytest.approx(s["ttft_s"], rel=1e-12)
    # the README states the ordering verdict and HALO's figures beside pdsim's
    text = (folders[0] / "README.md").read_text()
    assert "Does HALO's ordering hold?" in text and "18.0x" in text and "2.5x" in text


def test_crossbar_variant_scales_the_count():
    system = load_hardware("halo-package").system
    with tempfile.TemporaryDirectory() as tmp:
        v = halo._with_crossbars(system, 0.25, Path(tmp))
        unit = load_cim(v.chip.cim.unit).unit
        assert unit.crossbars == 103224 // 4 // 8 * 8 and unit.write_parallel_crossbars == \
            unit.crossbars // 8


@pytest.mark.parametrize(("model", "prompt"), [("llama2-7b", 2048), ("qwen3-8b", 8192)])
def test_auto_never_slower_on_the_study_grid(model, prompt):
    system = load_hardware("halo-package").system
    cfg = load_model(model).config
    work = Workload(prompt_tokens=prompt, gen_tokens=128, precision=halo.PRECISION)

    def e2e(s):
        return simulate(s, cfg, work, decode_sample=halo.DECODE_SAMPLE).summary["e2e_s"]
    best = min(e2e(dataclasses.replace(system, mapping=m)) for m in halo.MAPPINGS)
    auto, _ = resolve(system, cfg, work, name="auto")
    assert e2e(auto) <= best * (1 + 1e-9)
