"""The memoised step-time table against direct simulation of the same step."""

import numpy as np

from mappers.ir import Batch
from sim.api import load_model, load_system
from sim.serving.steptime import StepTimeTable, key_batch


def test_key_batch_shares_tokens_evenly():
    b = key_batch(10, 4, 7)
    assert b == Batch.of([(3, 7), (3, 7), (2, 7), (2, 7)])
    assert (b.sequences, b.tokens) == (4, 10)


def test_interpolation_error_under_one_percent():
    table = StepTimeTable(load_model("llama2-7b"), load_system("h100"))
    rng = np.random.default_rng(3)
    worst = 0.0
    for _ in range(120):
        batch = int(rng.choice([1, rng.integers(1, 256)]))
        tokens = batch if rng.random() < 0.5 else int(rng.integers(batch, 8192))
        context = int(rng.integers(0, 4000))
        got, want = table.time(tokens, batch, context), table.direct(tokens, batch, context)
        worst = max(worst, abs(got / want - 1))
    assert worst < 0.01
    assert worst > 0  # points between nodes are interpolated, not simulated


def test_grid_nodes_are_exact():
    table = StepTimeTable(load_model("llama2-7b"), load_system("h100"))
    assert table.time(64, 64, 0) == table.direct(64, 64, 0)
