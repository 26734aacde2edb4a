"""The Ascendra and BestServe studies' helpers against hand-computed values, and their
registration in `pdsim reproduce`."""

import pytest

from sim.cli.main import _studies
from sim.studies.ascendra import max_rate
from sim.studies.bestserve import spearman


def test_max_rate_interpolates_the_crossing():
    # 0.95 at 40, 0.85 at 50: the 0.9 crossing is half way, 45 req/s.
    assert max_rate([30, 40, 50], [1.0, 0.95, 0.85]) == pytest.approx(45.0)
    assert max_rate([30, 40], [0.8, 0.7]) == 0.0       # misses at the first rate
    assert max_rate([30, 40], [0.99, 0.95]) == 40.0    # never misses: the last rate


def test_spearman_by_hand():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks (1,2,3,4) vs (2,1,4,3): d^2 = 4, rho = 1 - 6*4/(4*15) = 0.6
    assert spearman([1, 2, 3, 4], [2, 1, 4, 3]) == pytest.approx(0.6)


def test_registered():
    studies = _studies()
    assert studies["ascendra"][0] == "results/ascendra"
    assert studies["bestserve"][0] == "results/bestserve"
