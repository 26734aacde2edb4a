"""pdsim's one-array model against the real SCALE-Sim 3.0.0 (PyPI ``scalesim``).

SCALE-Sim runs in a private venv (tests/scalesim_ref: it needs numpy < 2.3), built on first
use from PyPI (about 25 s) and then reused.  All cases go through it in one batch per module
(about 15 s).  Set ``PDSIM_SKIP_SCALESIM=1`` to skip on a machine without PyPI.

What is compared, and how tightly:

* **Compute cycles: exact**, every case, both in SCALE-Sim's CALC bandwidth mode and in its
  USER mode (where SCALE-Sim also stalls; compute cycles there are total minus stalls).
* **SRAM accesses per operand (words the array reads from / writes to each SRAM): exact**,
  CALC mode, with one documented exception: for the output-stationary dataflow SCALE-Sim
  counts ``rows + cols`` extra ofmap writes per fold.  ``systolic_compute_os.py`` (3.0.0,
  ``create_ofmap_demand_mat``) increments ``ofmap_writes`` a second time with
  ``shape[0] + shape[1]`` of the padded fold; no words move for it.  The test adds that term
  to our count rather than copying the bug into pdsim.
* **DRAM traffic: exact for reads, within ``cols`` words for ofmap writes**, where every
  operand fits in half its SRAM (SCALE-Sim double-buffers, as pdsim does), so both fetch each
  input word once.  SCALE-Sim drains the ofmap in lines of ``cols`` words, so its write count
  is rounded up to a line (e.g. 65536 + 31 on a 32-wide array).  Where an operand does not fit,
  SCALE-Sim's 100-set prefetch buffer keeps part of it and pdsim's model refetches every fold's
  tile; those counts are not compared (pdsim's is an upper bound there, checked below).
* **Stall cycles: not compared.**  SCALE-Sim's USER mode prefetches line by line with a
  one-cycle DRAM port and no DRAM timing; pdsim's stalls come from a tile-granular fetch
  overlapped with the previous fold.  Both report stalls when bandwidth is short (asserted).
"""

from __future__ import annotations

import json
import os

import pytest

from sim.cli.main import main
from sim.units.systolic.array import array_gemm

#: (m, n, k, rows, cols): M=1, N=1, K=1, non-divisible, R != C, arrays larger than the GEMM,
#: 1xN and 1x1-ish arrays, and the benchmark's 256^3 on 32x32.
SHAPES = [
    (37, 53, 19, 4, 8),
    (37, 53, 19, 8, 3),
    (1, 64, 48, 8, 8),
    (64, 1, 48, 8, 8),
    (48, 64, 1, 8, 8),
    (1, 1, 1, 4, 4),
    (100, 30, 70, 16, 16),
    (7, 5, 3, 32, 32),
    (64, 32, 16, 8, 8),
    (33, 17, 65, 4, 8),
    (5, 9, 130, 8, 3),
    (1, 200, 96, 16, 8),
    (1, 96, 200, 8, 16),
    (17, 1, 1, 4, 4),
    (1, 1, 97, 8, 8),
    (129, 65, 33, 32, 16),
    (12, 120, 8, 2, 16),
    (20, 24, 12, 1, 8),
    (2, 3, 300, 3, 2),
    (31, 31, 31, 16, 16),
    (8, 128, 64, 8, 8),
    (128, 8, 64, 16, 4),
    (256, 256, 256, 32, 32),
]
DATAFLOWS = ("os", "ws", "is")
CALC = [dict(m=m, n=n, k=k, rows=r, cols=c, dataflow=df)
        for (m, n, k, r, c) in SHAPES for df in DATAFLOWS]
#: SCALE-Sim's USER bandwidth mode: small SRAMs and a few words/cycle, so it stalls.
USER = [dict(m=m, n=n, k=k, rows=r, cols=c, dataflow=df, ifmap_kb=kb, filter_kb=kb,
             ofmap_kb=kb, bandwidth=bw)
        for (m, n, k, r, c, kb, bw) in [(64, 64, 64, 8, 8, 1, 2), (37, 53, 19, 4, 8, 1, 1),
                                         (100, 30, 70, 16, 16, 2, 4)]
        for df in DATAFLOWS]
SRAM_KB = 64  # runner.py's default per-operand SRAM, in KB of one-byte words


def _ident(case: dict) -> str:
    extra = f"-bw{case['bandwidth']}" if "bandwidth" in case else ""
    return f"{case['m']}x{case['n']}x{case['k']}-{case['rows']}x{case['cols']}-" \
           f"{case['dataflow']}{extra}"


