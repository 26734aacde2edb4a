"""`sim.train.train_step`: the training graph costed on the unit models."""

import pytest

from mappers.ir import Precision
from mappers.train import TrainSpec
from sim import api
from sim.train import train_step

BF16 = Precision(weight="bf16", activation="bf16", kv="bf16")


def test_roofline_update_time_is_adamw_bytes_over_bandwidth():
    """Llama-2-7B's 6738415616 parameters, bf16 weights and fp32 AdamW state: 28 bytes a
    parameter (docs/training.md) over h100's 3.352 TB/s at 85 % efficiency, plus one 1 us
    launch; 16 FLOPs a parameter on the vector units stay below that."""
    system = api.load_system("h100")
    r = train_step(system, api.load_model("llama2-7b"), TrainSpec(batch=1, seq=64),
                   precision=BF16, detail="roofline")
    expected = 28 * 6_738_415_616 / (3.352e12 * 0.85) + 1e-6
    assert r.op_time_s["update"] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("detail", ["roofline", "tile"])
def test_recompute_costs_about_one_more_forward_and_saves_memory(detail):
    model = api.load_model("llama2-7b")
    system = api.load_system("h100")
    none, full = (train_step(system, model, TrainSpec(batch=1, seq=256, lora_rank=8,
                                                      recompute=rc), precision=BF16,
                             detail=detail) for rc in ("none", "full"))
    # the recompute is the layers' forward again: the same op costs, less embedding and head
    assert none.op_time_s["forward"] * 0.8 < full.op_time_s["recompute"] \
        < none.op_time_s["forward"]
    assert full.time_s > none.time_s
    assert full.memory.activations < none.memory.activations
    assert full.memory.weights == none.memory.weights
