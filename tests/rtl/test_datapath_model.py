"""The datapath's reference model (`sim.units.systolic.datapath`) against independent references.

Results: numpy (int64 matmul; FP8 decoded by ml_dtypes, a decoder independent of the model's)
must agree exactly: the datapath is bit-exact by design, so the tolerance is zero. Cycles: the
compute count must be the simulator's fold model
(`sim.units.systolic.array.array_gemm`, itself checked
against SCALE-Sim) plus the controller's three documented cycles, and the closed forms
``ceil(m/R) ceil(n/C) (k + R + C - 2) + 2`` (os) and ``ceil(k/R) ceil(n/C) (m + 2R + C - 2) + 2``
(ws).
"""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest

from sim.units.systolic.datapath import (MODES, Command, DatapathConfig, DatapathModel,
                                         decode_fp8_e4m3,
                          k_bound)
from sim.errors import ConfigError
from sim.units.systolic.array import array_gemm
from testbenches.operands import numpy_reference, operands


def test_fp8_decoder_matches_ml_dtypes_on_all_codes():
    codes = np.arange(256)
    ref = codes.astype(np.uint8).view(ml_dtypes.float8_e4m3fn).astype(np.float64)
    ref = np.where(np.isnan(ref), 0.0, ref) * 2.0**9          # NaN policy: zero
    assert np.array_equal(decode_fp8_e4m3(codes), ref.astype(np.int64))
    assert np.isnan(float(np.uint8(0x7F).view(ml_dtypes.float8_e4m3fn)))
    assert decode_fp8_e4m3(np.array([0x7E]))[0] == 448 * 2**9  # FP8 max
    assert decode_fp8_e4m3(np.array([0x08]))[0] == 2**3        # min normal 2^-6
    assert decode_fp8_e4m3(np.array([0x01]))[0] == 1           # min subnormal 2^-9


@pytest.mark.parametrize("mode", list(MODES))
def test_k_bound_is_tight(mode):
    """K products of the largest magnitude fit the signed accumulator; K + 1 may not."""
    acc_bits = MODES[mode][2]
    biggest = 128 * 128 if mode == "int8" else 8 * 448 * 2**9
    bound = k_bound(mode)
    assert bound * biggest <= 2 ** (acc_bits - 1) - 1 < (bound + 1) * biggest
    assert bound == {"int8": 131071, "w4fp8": 299593}[mode]


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("kind", ["random", "extreme", "max"])
def test_model_results_equal_numpy(mode, kind):
    model = DatapathModel(DatapathConfig(rows=3, cols=5, mode=mode, max_m=40, max_n=40,
                                         max_k=64))
    rng = np.random.default_rng(7)
    for m, n, k in [(1, 40, 64), (17, 9, 1), (40, 40, 64), (5, 1, 33)]:
        a, b = operands(mode, m, n, k, rng, kind)
        assert np.array_equal(model.gemm(a, b), numpy_reference(mode, a, b))


def test_max_products_at_the_k_bound_do_not_overflow():
    """The largest products summed K = bound times stay below 2^(acc_bits-1) (int64 model)."""
    for mode in MODES:
        cfg = DatapathConfig(rows=1, cols=1, mode=mode, max_m=1, max_n=1, max_k=k_bound(mode))
        a, b = operands(mode, 1, 1, k_bound(mode), np.random.default_rng(0), "max")
        c = DatapathModel(cfg).gemm(a, b)[0, 0]
        assert 0 < c < 2 ** (cfg.acc_bits - 1)


@pytest.mark.parametrize("dataflow", ["os", "ws"])
@pytest.mark.parametrize("rows,cols", [(1, 1), (4, 4), (3, 5), (8, 2), (16, 16)])
def test_compute_cycles_follow_the_simulator_fold_model(rows, cols, dataflow):
    model = DatapathModel(DatapathConfig(rows=rows, cols=cols, max_m=70, max_n=70, max_k=70,
                                         dataflow=dataflow))
    for m, n, k in [(1, 1, 1), (1, 70, 70), (70, 1, 3), (13, 29, 7), (64, 64, 64)]:
        sim = array_gemm(rows=rows, cols=cols, dataflow=dataflow, m=m, n=n, k=k)
        if dataflow == "os":
            closed = math.ceil(m / rows) * math.ceil(n / cols) * (k + rows + cols - 2) + 2
        else:
            closed = math.ceil(k / rows) * math.ceil(n / cols) * (m + 2 * rows + cols - 2) + 2
        got = model.command_cycles(Command("COMPUTE", m, n, k))
        assert got == sim.compute_cycles + 3 == closed


def test_load_and_drain_cycles_and_stalls():
    model = DatapathModel(DatapathConfig(rows=2, cols=2))
    assert model.command_cycles(Command("LOAD_A", 5, 3, 7)) == 35
    assert model.command_cycles(Command("LOAD_B", 5, 3, 7), stall_cycles=4) == 25
    assert model.command_cycles(Command("DRAIN_C", 5, 3, 7), stall_cycles=2) == 18
    with pytest.raises(ValueError, match="cannot stall"):
        model.command_cycles(Command("COMPUTE", 5, 3, 7), stall_cycles=1)
    assert [c.op for c in model.program(2, 2, 2)] == ["LOAD_A", "LOAD_B", "COMPUTE", "DRAIN_C"]


@pytest.mark.parametrize("kwargs,field", [
    ({"rows": 0, "cols": 4}, "rows"),
    ({"rows": 4, "cols": -1}, "cols"),
    ({"rows": 4, "cols": 4, "mode": "fp16"}, "mode"),
    ({"rows": 4, "cols": 4, "max_k": 131072}, "max_k"),
    ({"rows": 4, "cols": 4, "mode": "w4fp8", "max_k": 299594}, "max_k"),
    ({"rows": 65, "cols": 4}, "rows"),
    ({"rows": 4, "cols": 4, "max_m": 0}, "max_m"),
    ({"rows": True, "cols": 4}, "rows"),
    ({"rows": 4, "cols": 4, "dataflow": "is"}, "dataflow"),
])
def test_bad_configs_are_refused(kwargs, field):
    with pytest.raises(ConfigError, match=f"^{field}"):
        DatapathConfig(**kwargs)


def test_shapes_beyond_the_buffers_are_refused():
    model = DatapathModel(DatapathConfig(rows=2, cols=2, max_m=4, max_n=4, max_k=4))
    with pytest.raises(ConfigError, match="^k: must be in 1..4"):
        model.command_cycles(Command("LOAD_A", 2, 2, 5))
    with pytest.raises(ConfigError, match="^op"):
        model.command_cycles(Command("LOAD_C", 2, 2, 2))
