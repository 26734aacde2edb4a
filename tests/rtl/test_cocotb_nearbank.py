"""cocotb co-simulation of the near-bank decode unit, driven by the CiD engine's commands.

One simulator launch per weight format replays every case (GEMVs with remainders, a K longer
than a DRAM row, a GEMM as several GEMVs, attention scores q.K^T and values V^T p) unit by
unit at the engine's cycles; the runner's Checker demands bit-exact results against the
exact model and the functional reduction, no refused or late command, no bank timing
violation and every result out by its RDRES's data cycle. 28 random cases (32 GEMVs) in all,
four weight formats (int4, int8, fp16, bf16).
"""

from __future__ import annotations

import shutil

import pytest

from sim.units.cid.dram import load_dram

runner = pytest.importorskip("testbenches.nearbank_runner", reason="needs cocotb")
pytestmark = pytest.mark.skipif(shutil.which("iverilog") is None,
                                reason="Icarus Verilog not installed (apt-get install iverilog)")

AIM = load_dram("gddr6-aim")


def _cases(wdtype: str, seed: int) -> list[dict]:
    shapes = [("gemv-rem", "gemv", 19, 45), ("gemv-one-row", "gemv", 1, 7),
              ("gemv-long-k", "gemv", 3, {"fp16": 1100, "bf16": 1100, "int8": 2100,
                                          "int4": 4200}[wdtype]),
              ("gemv-pack", "gemv", 33, 31), ("gemm", "gemm", 6, 20),
              ("score", "score", 12, 64), ("value", "value", 64, 12),
              ("gemv-k1", "gemv", 5, 1)]
    return [{"name": f"{wdtype}-{name}", "kind": kind, "rows": n, "cols": k, "m": 2,
             "wdtype": wdtype, "seed": seed + i}
            for i, (name, kind, n, k) in enumerate(shapes)
            if wdtype in ("fp16", "bf16") or kind not in ("score", "value")]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("rtl-cache")


@pytest.mark.parametrize("wdtype,seed", [("int4", 11), ("int8", 23), ("fp16", 37),
                                         ("bf16", 41)])
def test_engine_stream_replays_bit_exact_and_on_cycle(cache, wdtype, seed):
    cases = _cases(wdtype, seed)
    prep = runner.prepare(AIM, "aim", wdtype, cases)
    report = runner.run(prep, cache=cache)
    assert report["mismatches"] == []
    gemvs = report["gemvs"]
    assert len(gemvs) == sum(c["m"] if c["kind"] == "gemm" else 1 for c in cases)
    for g in gemvs:
        assert g["results_match"] and g["cycles_match"], g
        assert g["refused"] == g["late_results"] == g["bank_violations"] == 0
        assert 0 < g["last_result_cycle"] < g["engine_cycles"]
    # the cases exercise what they claim: packed rows, chunks of a long row, remainders
    metas = {m["name"]: m for m in prep.meta}
    assert metas[f"{wdtype}-gemv-long-k"]["chunks"] > 1
    assert metas[f"{wdtype}-gemv-pack"]["pack"] > 1
    assert any(g["units"] < 16 for g in gemvs) and any(g["units"] == 16 for g in gemvs)


def test_checker_flags_wrong_results_and_refusals():
    """The Checker is not vacuous: a wrong beat, a refused command, a late result and a bank
    violation are all reported."""
    prep = runner.prepare(AIM, "aim", "int8", [{"name": "g", "rows": 2, "cols": 40,
                                                "wdtype": "int8", "seed": 1}])
    t = AIM.timing
    replays = []
    for job in prep.jobs:
        key = f"{job['case']}.{job['unit']}"
        beats = [[at + 3, len(v), list(v)] for at, v in zip(prep.rdres[key],
                                                              prep.expected[key])]
        replays.append({"case": job["case"], "unit": job["unit"], "refused": [],
                        "late": 0, "beats": beats, "violations": [], "error": 0,
                        "cycles": 100, "unfinished": False})
    assert runner.check(prep, replays)["mismatches"] == []
    bad = replays[0]
    first = next(i for i, b in enumerate(bad["beats"]) if b[2])
    bad["beats"][first][2][0] += 1
    bad["refused"] = [40]
    bad["violations"] = ["bank: tRCD at cycle 12"]
    bad["beats"][first][0] = prep.rdres["0.0.0"][first] + t.tCL + t.tBL + 1
    report = runner.check(prep, replays)
    text = "\n".join(report["mismatches"])
    assert "RDRES results differ" in text and "refused at engine cycle 40" in text
    assert "tRCD" in text and "after the engine's" in text and "y differs" in text
    assert report["gemvs"][0]["results_match"] is False
    assert report["gemvs"][0]["cycles_match"] is False
