"""The memoised step-time tables against direct simulation of the same ragged step
(`sim.step.compile_step` on the step's own batch, through `StepTimeTable.simulate` of a
second table so that no node is shared)."""

import numpy as np
import pytest

from mappers.ir import Batch
from sim.api import load_model, load_system
from sim.serving.steptime import StepTimeTable, key_batch


def _table(hw: str = "h100", tp: int = 1, model: str = "llama2-7b") -> StepTimeTable:
    return StepTimeTable(load_model(model), load_system(hw, tp=tp))


def _steps(kind: str, rng, count: int) -> list[list[tuple[int, int]]]:
    """Random ragged steps of one kind, as the batching policies make them."""
    out = []
    for _ in range(count):
        decodes = [(1, int(rng.integers(1, 4000))) for _ in range(int(rng.integers(1, 200)))]
        chunks = [(int(rng.integers(2, 2048)), int(rng.choice([0, rng.integers(1, 6000)])))
                  for _ in range(int(rng.integers(1, 4)))]
        prompts = [(int(rng.integers(1, 3000)), 0) for _ in range(int(rng.integers(2, 8)))]
        out.append({"decode": decodes, "prefill": prompts, "mixed": decodes + chunks,
                    "chunks": chunks + [(int(rng.integers(2, 2048)), 10)]}[kind])
    return out


def test_key_batch_shares_tokens_evenly():
    b = key_batch(10, 4, 7)
    assert b == Batch.of([(3, 7), (3, 7), (2, 7), (2, 7)])
    assert (b.sequences, b.tokens) == (4, 10)


@pytest.mark.parametrize("kind", ["decode", "prefill", "mixed", "chunks"])
def test_ragged_step_error_under_one_percent(kind):
    """Decode-only, prefill-only, a prompt chunk riding with decodes, several chunks: each
    within 1% of simulating the step itself (docs/serving.md states the worst measured)."""
    table, ref = _table(), _table()
    rng = np.random.default_rng(["decode", "prefill", "mixed", "chunks"].index(kind))
    worst = max(abs(table.step(s) / ref.simulate(Batch.of(s)) - 1)
                for s in _steps(kind, rng, 40))
    assert worst < 0.01


def test_ragged_step_error_under_one_percent_tensor_parallel_spad():
    table, ref = _table("spad-prefill", 8, "bloom-176b"), _table("spad-prefill", 8, "bloom-176b")
    rng = np.random.default_rng(7)
    steps = _steps("mixed", rng, 15) + _steps("prefill", rng, 15)
    assert max(abs(table.step(s) / ref.simulate(Batch.of(s)) - 1) for s in steps) < 0.01


def test_key_interpolation_error_under_one_percent():
    table = _table()
    rng = np.random.default_rng(3)
    worst = 0.0
    for _ in range(120):
        batch = int(rng.choice([1, rng.integers(1, 256)]))
        tokens = batch if rng.random() < 0.5 else int(rng.integers(batch, 8192))
        context = int(rng.integers(0, 4000))
        got, want = table.time(tokens, batch, context), table.direct(tokens, batch, context)
        worst = max(worst, abs(got / want - 1))
    assert worst < 0.01


def test_a_prompt_chunk_is_not_spread_over_the_decodes():
    """The mispricing the attention table removes: one 2048-token chunk at 4000 cached tokens
    with 100 decodes costs more than its key (the chunk's attention spread evenly)."""
    table, ref = _table(), _table()
    step = [(1, 100)] * 100 + [(2048, 4000)]
    want = ref.simulate(Batch.of(step))
    assert table.step(step) == pytest.approx(want, rel=1e-3)
    assert ref.direct(2148, 101, round((100 * 100 + 4000) / 101)) < want * 0.97


def test_nodes_are_memoised():
    table = _table()
    for c in range(1000, 1100):
        table.step([(1, c)] * 32)
    assert table.simulated <= 12  # 2 dense nodes, a few attention nodes, not 100 steps
    assert table.time(64, 64, 0) == pytest.approx(table.direct(64, 64, 0), rel=1e-9)
