"""`pdsim reproduce alchemist` (sim/studies/alchemist.py) on a short window and one model:
every request served in every configuration, the co-located job's rate per training second
against `pdsim train`'s step, Alchemist's between that and the all-reused bound, the
offloaded memory against the recorded bytes, and the files written."""

import pytest

from sim.cli.main import _studies
from sim.studies import alchemist as study


@pytest.fixture(scope="module")
def data():
    mp = pytest.MonkeyPatch()
    mp.setattr(study, "DURATION_S", 40.0)
    mp.setattr(study, "MODELS", ("llama2-7b",))
    try:
        yield study.alchemist()
    finally:
        mp.undo()


def test_registered():
    assert _studies()["alchemist"] == ("results/alchemist",
                                       "sim.studies.alchemist:write_alchemist")


def test_every_request_served_in_every_configuration(data):
    m = data["models"]["llama2-7b"]
    for w in study.WORKLOADS:
        for cfg in study.CONFIGS:
            r = m["runs"][w][cfg]
            assert r["completed"] == r["requests"] == data["workloads"][w]["requests"] > 0
        assert m["runs"][w]["alchemist"]["reuse"]["recorded_sequences"] == r["requests"]


def test_training_rates_against_the_step_alone(data):
    m = data["models"]["llama2-7b"]
    tokens = study.TRAIN["batch"] * study.TRAIN["seq"]
    full, reuse = (tokens / m["step"]["step_s"][k] for k in ("none", "reuse"))
    for w in study.WORKLOADS:
        runs = m["runs"][w]
        # Without reuse the serving cluster runs pdsim train's step, chunk by chunk
        assert runs["colocated"]["tokens_per_busy_s"] == pytest.approx(full, rel=0.02)
        assert runs["separate"]["tokens_per_busy_s"] == pytest.approx(full)
        assert full < runs["alchemist"]["tokens_per_busy_s"] <= reuse * 1.02


def test_offloaded_memory_keeps_two_layers_of_the_recorded_bytes(data):
    st = data["models"]["llama2-7b"]["step"]
    mem, layers = st["memory"], 32
    recorded = st["record_bytes_per_token"] * study.TRAIN["batch"] * study.TRAIN["seq"]
    dropped = (layers - study.RESIDENT_LAYERS) / layers * recorded
    assert mem["alchemist_offloaded"]["activations"] == pytest.approx(
        mem["separate"]["activations"] - dropped)
    assert mem["alchemist_dram"] == mem["separate"]
    ratios = data["models"]["llama2-7b"]["ratios"]
    assert ratios["memory_saving"] == pytest.approx(dropped / mem["separate"]["total"])


def test_writes_the_folder(data, tmp_path):
    from sim.studies import write_study
    from sim.studies.alchemist_report import plot, readme

    paths = write_study(tmp_path, "alchemist", data, plot, readme)
    assert sorted(p.name for p in paths) == ["README.md", "alchemist.json", "alchemist.png"]
    text = (tmp_path / "README.md").read_text()
    assert "arXiv 2503.01066" in text and study.headline(data) in text
