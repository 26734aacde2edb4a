"""Split-K and stream-K in the tile model's mapping search (issue 11: GEMMs with fewer output
tiles than cores)."""

import math

import pytest

from sim.presets import load_hardware
from sim.units.systolic.array import fold_cycles
from sim.units.systolic.tile import map_gemm

SXM = load_hardware("h100-sxm").system.chip


def test_few_tile_gemm_splits_k_and_pays_the_reduction():
    """256 x 4096 x 4096 on 132 cores: the chosen mapping splits K; split-K's reduction reads
    and writes every part's fp32 output once through L2 (the partials, 2 x 256 x 4096 x 4 B per
    part, fit in half the 50 MB L2), in a second kernel."""
    g = map_gemm(SXM, "fp16", 1, 256, 4096, 4096)
    assert g.decomposition in ("split-k", "stream-k")
    m1, n1, _ = g.tile
    tiles = math.ceil(256 / m1) * math.ceil(4096 / n1)
    assert tiles < SXM.cores
    if g.decomposition == "split-k":
        assert g.kernels == 2 and g.k_parts == SXM.cores // tiles
        partial_bytes = 2 * g.k_parts * 256 * 4096 * 4
        assert g.reduce_cycles == pytest.approx(partial_bytes / SXM.l2.bandwidth_bytes_per_cycle)


@pytest.mark.parametrize("shape", [(8192, 8192, 8192), (2048, 4096, 4096)])
def test_gemms_with_a_tile_per_core_keep_whole_tiles(shape):
    """Enough output tiles for every core: no split (cuBLAS's data-parallel kernels)."""
    g = map_gemm(SXM, "fp16", 1, *shape)
    m1, n1, _ = g.tile
    assert math.ceil(shape[0] / m1) * math.ceil(shape[1] / n1) >= SXM.cores
    assert g.decomposition == "tiles" and g.kernels == 1 and g.reduce_cycles == 0


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
