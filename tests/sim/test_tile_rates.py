"""The tile model scales only array cycles by a format's MAC rate (issue 14).

Independent references: two chips that differ only in the FP8 MAC rate (h100's 2 vs 1) stream the
same bytes, so a DRAM-bound GEMV must stream for exactly the same time on both; a compute-bound GEMM
can gain at most 2x (every candidate mapping's time is at least half its rate-1 time) and must
gain most of it.
"""

from dataclasses import replace

from sim.presets import load_hardware
from sim.units.systolic.tile import map_gemm

H100 = load_hardware("h100").system.chip


def _with_fp8_rate(rate: float):
    sa = H100.core.systolic_array
    table = tuple((d, rate if d == "fp8" else r) for d, r in sa.macs_per_cycle)
    return replace(H100, core=replace(H100.core, systolic_array=replace(sa, macs_per_cycle=table)))


def test_fp8_mac_rate_leaves_dram_bound_gemv_unchanged():
    assert H100.core.systolic_array.macs_per_pe_per_cycle("fp8") == 2
    fast = map_gemm(H100, "fp8", 1, 1, 4096, 4096, b_dtype="fp8")
    slow = map_gemm(_with_fp8_rate(1.0), "fp8", 1, 1, 4096, 4096, b_dtype="fp8")
    assert fast.dram_bytes == slow.dram_bytes
    for g in (fast, slow):   # DRAM-bound: the stream, then the first tile's exposed fetch
        assert g.cycles == g.dram_bytes / g.dram_bytes_per_cycle + g.first_fetch_cycles
    # the faster MACs let the search pick a smaller k-tile, whose first fetch is shorter; the
    # DRAM stream itself is the same (before the fix, FP8 halved the whole op)
    assert fast.cycles - fast.first_fetch_cycles == slow.cycles - slow.first_fetch_cycles
    assert abs(fast.cycles / slow.cycles - 1) < 0.01


def test_fp8_mac_rate_speeds_compute_bound_gemm_at_most_2x():
    fast = map_gemm(H100, "fp8", 1, 8192, 8192, 8192, b_dtype="fp8")
    slow = map_gemm(_with_fp8_rate(1.0), "fp8", 1, 8192, 8192, 8192, b_dtype="fp8")
    assert 0.5 * slow.cycles <= fast.cycles < 0.7 * slow.cycles
    assert fast.compute_cycles <= 0.5 * slow.compute_cycles * (1 + 1e-9) or \
        fast.tile != slow.tile
