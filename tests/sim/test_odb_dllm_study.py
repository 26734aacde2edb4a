"""`pdsim reproduce odb-dllm` (`sim.studies.odb_dllm`): iteration counts by hand, the
roofline placement, and the speculative heat map's shape."""

from __future__ import annotations

import pytest

from sim.studies.odb_dllm import odb_dllm_study


@pytest.fixture(scope="module")
def data():
    return odb_dllm_study()


def test_iteration_counts_by_hand(data):
    runs = data["dllm"]["runs"]
    # vanilla: 1024 tokens, one an iteration
    assert (runs["vanilla"]["iterations"], runs["vanilla"]["diffusion_iterations"]) == (1024, 0)
    # fast-dllm: 32 blocks of 32 at 2.77 an iteration: ceil(32 / 2.77) = 12 iterations a
    # block (11 x 2.77 = 30.5 < 32), 1 of them a refresh
    assert (runs["fast-dllm"]["refresh_iterations"],
            runs["fast-dllm"]["diffusion_iterations"]) == (32, 32 * 11)
    # odb: 256 predicted tokens = 8 blocks at 2 x 2.77 = 5.54 an iteration: 6 a block
    assert (runs["odb"]["tokens"], runs["odb"]["refresh_iterations"],
            runs["odb"]["diffusion_iterations"]) == (256, 8, 8 * 5)


def test_sensitivity_moves_the_right_way(data):
    """More tokens an iteration, a shorter predicted length or a larger jump never slow a
    run down; the study's own point is in the grid and the task table."""
    sens = data["dllm"]["sensitivity"]
    by_task = sorted(sens["by_task"].values(), key=lambda r: r["tokens_per_iter"])
    for mode in ("fast-dllm", "odb"):
        times = [r[mode] for r in by_task]
        assert times == sorted(times, reverse=True)
    grid = sens["odb_e2e_s"]
    for row in grid:
        assert row == sorted(row, reverse=True)
    for col in zip(*grid):
        assert list(col) == sorted(col)
    odb = data["dllm"]["runs"]["odb"]["e2e_s"]
    assert grid[sens["pred_lens"].index(256)][sens["jumps"].index(2.0)] == odb
    assert sens["by_task"]["GSM8K-CoT"]["odb"] == odb


def test_jump_share_passes_are_denser(data):
    """Four block copies a pass: about 4x Fast-dLLM's diffusion intensity, still below the
    ridge (memory-bound)."""
    d = data["dllm"]
    f, o = d["runs"]["fast-dllm"], d["runs"]["odb"]
    key = "diffusion_intensity_flop_per_dram_byte"
    assert 3.0 < o[key] / f[key] < 4.0
    assert o[key] < d["roofline"]["ridge_flop_per_byte"]


def test_refresh_above_and_diffusion_below_the_ridge(data):
    d = data["dllm"]
    ridge = d["roofline"]["ridge_flop_per_byte"]
    assert ridge == pytest.approx(312e12 / 2039e9, rel=0.01)  # A100: 312 TFLOP/s, 2039 GB/s
    f = d["runs"]["fast-dllm"]
    assert f["refresh_intensity_flop_per_dram_byte"] > ridge
    assert f["diffusion_intensity_flop_per_dram_byte"] < ridge
    s = d["speedup_over_vanilla"]
    assert s["odb"] > s["fast-dllm"] > 1.0


def test_heat_map(data):
    spec = data["speculative"]
    for name, sys_ in spec["systems"].items():
        grid = sys_["speedup"]
        assert len(grid) == len(spec["accepts"]) and len(grid[0]) == len(spec["gammas"])
        for j in range(len(spec["gammas"])):  # higher acceptance never hurts
            col = [row[j] for row in grid]
            assert col == sorted(col), name
    assert max(max(r) for r in spec["systems"]["h100"]["speedup"]) > 1.0
