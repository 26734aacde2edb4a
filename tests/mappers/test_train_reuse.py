"""Alchemist's reuse of serving activations in a training step: the forward it skips."""

import pytest

from mappers.ir import OpKind
from mappers.train import TrainSpec, lower_train
from mappers.train_memory import train_memory
from sim.errors import ConfigError
from tests.mappers.test_train import BF16, GEMMS, TOY, _flops

ATTN = frozenset({OpKind.ATTN_SCORE, OpKind.ATTN_VALUE})


@pytest.mark.parametrize("recompute", ["none", "full"])
def test_reuse_removes_exactly_the_layers_forward_by_hand(recompute):
    """Toy, T = 16 tokens. Without reuse the forward GEMMs are 2 T (2 x 36864 + 16384) =
    2883584 (test_train). Reuse keeps only the head's LM head, 2 x 16 x 16384 = 524288, and
    no attention; the backward and the update are unchanged, and there is no recompute."""
    base = lower_train(TOY, TrainSpec(batch=2, seq=8, recompute=recompute), precision=BF16)
    g = lower_train(TOY, TrainSpec(batch=2, seq=8, recompute=recompute, reuse="activations"),
                    precision=BF16)
    assert _flops(g, "forward", GEMMS) == 524_288
    assert _flops(g, "forward", ATTN) == 0
    assert _flops(g, "recompute") == 0
    assert _flops(g, "backward") == _flops(base, "backward")
    assert _flops(g, "update") == _flops(base, "update")
    # the step loses the embedding's and layers' forward (and the recompute), nothing else
    head = sum(op.flops for seg in base.segments if seg.name == "head" for op in seg.ops)
    dropped = _flops(base, "forward") - head + _flops(base, "recompute")
    assert base.total("flops") - g.total("flops") == dropped
    assert _flops(base, "forward", GEMMS) - _flops(g, "forward", GEMMS) == 2_359_296


def test_reuse_keeps_every_layers_activations_resident():
    """The recorded activations are what no-recompute keeps: 2 x 27008 + 12352 = 66368."""
    for recompute in ("none", "full"):
        spec = TrainSpec(batch=2, seq=8, recompute=recompute, reuse="activations")
        m = train_memory(TOY, spec, lower_train(TOY, spec, precision=BF16), precision=BF16)
        assert m.activations == 66_368


def test_bad_reuse_names_its_flag():
    with pytest.raises(ConfigError, match="--reuse: must be one of none, activations"):
        TrainSpec(batch=1, seq=8, reuse="kv")
