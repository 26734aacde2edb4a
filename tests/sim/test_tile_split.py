"""Split-K and stream-K in the tile model's mapping search (issue 11: GEMMs with fewer output
tiles than cores)."""

import pytest

from sim.presets import load_hardware
from sim.units.systolic.array import fold_cycles
from sim.units.systolic.tile import map_gemm

SXM = load_hardware("h100-sxm").system.chip


def test_few_tile_gemm_does_not_keep_whole_tiles():
    """256 x 4096 x 4096 on 132 cores: whole tiles would leave cores idle or force small
    tiles; the chosen mapping splits the K loop."""
    assert map_gemm(SXM, "fp16", 1, 256, 4096, 4096).decomposition in ("split-k", "stream-k")


def test_split_k_pays_its_reduction_kernel():
    """512 x 2048 x 16384 in 128 x 256 tiles is 32 tiles: split-K by 132 // 32 = 4 parts. The
    reduction kernel writes and reads every part's fp32 output once (2 x 4 x 512 x 2048 x 4 B
    = 33.6 MB, its 16.8 MB of partials fit in half the 50 MB L2) at the L2's 5120 B/cycle."""
    g = map_gemm(SXM, "fp16", 1, 512, 2048, 16384)
    assert g.decomposition == "split-k" and g.tile[:2] == (128, 256)
    assert g.k_parts == 4 and g.kernels == 2
    assert g.reduce_cycles == pytest.approx(2 * 4 * 512 * 2048 * 4 / 5120)


def test_stream_k_deals_k_steps_evenly():
    """256 x 12288 x 4096 in 128 x 256 tiles is 96 tiles of 32 k-steps: whole tiles leave 36
    cores idle, split-K cannot fill them (132 // 96 = 1 part), stream-K gives each core
    ceil(96 x 32 / 132) = 24 k-steps."""
    g = map_gemm(SXM, "fp16", 1, 256, 12288, 4096)
    assert g.decomposition == "stream-k" and g.kernels == 1
    m1, n1, k1 = g.tile
    assert (m1, n1, k1) == (128, 256, 128)
    sa, lanes = SXM.core.systolic_array, SXM.core.sublanes
    sub = (m1 // lanes, n1) if g.split == "m" else (m1, n1 // lanes)
    folds, per_fold = fold_cycles(sa.rows, sa.cols, 0, *sub, k1)  # output stationary
    assert g.compute_cycles == pytest.approx(24 * folds * per_fold)


@pytest.mark.parametrize("shape", [(8192, 8192, 8192), (2048, 4096, 4096)])
def test_large_gemms_keep_whole_tiles(shape):
    """Enough output tiles for (nearly) every core: no split, as cuBLAS's data-parallel
    kernels (8192^3 has 1024 tiles of 256 x 256; 2048 x 4096 has 128 of them, whose 32
    k-steps each dealt over 132 cores are still ceil(128 x 32 / 132) = 32 per core)."""
    g = map_gemm(SXM, "fp16", 1, *shape)
    assert g.tile[:2] == (256, 256)
    assert g.decomposition == "tiles" and g.kernels == 1 and g.reduce_cycles == 0
