"""The one-array fold model against closed forms (SCALE-Sim's convention, REFERENCE.md)."""

import math

import numpy as np
import pytest

from sim.errors import ConfigError
from sim.units.systolic.array import array_gemm

RNG = np.random.default_rng(7)
SHAPES = [(1, 1, 1), (1, 4096, 64), (64, 1, 64), (64, 64, 1), (37, 53, 19), (256, 256, 256),
          *[tuple(int(v) for v in RNG.integers(1, 300, size=3)) for _ in range(12)]]
ARRAYS = [(4, 4), (8, 3), (3, 5), (16, 32), (32, 32)]


def closed_form(rows, cols, dataflow, m, n, k):
    """REFERENCE.md: folds x per-fold cycles - 1."""
    if dataflow == "os":
        folds, per = math.ceil(m / rows) * math.ceil(n / cols), k + rows + cols - 2
    elif dataflow == "ws":
        folds, per = math.ceil(k / rows) * math.ceil(n / cols), 2 * rows + cols + m - 2
    else:
        folds, per = math.ceil(k / rows) * math.ceil(m / cols), 2 * rows + cols + n - 2
    return folds * per - 1


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
@pytest.mark.parametrize("rows, cols", ARRAYS)
def test_compute_cycles_equal_the_closed_form(dataflow, rows, cols):
    for m, n, k in SHAPES:
        r = array_gemm(rows=rows, cols=cols, dataflow=dataflow, m=m, n=n, k=k)
        assert r.compute_cycles == closed_form(rows, cols, dataflow, m, n, k), (m, n, k)
        assert r.stall_cycles == 0
        assert 0 < r.utilization <= 1


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_sram_traffic_closed_form(dataflow):
    """The stationary operand moves once; each streamed operand once per fold across it."""
    rows, cols, m, n, k = 8, 4, 37, 53, 19
    r = array_gemm(rows=rows, cols=cols, dataflow=dataflow, m=m, n=n, k=k)
    cm, cn, ck = (math.ceil(v / d) for v, d in ((m, rows), (n, cols), (k, rows)))
    expected = {
        "os": (m * k * cn + k * n * cm, m * n),
        "ws": (k * n + m * k * cn, m * n * ck),
        "is": (m * k + k * n * math.ceil(m / cols), m * n * ck),
    }[dataflow]
    assert (r.sram_reads, r.sram_writes) == expected


def test_unlimited_sram_fetches_each_input_once():
    r = array_gemm(rows=8, cols=8, dataflow="os", m=64, n=64, k=64, sram_bytes=1 << 30,
                   bandwidth_bytes_per_cycle=1e9)
    assert r.next_level_words == {"A": 64 * 64, "B": 64 * 64, "C": 64 * 64}


def test_small_sram_refetches_and_stalls():
    kw = dict(rows=8, cols=8, dataflow="os", m=64, n=64, k=512)
    big = array_gemm(**kw, sram_bytes=1 << 30, bandwidth_bytes_per_cycle=16)
    small = array_gemm(**kw, sram_bytes=4096, bandwidth_bytes_per_cycle=16)
    # with no reuse every fold fetches its A and B tiles: 8 x 512 words each, 64 folds
    assert small.next_level_words["A"] == small.next_level_words["B"] == 64 * 8 * 512
    # per fold: 2 x 8 x 512 x 2 bytes / 16 B/cycle = 1024 cycles of fetch vs 526 of compute
    per_fold = 512 + 8 + 8 - 2
    fetch = (2 * 8 * 512 + 8 * 8) * 2 / 16
    assert small.stall_cycles == pytest.approx(fetch + 63 * (fetch - per_fold))
    assert small.cycles > big.cycles > big.compute_cycles


def test_bad_arguments():
    with pytest.raises(ConfigError, match="rows: must be >= 1, got 0"):
        array_gemm(rows=0, cols=4, dataflow="os", m=1, n=1, k=1)
    with pytest.raises(ConfigError, match="unknown dataflow 'xs'"):
        array_gemm(rows=4, cols=4, dataflow="xs", m=1, n=1, k=1)
