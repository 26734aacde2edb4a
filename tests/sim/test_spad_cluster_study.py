"""`pdsim reproduce spad-cluster` (sim/studies/spad_cluster.py), its small variant: every
sized cluster meets SPAD's SLOs when simulated again on its own, one machine fewer in a SPAD
pool does not, and the costs are SPAD Table 3's chip prices times the chips (within 5%, the
cost model's agreement with the table)."""

from __future__ import annotations

import json

import pytest

from sim.cli.main import _studies
from sim.serving.cluster import parse_cluster
from sim.serving.run import requests_for, serve
from sim.studies import spad_cluster as sc
from sim.studies import write_study

DURATION_S = 10.0
TRACE = "azure-code"


@pytest.fixture(scope="module")
def study():
    return sc.spad_cluster_study(duration_s=DURATION_S, traces=(TRACE,), max_count=32,
                                 workers=1)


@pytest.fixture(scope="module")
def reference():
    from sim.api import load_model, load_system
    from sim.serving.steptime import StepTimeTable

    requests = requests_for(TRACE, rate=sc.RATE, duration_s=DURATION_S, seed=sc.SEED)
    table = StepTimeTable(load_model(sc.MODEL), load_system("h100", tp=sc.TP))
    return requests, sc.Unbatched(requests, table)


def _meets(name: str, counts: dict[str, int], reference) -> bool:
    requests, unbatched = reference
    spec = sc.replaced(sc.template(name), **counts)
    result, summary = serve(requests, parse_cluster(spec, name), {})
    return unbatched.accept(result, summary)


def test_every_sized_cluster_meets_the_slos(study, reference):
    clusters = study["traces"][TRACE]["clusters"]
    assert set(clusters) == set(sc.CLUSTERS)
    for name, c in clusters.items():
        assert c["met"], name
        assert _meets(name, c["counts"], reference), name
        assert all(c[f"slowdown_{k}"] <= v for k, v in sc.SLO_MULTIPLIERS.items())


def test_one_machine_fewer_misses_them(study, reference):
    counts = study["traces"][TRACE]["clusters"]["spad"]["counts"]
    for role in ("prefill", "decode"):
        if counts[role] > 1:
            fewer = dict(counts, **{role: counts[role] - 1})
            assert not _meets("spad", fewer, reference), role


def test_costs_are_table_3_prices_times_chips(study):
    t = study["traces"][TRACE]
    for name, c in t["clusters"].items():
        published = sum(g["count"] * sc.TP * sc.PUBLISHED_CHIP_COST[g["hardware"]]
                        for g in c["groups"])
        assert c["cost_usd"] == pytest.approx(published, rel=0.05), name
        assert c["chips"] == sc.TP * sum(c["counts"].values())
    for b in sc.BASELINES:
        s = t["spad_saving"][b]
        assert s["cost_usd"] == pytest.approx(
            1 - t["clusters"]["spad"]["cost_usd"] / t["clusters"][b]["cost_usd"])


def test_report_and_registration(study, tmp_path):
    from sim.studies.spad_cluster_report import plot, readme

    paths = write_study(tmp_path, "spad_cluster", study, plot, readme)
    assert [p.name for p in paths] == ["spad_cluster.json", "spad_cluster.png", "README.md"]
    assert json.loads(paths[0].read_text())["traces"][TRACE]["requests"] > 0
    text = paths[2].read_text()
    assert "arXiv 2510.08544" in text and "41%" in text and "Why pdsim's savings differ" in text
    assert "saving" in sc.headline(study)
    assert _studies()["spad-cluster"] == ("results/spad-cluster",
                                          "sim.studies.spad_cluster:write_spad_cluster")
