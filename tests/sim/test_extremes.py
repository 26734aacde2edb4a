"""`pdsim reproduce extremes` (sim/studies/extremes.py): the folder it writes, that its output
is deterministic, that its numbers are the engine's, and that the fast mode it uses is
within the 0.1% its README states of an exact run.

References: `sim.engine.simulate` run here directly (exact, every decode step) for one point
of each mapping; relative tolerance 1e-3 for the sampled decode (the README's claim), 1e-12
for the prefill (the same computation).
"""

import json

import pytest

from mappers.models import load_model
from sim.cli.main import main
from sim.engine import Workload, simulate
from sim.presets import load_hardware
from sim.studies import extremes


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """The study written twice, into two folders."""
    out = []
    for name in ("a", "b"):
        path = tmp_path_factory.mktemp(name)
        assert main(["reproduce", "extremes", "-o", str(path)]) == 0
        out.append(path)
    return out


def test_writes_its_folder_deterministically(folders):
    a, b = folders
    names = {"extremes.json", "extremes.png", "README.md"}
    assert {p.name for p in a.iterdir()} == names
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_numbers_are_the_engines(folders):
    """One point per system, recomputed: prefill exactly, decode (127 steps, every one
    simulated here) within 0.1% of the study's 8 sampled steps."""
    data = json.loads((folders[0] / "extremes.json").read_text())
    model = load_model(extremes.MODEL).config
    for name in extremes.SYSTEMS:
        w = Workload(batch=1, prompt_tokens=2048, gen_tokens=extremes.GEN,
                     precision=extremes.PRECISION)
        exact = simulate(load_hardware(name).system, model, w).summary
        got = data["runs"][name]["2048"]
        assert got["prefill_s"] == pytest.approx(exact["ttft_s"], rel=1e-12)
        assert got["prefill_energy_j"] == pytest.approx(exact["prefill_energy_j"], rel=1e-12)
        assert got["decode_s"] == pytest.approx(exact["decode_time_s"], rel=1e-3)
        assert got["decode_energy_j"] == pytest.approx(exact["decode_energy_j"], rel=1e-3)


def test_readme_states_what_the_numbers_say(folders):
    """The winners in the README are the JSON's, and the claims follow from the numbers: the
    CiD's decode beats reprogramming crossbars every step at every length; the phase-aware
    mapping takes the all-CiM prefill and the all-CiD decode."""
    data = json.loads((folders[0] / "extremes.json").read_text())
    text = (folders[0] / "README.md").read_text()
    runs = data["runs"]
    for p, win in data["winners"].items():
        cim, cid, halo = (runs[n][p] for n in extremes.SYSTEMS)
        assert win["decode_latency"] == "halo-all-cid" and cid["decode_s"] < cim["decode_s"]
        assert cim["first_decode_step_cim_program_s"] > 0.9 * cim["first_decode_step_s"]
        assert halo["decode_s"] == pytest.approx(cid["decode_s"], rel=1e-12)
        assert halo["prefill_s"] == pytest.approx(cim["prefill_s"], rel=1e-3)
        assert f"| {int(p) // 1024}k | `{win['prefill_latency']}`" in text
    assert not runs["halo-all-cim"]["1024"]["cim_weights_resident"]
    assert "`pdsim reproduce extremes`" in text