@pytest.fixture(scope="module")
def scalesim() -> dict[str, dict]:
    if os.environ.get("PDSIM_SKIP_SCALESIM"):
        pytest.skip("PDSIM_SKIP_SCALESIM is set")
    from tests.scalesim_ref.env import run_cases

    cases = CALC + USER
    results = run_cases(cases)
    out = {}
    for case, res in zip(cases, results, strict=True):
        assert "error" not in res, f"SCALE-Sim failed on {case}: {res['error']}"
        out[_ident(case)] = res
    return out


def _ours(case: dict, sram: bool = False):
    kw = dict(sram_bytes=SRAM_KB * 1024) if sram else {}
    return array_gemm(rows=case["rows"], cols=case["cols"], dataflow=case["dataflow"],
                      m=case["m"], n=case["n"], k=case["k"], word_bytes=1, **kw)


def test_enough_shapes():
    assert len(SHAPES) >= 20 and len({s[:3] for s in SHAPES}) >= 20
    assert any(s[0] == 1 for s in SHAPES) and any(s[2] == 1 for s in SHAPES)
    assert any(s[3] != s[4] for s in SHAPES)


@pytest.mark.parametrize("case", CALC + USER, ids=_ident)
def test_compute_cycles_equal(scalesim, case):
    ref = scalesim[_ident(case)]
    assert _ours(case).compute_cycles == ref["compute_cycles"]
    if "bandwidth" not in case:
        assert ref["stall_cycles"] == 0 and ref["total_cycles"] == ref["compute_cycles"]


@pytest.mark.parametrize("case", CALC, ids=_ident)
def test_sram_accesses_equal(scalesim, case):
    ref = scalesim[_ident(case)]
    ours = _ours(case)
    ofmap_bug = ours.folds * (case["rows"] + case["cols"]) if case["dataflow"] == "os" else 0
    assert ours.sram_words["A"] == ref["sram_ifmap_reads"]
    assert ours.sram_words["B"] == ref["sram_filter_reads"]
    assert ours.sram_words["C"] + ofmap_bug == ref["sram_ofmap_writes"]
    assert ours.sram_reads == ref["sram_ifmap_reads"] + ref["sram_filter_reads"]


def _fits(case: dict) -> bool:
    half = SRAM_KB * 1024 // 2
    m, n, k = case["m"], case["n"], case["k"]
    return max(m * k, k * n, m * n) <= half


@pytest.mark.parametrize("case", CALC, ids=_ident)
def test_dram_traffic(scalesim, case):
    ref = scalesim[_ident(case)]
    ours = _ours(case, sram=True).next_level_words
    if _fits(case):
        assert ours["A"] == ref["dram_ifmap_reads"]
        assert ours["B"] == ref["dram_filter_reads"]
        assert 0 <= ref["dram_ofmap_writes"] - ours["C"] < case["cols"]
    else:  # pdsim refetches every tile: never less than SCALE-Sim's partial reuse
        assert ours["A"] >= ref["dram_ifmap_reads"]
        assert ours["B"] >= ref["dram_filter_reads"]


def test_dram_comparison_covers_most_cases():
    assert sum(map(_fits, CALC)) >= 60


@pytest.mark.parametrize("case", USER, ids=_ident)
def test_both_stall_when_bandwidth_is_short(scalesim, case):
    ref = scalesim[_ident(case)]
    ours = array_gemm(rows=case["rows"], cols=case["cols"], dataflow=case["dataflow"],
                      m=case["m"], n=case["n"], k=case["k"], word_bytes=1,
                      sram_bytes=case["ifmap_kb"] * 1024,
                      bandwidth_bytes_per_cycle=case["bandwidth"])
    assert ref["stall_cycles"] > 0 and ours.stall_cycles > 0


@pytest.mark.parametrize("case", [c for c in CALC if c["m"] in (1, 37, 256)], ids=_ident)
def test_pdsim_gemm_cli_agrees(scalesim, case, capsys):
    ref = scalesim[_ident(case)]
    argv = ["gemm", "--json", "--word-bytes", "1"] + [
        f"--{key}={case[key]}" for key in ("rows", "cols", "dataflow", "m", "n", "k")]
    assert main(argv) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["compute_cycles"] == ref["compute_cycles"]
    assert got["sram_words"]["A"] == ref["sram_ifmap_reads"]
    assert got["sram_words"]["B"] == ref["sram_filter_reads"]
