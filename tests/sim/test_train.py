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


def _toy_reuse(pcie):
    from tests.mappers.test_train import TOY
    spec = TrainSpec(batch=2, seq=8, reuse="activations")
    return train_step(api.load_system("h100"), TOY, spec, precision=BF16, detail="roofline",
                      pcie_bytes_per_s=pcie)


def test_transfer_bound_read_back_runs_the_link_back_to_back():
    """The toy records 1688 B a token a layer (hand count, docs/training.md): 16 tokens are
    27008 B a layer. At 27008 B/ms a layer takes 1 ms, far above the toy's microseconds of
    compute: the link runs both layers' transfers back to back (2 ms), then the last layer's
    backward and what follows the layers run as on the chip."""
    chip = _toy_reuse(None)
    r = _toy_reuse(27008e3)
    p = r.prefetch
    assert p.layer_bytes_per_token == 1688 and p.transfer_s(16) == pytest.approx(1e-3)
    assert p.layer_s < 1e-4 and p.lead_s < 1e-3
    after_layers = chip.time_s - p.lead_s - 2 * p.layer_s
    assert r.time_s == pytest.approx(2e-3 + p.layer_s + after_layers, rel=1e-12)
    assert r.readback_s == pytest.approx(r.time_s - chip.time_s)
    assert r.as_dict()["readback"]["bytes"] == 2 * 27008
    # two layer buffers on the chip: the toy has two layers, so as many as kept on chip
    assert r.memory.activations == chip.memory.activations == 66_368


def test_fast_link_hides_the_read_back_behind_the_head():
    """At 1e18 B/s each transfer is far shorter than the head's forward and backward, which
    run first: the step is the on-chip one exactly."""
    chip, r = _toy_reuse(None), _toy_reuse(1e18)
    assert chip.prefetch is None and chip.readback_s == 0.0
    assert r.readback_s == 0.0 and r.time_s == chip.time_s


def test_read_back_needs_reuse():
    with pytest.raises(ValueError, match="pcie_bytes_per_s"):
        train_step(api.load_system("h100"), api.load_model("llama2-7b"),
                   TrainSpec(batch=1, seq=8), precision=BF16, detail="roofline",
                   pcie_bytes_per_s=5e10)


def test_api_reads_back_and_refuses_a_bad_bandwidth():
    from sim.errors import ConfigError

    kw = dict(batch=1, seq=64, lora_rank=16, detail="roofline", reuse="activations")
    chip, host = (api.train("h100", "llama2-7b", pcie_bytes_per_s=bw, **kw)
                  for bw in (None, 5e9))  # 1.3 ms a layer at 64 tokens
    assert host.time_s > chip.time_s and host.prefetch.pcie_bytes_per_s == 5e9
    for bad, extra in ((0, {}), (-1.0, {}), ("fast", {}), (5e10, {"reuse": "none"})):
        with pytest.raises(ConfigError, match="pcie_bytes_per_s"):
            api.train("h100", "llama2-7b", pcie_bytes_per_s=bad, **{**kw, **extra})
